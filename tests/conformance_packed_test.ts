/**
 * Conformance of the packed-cache WebGPU kernels (gpu/packed/) with their CPU twins, on every available
 * adapter (llvmpipe in CI, the H100 on the device machine). Without a WebGPU adapter every case is IGNORED
 * with a printed reason — never silently passed.
 *
 * | kernel | CPU twin | criterion |
 * | --- | --- | --- |
 * | quantize_append (b = 16, 8, 4, 2; G = 128 and 64; random + adversarial groups) | quantizeRows | whole store byte-identical (codes, scale and zero bits; untouched words stay 0) |
 * | quantize_append bad input (NaN, ±Inf, ±2^64) | NonFiniteError of the CPU | first offending value flagged, decoded position exact |
 * | ers 16→8, 8→4, 4→2, 16→4, 16→2, 8→2 (random codes and bf16 scales, token offsets) | ersRows, once per halving | byte-identical |
 * | dequantize (all widths, random codes, scales incl. 0, zeros of both signs) | dequantizeRows | bit-identical f32 |
 * | fused decode attention: static q16/q8/q4/q2, PM-KVQ mixed state (GroupedCache after a progressive run with shrink events, batch of 3 with different lengths), KIVI-2 and KIVI-4 | cpu/attention.ts on `cache.view()` (the dequantized cache) + the exact new token | max abs err ≤ 2e-5·max\|v̂\| |
 * | GpuGroupedLayer (GPU-side PM-KVQ layer: quantize_append + ers for window flushes and shrinks), batch 2 | GroupedCache fed the same tokens | sink, window and body stores byte-identical after every append; same shrink events; fused attention within the bound above |
 *
 * Value counts scale with the adapter: software adapters run a few rounds (the suite stays under ~60 s on
 * llvmpipe); real GPUs run ≥ 1M quantized values per width (`PMKVQ_PACKED_ROUNDS` overrides).
 */
import assert from "node:assert/strict";
import { acquireGpu, type GpuContext } from "../gpu/device.ts";
import { f32u, PackedGpu, packUniform } from "../gpu/packed/util.ts";
import {
  groupedImage,
  kiviImage,
  type PackedCacheImage,
  packTokenTensor,
  storeLayout,
  type TensorFormat,
  tokenFormat,
  unpackTokenTensor,
} from "../gpu/packed/layout.ts";
import { QuantizeAppendKernel } from "../gpu/packed/quantize_append.ts";
import { ErsKernel } from "../gpu/packed/ers.ts";
import { DequantizeKernel } from "../gpu/packed/dequantize.ts";
import { GpuGroupedLayer } from "../gpu/packed/grouped_layer.ts";
import {
  type AttentionTuning,
  configForImage,
  DEFAULT_ATTENTION_TUNING,
  FusedAttention,
  type FusedAttentionConfig,
  integerKFormat,
  refsForImage,
} from "../gpu/packed/attention.ts";
import { attentionReduceWgsl } from "../gpu/packed/attention.wgsl.ts";
import {
  BlockAttention,
  type BlockAttentionTuning,
  DEFAULT_BLOCK_TUNING,
  subgroupBlockTuning,
} from "../gpu/packed/block_attention.ts";
import { MixedBlockAttention } from "../gpu/packed/mixed_block_attention.ts";
import { subgroupLanes } from "../gpu/packed/subgroups.ts";
import {
  type BlockKFormat,
  blockReduceDims,
  blockReduceWgsl,
  blockScoreWgsl,
  type BlockVFormat,
} from "../gpu/packed/block_attention.wgsl.ts";
import { GpuError, QuantConfigError, TensorShapeError } from "../src/errors.ts";
import {
  allocQuantBuffers,
  dequantizeRows,
  type QuantBuffers,
  quantizeRows,
} from "../src/quant/quantizer.ts";
import { ersRows } from "../src/quant/ers.ts";
import { bf16ToF32, bitsToF32, f32ToBf16Up, f32ToBits } from "../src/quant/bf16.ts";
import { attention } from "../cpu/attention.ts";
import { int8Query, int8QueryValues } from "../cpu/query_int8.ts";
import { createCache } from "../src/kv/factory.ts";
import { planToCacheSpec, uniformPlan } from "../src/kv/plan.ts";
import type { GroupedCache } from "../src/kv/grouped.ts";
import type { KiviCache } from "../src/kv/kivi.ts";
import type { KVCache } from "../src/kv/cache.ts";
import { mulberry32 } from "../src/sampling.ts";

// ------------------------------------------------------------------ adapter

let ctx: GpuContext | null = null;
let reason = "";
try {
  ctx = await acquireGpu();
} catch (e) {
  reason = (e as Error).message;
  console.warn(`SKIPPED: packed-kernel conformance cases are ignored: ${reason}`);
}
const gpu = ctx ? new PackedGpu(ctx) : null;
const software = ctx !== null &&
  ((ctx.adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter === true ||
    /llvmpipe|lavapipe|swiftshader/i.test(ctx.description));
const ROUNDS = Number(Deno.env.get("PMKVQ_PACKED_ROUNDS") ?? (software ? 2 : 48));
const ADAPTER = ctx ? ctx.description : "no adapter";
/** Tunings of the fused attention exercised per case. */
const TUNINGS: AttentionTuning[] = software ? [{ wg: 64, tpt: 1 }] : [
  { wg: 64, tpt: 1 },
  DEFAULT_ATTENTION_TUNING,
  { wg: 256, tpt: 1, uv: 4 },
  { wg: 128, tpt: 4, uv: 1 },
  { wg: 128, tpt: 2, uv: 2, kpre: 16 },
  { wg: 128, tpt: 2, uv: 2, vd: 8 },
  { wg: 64, tpt: 2, uv: 4, vd: 8 },
  { ...DEFAULT_ATTENTION_TUNING, kdot: true },
  { wg: 64, tpt: 1, uv: 2, kdot: true },
  { ...DEFAULT_ATTENTION_TUNING, perPath: true },
  { ...DEFAULT_ATTENTION_TUNING, kdot: true, perPath: true },
  { wg: 128, tpt: 2, uv: 4, vd: 8 },
  { wg: 128, tpt: 2, uv: 4, vd: 8, kdot: true, perPath: true },
  { wg: 64, tpt: 2, uv: 2, vd: 16, vfull: true, wordView: true },
  { ...DEFAULT_ATTENTION_TUNING, kch: 4 },
  { ...DEFAULT_ATTENTION_TUNING, kch: 8, kdot: true, perPath: true },
  { wg: 64, tpt: 1, uv: 2, kch: 2 },
  { ...DEFAULT_ATTENTION_TUNING, kdot: true, vdot: true, perPath: true },
  { wg: 128, tpt: 2, vd: 4, vdot: true },
];
/** Half-width V lanes (vd 8) on software adapters. */
const SOFT_VD8: AttentionTuning = { wg: 64, tpt: 2, uv: 2, vd: 8 };
/** On software adapters each static case runs one different tuning (compiling is what costs time there). */
const SOFT_STATIC: Record<number, AttentionTuning> = {
  16: { wg: 64, tpt: 1, uv: 1, kpre: 16 },
  8: { wg: 64, tpt: 2, uv: 4, kpre: 8, vd: 8, vfull: true, wordView: true },
  4: { wg: 64, tpt: 1, uv: 2, vd: 8 },
  2: { wg: 128, tpt: 2, uv: 4, vd: 8, vfull: true, wordView: true },
};

function gpuCase(name: string, fn: (g: PackedGpu) => Promise<void>): void {
  Deno.test({
    name: `packed[${ADAPTER}] ${name}`,
    ignore: gpu === null,
    fn: () => fn(gpu!),
  });
}

// ------------------------------------------------------------------ inputs

/** Move an f32 by k ulps. */
function addUlps(x: number, k: number): number {
  for (; k > 0; k--) x = x === 0 ? bitsToF32(1) : bitsToF32(x > 0 ? f32ToBits(x) + 1 : f32ToBits(x) - 1);
  for (; k < 0; k++) {
    x = x === 0 ? bitsToF32(0x80000001) : bitsToF32(x > 0 ? f32ToBits(x) - 1 : f32ToBits(x) + 1);
  }
  return x;
}
const randomBf16 = (r: () => number, a: number) => (128 + Math.floor(r() * 128)) * 2 ** (a - 7);

/**
 * One group of G values of kind `kind` (the adversarial kinds of src/quant/quantizer_gpu_style_test.ts):
 * uniform, outliers, constants (bf16 and not), exact ties, (k+½)·S ± 1 ulp with z = 0 and z ≠ 0, tiny and
 * flushed values, values near 2^64, cancellation on a large offset.
 */
function genGroup(
  r: () => number,
  x: Float32Array,
  off: number,
  G: number,
  bits: number,
  kind: number,
): void {
  const qmax = 2 ** bits - 1;
  const mag = 2 ** Math.floor(r() * 61 - 30);
  const bump = (t: number) => addUlps(Math.fround(t), Math.floor(r() * 3) - 1);
  const set = (i: number, v: number) => (x[off + i] = v);
  switch (kind) {
    case 0: {
      const o = (r() - 0.5) * 4 * mag;
      for (let i = 0; i < G; i++) set(i, o + (2 * r() - 1) * mag);
      break;
    }
    case 1:
      for (let i = 0; i < G; i++) set(i, mag * Math.tan((r() - 0.5) * 3));
      break;
    case 2: {
      const c = (r() - 0.5) * 2 * mag;
      const v = r() < 0.5 ? bf16ToF32(f32ToBf16Up(c)) : c;
      for (let i = 0; i < G; i++) set(i, v);
      break;
    }
    case 3: {
      const S = 2 ** Math.floor(r() * 40 - 20);
      const m = Math.floor(r() * Math.min(qmax, 255));
      set(0, -m * S);
      set(1, (qmax - m) * S);
      for (let i = 2; i < G; i++) set(i, (Math.floor(r() * qmax) + 0.5 - m) * S);
      break;
    }
    case 4: {
      const S = randomBf16(r, Math.floor(r() * 40 - 20));
      set(0, 0);
      set(1, qmax * S);
      for (let i = 2; i < G; i++) set(i, Math.min(qmax * S, bump((Math.floor(r() * qmax) + 0.5) * S)));
      break;
    }
    case 5: {
      const a = Math.floor(r() * 40 - 20);
      const S = randomBf16(r, a);
      const zv = (r() < 0.5 ? -1 : 1) * randomBf16(r, a + Math.floor(r() * (bits + 4)) - 2);
      const lo = Math.fround(-zv), hi = Math.fround(qmax * S - zv);
      set(0, lo);
      set(1, hi);
      for (let i = 2; i < G; i++) {
        set(i, Math.max(lo, Math.min(hi, bump((Math.floor(r() * qmax) + 0.5) * S - zv))));
      }
      break;
    }
    case 6:
      for (let i = 0; i < G; i++) {
        const e = Math.floor(r() * 129 - 66);
        set(i, (r() < 0.5 ? -1 : 1) * (r() + 0.5) * 2 ** e * (r() < 0.1 ? 0 : 1));
      }
      break;
    case 7:
      for (let i = 0; i < G; i++) set(i, (r() < 0.5 ? -1 : 1) * (r() * 0.99 + 0.5) * 2 ** 63);
      break;
    default: {
      const o = (r() < 0.5 ? -1 : 1) * mag * 1000;
      for (let i = 0; i < G; i++) set(i, o + (r() - 0.5) * mag);
    }
  }
}

function firstDiff(a: Uint32Array, b: Uint32Array): number {
  if (a.length !== b.length) return -2;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

// ------------------------------------------------------------------ quantize_append

for (const headDim of [128, 64]) {
  for (const bits of [16, 8, 4, 2]) {
    gpuCase(
      `quantize_append b${bits} D${headDim}: store byte-identical to quantizeRows (random + adversarial)`,
      async (g) => {
        // 2·B·t·nKv = 276 groups: not a multiple of the 8 (D 128) or 16 (D 64) groups a workgroup serves
        const nKv = 3, B = 2, t = 23, pos = [3, 0], cap = 30;
        const G = Math.min(128, headDim), gph = headDim / G;
        const row = nKv * headDim;
        const fmt = `q${bits}` as TensorFormat;
        const L = storeLayout({ batch: B, numKvHeads: nKv, headDim, capacity: cap, k: fmt, v: fmt });
        const qa = await QuantizeAppendKernel.create(g, { numKvHeads: nKv, headDim, bits, maxBatch: B });
        const store = g.storage("store", L.words * 4), status = g.storage("status", 16);
        const r = mulberry32(1000 * bits + headDim);
        const rounds = headDim === 128 ? ROUNDS : Math.max(1, ROUNDS >> 2);
        let values = 0;
        for (let round = 0; round < rounds; round++) {
          // x: [2 tensors][B][t][nKv][D]
          const x = new Float32Array(2 * B * t * row);
          for (let gi = 0; gi < x.length / G; gi++) genGroup(r, x, gi * G, G, bits, (gi + round) % 9);
          values += x.length;
          const xb = g.upload("x", x);
          g.device.queue.writeBuffer(store, 0, new Uint32Array(L.words));
          const d = qa.prepare({ x: xb, store, status }, {
            batch: B,
            tokens: t,
            src: { k: 0, v: B * t * row, tokStride: row, batchStride: t * row },
            dst: { k: L.k!, v: L.v! },
            pos,
          });
          await g.submit((p) => qa.encode(p, d));
          const got = new Uint32Array(await g.read(store, 0, L.words * 4));
          const want = new Uint32Array(L.words);
          for (const [ti, tensor] of [[0, L.k!], [1, L.v!]] as const) {
            for (let b = 0; b < B; b++) {
              const base = (ti * B + b) * t * row;
              const q = quantizeRows(
                x.subarray(base, base + t * row),
                t * nKv * gph,
                G,
                bits,
                allocQuantBuffers(t * nKv * gph, G, bits),
              );
              packTokenTensor(L, tensor, b, q, 0, t, pos[b], want);
            }
          }
          const at = firstDiff(got, want);
          assert.equal(
            at,
            -1,
            `round ${round}: first differing store word ${at}: got ${got[at]?.toString(16)} want ${
              want[at]?.toString(16)
            }`,
          );
          await qa.checkStatus(status, d.params);
          xb.destroy();
        }
        console.log(`  ${values} values, 0 mismatching code/scale/zero words`);
        store.destroy();
        status.destroy();
      },
    );
  }
}

gpuCase("quantize_append flags NaN, ±Inf, ±2^64 (first offending value, exact position)", async (g) => {
  const nKv = 2, D = 128, B = 2, t = 3, row = nKv * D;
  const L = storeLayout({ batch: B, numKvHeads: nKv, headDim: D, capacity: t, k: "q4", v: "q4" });
  const qa = await QuantizeAppendKernel.create(g, { numKvHeads: nKv, headDim: D, bits: 4, maxBatch: B });
  const store = g.storage("store", L.words * 4), status = g.storage("status", 16);
  const cases: [number, number, string][] = [
    [NaN, B * t * row + (1 * t + 2) * row + 1 * D + 77, "v of sequence 1, token 2, head 1, channel 77"],
    [Infinity, (0 * t + 1) * row + 0 * D + 5, "k of sequence 0, token 1, head 0, channel 5"],
    [-Infinity, (1 * t + 0) * row + 1 * D + 127, "k of sequence 1, token 0, head 1, channel 127"],
    [2 ** 64, B * t * row + 3, "v of sequence 0, token 0, head 0, channel 3"],
    [-(2 ** 64), (0 * t + 2) * row + 200, "k of sequence 0, token 2, head 1, channel 72"],
  ];
  for (const [bad, at, where] of cases) {
    const x = new Float32Array(2 * B * t * row).map((_, i) => Math.sin(i));
    x[at] = bad;
    x[x.length - 1] = NaN; // a later offender: the earliest one must be reported
    const xb = g.upload("x", x);
    const d = qa.prepare({ x: xb, store, status }, {
      batch: B,
      tokens: t,
      src: { k: 0, v: B * t * row, tokStride: row, batchStride: t * row },
      dst: { k: L.k!, v: L.v! },
      pos: [0, 0],
    });
    await g.submit((p) => qa.encode(p, d));
    await assert.rejects(() => qa.checkStatus(status, d.params), (e: Error) => {
      assert.equal(e.name, "NonFiniteError");
      assert.ok(e.message.includes(where), `${e.message} should name ${where}`);
      return true;
    });
    await qa.checkStatus(status, d.params); // cleared
    xb.destroy();
  }
  // values just below 2^64 are fine
  const ok = new Float32Array(2 * B * t * row).fill(Math.fround(2 ** 64 * (1 - 2 ** -24)));
  const xb = g.upload("x", ok);
  const d = qa.prepare({ x: xb, store, status }, {
    batch: B,
    tokens: t,
    src: { k: 0, v: B * t * row, tokStride: row, batchStride: t * row },
    dst: { k: L.k!, v: L.v! },
    pos: [0, 0],
  });
  await g.submit((p) => qa.encode(p, d));
  await qa.checkStatus(status, d.params);
});

// ------------------------------------------------------------------ ers

function randomQuant(r: () => number, groups: number, G: number, bits: number): QuantBuffers {
  const q = allocQuantBuffers(groups, G, bits);
  const mask = bits === 16 ? 0xffff : (1 << bits) - 1;
  const cpw = 32 / bits;
  for (let i = 0; i < q.codes.length; i++) {
    let w = 0;
    for (let k = 0; k < cpw; k++) {
      // biased towards the extremes and exact ERS boundaries now and then
      const u = r();
      const c = u < 0.05 ? 0 : u < 0.1 ? mask : Math.floor(r() * (mask + 1));
      w |= c << (k * bits);
    }
    q.codes[i] = w >>> 0;
  }
  for (let gI = 0; gI < groups; gI++) {
    const u = r();
    q.scales[gI] = u < 0.05 ? 0 : f32ToBf16Up(randomBf16(r, Math.floor(r() * 120 - 60)));
    q.zeros[gI] = f32ToBf16Up(
      (r() < 0.5 ? -1 : 1) * randomBf16(r, Math.floor(r() * 120 - 60)) * (r() < 0.05 ? 0 : 1),
    );
  }
  return q;
}

for (const [bIn, bOut] of [[16, 8], [8, 4], [4, 2], [16, 4], [16, 2], [8, 2]] as const) {
  gpuCase(`ers ${bIn}→${bOut}: codes and scales byte-identical to ersRows per halving`, async (g) => {
    const nKv = 2, D = 128, G = 128, B = 2, n = 40, capS = 45, capD = 50, tokS = 3, tokD = 7;
    const LS = storeLayout({
      batch: B,
      numKvHeads: nKv,
      headDim: D,
      capacity: capS,
      k: `q${bIn}` as TensorFormat,
      v: null,
    });
    const LD = storeLayout({
      batch: B,
      numKvHeads: nKv,
      headDim: D,
      capacity: capD,
      k: `q${bOut}` as TensorFormat,
      v: null,
    });
    const ers = await ErsKernel.create(g, { numKvHeads: nKv, headDim: D, bitsIn: bIn, bitsOut: bOut });
    const r = mulberry32(bIn * 100 + bOut);
    let groups = 0;
    for (let round = 0; round < Math.max(1, ROUNDS >> 1); round++) {
      const src = new Uint32Array(LS.words), want = new Uint32Array(LD.words);
      for (let b = 0; b < B; b++) {
        const q = randomQuant(r, n * nKv, G, bIn);
        packTokenTensor(LS, LS.k!, b, q, 0, n, tokS, src);
        let codes = q.codes, bits: number = bIn;
        const scales = q.scales.slice();
        while (bits > bOut) {
          codes = ersRows(codes, bits, scales, scales, n * nKv, G);
          bits /= 2;
        }
        packTokenTensor(LD, LD.k!, b, { codes, scales, zeros: q.zeros }, 0, n, tokD, want);
        groups += n * nKv;
      }
      const sb = g.upload("src", src), db = g.storage("dst", LD.words * 4);
      const d = ers.prepare({ src: sb, dst: db }, {
        batch: B,
        tokens: n,
        src: { t: LS.k!, tok0: tokS },
        dst: { t: LD.k!, tok0: tokD },
      });
      await g.submit((p) => ers.encode(p, d));
      const got = new Uint32Array(await g.read(db, 0, LD.words * 4));
      const at = firstDiff(got, want);
      assert.equal(
        at,
        -1,
        `round ${round}: word ${at}: got ${got[at]?.toString(16)} want ${want[at]?.toString(16)}`,
      );
      sb.destroy();
      db.destroy();
    }
    console.log(`  ${groups} groups of ${G} codes, 0 mismatches`);
  });
}

// ------------------------------------------------------------------ dequantize

for (const bits of [16, 8, 4, 2]) {
  gpuCase(`dequantize b${bits}: bit-identical to dequantizeRows`, async (g) => {
    const nKv = 2, D = 128, G = 128, B = 2, n = 33, cap = 40, tok0 = 4;
    const L = storeLayout({
      batch: B,
      numKvHeads: nKv,
      headDim: D,
      capacity: cap,
      k: null,
      v: `q${bits}` as TensorFormat,
    });
    const dq = await DequantizeKernel.create(g, { numKvHeads: nKv, headDim: D, bits });
    const r = mulberry32(77 + bits);
    const words = new Uint32Array(L.words);
    const want = new Float32Array(B * n * nKv * D);
    for (let b = 0; b < B; b++) {
      const q = randomQuant(r, n * nKv, G, bits);
      // keep |q·S − z| far from overflow: exponents within ±60 already
      packTokenTensor(L, L.v!, b, q, 0, n, tok0, words);
      dequantizeRows(q, n * nKv, G, bits, want.subarray(b * n * nKv * D, (b + 1) * n * nKv * D));
    }
    const src = g.upload("src", words), out = g.storage("out", want.byteLength);
    const d = dq.prepare({ src, out }, {
      batch: B,
      tokens: n,
      src: { t: L.v!, tok0 },
      out: { base: 0, cap: n, tok0: 0 },
    });
    await g.submit((p) => dq.encode(p, d));
    const got = new Uint32Array(await g.read(out, 0, want.byteLength));
    const at = firstDiff(got, new Uint32Array(want.buffer));
    assert.equal(at, -1, `value ${at}: got ${bitsToF32(got[at])} want ${want[at]}`);
    // and the round trip through the layout helpers
    const back = unpackTokenTensor(L, L.v!, 1, tok0, n, words);
    assert.equal(back.codes.length, n * nKv * (G * bits / 32));
    console.log(`  ${want.length} values bit-identical`);
    src.destroy();
    out.destroy();
  });
}

// ------------------------------------------------------------------ fused attention

/** Runs the fused attention on `img` and compares with cpu/attention.ts on each cache's view. */
async function checkAttention(
  g: PackedGpu,
  label: string,
  caches: KVCache[],
  img: PackedCacheImage,
  numHeads: number,
  numKvHeads: number,
  headDim: number,
  tunings: AttentionTuning[],
  seed: number,
): Promise<void> {
  const B = caches.length, D = headDim, row = (numHeads + 2 * numKvHeads) * D;
  const r = mulberry32(seed);
  const qkv = new Float32Array(B * row).map(() => (r() * 2 - 1) * 1.5);
  const want = new Float32Array(B * numHeads * D);
  let maxV = 0;
  caches.forEach((c, b) => {
    const view = c.view(0);
    attention(
      want.subarray(b * numHeads * D, (b + 1) * numHeads * D),
      qkv.subarray(b * row, b * row + numHeads * D),
      view,
      qkv.subarray(b * row + numHeads * D, b * row + (numHeads + numKvHeads) * D),
      qkv.subarray(b * row + (numHeads + numKvHeads) * D, (b + 1) * row),
      1,
      numHeads,
      numKvHeads,
      D,
      new Float64Array(view.length + 1),
    );
    for (const x of view.v) maxV = Math.max(maxV, Math.abs(x));
  });
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < numKvHeads * D; i++) {
      maxV = Math.max(maxV, Math.abs(qkv[b * row + (numHeads + numKvHeads) * D + i]));
    }
  }
  const stores = img.stores.map((s) => g.upload(s.name, s.words));
  const qb = g.upload("qkv", qkv), out = g.storage("out", want.byteLength);
  const bound = 2e-5 * maxV;
  const wantKdot = tunings.some((t) => t.kdot)
    ? kdotReference(caches, img, qkv, numHeads, numKvHeads, D)
    : want;
  if (
    wantKdot !== want &&
    img.segments.some((s) => integerKFormat(img.stores[s.k.store].layout[s.k.tensor]!.format))
  ) {
    // the int8 query moves the result by far more than the bound: a kernel ignoring kdot cannot pass
    let gap = 0;
    for (let i = 0; i < want.length; i++) gap = Math.max(gap, Math.abs(want[i] - wantKdot[i]));
    console.log(`  ${label}: int8-query reference vs exact-query reference ${gap.toExponential(2)}`);
    assert.ok(gap > 10 * bound, `kdot reference too close to the exact one (${gap}) to test anything`);
  }
  // integer V phase: the weights' rounding bound per output (vdotBound), on top of the f32 bound
  const vBound = tunings.some((t) => t.vdot) ? vdotBound(caches, img, qkv, numHeads, numKvHeads, D) : null;
  for (const tuning of tunings) {
    const ref = tuning.kdot ? wantKdot : want;
    const vdot = tuning.vdot && vBound !== null && vBound.some((x) => x > 0);
    // maxBatch 4 for every case: the GpuGroupedLayer case then reuses the PM-KVQ pipeline (same WGSL)
    const att = await FusedAttention.create(
      g,
      configForImage(img, { numHeads, numKvHeads, headDim, maxBatch: 4 }, tuning),
    );
    for (const target of [2, 7]) {
      const params = {
        batch: B,
        q: { off: 0, rowStride: row },
        newKV: { k: numHeads * D, v: (numHeads + numKvHeads) * D },
        refs: refsForImage(img),
        counts: img.segments.map((s) => s.counts),
        splits: { target },
      };
      const plan = att.plan(B, params.counts, params.splits);
      const part = g.storage("part", 4 * att.partialFloats(B, plan.total));
      const d = att.prepare({ qkv: qb, part, out, stores }, params);
      await g.submit((p) => att.encode(p, d));
      const got = new Float32Array(await g.read(out, 0, want.byteLength));
      let err = 0, worst = 0, vmax = 0;
      for (let i = 0; i < want.length; i++) {
        const e = Math.abs(got[i] - ref[i]);
        err = Number.isNaN(e) ? Infinity : Math.max(err, e);
        const lim = bound + (vdot ? vBound![i] : 0);
        worst = Number.isNaN(e) ? Infinity : Math.max(worst, e / lim);
        if (vdot) vmax = Math.max(vmax, vBound![i]);
      }
      console.log(
        `  ${label} ${JSON.stringify(tuning)}, ${plan.total} splits of ${plan.splitLen}: max abs err ${
          err.toExponential(2)
        } (bound ${bound.toExponential(1)}${vdot ? ` + weight rounding ≤ ${vmax.toExponential(1)}` : ""})`,
      );
      assert.ok(
        worst <= 1,
        `${label} ${JSON.stringify(tuning)} target ${target}: error ${err} over the bound (ratio ${worst})`,
      );
      // the 8-bit weights move the result by far more than the f32 bound: a kernel ignoring vdot cannot pass
      if (vdot) {
        assert.ok(err > bound, `${label} vdot: error ${err} within the f32 bound: weights not rounded?`);
      }
      part.destroy();
    }
  }
  await checkBlockAttention(g, label, caches, img, qkv, qb, stores, numHeads, numKvHeads, D, bound, seed);
  for (const s of stores) s.destroy();
  qb.destroy();
  out.destroy();
}

/** {q2, q2}'s default schedule where subgroups have 32 lanes (subgroupBlockTuning), named in full for llvmpipe. */
const Q2_DEFAULT_32: BlockAttentionTuning = {
  block: 1024,
  tq: 2,
  tseq: true,
  nblk: 4,
  vshuf: true,
  sred: true,
  wshfl: true,
  uq: 16,
  vsum1: true,
};

/** Block schedules of BlockAttention run per eligible case (block 256 gives several blocks per sequence). */
const BLOCK_TUNINGS: BlockAttentionTuning[] = software
  ? [
    // with subgroups every pair defaults to qsub and rsub, 2-bit V to vshuf ({q2, q2} also to sred): the first
    // schedule runs the query kernel, the gather path and the tree reduce
    { block: 256, wgv: 64, uq: 1, nblk: 1, vshuf: false, sred: false, qsub: false, rsub: false },
    { block: 1024, wgv: 128, uq: 2, pipe: true, tq: 2 },
    // block 256 again (the same-block check), and the default of the case's formats (2-bit: block 512, tq 2)
    { block: 256, tq: 2, kstep: 1 },
    {},
    { block: 256, tq: 2, tseq: true, uq: 8, pipe: false, wgv: 32, rdims: 32 },
    { block: 256, tq: 2, tseq: true, nblk: 2 },
    { block: 256, nblk: 4 },
    // subgroup knobs (the adapter's `subgroups`; vshuf: 2-bit V only)
    { block: 256, vshuf: true, sred: true },
    { sred: true },
    { block: 256, qsub: true, vshuf: false },
    { qsub: true, sred: true, nblk: 2 },
    // rsub (the reduce with subgroup folds; every schedule's default where subgroups run)
    { rsub: true },
    { block: 256, vshuf: false, rsub: true, rdims: 16 },
    // wshfl (here subgroups of 8 lanes: the vec4 fallback inside the same kernel) and vsum1
    { block: 256, vshuf: true, wshfl: true, uq: 16, vsum1: true },
    // tq 1 with 8 / 16 blocks per score workgroup (the score schedule of PM-KVQ's 2-bit body, and {q2, q2}'s
    // default with subgroups of 32 lanes before block 1024)
    { block: 256, tq: 1, nblk: 8, vshuf: true, wshfl: true, uq: 16, vsum1: true },
    { block: 256, tq: 1, nblk: 16 },
    // {q2, q2}'s default with subgroups of 32 lanes (block 1024, 2 quads per score invocation one after the other,
    // 4 blocks per score workgroup; here the vec4 fallback of wshfl)
    Q2_DEFAULT_32,
    // vpair (8 dims per value invocation, lane pairs; here the vec4 weights): byte-identical to its twin without
    { block: 256, vshuf: true, vpair: true, uq: 4, pipe: false },
    { block: 1024, tq: 2, tseq: true, nblk: 4, vshuf: true, sred: true, vpair: true, uq: 16 },
    // vsub (plane 3 as the unmasked total minus planes 0…2): byte-identical to its twin without, on the byte
    // gather (pipelined and not), the transposing shuffles (the {q2, q2} default's schedule) and vpair
    { block: 256, vshuf: false, vsub: true },
    { block: 256, vshuf: false, pipe: true, uq: 4, vsub: true },
    { ...Q2_DEFAULT_32, vsub: true },
    { block: 256, vshuf: true, vpair: true, uq: 4, pipe: false, vsub: true },
    // vcoal (vsum1's split staged in workgroup memory, coalesced stores): byte-identical to its twin without
    { block: 256, vshuf: true, wshfl: true, uq: 16, vsum1: true, vcoal: true },
    { block: 256, vshuf: false, vsum1: true, uq: 4, vcoal: true },
    // 32 quads per value step (wshfl: four weight words per lane; here the vec4 fallback)
    { block: 256, vshuf: true, wshfl: true, uq: 32, vsum1: true, vcoal: true },
    // kacc2 (2-bit K planes from the word and one shift, a second accumulator): byte-identical to its twin
    // without, with one quad's rows at a time (tseq), all rows, and the row loop
    { block: 512, tq: 2, tseq: true, nblk: 2, kacc2: true },
    { block: 256, tq: 1, kacc2: true },
    { block: 256, kstep: 1, kacc2: true },
    { ...Q2_DEFAULT_32, vsub: true, kacc2: true },
    // vjoin (each row of value lanes on its own block, the rows' blocks merged in f32 into one split): within
    // SAME_BLOCK_TOL of the block-256 schedules above; with vsub / vcoal also byte-identical to its twin (vjoin
    // both); 2 rows (D 128) with the weights' shuffles, 4 rows (wgv 128, most of them past the tokens) on the
    // byte gather (and 4-bit V), and wgv 32 (D 64: 2 rows, a whole first split; D 128: one row, refused)
    { block: 256, vjoin: true, vshuf: true, wshfl: true, uq: 16, vsub: true },
    { block: 256, vjoin: true, vshuf: false, wgv: 128, uq: 4, pipe: false, vcoal: true },
    { block: 256, vjoin: true, wgv: 32 },
    // sbar2 (the score reductions without their leading barriers): byte-identical to its twin without, with one
    // block per workgroup, 16 blocks per workgroup, and the {q2, q2} default of 32-lane subgroups
    { block: 256, vshuf: true, sred: true, sbar2: true },
    { block: 256, tq: 1, nblk: 16, sred: true, sbar2: true },
    { ...Q2_DEFAULT_32, sbar2: true },
    // sbar1 (one barrier per score block, the sums folded after the next block's): byte-identical to its twin
    { ...Q2_DEFAULT_32, sbar1: true },
    { block: 256, tq: 1, nblk: 16, sred: true, sbar1: true },
    { block: 256, nblk: 1, sred: true, sbar1: true },
    // stouch (the next block's lines touched during this block): byte-identical to its twin without
    { ...Q2_DEFAULT_32, stouch: true },
    { block: 256, tq: 1, nblk: 16, sred: true, stouch: true },
    // sepi (the weights packed by shifts and adds, the sums folded by invocation 0): byte-identical to its twin;
    // stx (transposing butterflies for the block's reductions): against the reference (its sums add in another order)
    { ...Q2_DEFAULT_32, sepi: true },
    { block: 256, vshuf: true, sred: true, sepi: true },
    { ...Q2_DEFAULT_32, sbar2: true, stx: true },
    { ...Q2_DEFAULT_32, sbar2: true, stx: true, sepi: true },
    { block: 256, tq: 1, nblk: 16, sred: true, sbar2: true, stx: true, sepi: true },
    // sexp2 (scores in log2 units, exp2): against the reference only (its weights may round one step apart from
    // the other schedules'), with qsub and with the query kernel's records
    { ...Q2_DEFAULT_32, sbar2: true, stx: true, sepi: true, sexp2: true },
    { block: 256, vshuf: true, sred: true, qsub: false, sexp2: true },
    // sbias (the past-the-count NEG as the score multiply's fma addend): byte-identical to its twin
    { ...Q2_DEFAULT_32, sbar2: true, stx: true, sepi: true, sbias: true },
    { block: 256, tq: 1, nblk: 16, sred: true, sbias: true },
    // vtouch (the next step's V rows and weights touched a step early): byte-identical to its twin without, on
    // the {q2, q2} default (here its vec4 fallback), uq 4 and vjoin
    { ...Q2_DEFAULT_32, vtouch: 1 },
    { block: 256, vshuf: true, uq: 4, vtouch: 2 },
    { block: 256, vjoin: true, vshuf: true, wshfl: true, uq: 16, vtouch: 1 }, // vst4 / vstat (vsum1's split as vec4 stores, its statistics before the loop): byte-identical to the twin
    { ...Q2_DEFAULT_32, vst4: true, vstat: true },
    { block: 256, vshuf: true, wshfl: true, uq: 16, vsum1: true, vst4: true },
    { block: 256, vshuf: false, vsum1: true, uq: 4, vstat: true }, // dacc (each dot product added per accumulator component): byte-identical to its twin
    { ...Q2_DEFAULT_32, dacc: true },
    { block: 256, vshuf: false, dacc: true },
  ]
  : [
    { block: 256, wgv: 64, uq: 1, nblk: 1, vshuf: false, sred: false, qsub: false, rsub: false },
    {},
    { vshuf: false, sred: false, qsub: false, rsub: false },
    { nblk: 1 },
    { block: 512, wgv: 128, uq: 4 },
    { block: 1024, wgv: 256, uq: 2 },
    { block: 256, wgv: 128, uq: 2, pipe: true },
    { block: 512, wgv: 64, uq: 4, pipe: true },
    { block: 256, wgv: 64, uq: 4, pipe: true, tq: 2 },
    { block: 1024, wgv: 128, uq: 4, pipe: true, tq: 4 },
    { kstep: 2 },
    { kstep: 1, tq: 2 },
    { block: 512, tq: 2 },
    { block: 512, tq: 2, tseq: true },
    { block: 256, tq: 2, tseq: true, uq: 8, pipe: false },
    { block: 512, tq: 2, tseq: true, uq: 8, pipe: false, wgv: 32, rdims: 64 },
    { nblk: 2 },
    { block: 256, nblk: 4 },
    { block: 512, tq: 2, tseq: true, nblk: 8 },
    { vshuf: true },
    { sred: true },
    { vshuf: true, sred: true },
    { block: 256, vshuf: true, sred: true, uq: 4, pipe: true },
    { qsub: true },
    { block: 256, qsub: true, nblk: 1 },
    { rsub: true },
    { block: 256, vshuf: false, rsub: true, rdims: 16 },
    // wshfl / vsum1 (with subgroups of 32 lanes {q2, q2} defaults to wshfl + uq 16 + vsum1: `{}` above)
    { wshfl: false, vsum1: false, uq: 8 },
    { vshuf: true, wshfl: true, uq: 8 },
    { block: 256, vshuf: true, wshfl: true, uq: 4, vsum1: true },
    { vsum1: true, uq: 4 },
    // tq 1 with 8 / 16 blocks per score workgroup; the schedules {q2, q2} had by default with subgroups of 32
    // lanes before block 1024 + tq 2 + nblk 4 (now `{}` above)
    { tq: 2, nblk: 2 },
    { block: 512, tq: 1, nblk: 8 },
    { block: 256, tq: 1, nblk: 16 },
    // vpair (lane pairs, 8 dims per value invocation): byte-identical to its twin without
    { vpair: true, uq: 8 },
    { vpair: true, uq: 16 },
    { block: 512, vpair: true, uq: 8, wgv: 128 },
    // vsub (plane 3 as the unmasked total minus planes 0…2): byte-identical to its twin without
    { vsub: true },
    { vsub: true, vshuf: false, wshfl: false, vsum1: false, uq: 8 },
    { vpair: true, uq: 8, vsub: true },
    // vcoal (vsum1's split staged in workgroup memory, coalesced stores): byte-identical to its twin without
    { vcoal: true },
    { vsum1: true, vcoal: true, uq: 4 },
    // 32 quads per value step (wshfl: four weight words per lane), with and without vcoal
    { uq: 32, wshfl: true },
    { uq: 32, wshfl: true, vcoal: true },
    // kacc2 (2-bit K planes from the word and one shift): byte-identical to its twin without
    { kacc2: true },
    { kacc2: true, vsub: true },
    { block: 512, tq: 1, nblk: 8, kacc2: true },
    // vjoin (each row of value lanes on its own block, merged in f32 into one split): 512-token score blocks in
    // 1024-token splits, with and without vcoal + vsub (byte-identical to their twin, vjoin both); block 256 with
    // 2 rows, 4 rows (wgv 128) and wgv 32 (D 64: 2 rows; D 128: one row, refused)
    { block: 512, tq: 1, nblk: 8, vjoin: true },
    { block: 512, tq: 1, nblk: 8, vjoin: true, vcoal: true, vsub: true },
    { block: 256, vjoin: true },
    { block: 256, vjoin: true, wgv: 128, pipe: false, vcoal: true },
    { block: 256, vjoin: true, wgv: 32 },
    // sbar2 (the score reductions without their leading barriers): byte-identical to its twin without — the
    // default, 8 blocks per score workgroup at tq 1 (also with vjoin), and one block per workgroup
    { sred: true, sbar2: true },
    { block: 512, tq: 1, nblk: 8, sred: true, sbar2: true },
    { block: 512, tq: 1, nblk: 8, vjoin: true, sred: true, sbar2: true },
    { block: 256, nblk: 1, sred: true, sbar2: true },
    // sbar1 (one barrier per score block): byte-identical to its twin
    { sbar1: true },
    { block: 512, tq: 1, nblk: 8, sred: true, sbar1: true },
    // stouch (the next block's lines touched during this block): byte-identical to its twin
    { stouch: true },
    { block: 512, tq: 1, nblk: 8, stouch: true },
    // sepi: byte-identical to its twin; stx: against the reference
    { sepi: true },
    { sred: true, sbar2: true, stx: true, sepi: true },
    // sexp2: against the reference
    { sred: true, sbar2: true, stx: true, sepi: true, sexp2: true },
    // sbias: byte-identical to its twin
    { sred: true, sbar2: true, stx: true, sepi: true, sexp2: true, sbias: true },
    { block: 512, tq: 1, nblk: 8, sbias: true },
    // vtouch (the next step's V rows and weights touched a step early): byte-identical to its twin without
    { vtouch: 1 },
    { vtouch: 2, uq: 8 },
    { block: 512, tq: 1, nblk: 8, vjoin: true, vtouch: 1, sred: true, sbar2: true },
    // vst4 / vstat (vsum1's split as vec4 stores, its statistics before the loop): byte-identical to the twin
    { vst4: true },
    { vstat: true },
    { vst4: true, vstat: true, sred: true, sbar2: true, rdims: 64 },
    // dacc (each dot product added per accumulator component): byte-identical to its twin
    { dacc: true },
    { dacc: true, sbar2: true, sred: true, vst4: true },
  ];

/** Knobs that change no sum (each schedule naming one must give the bytes of the same schedule without them). */
const TWIN_KNOBS = [
  "vpair",
  "vsub",
  "kacc2",
  "vcoal",
  "sbar2",
  "vtouch",
  "vst4",
  "vstat",
  "dacc",
  "sbar1",
  "stouch",
  "sepi",
  "sbias",
] as const;

/** Schedules with the same block size round the same weights: their outputs agree within this (f32 sums). */
const SAME_BLOCK_TOL = 1e-5;

/**
 * MixedBlockAttention on an image with exactly one 2/4/8-bit-K, 2/4-bit-V segment (the body, on BlockAttention:
 * int8 query + 8-bit weights; other segments, e.g. PM-KVQ's 16-bit sink and window, on the fused kernel), against
 * the int8-query f64 reference within the f32 bound plus the weight-rounding bound (vdotBound); the error must
 * also exceed the f32 bound (the weights really are rounded); schedules with the same block size agree within
 * SAME_BLOCK_TOL (same weights, only the order of f32 sums differs); the query records are bit-exact with the CPU.
 * Other images: nothing to run.
 */
async function checkBlockAttention(
  g: PackedGpu,
  label: string,
  caches: KVCache[],
  img: PackedCacheImage,
  qkv: Float32Array,
  qb: GPUBuffer,
  stores: GPUBuffer[],
  nH: number,
  nKv: number,
  D: number,
  bound: number,
  seed: number,
): Promise<void> {
  // the body: the one segment with 2/4/8-bit K and 2/4-bit V (per-token groups, one store); others → fused
  const fmt = (r: { store: number; tensor: "k" | "v" }) => img.stores[r.store].layout[r.tensor]!.format;
  const bodies = img.segments.flatMap((s, i) =>
    ["q2", "q4", "q8"].includes(fmt(s.k)) && ["q2", "q4"].includes(fmt(s.v)) && s.k.store === s.v.store
      ? [i]
      : []
  );
  if (bodies.length !== 1) return;
  const body = bodies[0], seg = img.segments[body];
  const kt = img.stores[seg.k.store].layout[seg.k.tensor]!;
  const B = caches.length, row = (nH + 2 * nKv) * D;
  const ref = kdotReference(caches, img, qkv, nH, nKv, D);
  const vBound = vdotBound(caches, img, qkv, nH, nKv, D);
  const out = g.storage("out", 4 * B * nH * D);
  // keyed by block size and exponential (sexp2: its probabilities differ in the last bits from exp's, so a weight
  // may round one step apart; sexp2 schedules agree among themselves)
  const byBlock = new Map<string, { tuning: BlockAttentionTuning; got: Float32Array }>();
  for (const tuning of BLOCK_TUNINGS) {
    const kf = kt.format as BlockKFormat;
    // a schedule these formats cannot take (nblk > 1 with K rows too long for registers, e.g. 8-bit K at D 128;
    // vshuf / vsub with 4-bit V, kacc2 with 4- or 8-bit K) is refused with a typed error: say so and go on
    const vf = img.stores[seg.v.store].layout[seg.v.tensor]!.format as BlockVFormat;
    try {
      blockScoreWgsl({ numHeads: nH, numKvHeads: nKv, headDim: D, maxBatch: 4, k: kf, v: vf, tuning });
      blockReduceDims({ headDim: D, tuning });
    } catch (e) {
      if (
        !(e instanceof QuantConfigError) ||
        !/K rows in registers|vshuf needs|wshfl needs|vpair needs|vsub needs|kacc2 needs|vcoal needs|vjoin needs|sbar2 needs|sbar1 needs|stouch needs|stx needs|vtouch needs|vst4 needs|vstat needs|quads not a multiple of|is not a multiple of rdims/
          .test(
            e.message,
          )
      ) throw e;
      console.log(`  ${label} BlockAttention ${JSON.stringify(tuning)}: refused (${e.message})`);
      continue;
    }
    // the subgroup knobs run where the device's subgroups pass the lane probe: elsewhere not run, and say why
    const lanes = await subgroupLanes(g);
    if (
      (tuning.vshuf || tuning.sred || tuning.qsub || tuning.rsub || tuning.wshfl || tuning.vpair) && !lanes.ok
    ) {
      console.log(`  ${label} BlockAttention ${JSON.stringify(tuning)}: not run (${lanes.reason})`);
      continue;
    }
    const run1 = async (block: BlockAttentionTuning) => {
      const att = await MixedBlockAttention.create(g, {
        ...configForImage(img, { numHeads: nH, numKvHeads: nKv, headDim: D, maxBatch: 4 }),
        body,
        maxTokens: Math.max(1, ...seg.counts),
        fused: software ? { wg: 64, tpt: 1 } : undefined, // GPUs: SHORT_SEGMENT_TUNING, the default
        block,
      });
      const counts = img.segments.map((s) => s.counts);
      const part = g.storage("part", 4 * att.partialFloats(B, att.splits(B, counts)));
      const d = att.prepare({ qkv: qb, part, out, stores }, {
        batch: B,
        q: { off: 0, rowStride: row },
        newKV: { k: nH * D, v: (nH + nKv) * D },
        refs: refsForImage(img),
        counts,
      });
      await g.submit((p) => att.encode(p, d));
      return { att, part, d };
    };
    const { att, part, d } = await run1(tuning);
    // the query kernel's records, bit-exact with the CPU
    const checkRecords = async (a: MixedBlockAttention) =>
      checkQueryRecords(
        new Uint32Array(await g.read(a.block.queryRecords, 0, a.block.queryRecords.size)),
        qkv,
        B,
        nH,
        nKv,
        D,
        kt.format,
      );
    if (!att.block.config.tuning?.qsub) await checkRecords(att);
    else {
      // no records: the score kernel's own int8 query must equal the query kernel's bit for bit, so the same
      // schedule with the query kernel (whose records are checked) gives the same bytes — checked for the
      // schedules that name qsub (on subgroup adapters it is also every other schedule's default)
      assert.throws(() => att.block.queryRecords, GpuError);
      if (tuning.qsub) {
        const qsubOut = new Uint32Array(await g.read(out, 0, 4 * B * nH * D));
        const twin = await run1({ ...att.block.config.tuning, qsub: false });
        await checkRecords(twin.att);
        const twinOut = new Uint32Array(await g.read(out, 0, 4 * B * nH * D));
        const at = twinOut.findIndex((x, i) => x !== qsubOut[i]);
        assert.equal(
          at,
          -1,
          `${label} BlockAttention ${JSON.stringify(tuning)}: qsub differs from the query kernel at ${at}`,
        );
        twin.part.destroy();
        twin.att.destroy();
        // the qsub bytes are back in out for the checks below
        g.device.queue.writeBuffer(out, 0, qsubOut);
      }
    }
    // vpair only moves which invocation owns which dims, vsub how V plane 3's exact sum is formed, kacc2 how the
    // K planes', vcoal where the split's floats are staged, sbar2 which barriers guard the score reductions, vtouch
    // what the value kernel loads early, vst4 / vstat how it stores the split and when it loads the statistics,
    // stouch what the score kernel loads early, sepi how it packs the weights and which invocations fold the sums,
    // sbias how a past-the-count score becomes NEG
    // (the same exact integer sums, the same f32 ops):
    // byte-identical to the same schedule without them
    const twinKnobs = TWIN_KNOBS.filter((k) => tuning[k]);
    if (twinKnobs.length > 0) {
      const mine = new Uint32Array(await g.read(out, 0, 4 * B * nH * D));
      // (uq 16 needs wshfl without vpair; the step size does not change the sums)
      const t = att.block.config.tuning ?? {};
      const twin = await run1({
        ...t,
        ...Object.fromEntries(TWIN_KNOBS.map((k) => [k, DEFAULT_BLOCK_TUNING[k]])),
        ...(t.vpair && !t.wshfl ? { uq: Math.min(t.uq ?? 8, 8) } : {}),
        // (stx needs sbar2's arrays: its twin keeps them)
        ...(t.stx ? { sbar2: true } : {}),
      });
      const twinOut = new Uint32Array(await g.read(out, 0, 4 * B * nH * D));
      const at = twinOut.findIndex((x, i) => x !== mine[i]);
      assert.equal(
        at,
        -1,
        `${label} BlockAttention ${JSON.stringify(tuning)}: ${
          twinKnobs.join(" + ")
        } differs from its twin at ${at}`,
      );
      twin.part.destroy();
      twin.att.destroy();
      g.device.queue.writeBuffer(out, 0, mine);
    }
    const got = new Float32Array(await g.read(out, 0, 4 * B * nH * D));
    let err = 0, worst = 0, vmax = 0;
    for (let i = 0; i < got.length; i++) {
      const e = Math.abs(got[i] - ref[i]);
      err = Number.isNaN(e) ? Infinity : Math.max(err, e);
      worst = Number.isNaN(e) ? Infinity : Math.max(worst, e / (bound + vBound[i]));
      vmax = Math.max(vmax, vBound[i]);
    }
    const run = att.block.config.tuning ?? {};
    // the knobs the merged schedule runs (subgroup defaults included), and its uq / tq / nblk
    const on = ([
      "vshuf",
      "sred",
      "qsub",
      "rsub",
      "wshfl",
      "vsum1",
      "vpair",
      "vsub",
      "kacc2",
      "vcoal",
      "vjoin",
      "sbar2",
      "stx",
      "sepi",
      "sexp2",
      "sbias",
    ] as const)
      .filter((k) => run[k]);
    const parts = [
      on.join(" "),
      ...(["uq", "tq", "nblk"] as const).map((k) => run[k] ? `${k} ${run[k]}` : ""),
    ]
      .filter((x) => x);
    const sub = parts.length ? ` [${parts.join(", ")}]` : "";
    console.log(
      `  ${label} BlockAttention ${
        JSON.stringify(tuning)
      }${sub}, ${d.block.blocks} blocks of ${d.splits} splits${
        img.segments.length > 1 ? ` (body = segment ${body}, the others on the fused kernel)` : ""
      }: max abs err ${err.toExponential(2)} (bound ${bound.toExponential(1)} + weight rounding ≤ ${
        vmax.toExponential(1)
      }; seed ${seed})`,
    );
    assert.ok(
      worst <= 1,
      `${label} BlockAttention ${JSON.stringify(tuning)}: error ${err} over the bound (${worst})`,
    );
    assert.ok(
      err > bound,
      `${label} BlockAttention: error ${err} within the f32 bound: weights not rounded?`,
    );
    // every wgv / uq / pipe / tq with the same block size rounds the same weights: one result up to f32 sums
    const key = `${att.block.block}${run.sexp2 ? " sexp2" : ""}`;
    const same = byBlock.get(key);
    if (same) {
      const diff = got.reduce((m, x, i) => {
        const e = Math.abs(x - same.got[i]);
        return Number.isNaN(e) ? Infinity : Math.max(m, e);
      }, 0);
      assert.ok(
        diff <= SAME_BLOCK_TOL,
        `${label} BlockAttention ${JSON.stringify(tuning)} differs from ${JSON.stringify(same.tuning)} ` +
          `(same block ${att.block.block}) by ${diff}`,
      );
    } else byBlock.set(key, { tuning, got });
    part.destroy();
    att.destroy();
  }
  out.destroy();
}

/**
 * The query kernel's records are bit-exact with cpu/query_int8.ts: per (sequence, KV head, head) the int8
 * codes (unpacked from the K format's plane byte order), 2^e and Σ qi.
 */
function checkQueryRecords(
  words: Uint32Array,
  qkv: Float32Array,
  B: number,
  nH: number,
  nKv: number,
  D: number,
  kFormat: TensorFormat,
): void {
  const row = (nH + 2 * nKv) * D, hpk = nH / nKv, NV = Math.ceil(hpk / 4), sc = Math.fround(1 / Math.sqrt(D));
  const bits = Number(kFormat.slice(1)), PL = bits === 8 ? 1 : 8 / bits, CPW = 32 / bits;
  const rec = (D / 4 + 2) * NV;
  let checked = 0;
  for (let b = 0; b < B; b++) {
    const qs = new Float32Array(nH * D).map((_, i) => Math.fround(qkv[b * row + i] * sc));
    const { codes, exps } = int8Query(qs, nH, D);
    for (let g = 0; g < nKv; g++) {
      const base = 4 * (b * nKv + g) * rec;
      for (let hh = 0; hh < hpk; hh++) {
        const h = g * hpk + hh, u = Math.floor(hh / 4), cc = hh % 4;
        let sum = 0;
        for (let dd = 0; dd < D; dd++) {
          const wi = Math.floor(dd / CPW), rem = dd % CPW, j = Math.floor(rem / PL), sp = rem % PL;
          const w = words[base + 4 * ((wi * PL + sp) * NV + u) + cc];
          const code = ((w >>> (8 * j)) << 24) >> 24;
          assert.equal(code, codes[h * D + dd], `query code b ${b} head ${h} dim ${dd}`);
          sum += code;
          checked++;
        }
        const f = new Float32Array(new Uint32Array([words[base + 4 * ((D / 4) * NV + u) + cc]]).buffer)[0];
        assert.equal(f, 2 ** exps[h], `query scale b ${b} head ${h}`);
        assert.equal(words[base + 4 * ((D / 4 + 1) * NV + u) + cc] | 0, sum, `Σ qi b ${b} head ${h}`);
      }
    }
  }
  assert.ok(checked > 0);
}

/** Σ_d q[qOff + d]·k_t,d in f64 for KV head g: token t of the cache view, or the new token's k when t = view.length. */
function dotK(
  view: { length: number; k: Float32Array },
  kNew: Float32Array,
  nKv: number,
  D: number,
  g: number,
  t: number,
  q: Float32Array,
  qOff: number,
): number {
  let a = 0;
  for (let d = 0; d < D; d++) {
    a += q[qOff + d] * (t < view.length ? view.k[(t * nKv + g) * D + d] : kNew[g * D + d]);
  }
  return a;
}

/**
 * f64 reference of the integer K phase (`kdot`): tokens of 2-, 4- and 8-bit K segments are scored with the
 * int8 query q̂ of cpu/query_int8.ts (from the f32 scaled query q·fl(1/√D), as the kernel forms it), 16-bit
 * segments and the new token with the exact query; softmax and values as cpu/attention.ts.
 */
function kdotReference(
  caches: KVCache[],
  img: PackedCacheImage,
  qkv: Float32Array,
  nH: number,
  nKv: number,
  D: number,
): Float32Array {
  const row = (nH + 2 * nKv) * D, hpk = nH / nKv, sc = Math.fround(1 / Math.sqrt(D));
  const out = new Float32Array(caches.length * nH * D);
  caches.forEach((c, b) => {
    const view = c.view(0);
    const qs = new Float32Array(nH * D).map((_, i) => Math.fround(qkv[b * row + i] * sc));
    const qh = int8QueryValues(int8Query(qs, nH, D), D);
    // per token: does its K segment take the integer path?
    const intTok: boolean[] = [];
    for (const seg of img.segments) {
      const f = img.stores[seg.k.store].layout[seg.k.tensor]!.format;
      for (let t = 0; t < seg.counts[b]; t++) intTok.push(integerKFormat(f));
    }
    assert.equal(intTok.length, view.length);
    const kNew = qkv.subarray(b * row + nH * D), vNew = qkv.subarray(b * row + (nH + nKv) * D);
    for (let h = 0; h < nH; h++) {
      const g = Math.floor(h / hpk), n = view.length;
      const s = new Float64Array(n + 1);
      for (let t = 0; t <= n; t++) {
        s[t] = t < n
          ? dotK(view, kNew, nKv, D, g, t, intTok[t] ? qh : qs, h * D)
          : dotK(view, kNew, nKv, D, g, t, qkv, b * row + h * D) * sc;
      }
      const m = Math.max(...s);
      let l = 0;
      for (let t = 0; t <= n; t++) l += s[t] = Math.exp(s[t] - m);
      for (let d = 0; d < D; d++) {
        let a = 0;
        for (let t = 0; t <= n; t++) a += s[t] * (t < n ? view.v[(t * nKv + g) * D + d] : vNew[g * D + d]);
        out[(b * nH + h) * D + d] = a / l;
      }
    }
  });
  return out;
}

/**
 * Per-output bound of the integer V phase's weight rounding (docs/gpu-packed.md §2c). A token t of a 2- or
 * 4-bit V segment enters the chunk's sums as σ·w with w = round(p·S_t/σ), σ = max S_V of the chunk / 255, so
 * its weight moves by at most σ/2 ≤ S_max/510 (S_max: the largest V scale of the segment's tokens of that
 * sequence and KV head), in units of the chunk's running maximum, which is ≤ the final one; divided by the
 * softmax denominator L = Σ e^(s − M) (exact scores, incl. the new token; 1% margin for the int8 query's
 * change of L and for f32 rounding of p·S·(255/S_max)): |Δ out_d| ≤ 1.01·S_max·Σ_t c_t,d / (510·L).
 */
function vdotBound(
  caches: KVCache[],
  img: PackedCacheImage,
  qkv: Float32Array,
  nH: number,
  nKv: number,
  D: number,
): Float64Array {
  const row = (nH + 2 * nKv) * D, hpk = nH / nKv, sc = 1 / Math.sqrt(D);
  const out = new Float64Array(caches.length * nH * D);
  caches.forEach((c, b) => {
    const view = c.view(0), n = view.length;
    // Σ_t c_t,d · S_max per (KV head, dim) over the 2-/4-bit V segments
    const sumC = new Float64Array(nKv * D);
    for (const seg of img.segments) {
      const st = img.stores[seg.v.store], t = st.layout[seg.v.tensor]!, cnt = seg.counts[b];
      if (!(t.format === "q4" || t.format === "q2") || cnt === 0) continue;
      const bits = t.format === "q4" ? 4 : 2, cpw = 32 / bits, gph = t.groupsPerRow, G = D / gph;
      const q = unpackTokenTensor(st.layout, t, b, seg.v.tok0, cnt, st.words);
      for (let g = 0; g < nKv; g++) {
        let smax = 0;
        for (let i = 0; i < cnt; i++) {
          for (let j = 0; j < gph; j++) smax = Math.max(smax, bf16ToF32(q.scales[(i * nKv + g) * gph + j]));
        }
        for (let i = 0; i < cnt; i++) {
          for (let d = 0; d < D; d++) {
            const grp = (i * nKv + g) * gph + Math.floor(d / G), e = d % G;
            const word = q.codes[grp * t.wordsPerGroup + Math.floor(e / cpw)];
            sumC[g * D + d] += smax * ((word >>> ((e % cpw) * bits)) & ((1 << bits) - 1));
          }
        }
      }
    }
    const kNew = qkv.subarray(b * row + nH * D);
    for (let h = 0; h < nH; h++) {
      const g = Math.floor(h / hpk), s = new Float64Array(n + 1);
      for (let t = 0; t <= n; t++) s[t] = dotK(view, kNew, nKv, D, g, t, qkv, b * row + h * D) * sc;
      const m = Math.max(...s);
      let l = 0;
      for (let t = 0; t <= n; t++) l += Math.exp(s[t] - m);
      for (let d = 0; d < D; d++) out[(b * nH + h) * D + d] = (1.01 * sumC[g * D + d]) / (510 * l);
    }
  });
  return out;
}

function fill(cache: KVCache, r: () => number, n: number, row: number): void {
  let done = 0;
  while (done < n) {
    const t = Math.min(n - done, done === 0 ? 97 : 1 + Math.floor(r() * 40));
    const k = new Float32Array(t * row).map(() => r() * 2 - 1);
    const v = new Float32Array(t * row).map(() => (r() * 2 - 1) * 2 + 0.5);
    cache.append(0, k, v, t);
    done += t;
  }
}

/** One static int-b cache per sequence (`counts` tokens each, filled by `fill` from `r`) and their packed image. */
function staticCaches(
  bits: 16 | 8 | 4 | 2,
  counts: number[],
  nKv: number,
  D: number,
  r: () => number,
): { caches: GroupedCache[]; img: PackedCacheImage } {
  const shape = { numLayers: 1, numKvHeads: nKv, headDim: D };
  const caches = counts.map((n) => {
    const c = createCache({ method: "static", bits }, shape) as GroupedCache;
    fill(c, r, n, nKv * D);
    return c;
  });
  return { caches, img: groupedImage(caches.map((c) => c.exportLayer(0))) };
}

for (const bits of [16, 8, 4, 2] as const) {
  gpuCase(`fused attention, static int${bits} (one q${bits} segment) vs cpu attention`, async (g) => {
    const nH = bits === 4 ? 6 : 8, nKv = 2, D = 128; // HPK = 3 exercises padded head lanes
    const { caches, img } = staticCaches(bits, [300, 187], nKv, D, mulberry32(500 + bits));
    assert.deepEqual(img.stores.map((s) => s.name), ["body"]);
    await checkAttention(
      g,
      `int${bits}`,
      caches,
      img,
      nH,
      nKv,
      D,
      software
        ? [
          SOFT_STATIC[bits],
          ...(bits < 16 ? [{ ...SOFT_STATIC[bits], kdot: true }] : []),
          ...(bits < 8
            ? [{ wg: 64, tpt: 2, vd: 4, kdot: true, vdot: true }, { ...SOFT_STATIC[2], vdot: true }]
            : []),
          ...(bits === 4 || bits === 16 ? [{ ...SOFT_STATIC[bits], kch: 2 }] : []),
        ]
        : TUNINGS,
      600 + bits,
    );
  });
}

gpuCase(
  "fused attention, PM-KVQ mixed state from a progressive GroupedCache (shrink events) vs cpu attention",
  async (g) => {
    const nH = 8, nKv = 2, D = 128;
    const shape = { numLayers: 1, numKvHeads: nKv, headDim: D };
    const r = mulberry32(4242);
    const caches = [700, 655, 5].map((n) => {
      const c = createCache(
        planToCacheSpec(uniformPlan(shape, "t", 1024, 2, { sink: 1, window: 32 })),
        shape,
      ) as GroupedCache;
      fill(c, r, n, nKv * D);
      return c;
    });
    const events = caches[0].stats().events.map((e) => `${e.from}→${e.to}@${e.step}`);
    assert.deepEqual(caches[0].stats().events.map((e) => e.to), [8, 4, 2], `shrink events: ${events}`);
    const ex = caches.map((c) => c.exportLayer(0));
    assert.ok(ex[0].windowTokens !== ex[1].windowTokens && ex[2].bodyTokens === 0);
    const img = groupedImage(ex);
    assert.deepEqual(img.stores.map((s) => s.name), ["sinkWindow", "body"]);
    assert.equal(img.segments.length, 3);
    console.log(
      `  shrink events ${events.join(", ")}; body ${ex.map((e) => e.bodyTokens)} @2b, window ${
        ex.map((e) => e.windowTokens)
      }`,
    );
    const tunings = software
      ? [
        DEFAULT_ATTENTION_TUNING,
        SOFT_VD8,
        {
          ...SOFT_VD8,
          kdot: true,
          perPath: true,
          vfull: true,
          wordView: true,
        },
        { ...SOFT_VD8, kdot: true, vfull: true, wordView: true, kch: 2 },
        {
          ...SOFT_VD8,
          vd: 4,
          kdot: true,
          vdot: true,
          perPath: true,
        },
      ]
      : TUNINGS;
    await checkAttention(g, "pmkvq", caches, img, nH, nKv, D, tunings, 4343);
  },
);

for (const bits of [2, 4] as const) {
  gpuCase(
    `fused attention, KIVI-${bits} (per-channel K, per-token V, bf16 residual) vs cpu attention`,
    async (g) => {
      const nH = 8, nKv = 2, D = 64;
      const shape = { numLayers: 1, numKvHeads: nKv, headDim: D };
      const r = mulberry32(900 + bits);
      const caches = [0, 1].map(() =>
        createCache({ method: "kivi", bits, group: 32, residual: 64 }, shape) as KiviCache
      );
      // same lengths (KIVI segment boundaries depend on it), different content
      for (const c of caches) fill(c, r, 230, nKv * D);
      const img = kiviImage(caches.map((c) => c.exportLayer(0)));
      assert.equal(img.segments.length, 3);
      // vdot at D 64: the per-token V segment takes the integer V phase (8 words per row, 16 token lanes)
      await checkAttention(g, `kivi${bits}`, caches, img, nH, nKv, D, [TUNINGS[0], {
        ...SOFT_VD8,
        perPath: true,
        vfull: true,
        wordView: true,
      }, { ...SOFT_VD8, wg: 128, vdot: true, perPath: true }], 950 + bits);
    },
  );
}

for (const kernel of ["fused", "block"] as const) {
  gpuCase(
    `attention reduce (${kernel}): 1, 63, 65 and 300 splits (more than one weight block) merged as the formula, with and without the new token`,
    async (g) => {
      const nH = 4, nKv = 2, D = 96, B = 2, hpk = nH / nKv; // D 96: the last dim lane of the 64 invocations is partial
      const heads = { numHeads: nH, numKvHeads: nKv, headDim: D };
      const pipe = await g.pipeline(
        `reduce test ${kernel}`,
        kernel === "fused" ? attentionReduceWgsl(heads) : blockReduceWgsl(heads),
      );
      const r = mulberry32(77);
      const row = (nH + 2 * nKv) * D;
      for (const S of [1, 63, 65, 300]) {
        for (const hasNew of [true, false]) {
          const qkv = new Float32Array(B * row).map(() => r() * 2 - 1);
          const statsOff = B * nH * S * D;
          const part = new Float32Array(statsOff + B * nH * S * 2);
          for (let i = 0; i < statsOff; i++) part[i] = (r() * 2 - 1) * 3;
          for (let i = 0; i < B * nH * S; i++) {
            // some empty splits (max NEG, Σp 0) as the partial kernel writes them
            const empty = r() < 0.1;
            part[statsOff + 2 * i] = empty ? -3e38 : r() * 8 - 4;
            part[statsOff + 2 * i + 1] = empty ? 0 : 0.5 + r() * 30;
            if (empty) part.fill(0, i * D, (i + 1) * D);
          }
          const sc = Math.fround(1 / Math.sqrt(D));
          const uni = packUniform([
            0,
            row,
            S,
            statsOff,
            nH * D,
            (nH + nKv) * D,
            hasNew ? 1 : 0,
            0,
            f32u(sc),
            0,
            0,
            0,
          ]);
          const bufs = [
            g.uniform("u", uni),
            g.upload("qkv", qkv),
            g.upload("part", part),
            g.storage("out", B * nH * D * 4),
          ];
          const bg = g.device.createBindGroup({
            layout: pipe.layout,
            entries: bufs.map((buffer, binding) => ({ binding, resource: { buffer } })),
          });
          await g.submit((pass) => {
            pass.setPipeline(pipe.pipeline);
            pass.setBindGroup(0, bg);
            // the block reduce spreads the dims over a third grid axis
            pass.dispatchWorkgroups(nH, B, kernel === "fused" ? 1 : D / blockReduceDims(heads));
          });
          const got = new Float32Array(await g.read(bufs[3], 0, B * nH * D * 4));
          let worst = 0, scale = 0;
          for (let b = 0; b < B; b++) {
            for (let h = 0; h < nH; h++) {
              const g0 = Math.floor(h / hpk);
              let sn = -Infinity;
              if (hasNew) {
                let a = 0;
                for (let d = 0; d < D; d++) {
                  a += qkv[b * row + h * D + d] * qkv[b * row + nH * D + g0 * D + d];
                }
                sn = a * sc;
              }
              const st = (x: number) => statsOff + ((b * nH + h) * S + x) * 2;
              let M = sn;
              for (let x = 0; x < S; x++) M = Math.max(M, part[st(x)]);
              const wn = hasNew ? Math.exp(sn - M) : 0;
              let L = wn;
              for (let x = 0; x < S; x++) L += Math.exp(part[st(x)] - M) * part[st(x) + 1];
              for (let d = 0; d < D; d++) {
                let a = wn * (hasNew ? qkv[b * row + (nH + nKv) * D + g0 * D + d] : 0);
                for (let x = 0; x < S; x++) {
                  a += Math.exp(part[st(x)] - M) * part[((b * nH + h) * S + x) * D + d];
                }
                const want = a / L;
                scale = Math.max(scale, Math.abs(want));
                worst = Math.max(worst, Math.abs(got[(b * nH + h) * D + d] - want));
              }
            }
          }
          for (const b of bufs) b.destroy();
          // f32 sums of ≤ 300 terms with exp: stated bound 2e-5 relative to the largest output
          assert.ok(
            worst <= 2e-5 * Math.max(1, scale),
            `${kernel} reduce, S ${S}, new ${hasNew}: max abs err ${worst} (scale ${scale})`,
          );
        }
      }
    },
  );
}

// ------------------------------------------------------------------ GPU-side PM-KVQ layer

for (const [sink, window, finalBits, maxLen] of [[1, 32, 2, 1024], [2, 0, 4, 1024]] as const) {
  gpuCase(
    `GpuGroupedLayer (sink ${sink}, window ${window}, final ${finalBits} bits): stores byte-identical to GroupedCache after every append, then fused attention`,
    async (g) => {
      const nKv = 2, D = 128, B = 2, nH = 8, row = nKv * D;
      const shape = { numLayers: 1, numKvHeads: nKv, headDim: D };
      const plan = uniformPlan(shape, "t", maxLen, finalBits, { sink, window });
      const cpu = [0, 1].map(() => createCache(planToCacheSpec(plan), shape) as GroupedCache);
      const layer = await GpuGroupedLayer.create(g, {
        batch: B,
        numKvHeads: nKv,
        headDim: D,
        sink,
        window,
        initBits: 16,
        finalBits,
        budget: plan.budgets[0],
        maxLen,
      });
      const r = mulberry32(31 + window);
      let n = 0, appends = 0;
      const target = window > 0 ? 700 : 650;
      while (n < target) {
        const t = Math.min(target - n, n === 0 ? 97 : 1 + Math.floor(r() * 45));
        const x = new Float32Array(2 * B * t * row).map(() => (r() * 2 - 1) * (1 + 3 * r()));
        for (let b = 0; b < B; b++) {
          const k = x.slice(b * t * row, (b + 1) * t * row),
            v = x.slice((B + b) * t * row, (B + b + 1) * t * row);
          cpu[b].append(0, k, v, t);
        }
        const xb = g.upload("x", x);
        await layer.append({ x: xb, k: 0, v: B * t * row, tokStride: row, batchStride: t * row }, t);
        xb.destroy();
        n += t;
        appends++;
        // compare every region of every sequence with the CPU export
        const st = layer.stores();
        const sw = st.sinkWindow
          ? new Uint32Array(await g.read(st.sinkWindow.buffer, 0, st.sinkWindow.layout.words * 4))
          : null;
        const body = new Uint32Array(await g.read(st.body.buffer, 0, st.body.layout.words * 4));
        for (let b = 0; b < B; b++) {
          const ex = cpu[b].exportLayer(0);
          assert.equal(layer.bits, ex.bits, `width after ${n} tokens`);
          assert.deepEqual(layer.counts(), {
            sink: ex.sinkTokens,
            body: ex.bodyTokens,
            window: ex.windowTokens,
          });
          const gpt = ex.groupsPerToken, G = ex.groupSize;
          const same = (
            what: string,
            got: QuantBuffers,
            want: QuantBuffers,
            tok0: number,
            cnt: number,
            bits: number,
          ) => {
            const wpg = G * bits / 32;
            const w = {
              codes: want.codes.subarray(tok0 * gpt * wpg, (tok0 + cnt) * gpt * wpg),
              scales: want.scales.subarray(tok0 * gpt, (tok0 + cnt) * gpt),
              zeros: want.zeros.subarray(tok0 * gpt, (tok0 + cnt) * gpt),
            };
            assert.equal(
              firstDiff(got.codes, w.codes),
              -1,
              `${what} codes, sequence ${b}, after ${n} tokens`,
            );
            assert.equal(
              firstDiff(new Uint32Array(got.scales), new Uint32Array(w.scales)),
              -1,
              `${what} scales`,
            );
            assert.equal(
              firstDiff(new Uint32Array(got.zeros), new Uint32Array(w.zeros)),
              -1,
              `${what} zeros`,
            );
          };
          for (const tn of ["k", "v"] as const) {
            if (ex.sinkTokens > 0) {
              const L = st.sinkWindow!.layout;
              same(
                `sink ${tn}`,
                unpackTokenTensor(L, L[tn]!, b, 0, ex.sinkTokens, sw!),
                ex.sink![tn],
                0,
                ex.sinkTokens,
                16,
              );
            }
            if (ex.windowTokens > 0) {
              const L = st.sinkWindow!.layout;
              same(
                `window ${tn}`,
                unpackTokenTensor(L, L[tn]!, b, sink, ex.windowTokens, sw!),
                ex.window![tn],
                0,
                ex.windowTokens,
                16,
              );
            }
            let at = 0;
            for (const c of ex.body) {
              const L = st.body.layout;
              same(
                `body ${tn}`,
                unpackTokenTensor(L, L[tn]!, b, at, c.tokens, body),
                c[tn],
                0,
                c.tokens,
                ex.bits,
              );
              at += c.tokens;
            }
          }
        }
      }
      await layer.checkStatus();
      const events = cpu[0].stats().events.map((e) => ({ step: e.step, from: e.from, to: e.to }));
      assert.deepEqual(layer.events, events);
      assert.ok(events.length >= 2, `expected shrink events, got ${JSON.stringify(events)}`);
      console.log(
        `  ${appends} appends, ${n} tokens, shrink events ${
          events.map((e) => `${e.from}→${e.to}@${e.step}`).join(", ")
        }; ` +
          `GPU bytes ${layer.bytes()} vs CPU ${B} × ${cpu[0].stats().bytes} (budget ${
            plan.budgets[0]
          } per sequence)`,
      );
      // fused attention over the GPU layer vs cpu attention over the CPU caches
      const qrow = (nH + 2 * nKv) * D;
      const qkv = new Float32Array(B * qrow).map(() => r() * 2 - 1);
      const want = new Float32Array(B * nH * D);
      let maxV = 0;
      cpu.forEach((c, b) => {
        const view = c.view(0);
        attention(
          want.subarray(b * nH * D, (b + 1) * nH * D),
          qkv.subarray(b * qrow, b * qrow + nH * D),
          view,
          qkv.subarray(b * qrow + nH * D, b * qrow + (nH + nKv) * D),
          qkv.subarray(b * qrow + (nH + nKv) * D, (b + 1) * qrow),
          1,
          nH,
          nKv,
          D,
          new Float64Array(view.length + 1),
        );
        for (const x of view.v) maxV = Math.max(maxV, Math.abs(x));
      });
      const att = await FusedAttention.create(g, {
        ...layer.attentionConfig(nH, DEFAULT_ATTENTION_TUNING),
        maxBatch: 4,
      });
      const inputs = layer.attentionInputs();
      const params = {
        ...inputs,
        batch: B,
        q: { off: 0, rowStride: qrow },
        newKV: { k: nH * D, v: (nH + nKv) * D },
        splits: { target: 3 },
      };
      const pl = att.plan(B, params.counts, params.splits);
      const qb = g.upload("qkv", qkv), out = g.storage("out", want.byteLength);
      const part = g.storage("part", 4 * att.partialFloats(B, pl.total));
      const d = att.prepare({ qkv: qb, part, out, stores: inputs.stores }, params);
      await g.submit((p) => att.encode(p, d));
      const got = new Float32Array(await g.read(out, 0, want.byteLength));
      let err = 0;
      for (let i = 0; i < want.length; i++) {
        err = Math.max(err, Math.abs(got[i] - want[i]) || (got[i] === want[i] ? 0 : Infinity));
      }
      console.log(
        `  fused attention over the GPU layer: max abs err ${err.toExponential(2)} (bound ${
          (2e-5 * maxV).toExponential(1)
        })`,
      );
      assert.ok(err <= 2e-5 * maxV);
      layer.destroy();
      for (const b of [qb, out, part]) b.destroy();
    },
  );
}

gpuCase(
  "fused attention: kdot without packed_4x8_integer_dot_product is a GpuError naming the feature",
  async (g) => {
    const gpuNs = navigator.gpu as GPU & { wgslLanguageFeatures?: ReadonlySet<string> };
    const own = Object.getOwnPropertyDescriptor(gpuNs, "wgslLanguageFeatures");
    Object.defineProperty(gpuNs, "wgslLanguageFeatures", {
      value: new Set(["pointer_composite_access"]),
      configurable: true,
    });
    try {
      const cfg: FusedAttentionConfig = {
        numHeads: 4,
        numKvHeads: 2,
        headDim: 128,
        maxBatch: 1,
        stores: [{ k: "q4", v: "q4" }],
        segments: [{ k: { store: 0, tensor: "k" }, v: { store: 0, tensor: "v" } }],
        tuning: { wg: 64, tpt: 1, kdot: true },
      };
      await assert.rejects(
        FusedAttention.create(g, cfg),
        (e: Error) =>
          e instanceof GpuError && /packed_4x8_integer_dot_product/.test(e.message) &&
          /pointer_composite_access/.test(e.message),
      );
    } finally {
      if (own) Object.defineProperty(gpuNs, "wgslLanguageFeatures", own);
      else delete (gpuNs as { wgslLanguageFeatures?: unknown }).wgslLanguageFeatures;
    }
  },
);

/**
 * A random query / new K, V row per sequence (from `r`), the image's stores uploaded, and
 * {@link checkBlockAttention} with the f32 bound 2·10⁻⁵ × the largest |V| (cached or new).
 */
async function checkBlockCase(
  g: PackedGpu,
  label: string,
  caches: KVCache[],
  img: PackedCacheImage,
  nH: number,
  nKv: number,
  D: number,
  r: () => number,
  seed: number,
): Promise<void> {
  const row = (nH + 2 * nKv) * D;
  const qkv = new Float32Array(caches.length * row).map(() => (r() * 2 - 1) * 1.5);
  let maxV = 0;
  for (const c of caches) for (const x of c.view(0).v) maxV = Math.max(maxV, Math.abs(x));
  for (let i = 0; i < qkv.length; i++) {
    if (i % row >= (nH + nKv) * D) maxV = Math.max(maxV, Math.abs(qkv[i]));
  }
  const stores = img.stores.map((st) => g.upload(st.name, st.words));
  const qb = g.upload("qkv", qkv);
  await checkBlockAttention(g, label, caches, img, qkv, qb, stores, nH, nKv, D, 2e-5 * maxV, seed);
  for (const b of [...stores, qb]) b.destroy();
}

gpuCase(
  "block attention at D 64 with 5 query heads per KV head (two head lanes), static int2 and int4",
  async (g) => {
    const nH = 10, nKv = 2, D = 64;
    for (const bits of [2, 4] as const) {
      const r = mulberry32(800 + bits);
      const { caches, img } = staticCaches(bits, [520, 77], nKv, D, r);
      await checkBlockCase(g, `int${bits} D64 HPK5`, caches, img, nH, nKv, D, r, 800);
    }
  },
);

gpuCase(
  "block attention at D 32 (a 2-bit K row is 2 words: the score kernel's word loop), static int2 and int4",
  async (g) => {
    const nH = 8, nKv = 2, D = 32;
    for (const bits of [2, 4] as const) {
      const r = mulberry32(820 + bits);
      const { caches, img } = staticCaches(bits, [300, 41], nKv, D, r);
      await checkBlockCase(g, `int${bits} D32`, caches, img, nH, nKv, D, r, 820);
    }
  },
);

gpuCase(
  "block attention with K and V at different widths (q8/q4, q8/q2, q4/q2, q2/q4): one store, two formats",
  async (g) => {
    // no cache writes these pairs today, but BlockAttention accepts them: the image is built by hand from two
    // static caches filled with the same values (K from the kBits one, V from the vBits one)
    const nH = 8, nKv = 2, D = 128, counts = [300, 77];
    for (const [kb, vb] of [[8, 4], [8, 2], [4, 2], [2, 4]] as const) {
      const seed = 870 + kb * 10 + vb;
      const kc = staticCaches(kb, counts, nKv, D, mulberry32(seed)).caches;
      const vc = staticCaches(vb, counts, nKv, D, mulberry32(seed)).caches;
      const layout = storeLayout({
        batch: counts.length,
        numKvHeads: nKv,
        headDim: D,
        capacity: Math.max(...counts),
        k: tokenFormat(kb),
        v: tokenFormat(vb),
      });
      const words = new Uint32Array(layout.words);
      counts.forEach((_, b) => {
        for (const [c, t, which] of [[kc[b], layout.k!, "k"], [vc[b], layout.v!, "v"]] as const) {
          let at = 0;
          for (const ch of c.exportLayer(0).body) {
            packTokenTensor(layout, t, b, ch[which], 0, ch.tokens, at, words);
            at += ch.tokens;
          }
        }
      });
      const img: PackedCacheImage = {
        stores: [{ name: "body", layout, words }],
        segments: [{ k: { store: 0, tensor: "k", tok0: 0 }, v: { store: 0, tensor: "v", tok0: 0 }, counts }],
      };
      // the references read K and V through view(0): K of the kBits cache, V of the vBits one
      const caches = kc.map((c, b) => {
        const kv = c.view(0), vv = vc[b].view(0);
        assert.equal(kv.length, vv.length);
        return { view: () => ({ length: kv.length, k: kv.k, v: vv.v }) } as unknown as KVCache;
      });
      await checkBlockCase(g, `K q${kb} / V q${vb}`, caches, img, nH, nKv, D, mulberry32(seed + 1), seed);
    }
  },
);

gpuCase(
  "block attention: missing packed_4x8_integer_dot_product, bad counts and bad shared-part ranges are typed errors",
  async (g) => {
    const nH = 6, nKv = 2, D = 128, B = 2, row = (nH + 2 * nKv) * D;
    const opts = {
      numHeads: nH,
      numKvHeads: nKv,
      headDim: D,
      maxBatch: 4,
      maxTokens: 600,
      k: "q4",
      v: "q4",
    } as const;
    const gpuNs = navigator.gpu as GPU & { wgslLanguageFeatures?: ReadonlySet<string> };
    const own = Object.getOwnPropertyDescriptor(gpuNs, "wgslLanguageFeatures");
    Object.defineProperty(gpuNs, "wgslLanguageFeatures", { value: new Set<string>(), configurable: true });
    try {
      await assert.rejects(
        BlockAttention.create(g, opts),
        (e: Error) => e instanceof GpuError && /packed_4x8_integer_dot_product/.test(e.message),
      );
    } finally {
      if (own) Object.defineProperty(gpuNs, "wgslLanguageFeatures", own);
      else delete (gpuNs as { wgslLanguageFeatures?: unknown }).wgslLanguageFeatures;
    }
    // subgroup knobs given where the device's subgroups cannot run them (here: a device without the feature)
    const noSubgroups = {
      ctx: { features: new Set<string>(), description: "an adapter without subgroups" },
      device: {},
    } as unknown as PackedGpu;
    for (const tuning of [{ vshuf: true }, { sred: true }, { qsub: true }, { rsub: true }, { wshfl: true }]) {
      await assert.rejects(
        BlockAttention.create(noSubgroups, { ...opts, k: "q2", v: "q2", tuning }),
        (e: Error) =>
          e instanceof GpuError &&
          new RegExp(
            `${
              Object.keys(tuning)[0]
            } cannot run: an adapter without subgroups does not grant the "subgroups" feature`,
          ).test(e.message),
      );
    }
    // the static int4 case's schedule: the same WGSL, so the pipelines are cached
    const att = await BlockAttention.create(g, { ...opts, tuning: BLOCK_TUNINGS[0] });
    const L = storeLayout({ batch: B, numKvHeads: nKv, headDim: D, capacity: 600, k: "q4", v: "q4" });
    const store = g.storage("store", L.words * 4), qkv = g.storage("qkv", 4 * B * row);
    const out = g.storage("out", 4 * B * nH * D), part = g.storage("part", 4 * att.partialFloats(B, 8));
    const base = {
      batch: B,
      q: { off: 0, rowStride: row },
      newKV: null,
      ref: { k: { t: L.k!, tok0: 0 }, v: { t: L.v!, tok0: 0 } },
      counts: [600, 300],
    };
    const prep = (over: Partial<typeof base> & { part?: { splits: number; first: number } }) => () =>
      att.prepare({ qkv, part, out, store }, { ...base, ...over });
    const bad: [ReturnType<typeof prep>, RegExp][] = [
      [prep({ counts: [601, 3] }), /sequence 0 has 601 tokens; maxTokens 600/],
      [prep({ counts: [5] }), /1 counts for batch 2/],
      [prep({ counts: [5, 2.5] }), /count 2.5 of sequence 1/],
      [prep({ batch: 5 }), /batch 5 not in 1\.\.4/],
      // 600 tokens = 3 blocks of 256: they do not fit splits 1 … 3 of a 3-split part
      [prep({ part: { splits: 3, first: 1 } }), /part splits 3 cannot hold 3 splits from split 1/],
      [prep({ part: { splits: 64, first: 0 } }), /part buffer has \d+ bytes, needs/],
    ];
    for (const [f, re] of bad) {
      assert.throws(f, (e: Error) => e instanceof TensorShapeError && re.test(e.message));
    }
    // the fused kernel's share of a part buffer cannot be smaller than its plan
    const fused = await FusedAttention.create(g, {
      numHeads: nH,
      numKvHeads: nKv,
      headDim: D,
      maxBatch: 4,
      stores: [{ k: "q4", v: "q4" }],
      segments: [{ k: { store: 0, tensor: "k" }, v: { store: 0, tensor: "v" } }],
      tuning: SOFT_STATIC[4],
    });
    assert.throws(
      () =>
        fused.prepare({ qkv, part, out, stores: [store] }, {
          batch: B,
          q: base.q,
          newKV: null,
          refs: [base.ref],
          counts: [base.counts],
          splits: { target: 4 },
          part: { splits: 2 },
        }),
      (e: Error) => e instanceof TensorShapeError && /part splits 2 < the plan's \d+/.test(e.message),
    );
    for (const b of [store, qkv, out, part]) b.destroy();
    att.destroy();
  },
);

gpuCase(
  "block attention: a given field valid only beside a subgroup default (wshfl, which needs vshuf) is accepted",
  async (g) => {
    const lanes = await subgroupLanes(g);
    if (!lanes.ok) {
      console.log(`  not run: ${lanes.reason}`);
      return;
    }
    // {q2, q2}: vshuf comes from the subgroup defaults; create once judged the K rows (for nblk) from the given
    // fields alone, where wshfl without vshuf is a QuantConfigError
    const att = await BlockAttention.create(g, {
      numHeads: 8,
      numKvHeads: 2,
      headDim: 128,
      maxBatch: 1,
      maxTokens: 1024,
      k: "q2",
      v: "q2",
      tuning: { wshfl: true },
    });
    const t = att.config.tuning ?? {};
    const nblk = subgroupBlockTuning("q2", "q2", lanes.size).nblk;
    assert.ok(t.wshfl && t.vshuf && t.nblk === nblk, `merged schedule ${JSON.stringify(t)} (nblk ${nblk})`);
    att.destroy();
  },
);
