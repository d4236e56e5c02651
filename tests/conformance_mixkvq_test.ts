/**
 * Conformance of the GPU MixKVQ layer (gpu/packed/mixkvq_*.ts) with the CPU `MixKvqCache`
 * (src/kv/mixkvq.ts), on every available adapter. Without a WebGPU adapter every case is IGNORED with a
 * printed reason — never silently passed.
 *
 * | case | criterion |
 * | --- | --- |
 * | seeded K/V with outlier channels, ragged appends crossing block flushes, queries observed on most appends (nKv 2, D 128, nH 4, R 32, g 32, values 2-bit, all three key tiers) | after EVERY append: residual K/V bytes, every block's tier map, slots, bf16 rows, 4-/2-bit codes, scales, zeros and value codes/scales/zeros byte-identical to `exportLayer`; counts and bytes equal; fused decode attention within 2e-5·max\|v̂\| of cpu/attention.ts on `view()` + the exact new token |
 * | the same with no queries (I = 1), nKv 1, D 64, nH 2, R 64, g 16, values 4-bit | same |
 * | NaN in a value | NonFiniteError naming token, head, channel; GpuError until reset; reset reproduces the CPU again |
 */
import assert from "node:assert/strict";
import { acquireGpu, type GpuContext } from "../gpu/device.ts";
import { PackedGpu } from "../gpu/packed/util.ts";
import { GpuMixKvqLayer } from "../gpu/packed/mixkvq_layer.ts";
import { MixKvqAttention } from "../gpu/packed/mixkvq_attention.ts";
import { MixKvqCache, type MixKvqSpec, type TierCounts } from "../src/kv/mixkvq.ts";
import { attention } from "../cpu/attention.ts";
import { mulberry32 } from "../src/sampling.ts";
import { GpuError, NonFiniteError } from "../src/errors.ts";
import { sameMixExport } from "./support/mixkvq_compare.ts";

let ctx: GpuContext | null = null;
try {
  ctx = await acquireGpu();
} catch (e) {
  console.warn(`SKIPPED: MixKVQ GPU conformance cases are ignored: ${(e as Error).message}`);
}
const gpu = ctx ? new PackedGpu(ctx) : null;
const ADAPTER = ctx ? ctx.description.slice(0, 40) : "no adapter";

function gpuCase(name: string, fn: (g: PackedGpu) => Promise<void>): void {
  Deno.test({ name: `mixkvq[${ADAPTER}] ${name}`, ignore: gpu === null, fn: () => fn(gpu!) });
}

// ------------------------------------------------------------------ data

interface Case {
  spec: MixKvqSpec;
  numKvHeads: number;
  headDim: number;
  numHeads: number;
  /** append sizes */
  appends: number[];
  /** observe queries before append i? */
  observe: (i: number) => boolean;
  seed: number;
  /** mix in adversarial channels (zero / constant / tiny / subnormal / spiky keys; zero / constant / tiny / large values) */
  adversarial?: boolean;
}

/** Adversarial key (kind k = channel mod 16), or null for the ordinary random value. */
function advKey(kind: number, tok: number, u: number): number | null {
  if (kind === 1) return 0;
  if (kind === 2) return 1.5;
  if (kind === 4) return u * 1e-25; // below the 2^-64 flush in the quantizer, not in the salience
  if (kind === 6) return u * 1e-40; // f32 subnormal (bf16 subnormal in the residual)
  if (kind === 8) return tok % 50 === 7 ? 30 : u;
  return null;
}

function advValue(kind: number, u: number): number | null {
  if (kind === 1) return 0;
  if (kind === 2) return -2.5;
  if (kind === 4) return u * 1e-30;
  if (kind === 8) return u * 1e3;
  return null;
}

/** K/V/Q generator: per-channel scales with a few outlier channels (×12 keys, ×6 queries). */
function source(c: Case) {
  const r = mulberry32(c.seed);
  const row = c.numKvHeads * c.headDim;
  const kScale = Float32Array.from({ length: row }, (_, i) => (i % 29 === 3 ? 12 : 0.3 + 2 * r()));
  const kShift = Float32Array.from({ length: row }, () => 2 * r() - 1);
  const qScale = Float32Array.from(
    { length: c.numHeads * c.headDim },
    (_, i) => (i % 37 === 5 ? 6 : 0.5 + r()),
  );
  const u = () => 2 * r() - 1;
  let tokens = 0;
  return {
    kv(t: number) {
      const k = new Float32Array(t * row), v = new Float32Array(t * row);
      for (let i = 0; i < t * row; i++) {
        const kind = c.adversarial ? (i % row) % 16 : 0, tok = tokens + Math.floor(i / row);
        k[i] = advKey(kind, tok, u()) ?? kShift[i % row] + u() * kScale[i % row];
        v[i] = advValue(kind, u()) ?? u() * (1 + (i % 7));
      }
      tokens += t;
      return { k, v };
    },
    q(t: number) {
      const n = c.numHeads * c.headDim;
      return Float32Array.from({ length: t * n }, (_, i) => u() * qScale[i % n]);
    },
  };
}

function uploadKV(g: PackedGpu, k: Float32Array, v: Float32Array): GPUBuffer {
  const x = new Float32Array(k.length + v.length);
  x.set(k);
  x.set(v, k.length);
  return g.upload("mixkvq test kv", x);
}

// ------------------------------------------------------------------ the run

async function runCase(g: PackedGpu, c: Case): Promise<TierCounts> {
  const { numKvHeads: nKv, headDim: D, numHeads: nH } = c;
  const row = nKv * D;
  const total = c.appends.reduce((a, b) => a + b, 0);
  const cpu = new MixKvqCache(c.spec, { numLayers: 1, numKvHeads: nKv, headDim: D });
  const layer = await GpuMixKvqLayer.create(g, c.spec, { numKvHeads: nKv, headDim: D, maxLen: total + 1 });
  const att = await MixKvqAttention.create(g, layer.geo, nH);
  const part = g.storage("mixkvq test part", 4 * att.partFloats());
  const out = g.storage("mixkvq test out", 4 * nH * D);
  const src = source(c);
  const scores = new Float64Array(total + 2);
  let worst = 0, maxAbs = 0, attCalls = 0;
  const t0 = performance.now();
  try {
    for (const [i, t] of c.appends.entries()) {
      const step = `append ${i} (${t} tokens after ${cpu.length(0)})`;
      // decode attention over the current contents + one exact new token
      const q = src.q(1), kn = src.kv(1);
      const qkv = new Float32Array(nH * D + 2 * row);
      qkv.set(q);
      qkv.set(kn.k, nH * D);
      qkv.set(kn.v, nH * D + row);
      const qkvBuf = g.upload("mixkvq test qkv", qkv);
      await layer.attend(att, { qkv: qkvBuf, part, out }, { q: 0, k: nH * D, v: nH * D + row, out: 0 });
      const got = new Float32Array(await g.read(out, 0, 4 * nH * D));
      qkvBuf.destroy();
      const want = new Float32Array(nH * D);
      const view = cpu.view(0);
      attention(want, q, view, kn.k, kn.v, 1, nH, nKv, D, scores);
      let vmax = 0;
      for (let j = 0; j < view.length * row; j++) vmax = Math.max(vmax, Math.abs(view.v[j]));
      for (const x of kn.v) vmax = Math.max(vmax, Math.abs(x));
      let err = 0;
      for (let j = 0; j < want.length; j++) err = Math.max(err, Math.abs(got[j] - want[j]));
      assert.ok(err <= 2e-5 * vmax, `${step}: attention error ${err} > 2e-5·${vmax}`);
      worst = Math.max(worst, err / vmax);
      maxAbs = Math.max(maxAbs, err);
      attCalls++;
      // the append itself
      const { k, v } = src.kv(t);
      if (c.observe(i)) {
        const qs = src.q(t);
        cpu.observeQuery(0, qs, t);
        layer.observeQuery(qs, t);
      }
      cpu.append(0, k, v, t);
      const x = uploadKV(g, k, v);
      await layer.append({ x, k: 0, v: t * row, tokStride: row }, t);
      x.destroy();
      assert.equal(layer.length, cpu.length(0), `${step}: length`);
      sameMixExport(await layer.readExport(), cpu.exportLayer(0), step);
      assert.equal(layer.cpuBytes(), cpu.stats().layers[0].bytes, `${step}: bytes`);
    }
    const tiers = cpu.keyTierCounts(0);
    console.log(
      `  ${total} tokens in ${c.appends.length} appends, ${layer.blocks.length} blocks, key tiers ` +
        `${JSON.stringify(tiers)}; attention (${attCalls} calls) max abs err ${maxAbs.toExponential(2)}, ` +
        `max err / max|v̂| ${worst.toExponential(2)}; ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    return tiers;
  } finally {
    layer.destroy();
    part.destroy();
    out.destroy();
  }
}

const RAGGED = [1, 7, 40, 1, 1, 23, 64, 2, 1, 30, 5, 1, 1, 33, 17, 1, 1, 1, 12, 20, 3];

gpuCase(
  "query-aware, 3 tiers, ragged appends crossing flushes (nKv 2, D 128, R 32, 2-bit values)",
  async (g) => {
    const c: Case = {
      spec: { method: "mixkvq", tau16: 2.5, tau4: 1.1, residual: 32 },
      numKvHeads: 2,
      headDim: 128,
      numHeads: 4,
      appends: RAGGED,
      observe: (i) => i % 5 !== 3,
      seed: 11,
    };
    const tiers = await runCase(g, c);
    assert.ok(tiers.n16 > 0 && tiers.n4 > 0 && tiers.n2 > 0, `all tiers used: ${JSON.stringify(tiers)}`);
  },
);

gpuCase("no queries (I = 1), g 16 < R 64, 4-bit values (nKv 1, D 64, nH 2)", async (g) => {
  await runCase(g, {
    spec: { method: "mixkvq", tau16: 2.0, tau4: 0.9, residual: 64, keyGroup: 16, valueBits: 4 },
    numKvHeads: 1,
    headDim: 64,
    numHeads: 2,
    appends: [3, 64, 1, 90, 1, 1, 60, 2, 41],
    observe: () => false,
    seed: 23,
  });
});

gpuCase("adversarial channels, default R = g = 128 and thresholds, 4 query heads per KV head", async (g) => {
  await runCase(g, {
    spec: { method: "mixkvq" },
    numKvHeads: 2,
    headDim: 128,
    numHeads: 8,
    appends: [130, 1, 1, 124, 3],
    observe: (i) => i !== 1,
    seed: 37,
    adversarial: true,
  });
});

gpuCase("NaN value: NonFiniteError naming the position, GpuError until reset", async (g) => {
  const spec: MixKvqSpec = { method: "mixkvq", residual: 8 };
  const nKv = 2, D = 64, row = nKv * D;
  const layer = await GpuMixKvqLayer.create(g, spec, { numKvHeads: nKv, headDim: D, maxLen: 64 });
  try {
    const k = new Float32Array(4 * row).fill(0.5), v = new Float32Array(4 * row).fill(-1);
    v[3 * row + D + 5] = NaN;
    const x = uploadKV(g, k, v);
    await assert.rejects(
      () => layer.append({ x, k: 0, v: 4 * row, tokStride: row }, 4),
      (e: unknown) => e instanceof NonFiniteError && /value of token 3 .*head 1, channel 5/.test(e.message),
    );
    await assert.rejects(() => layer.append({ x, k: 0, v: 4 * row, tokStride: row }, 1), GpuError);
    x.destroy();
    layer.reset();
    const cpu = new MixKvqCache(spec, { numLayers: 1, numKvHeads: nKv, headDim: D });
    const r = mulberry32(5);
    const k2 = Float32Array.from({ length: 11 * row }, () => 2 * r() - 1);
    const v2 = Float32Array.from({ length: 11 * row }, () => 2 * r() - 1);
    cpu.append(0, k2, v2, 11);
    const x2 = uploadKV(g, k2, v2);
    await layer.append({ x: x2, k: 0, v: 11 * row, tokStride: row }, 11);
    x2.destroy();
    sameMixExport(await layer.readExport(), cpu.exportLayer(0), "after reset");
  } finally {
    layer.destroy();
  }
});
