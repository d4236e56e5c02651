/**
 * The profiler's text table: per layer the total sensitivity s_{l,b} = s^K + s^V at every profiled bit-width,
 * and the K / V shares of it at the lowest bit-width.
 *
 * @example
 * ```ts
 * import { formatSensitivityTable } from "./report.ts";
 * import { randomModel } from "./testing_model.ts";
 * import { profileWindows, resolveSettings } from "./sensitivity.ts";
 * const model = randomModel({ seed: 1 });
 * const settings = resolveSettings({ samples: 1, length: 4, bits: [2, 4] });
 * const result = profileWindows(model, [[3, 14, 15, 9]], settings);
 * console.log(formatSensitivityTable(result));
 * ```
 * @module
 */
import type { SensitivityTable } from "./sensitivity.ts";

/** Per-bit-width, per-layer tables (a SensitivityResult, or an artifact's fields renamed). */
export interface SensitivityTables {
  bits: number[];
  k: SensitivityTable;
  v: SensitivityTable;
  total: SensitivityTable;
}

/**
 * The tables of a read artifact, in the shape the report and chart take.
 *
 * @example
 * ```ts
 * import { tablesOf } from "./report.ts";
 * import { makeSensitivityArtifact } from "./artifact.ts";
 * import { randomModel } from "./testing_model.ts";
 * import { profileWindows, resolveSettings } from "./sensitivity.ts";
 * const model = randomModel({ seed: 1 });
 * const settings = resolveSettings({ samples: 1, length: 4, bits: [2, 4] });
 * const result = profileWindows(model, [[3, 14, 15, 9]], settings);
 * const t = tablesOf(await makeSensitivityArtifact(model, settings, result)); // or of readSensitivity(file)
 * ```
 */
export function tablesOf(
  art: {
    settings: { bits: number[] };
    kSensitivity: SensitivityTable;
    vSensitivity: SensitivityTable;
    total: SensitivityTable;
  },
): SensitivityTables {
  return { bits: [...art.settings.bits], k: art.kSensitivity, v: art.vSensitivity, total: art.total };
}

const sci = (x: number) => x.toExponential(3);
const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)} %` : "-");

/**
 * A fixed-width text table: `layer | s_b for each b | K share | V share`, a final row with the sum over
 * layers, and a footnote saying which bit-width the shares refer to.
 *
 * @example
 * ```ts
 * import { formatSensitivityTable } from "./report.ts";
 * formatSensitivityTable({ bits: [2], k: { 2: [3] }, v: { 2: [1] }, total: { 2: [4] } });
 * // layer        s_2  K share  V share
 * //     0  4.000e+0   75.0 %   25.0 % ...
 * ```
 */
export function formatSensitivityTable(t: SensitivityTables): string {
  const bits = [...t.bits].sort((a, b) => a - b);
  const low = String(bits[0]);
  const layers = t.total[low].length;
  const head = ["layer", ...bits.map((b) => `s_${b}`), "K share", "V share"];
  const rows: string[][] = [];
  for (let l = 0; l < layers; l++) {
    const tot = t.k[low][l] + t.v[low][l];
    rows.push([
      String(l),
      ...bits.map((b) => sci(t.total[b][l])),
      pct(t.k[low][l] / tot),
      pct(t.v[low][l] / tot),
    ]);
  }
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
  const kAll = sum(t.k[low]), vAll = sum(t.v[low]);
  rows.push([
    "sum",
    ...bits.map((b) => sci(sum(t.total[b]))),
    pct(kAll / (kAll + vAll)),
    pct(vAll / (kAll + vAll)),
  ]);
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padStart(width[i])).join("  ");
  return [
    line(head),
    ...rows.slice(0, -1).map(line),
    width.map((w) => "-".repeat(w)).join("  "),
    line(rows[rows.length - 1]),
    `s_b = s^K + s^V (mean |(Q_b(X) − X) ⊙ dL/dX| per element, averaged over windows); ` +
    `K/V share: of s_${low}.`,
  ].join("\n");
}
