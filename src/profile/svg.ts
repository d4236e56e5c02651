/**
 * A hand-written SVG bar chart of per-layer sensitivities: one group of bars per layer, one bar per bit-width,
 * logarithmic y axis with a labelled tick at every power of ten, a title and a legend. No dependencies.
 *
 * @example
 * ```ts
 * import { sensitivitySvg } from "./svg.ts";
 * import { randomModel } from "./testing_model.ts";
 * import { profileWindows, resolveSettings } from "./sensitivity.ts";
 * const model = randomModel({ seed: 1 });
 * const settings = resolveSettings({ samples: 1, length: 4, bits: [2, 4] });
 * const result = profileWindows(model, [[3, 14, 15, 9]], settings);
 * await Deno.writeTextFile(await Deno.makeTempFile({ suffix: ".svg" }), sensitivitySvg(result, { title: "toy" }));
 * ```
 * @module
 */
import type { SensitivityTables } from "./report.ts";

/** Chart options. */
export interface SvgOptions {
  title?: string;
  /** Second title line (settings). */
  subtitle?: string;
}

const COLORS: Record<number, string> = { 2: "#d62728", 4: "#ff7f0e", 8: "#2ca02c", 16: "#1f77b4" };

/** Escapes text for SVG content and attribute values. */
function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

const fmt = (x: number) => Number(x.toFixed(2)).toString();

/**
 * The SVG text. Values ≤ 0 (a bit-width whose quantizer is exact on this data) get no bar. Bars show
 * s_{l,b} = s^K + s^V; each carries a tooltip with the K and V parts.
 *
 * @example
 * ```ts
 * import { sensitivitySvg } from "./svg.ts";
 * const svg = sensitivitySvg({ bits: [2, 4], k: { 2: [1e-3], 4: [1e-4] }, v: { 2: [2e-3], 4: [2e-4] },
 *   total: { 2: [3e-3], 4: [3e-4] } }, { title: "example" });
 * svg.startsWith("<svg"); // true
 * ```
 */
export function sensitivitySvg(t: SensitivityTables, options: SvgOptions = {}): string {
  const bits = [...t.bits].sort((a, b) => a - b);
  const layers = t.total[String(bits[0])].length;
  const values = bits.flatMap((b) => t.total[String(b)]).filter((x) => x > 0 && Number.isFinite(x));
  let lo = values.length ? Math.floor(Math.log10(Math.min(...values))) : -1;
  let hi = values.length ? Math.ceil(Math.log10(Math.max(...values))) : 0;
  if (hi <= lo) hi = lo + 1;
  if (hi - lo > 40) lo = hi - 40;
  const barW = 14, gap = 22;
  const left = 78, right = 150, top = options.subtitle ? 66 : 50, bottom = 56;
  const plotW = Math.max(360, layers * (bits.length * barW + gap) + gap);
  const plotH = 300;
  const W = left + plotW + right, H = top + plotH + bottom;
  const y = (v: number) => top + plotH * (1 - (Math.log10(v) - lo) / (hi - lo));
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
      `font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">` +
      `${esc(options.title ?? "KV-cache quantization sensitivity per layer")}</text>`,
  );
  if (options.subtitle) {
    out.push(`<text x="${W / 2}" y="44" text-anchor="middle" fill="#555">${esc(options.subtitle)}</text>`);
  }
  // Decade grid lines and labels.
  for (let e = lo; e <= hi; e++) {
    const yy = fmt(y(10 ** e));
    out.push(
      `<line x1="${left}" y1="${yy}" x2="${left + plotW}" y2="${yy}" stroke="#ddd"/>`,
      `<text x="${left - 8}" y="${yy}" text-anchor="end" dominant-baseline="middle">1e${e}</text>`,
    );
  }
  out.push(
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="black"/>`,
    `<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="black"/>`,
    `<text transform="translate(18 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">` +
      `s(l, b) = s<tspan baseline-shift="sub" font-size="9">K</tspan> + ` +
      `s<tspan baseline-shift="sub" font-size="9">V</tspan> (log scale)</text>`,
    `<text x="${left + plotW / 2}" y="${H - 14}" text-anchor="middle">layer</text>`,
  );
  const groupW = bits.length * barW;
  const step = (plotW - gap) / layers;
  for (let l = 0; l < layers; l++) {
    const x0 = left + gap + l * step + (step - gap - groupW) / 2;
    bits.forEach((b, j) => {
      const v = t.total[String(b)][l];
      if (!(v > 0)) return;
      const yy = Math.max(top, y(v));
      const tip =
        `layer ${l}, ${b}-bit: s = ${v.toExponential(3)} (K ${t.k[String(b)][l].toExponential(3)}, ` +
        `V ${t.v[String(b)][l].toExponential(3)})`;
      out.push(
        `<rect x="${fmt(x0 + j * barW)}" y="${fmt(yy)}" width="${barW - 2}" height="${
          fmt(top + plotH - yy)
        }" ` +
          `fill="${COLORS[b] ?? "#777"}"><title>${esc(tip)}</title></rect>`,
      );
    });
    out.push(
      `<text x="${fmt(x0 + groupW / 2)}" y="${top + plotH + 18}" text-anchor="middle">${l}</text>`,
    );
  }
  // Legend.
  const lx = left + plotW + 20;
  out.push(`<text x="${lx}" y="${top + 4}" font-weight="bold">bit-width</text>`);
  bits.forEach((b, j) => {
    const ly = top + 20 + j * 20;
    out.push(
      `<rect x="${lx}" y="${ly - 10}" width="14" height="12" fill="${COLORS[b] ?? "#777"}"/>`,
      `<text x="${lx + 20}" y="${ly}">${b}-bit</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
