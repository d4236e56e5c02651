/**
 * Evaluation output: a Markdown table and SVG plots (quality vs KV bytes per method; per-layer final
 * bit-widths; KV bytes over generated tokens with shrink events marked). Hand-written SVG, no dependencies.
 *
 * @example
 * ```ts
 * await Deno.writeTextFile("table.md", markdownTable(results));
 * ```
 * @module
 */
import type { JobResult } from "./job.ts";
import { ALL_METHODS } from "./methods.ts";

/** One table row: a method at a level, aggregated over its jobs. */
export interface Row {
  method: string;
  level: number | null;
  budgetBytes: number | null;
  passages: number;
  meanPrefix: number;
  minPrefix: number;
  meanMatch: number;
  newTokens: number;
  recitePeakBytes: number;
  kl: number | null;
  top1: number | null;
  ppl: number | null;
  klPeakBytes: number | null;
  layerBits: string;
  tokensPerSecond: number;
}

/** Groups job results into rows (order: by level, then method order of appearance). */
export function rowsOf(results: JobResult[]): Row[] {
  const key = (r: JobResult) => `${r.method}@${r.level ?? "-"}`;
  const groups = new Map<string, JobResult[]>();
  for (const r of results) {
    if (r.task.kind === "kl-reference") continue;
    const k = key(r);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(r);
  }
  const rows: Row[] = [];
  for (const rs of groups.values()) {
    const rec = rs.filter((r) => r.recitation).map((r) => r.recitation!);
    const tf = rs.find((r) => r.teacherForced)?.teacherForced ?? null;
    const first = rs[0];
    rows.push({
      method: first.method,
      level: first.level,
      budgetBytes: rs.find((r) => r.task.kind === "recite")?.budgetBytes ?? null,
      passages: rec.length,
      meanPrefix: rec.length ? rec.reduce((a, r) => a + r.prefixMatch, 0) / rec.length : NaN,
      minPrefix: rec.length ? Math.min(...rec.map((r) => r.prefixMatch)) : NaN,
      meanMatch: rec.length ? rec.reduce((a, r) => a + r.matchFraction, 0) / rec.length : NaN,
      newTokens: rec[0]?.newTokens ?? 0,
      recitePeakBytes: rec.length ? Math.max(...rec.map((r) => r.peakBytes)) : NaN,
      kl: tf?.kl ?? null,
      top1: tf?.top1 ?? null,
      ppl: tf?.perplexity ?? null,
      klPeakBytes: tf?.peakBytes ?? null,
      layerBits: (rec[0]?.layerBits ?? tf?.layerBits ?? []).join("/"),
      tokensPerSecond: rec.length ? rec.reduce((a, r) => a + r.decodeTokensPerSecond, 0) / rec.length : NaN,
    });
  }
  // unbudgeted methods first, then by level; within a level, in ALL_METHODS order (deterministic whatever
  // order the jobs finished or were resumed in)
  const order = (m: string) => {
    const i = (ALL_METHODS as readonly string[]).indexOf(m);
    return i < 0 ? ALL_METHODS.length : i;
  };
  return rows.sort((a, b) =>
    (a.level ?? 0) - (b.level ?? 0) || order(a.method) - order(b.method) || a.method.localeCompare(b.method)
  );
}

const kib = (n: number | null) => (n === null || Number.isNaN(n) ? "–" : (n / 1024).toFixed(1));
const fx = (n: number | null, d: number) => (n === null || Number.isNaN(n) ? "–" : n.toFixed(d));

/** The Markdown table. */
export function markdownTable(rows: Row[]): string {
  const head =
    "| method | budget level | budget KiB (recite) | recitation prefix match, mean (min) | position-wise match | " +
    "recite peak KiB | KL (nats/token) | top-1 agree | perplexity | KL-run peak KiB | final bits per layer | decode tok/s |\n" +
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n";
  return head +
    rows.map((r) =>
      `| ${r.method} | ${r.level ?? "–"} | ${kib(r.budgetBytes)} | ${fx(r.meanPrefix, 0)} (${
        fx(r.minPrefix, 0)
      }) / ${r.newTokens} | ` +
      `${fx(r.meanMatch, 3)} | ${kib(r.recitePeakBytes)} | ${r.kl === null ? "–" : r.kl.toExponential(2)} | ${
        fx(r.top1, 4)
      } | ` +
      `${fx(r.ppl, 3)} | ${kib(r.klPeakBytes)} | ${r.layerBits} | ${fx(r.tokensPerSecond, 1)} |`
    ).join("\n") + "\n";
}

const COLORS = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
  "#393b79",
  "#637939",
  "#8c6d31",
];
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

function frame(title: string, xLabel: string, yLabel: string, w: number, h: number): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">` +
    `<rect width="100%" height="100%" fill="white"/>` +
    `<text x="${w / 2}" y="20" text-anchor="middle" font-size="15">${esc(title)}</text>` +
    `<text x="${w / 2}" y="${h - 8}" text-anchor="middle">${esc(xLabel)}</text>` +
    `<text x="16" y="${h / 2}" text-anchor="middle" transform="rotate(-90 16 ${h / 2})">${
      esc(yLabel)
    }</text>`;
}

/**
 * Quality metric against KV bytes, one colour per method: a point per (method, level), the levels of a
 * budgeted method joined by a line. Bytes on a log2 axis (the exact caches hold 4–10× the quantized ones).
 */
export function qualityVsBytesSvg(rows: Row[], metric: "meanPrefix" | "kl", title: string): string {
  const pts = rows
    .map((r) => ({
      r,
      x: metric === "kl" ? r.klPeakBytes : r.recitePeakBytes,
      y: metric === "kl" ? r.kl : r.meanPrefix,
    }))
    .filter((p) =>
      p.x !== null && p.y !== null && !Number.isNaN(p.x) && p.x! > 0 && !Number.isNaN(p.y) &&
      (metric !== "kl" || p.y! > 0)
    ) as {
      r: Row;
      x: number;
      y: number;
    }[];
  const W = 760, H = 460, L = 70, R = 200, T = 40, B = 50;
  let s = frame(
    title,
    "KV-cache peak bytes (KiB, log scale)",
    metric === "kl" ? "KL to exact cache (nats/token, log scale)" : "recitation prefix match (tokens)",
    W,
    H,
  );
  if (!pts.length) return s + "</svg>";
  const xs = pts.map((p) => Math.log2(p.x / 1024)),
    ys = pts.map((p) => (metric === "kl" ? Math.log10(p.y) : p.y));
  const x0 = Math.floor(Math.min(...xs)), x1 = Math.ceil(Math.max(...xs) + 0.01);
  const y0 = metric === "kl" ? Math.floor(Math.min(...ys)) : 0,
    y1 = metric === "kl" ? Math.ceil(Math.max(...ys)) : Math.max(...ys) * 1.05 || 1;
  const sx = (x: number) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
  const sy = (y: number) => H - B - ((y - y0) / (y1 - y0 || 1)) * (H - T - B);
  s += `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${
    H - B
  }" stroke="black"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`;
  for (let e = x0; e <= x1; e++) {
    s += `<text x="${sx(e)}" y="${H - B + 16}" text-anchor="middle">${2 ** e}</text>` +
      `<line x1="${sx(e)}" y1="${H - B}" x2="${sx(e)}" y2="${H - B + 4}" stroke="black"/>`;
  }
  if (metric === "kl") {
    for (let e = y0; e <= y1; e++) s += `<text x="${L - 6}" y="${sy(e) + 4}" text-anchor="end">1e${e}</text>`;
  } else {
    for (let i = 0; i <= 5; i++) {
      const yv = y0 + ((y1 - y0) * i) / 5;
      s += `<text x="${L - 6}" y="${sy(yv) + 4}" text-anchor="end">${yv.toFixed(0)}</text>`;
    }
  }
  const methods = [...new Set(pts.map((p) => p.r.method))];
  const colour = (m: string) => COLORS[methods.indexOf(m) % COLORS.length];
  for (const m of methods) {
    const line = pts.map((p, i) => ({ p, i })).filter(({ p }) => p.r.method === m).sort((a, b) =>
      xs[a.i] - xs[b.i]
    );
    if (line.length > 1) {
      const d = line.map(({ i }, j) => `${j ? "L" : "M"}${sx(xs[i]).toFixed(1)},${sy(ys[i]).toFixed(1)}`)
        .join("");
      s += `<path d="${d}" fill="none" stroke="${colour(m)}" stroke-width="1.5"/>`;
    }
  }
  pts.forEach((p, i) => {
    s += `<circle cx="${sx(xs[i])}" cy="${sy(ys[i])}" r="5" fill="${colour(p.r.method)}"><title>${
      esc(p.r.method)
    } @${p.r.level ?? "-"}</title></circle>`;
  });
  methods.forEach((m, i) => {
    const y = T + 10 + i * 18;
    s += `<circle cx="${W - R + 20}" cy="${y}" r="5" fill="${colour(m)}"/><text x="${W - R + 30}" y="${
      y + 4
    }">${esc(m)}</text>`;
  });
  return s + "</svg>";
}

/** Final bit-width per layer of the budgeted methods (one row of cells per method@level). */
export function layerBitsSvg(rows: Row[]): string {
  const rs = rows.filter((r) => r.layerBits && r.level !== null);
  const nL = Math.max(0, ...rs.map((r) => r.layerBits.split("/").length));
  const W = 220 + nL * 44 + 20, H = 60 + rs.length * 26 + 30;
  let s = frame("Final KV bit-width per layer (recitation runs)", "layer", "", W, H);
  const shade: Record<string, string> = { "16": "#08306b", "8": "#2171b5", "4": "#6baed6", "2": "#c6dbef" };
  for (let l = 0; l < nL; l++) s += `<text x="${220 + l * 44 + 20}" y="50" text-anchor="middle">${l}</text>`;
  rs.forEach((r, i) => {
    const y = 58 + i * 26;
    s += `<text x="210" y="${y + 16}" text-anchor="end">${esc(r.method)} @${r.level}</text>`;
    r.layerBits.split("/").forEach((b, l) => {
      s += `<rect x="${220 + l * 44}" y="${y}" width="40" height="22" fill="${shade[b] ?? "#ccc"}"/>` +
        `<text x="${220 + l * 44 + 20}" y="${y + 15}" text-anchor="middle" fill="${
          b === "16" || b === "8" ? "white" : "black"
        }">${b}</text>`;
    });
  });
  return s + "</svg>";
}

/** KV bytes over the context length of recitation passage 0 for the given runs, shrink events marked. */
export function bytesTraceSvg(results: JobResult[], level: number): string {
  const all = results.filter((r) =>
    r.recitation && r.task.kind === "recite" && r.task.passage === 0 &&
    (r.level === level || r.level === null)
  );
  // the exact caches grow 4–10× above the rest: named in the title with their final size instead of plotted
  const exact = all.filter((r) => r.method.startsWith("exact"));
  const rs = all.filter((r) => !r.method.startsWith("exact"));
  const note = exact.map((r) =>
    `${r.method} ends at ${(r.recitation!.bytesTrace.at(-1)![1] / 1024).toFixed(0)} KiB`
  ).join(", ");
  const W = 820, H = 460, L = 80, R = 200, T = 48, B = 50;
  let s = frame(
    `KV bytes over the sequence (passage 0, level ${level}; ▼ = shrink event)`,
    "tokens in context",
    "KV-cache bytes (KiB)",
    W,
    H,
  );
  if (note) {
    s += `<text x="${W / 2}" y="34" text-anchor="middle" font-size="11">not drawn: ${esc(note)}</text>`;
  }
  if (!rs.length) return s + "</svg>";
  const xMax = Math.max(...rs.flatMap((r) => r.recitation!.bytesTrace.map((p) => p[0])));
  const yMax = Math.max(...rs.flatMap((r) => r.recitation!.bytesTrace.map((p) => p[1]))) / 1024 * 1.05;
  const sx = (x: number) => L + (x / xMax) * (W - L - R);
  const sy = (y: number) => H - B - (y / yMax) * (H - T - B);
  s += `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${
    H - B
  }" stroke="black"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`;
  for (let i = 0; i <= 5; i++) {
    s += `<text x="${sx((xMax * i) / 5)}" y="${H - B + 16}" text-anchor="middle">${
      ((xMax * i) / 5).toFixed(0)
    }</text>`;
    s += `<text x="${L - 6}" y="${sy((yMax * i) / 5) + 4}" text-anchor="end">${
      ((yMax * i) / 5).toFixed(0)
    }</text>`;
  }
  rs.forEach((r, i) => {
    const c = COLORS[i % COLORS.length];
    const d = r.recitation!.bytesTrace.map((p, j) =>
      `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1] / 1024).toFixed(1)}`
    ).join("");
    s += `<path d="${d}" fill="none" stroke="${c}" stroke-width="2"/>`;
    for (const e of r.recitation!.events) {
      const near = r.recitation!.bytesTrace.reduce((
        a,
        p,
      ) => (Math.abs(p[0] - e.step) < Math.abs(a[0] - e.step) ? p : a));
      s += `<text x="${sx(e.step)}" y="${
        sy(near[1] / 1024) - 4
      }" text-anchor="middle" fill="${c}" font-size="10">▼<title>layer ${e.layer}: ${e.from}→${e.to} at ${e.step}</title></text>`;
    }
    const y = T + 10 + i * 18;
    s += `<line x1="${W - R + 10}" y1="${y}" x2="${
      W - R + 30
    }" y2="${y}" stroke="${c}" stroke-width="2"/><text x="${W - R + 36}" y="${y + 4}">${esc(r.method)}${
      r.level !== null ? " @" + r.level : ""
    }</text>`;
  });
  return s + "</svg>";
}
