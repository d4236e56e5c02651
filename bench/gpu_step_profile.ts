/**
 * Per-kernel GPU time of one tiny-lm decode step, to see where a step's time goes (launch/barrier overhead
 * versus bandwidth). Each kernel of the step is timed alone as a pass of `--reps` back-to-back dispatches
 * (timestamp queries when available), at the shapes of the model and a context of `--context` tokens.
 *
 *   deno run -A bench/gpu_step_profile.ts [--model DIR] [--context 1000] [--reps 200]
 *
 * Output: a Markdown table of µs per dispatch, dispatches per step, and µs per step per kernel.
 *
 * @example
 * ```ts
 * // deno run -A bench/gpu_step_profile.ts --context 1000
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { loadModel } from "../src/model/load.ts";
import { acquireGpu } from "../gpu/device.ts";
import { registryFor } from "../gpu/registry.ts";
import { StepBuffer } from "../gpu/step.ts";
import { storageBuffer } from "../gpu/buffers.ts";
import { PassTimer } from "../gpu/timer.ts";
import { MatmulKernel } from "../gpu/kernels/matmul.ts";
import { RmsnormKernel } from "../gpu/kernels/rmsnorm.ts";
import { RopeKernel } from "../gpu/kernels/rope.ts";
import { EmbedKernel } from "../gpu/kernels/embed.ts";
import { ArgmaxKernel } from "../gpu/kernels/argmax.ts";
import { KvAppendKernel } from "../gpu/kernels/kv_append.ts";
import { AttentionKernels, decodeSplit } from "../gpu/kernels/attention.ts";
import { MAX_SPLITS } from "../gpu/cache/exact.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", default: new URL("../models/tiny-lm", import.meta.url).pathname },
    context: { type: "string", default: "1000" },
    reps: { type: "string", default: "200" },
  },
});
const c = (await loadModel(values.model)).config;
const ctx = await acquireGpu();
const reg = registryFor(ctx);
const timer = new PassTimer(ctx);
const P = Number(values.context), REPS = Number(values.reps);
const H = c.hiddenSize,
  D = c.headDim,
  nH = c.numHeads,
  nKv = c.numKvHeads,
  I = c.intermediateSize,
  V = c.vocabSize;
const QKV = (nH + 2 * nKv) * D, cap = P + 1, L = c.numLayers;
const sp = decodeSplit(P + 1, MAX_SPLITS);
const steps = new StepBuffer(reg, 1);
steps.set(0, { T: 1, P, pos0: P, idBase: 0, idOut: 1, ...sp });
steps.flush();
const buf = (label: string, words: number) => storageBuffer(ctx, label, 4 * words);
const x = buf("x", Math.max(I, QKV, H)), out = buf("out", Math.max(2 * I, QKV, V)), h = buf("h", H);
const mm = (K: number, N: number, residual = false, swiglu = false) =>
  MatmulKernel.create(reg, { K, N, weights: "bf16", bias: false, residual, swiglu });

interface Row {
  name: string;
  perStep: number;
  encode: (pass: GPUComputePassEncoder) => void;
}
const rows: Row[] = [];
const add = (name: string, perStep: number, encode: (pass: GPUComputePassEncoder) => void) =>
  rows.push({ name, perStep, encode });

const emb = await EmbedKernel.create(reg, { hidden: H, weights: "bf16" });
const embBind = emb.bind(buf("ids", 4), buf("embed", (V * H) / 2), h);
add("embed", 1, (p) => emb.encode(p, embBind, 1));
const norm = await RmsnormKernel.create(reg, { dim: H, eps: c.rmsNormEps, lastOnly: false });
const normBind = norm.bind(h, buf("w", H), x);
add("rmsnorm", 2 * L + 1, (p) => norm.encode(p, normBind, 1));
for (
  const [name, K, N, res, sw, n] of [
    ["matmul qkv", H, QKV, false, false, L],
    ["matmul o (+residual)", nH * D, H, true, false, L],
    ["matmul gate|up + swiglu", H, I, false, true, L],
    ["matmul down (+residual)", I, H, true, false, L],
    ["matmul lm_head", H, V, false, false, 1],
  ] as const
) {
  const k = await mm(K, N, res, sw);
  const b = k.bind({ x, w: buf(name, ((sw ? 2 : 1) * N * K) / 2), out });
  add(`${name} ${K}→${N}`, n, (p) => k.encode(p, b, 1));
}
const rope = await RopeKernel.create(reg, { heads: nH + nKv, headDim: D, rowStride: QKV });
const ropeBind = rope.bind(buf("qkv", QKV), buf("cos", (cap * D) / 2), buf("sin", (cap * D) / 2));
add("rope", L, (p) => rope.encode(p, ropeBind, 1));
const cacheK = buf("K", nKv * cap * D), cacheV = buf("V", nKv * cap * D), qkv = buf("qkv2", QKV);
const att = await AttentionKernels.create(reg, {
  numHeads: nH,
  numKvHeads: nKv,
  headDim: D,
  capacity: cap,
  maxSplits: MAX_SPLITS,
});
const attBind = att.bind({
  qkv,
  cacheK,
  cacheV,
  out: buf("att", nH * D),
  partAcc: buf("pa", nH * MAX_SPLITS * D),
  partStats: buf("ps", nH * MAX_SPLITS * 2),
});
add(
  `attention decode partials, ${sp.nSplits} splits × ${sp.split} tokens`,
  L,
  (p) => att.encodePartial(p, attBind, sp.nSplits),
);
add("attention decode combine", L, (p) => att.encodeCombine(p, attBind));
const app = await KvAppendKernel.create(reg, { numHeads: nH, numKvHeads: nKv, headDim: D, capacity: cap });
const appBind = app.bind(qkv, cacheK, cacheV);
add("kv_append", L, (p) => app.encode(p, appBind, 1));
const am = await ArgmaxKernel.create(reg, { vocab: V });
const amBind = am.bind(buf("logits", V), buf("ids2", 4), buf("flags", 4));
add("argmax", 1, (p) => am.encode(p, amBind));

console.log(
  `decode-step kernels of ${values.model} at context ${P} on ${ctx.description} (${timer.method}, ${REPS} dispatches per pass)`,
);
console.log("| kernel | µs / dispatch | dispatches / step | µs / step |\n|---|---|---|---|");
let total = 0, dispatches = 0;
for (const r of rows) {
  const run = () =>
    timer.time((pass) => {
      for (let i = 0; i < REPS; i++) r.encode(pass);
    }, steps.bindGroup);
  await run();
  const us = ((await run()) * 1e6) / REPS;
  total += us * r.perStep;
  dispatches += r.perStep;
  console.log(`| ${r.name} | ${us.toFixed(2)} | ${r.perStep} | ${(us * r.perStep).toFixed(1)} |`);
}
console.log(`| total | | ${dispatches} | ${total.toFixed(1)} |`);
timer.destroy();
ctx.destroy();
