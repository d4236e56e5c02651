/**
 * The positional-interpolation study (the must-show experiment). Calibrates tiny-lm on short windows
 * of the training-text sample with position stretch s ∈ {1, 2, 4, 8, 16}, then, on held-out 2,048-token windows
 * (models/tiny-lm/heldout.txt) at ordinary positions 0..2047, measures
 *   (a) coverage: per layer, KV head and RoPE pair, the real max|K| against the calibrated one;
 *   (b) attention-output error: relative MSE of each layer's attention output (after o_proj) against the exact
 *       layer, with K at 4 and 2 bits (values exact, or at the same bits), for no smoothing, smoothing calibrated
 *       with each s, and an oracle λ = (held-out max)^α.
 * Writes the tables into docs/calibration.md (between the pi-study markers), a coverage figure to
 * docs/figures/calib-pi-coverage.svg and the raw numbers to out/pi_study.json.
 *
 * Run: deno run -A calib/pi_study.ts [--samples 3] [--length 512] [--heldout 2] [--queries 128] [--search-stride 8]
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { loadModel } from "../src/model/load.ts";
import { loadTokenizer } from "../src/model/tokenizer.ts";
import { CpuForward } from "../cpu/forward.ts";
import { createCache, kvShapeOf } from "../src/kv/factory.ts";
import { fakeQuantize } from "../src/quant/quantizer.ts";
import { groupSizeFor } from "../src/quant/format.ts";
import { loadCorpusSegments, stretchedPositions, tokenWindows } from "./corpus.ts";
import { collectMaxKeys, emptyMaxKeys, type MaxKeys, updateMaxKeys } from "./maxkeys.ts";
import { lambdaFor, LayerAlphaSearch, smoothQK } from "./search.ts";
import { attentionOutput } from "./layer_attention.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const STRETCHES = [1, 2, 4, 8, 16];
const BEGIN = "<!-- pi-study:begin -->", END = "<!-- pi-study:end -->";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    samples: { type: "string", default: "3" },
    length: { type: "string", default: "512" },
    heldout: { type: "string", default: "2" },
    "heldout-length": { type: "string", default: "2048" },
    queries: { type: "string", default: "128" },
    "search-stride": { type: "string", default: "8" },
    seed: { type: "string", default: "0" },
    doc: { type: "string", default: `${ROOT}docs/calibration.md` },
    json: { type: "string", default: `${ROOT}out/pi_study.json` },
    figure: { type: "string", default: `${ROOT}docs/figures/calib-pi-coverage.svg` },
  },
});
const SAMPLES = Number(flags.samples), LENGTH = Number(flags.length), HELD = Number(flags.heldout);
const HELD_LEN = Number(flags["heldout-length"]), QUERIES = Number(flags.queries);
const SEARCH_STRIDE = Number(flags["search-stride"]), SEED = Number(flags.seed);

const t0 = performance.now();
const enc = new TextEncoder();
const elapsed = () => ((performance.now() - t0) / 1000).toFixed(0) + " s";
const log = (s: string) => Deno.stderr.writeSync(enc.encode(s));

const model = await loadModel(`${ROOT}models/tiny-lm`);
const c = model.config;
const D = c.headDim, half = D / 2, nL = c.numLayers, nKv = c.numKvHeads, G = groupSizeFor(D);
const tok = await loadTokenizer(model.tokenizerPath!);
log(`tokenizing ... (${elapsed()})\n`);
const calWindows = tokenWindows(await loadCorpusSegments(), tok, {
  count: SAMPLES,
  length: LENGTH,
  seed: SEED,
});
const heldWindows = tokenWindows([await Deno.readTextFile(`${ROOT}models/tiny-lm/heldout.txt`)], tok, {
  count: HELD,
  length: HELD_LEN,
  seed: SEED,
});
// Query rows of the error measurement: evenly spaced over the second half of the held-out window, i.e. at
// positions beyond what the unstretched calibration (s = 1) ever saw.
const rows = Array.from(
  { length: QUERIES },
  (_, i) => HELD_LEN / 2 + Math.floor((i * (HELD_LEN / 2)) / QUERIES),
);

// ---- held-out: exact q, k, v per layer (ordinary positions) and the real per-pair max|K|.
interface Held {
  q: Float32Array[];
  k: Float32Array[];
  v: Float32Array[];
}
const held: Held[] = [];
const realMax: MaxKeys = emptyMaxKeys(nL, nKv, D);
for (const [w, ids] of heldWindows.entries()) {
  const hw: Held = { q: [], k: [], v: [] };
  new CpuForward(model).forward(
    ids,
    stretchedPositions(HELD_LEN, 1),
    createCache({ method: "exact" }, kvShapeOf(c)),
    {
      logits: "none",
      hooks: {
        onQuery: (l, q) => (hw.q[l] = q.slice()),
        onKV: (l, k, v, T) => {
          hw.k[l] = k.slice();
          hw.v[l] = v.slice();
          updateMaxKeys(realMax[l], k, T, nKv, D);
        },
      },
      onProgress: (l, L) => log(`\rheld-out window ${w + 1}/${HELD}: layer ${l}/${L} (${elapsed()})   `),
    },
  );
  held.push(hw);
}
log("\n");

// ---- calibration with each stretch: max|K| (one forward per window, layer inputs kept) + α search.
interface Calib {
  label: string;
  stretch: number | null;
  maxKeys: MaxKeys | null;
  alphas: number[];
  lambdas: Float32Array[] | null;
}
const calibs: Calib[] = [{ label: "no smoothing", stretch: null, maxKeys: null, alphas: [], lambdas: null }];
for (const s of STRETCHES) {
  const inputs: Float32Array[][] = calWindows.map(() => []);
  const mk = collectMaxKeys(model, calWindows, {
    stretch: s,
    onLayerInput: (w, l, h) => (inputs[w][l] = h.slice()),
    onProgress: (w, n, l, L) => log(`\rs = ${s}: max|K| window ${w}/${n}, layer ${l}/${L} (${elapsed()})   `),
  });
  const alphas: number[] = [], lambdas: Float32Array[] = [];
  for (let l = 0; l < nL; l++) {
    log(`\rs = ${s}: α search layer ${l + 1}/${nL} (${elapsed()})                 `);
    const search = new LayerAlphaSearch(model, l, mk[l], { kBits: 4, vBits: 4, queryStride: SEARCH_STRIDE });
    for (const w of inputs) search.addWindow(w[l], stretchedPositions(LENGTH, s));
    const r = search.result();
    alphas.push(r.alpha);
    lambdas.push(r.lambda);
  }
  calibs.push({ label: `s = ${s}`, stretch: s, maxKeys: mk, alphas, lambdas });
}
log("\n");
const s4 = calibs.find((x) => x.stretch === 4)!;
calibs.push({
  label: "oracle: held-out max, α of s = 4",
  stretch: null,
  maxKeys: realMax,
  alphas: s4.alphas,
  lambdas: realMax.map((m, l) => lambdaFor(m, s4.alphas[l])),
});
// Control: the same maxima with a fixed α = 0.5 in every layer, so only the stretch differs between rows.
const FIXED = calibs.length;
for (const s of STRETCHES) {
  const mk = calibs.find((x) => x.stretch === s)!.maxKeys!;
  calibs.push({
    label: `s = ${s}, fixed α = 0.5`,
    stretch: s,
    maxKeys: mk,
    alphas: mk.map(() => 0.5),
    lambdas: mk.map((m) => lambdaFor(m, 0.5)),
  });
}

// ---- coverage of the real max by each calibrated max.
interface Coverage {
  uncovered: number;
  uncoveredLowFreq: number;
  meanRatio: number;
  maxRatio: number;
}
function coverage(cal: MaxKeys): Coverage {
  let n = 0, un = 0, nLow = 0, unLow = 0, sum = 0, mx = 0;
  for (let l = 0; l < nL; l++) {
    for (let i = 0; i < nKv * half; i++) {
      const r = realMax[l][i] / Math.max(cal[l][i], 1e-30);
      const low = i % half >= half / 2;
      n++;
      sum += r;
      mx = Math.max(mx, r);
      if (r > 1) un++;
      if (low) {
        nLow++;
        if (r > 1) unLow++;
      }
    }
  }
  return { uncovered: un / n, uncoveredLowFreq: unLow / nLow, meanRatio: sum / n, maxRatio: mx };
}

// ---- attention-output error on the held-out windows.
const VARIANTS = [
  { name: "K4 V16", kb: 4, vb: 0 },
  { name: "K4 V4", kb: 4, vb: 4 },
  { name: "K2 V16", kb: 2, vb: 0 },
  { name: "K2 V2", kb: 2, vb: 2 },
];
// err[config][variant][layer], ref[layer]
const err = calibs.map(() => VARIANTS.map(() => new Float64Array(nL)));
const ref = new Float64Array(nL);
for (const [w, hw] of held.entries()) {
  for (let l = 0; l < nL; l++) {
    log(`\rerror: held-out window ${w + 1}/${HELD}, layer ${l + 1}/${nL} (${elapsed()})   `);
    const { q, k, v } = { q: hw.q[l], k: hw.k[l], v: hw.v[l] };
    const exact = attentionOutput(model, l, q, k, v, HELD_LEN, rows);
    for (const x of exact) ref[l] += x * x;
    const vq: Record<number, Float32Array> = { 0: v, 4: fakeQuantize(v, G, 4), 2: fakeQuantize(v, G, 2) };
    calibs.forEach((cal, ci) => {
      const sm = cal.lambdas ? smoothQK(q, k, cal.lambdas[l], HELD_LEN, c.numHeads, nKv, D) : { q, k };
      const kq: Record<number, Float32Array> = { 4: fakeQuantize(sm.k, G, 4), 2: fakeQuantize(sm.k, G, 2) };
      VARIANTS.forEach((va, vi) => {
        const out = attentionOutput(model, l, sm.q, kq[va.kb], vq[va.vb], HELD_LEN, rows);
        let e = 0;
        for (let i = 0; i < out.length; i++) e += (out[i] - exact[i]) ** 2;
        err[ci][vi][l] += e;
      });
    });
  }
}
log("\n");
const rel = err.map((byV) => byV.map((byL) => Array.from(byL, (e, l) => e / ref[l])));
const meanRel = rel.map((byV) => byV.map((byL) => byL.reduce((a, b) => a + b, 0) / nL));
const wall = (performance.now() - t0) / 1000;

// ---- report.
const fmt = (x: number) => (x * 1e3).toFixed(3);
const pct = (x: number) => (100 * x).toFixed(1) + " %";
const covs = calibs.map((cal) => (cal.maxKeys ? coverage(cal.maxKeys) : null));
const date = new Date().toISOString().slice(0, 10);
const command = `deno run -A calib/pi_study.ts` + (Deno.args.length ? " " + Deno.args.join(" ") : "");
const lines: string[] = [];
lines.push(BEGIN);
lines.push(
  `Generated by \`${command}\` on ${date}, machine: 2-core dev CPU (shared), Deno ${Deno.version.deno}; ` +
    `wall time ${(wall / 60).toFixed(1)} min.`,
);
lines.push("");
lines.push(
  `- Model: tiny-lm (${nL} layers, ${nKv} KV heads of ${D}; fingerprint ${model.fingerprint.slice(0, 12)}…).`,
);
lines.push(
  `- Calibration: ${SAMPLES} windows × ${LENGTH} tokens of data/tiny-lm-train-sample.txt.gz (seed ${SEED}; the CLI ` +
    `default is 16 — reduced for runtime), positions 0, s, 2s, …; α searched per layer with K4/V4 students, loss on every ` +
    `${SEARCH_STRIDE}th query row (the CLI uses every row).`,
);
lines.push(
  `- Held-out: ${HELD} windows × ${HELD_LEN} tokens of models/tiny-lm/heldout.txt at ordinary positions ` +
    `0..${HELD_LEN - 1}. Error measured on ${QUERIES} query rows evenly spaced over positions ${rows[0]}..${
      rows[rows.length - 1]
    } ` +
    `(each attending to all earlier keys); keys and values quantized over the whole window (G = ${G}, the project's quantizer).`,
);
lines.push(
  `- Coverage: over all ${nL}·${nKv}·${half} (layer, KV head, RoPE pair) entries, real = max|K| on the held-out ` +
    `windows, cal = calibrated max|K|. "Uncovered" = fraction with real > cal; "low-freq" = pairs j ≥ ${
      half / 2
    } (the ` +
    `slowest-rotating half, whose phases short windows do not sweep).`,
);
lines.push(
  `- Error: relative MSE Σ(out − exact)² / Σ exact² of each layer's attention output (after o_proj), averaged ` +
    `over the ${nL} layers, ×10⁻³. V16 = exact values.`,
);
lines.push("");
lines.push(
  `| calibration | eff. length | uncovered | uncovered (low-freq) | mean real/cal | max real/cal | ` +
    VARIANTS.map((v) => v.name).join(" | ") + " |",
);
lines.push("|---|---:|---:|---:|---:|---:|" + VARIANTS.map(() => "---:").join("|") + "|");
calibs.forEach((cal, ci) => {
  const cv = covs[ci];
  const eff = cal.stretch ? String(cal.stretch * LENGTH) : "–";
  const covCols = cv
    ? [pct(cv.uncovered), pct(cv.uncoveredLowFreq), cv.meanRatio.toFixed(3), cv.maxRatio.toFixed(2)]
    : ["–", "–", "–", "–"];
  lines.push(`| ${cal.label} | ${eff} | ${covCols.join(" | ")} | ${meanRel[ci].map(fmt).join(" | ")} |`);
});
lines.push("");
lines.push(`Per-layer relative MSE (×10⁻³) at K2 V16, and the α chosen per layer:`);
lines.push("");
lines.push(`| calibration | ${Array.from({ length: nL }, (_, l) => `L${l}`).join(" | ")} | α per layer |`);
lines.push(`|---|${Array.from({ length: nL }, () => "---:").join("|")}|---|`);
calibs.forEach((cal, ci) => {
  lines.push(
    `| ${cal.label} | ${rel[ci][2].map(fmt).join(" | ")} | ${
      cal.alphas.length ? cal.alphas.join(", ") : "–"
    } |`,
  );
});
lines.push("");
const bestOf = (first: number, vi: number) => {
  let bi = first;
  for (let i = first; i < first + STRETCHES.length; i++) if (meanRel[i][vi] < meanRel[bi][vi]) bi = i;
  return bi;
};
const change = (a: number, b: number) => `${((100 * (b - a)) / a).toFixed(1)} %`;
const i1 = 1, i4 = 1 + STRETCHES.indexOf(4), f1 = FIXED, f4 = FIXED + STRETCHES.indexOf(4);
const per = (a: number, b: number) =>
  VARIANTS.map((v, vi) => `${change(meanRel[a][vi], meanRel[b][vi])} (${v.name})`).join(", ");
lines.push(
  `Automatic summary: s = 4 vs s = 1 changes the mean error by ${per(i1, i4)} with α searched, and by ` +
    `${per(f1, f4)} with α fixed at 0.5 (negative = PI helps). Best stretch with α searched: ` +
    VARIANTS.map((v, vi) => `${calibs[bestOf(1, vi)].label} (${v.name})`).join(", ") + "; with α = 0.5: " +
    VARIANTS.map((v, vi) => `${calibs[bestOf(FIXED, vi)].label} (${v.name})`).join(", ") +
    `. Smoothing (s = 4, α searched) vs none: ${per(0, i4)}.`,
);
lines.push("");
lines.push(`![real vs calibrated max|K| per RoPE pair](figures/calib-pi-coverage.svg)`);
lines.push(END);
const section = lines.join("\n");
console.log(section);

// ---- figure: layer 3, KV head 0: real vs calibrated max per pair j (log scale).
function figure(): string {
  const L = Math.min(3, nL - 1), Wd = 640, Ht = 320, pad = 40;
  const series: { name: string; color: string; y: Float32Array }[] = [
    { name: "held-out real", color: "#000", y: realMax[L].subarray(0, half) },
    ...[1, 4, 16].map((s, i) => ({
      name: `cal s = ${s}`,
      color: ["#d62728", "#1f77b4", "#2ca02c"][i],
      y: calibs.find((x) => x.stretch === s)!.maxKeys![L].subarray(0, half),
    })),
  ];
  const all = series.flatMap((s) => Array.from(s.y)).filter((x) => x > 0);
  const lo = Math.log10(Math.min(...all)), hi = Math.log10(Math.max(...all));
  const X = (j: number) => pad + (j / (half - 1)) * (Wd - 2 * pad);
  const Y = (y: number) =>
    Ht - pad - ((Math.log10(Math.max(y, 1e-30)) - lo) / (hi - lo || 1)) * (Ht - 2 * pad);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${Wd}" height="${Ht}" font-family="sans-serif" font-size="11">`,
    `<rect width="${Wd}" height="${Ht}" fill="white"/>`,
    `<text x="${pad}" y="16">tiny-lm layer ${L}, KV head 0: max|K| per RoPE pair j (log scale); j → slower rotation</text>`,
    `<line x1="${pad}" y1="${Ht - pad}" x2="${Wd - pad}" y2="${Ht - pad}" stroke="#888"/>`,
    `<text x="${pad}" y="${Ht - pad + 14}">0</text><text x="${Wd - pad - 10}" y="${Ht - pad + 14}">${
      half - 1
    }</text>`,
    `<text x="4" y="${pad}">${(10 ** hi).toPrecision(2)}</text><text x="4" y="${Ht - pad}">${
      (10 ** lo).toPrecision(2)
    }</text>`,
  ];
  series.forEach((s, i) => {
    const pts = Array.from(s.y, (y, j) => `${X(j).toFixed(1)},${Y(y).toFixed(1)}`).join(" ");
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.3" points="${pts}"/>`);
    parts.push(`<text x="${pad + 10}" y="${pad + 14 * i}" fill="${s.color}">${s.name}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

let doc = "";
try {
  doc = await Deno.readTextFile(flags.doc!);
} catch {
  doc = "# Calibration\n";
}
const a = doc.indexOf(BEGIN), b = doc.indexOf(END);
doc = a >= 0 && b > a
  ? doc.slice(0, a) + section + doc.slice(b + END.length)
  : doc.trimEnd() + "\n\n" + section + "\n";
await Deno.writeTextFile(flags.doc!, doc);
await Deno.mkdir(`${ROOT}docs/figures`, { recursive: true });
await Deno.writeTextFile(flags.figure!, figure());
await Deno.mkdir(`${ROOT}out`, { recursive: true });
await Deno.writeTextFile(
  flags.json!,
  JSON.stringify(
    {
      date,
      command,
      wallSeconds: wall,
      settings: flags,
      rows,
      calibs: calibs.map((cal, ci) => ({
        label: cal.label,
        stretch: cal.stretch,
        alphas: cal.alphas,
        coverage: covs[ci],
        relMse: Object.fromEntries(VARIANTS.map((v, vi) => [v.name, rel[ci][vi]])),
      })),
    },
    null,
    1,
  ),
);
log(`done in ${(wall / 60).toFixed(1)} min; wrote ${flags.doc}, ${flags.figure}, ${flags.json}\n`);
