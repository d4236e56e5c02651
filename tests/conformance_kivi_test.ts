/**
 * Conformance of the GPU-side KIVI layer (gpu/packed/kivi_layer.ts: key flush per channel, value quantize
 * per token, bf16 residual / FIFO staging, fused decode attention over the KIVI layout) with the CPU
 * `KiviCache` (src/kv/kivi.ts), on every available adapter. Without a WebGPU adapter every case is IGNORED
 * with a printed reason — never silently passed.
 *
 * | case | CPU twin | criterion |
 * | --- | --- | --- |
 * | GpuKiviLayer b 4 and 2 (D 64, g 32, R 64, batch 2; D 128, g 128, R 128, batch 1): seeded random K/V with adversarial tokens (flushed tiny values, bf16 ties, constants, ±2^60), ragged appends of 1–150 tokens across group and block boundaries, input read from an engine-like qkv with a batch stride | `KiviCache` per sequence fed the same tokens | after EVERY append: key blocks (codes, scales, zeros), key residual and value FIFO (all R rows, bf16 bits), value chunks (codes, scales, zeros incl. the zero padding) byte-identical to `exportLayer`; counts identical |
 * | fused decode attention over the GPU layer after every append (N < R, N = k·R, vQ = 0, …) | cpu/attention.ts on `KiviCache.view` + the exact new token | max abs err ≤ 2e-5·max\|v̂\| |
 * | bad input (NaN, +Inf, 2^64) | NonFiniteError of `checkAppend` | `checkStatus` throws NonFiniteError |
 */
import assert from "node:assert/strict";
import { acquireGpu, type GpuContext } from "../gpu/device.ts";
import { PackedGpu } from "../gpu/packed/util.ts";
import { GpuKiviLayer } from "../gpu/packed/kivi_layer.ts";
import { kiviAppendPlan } from "../gpu/packed/kivi_layout.ts";
import { FusedAttention } from "../gpu/packed/attention.ts";
import { KiviCache, type KiviLayerExport } from "../src/kv/kivi.ts";
import { attention } from "../cpu/attention.ts";
import { mulberry32 } from "../src/sampling.ts";
import { NonFiniteError } from "../src/errors.ts";

let ctx: GpuContext | null = null;
try {
  ctx = await acquireGpu();
} catch (e) {
  console.warn(`SKIPPED: KIVI GPU conformance cases are ignored: ${(e as Error).message}`);
}
const gpu = ctx ? new PackedGpu(ctx) : null;
const ADAPTER = ctx ? ctx.description : "no adapter";
/** The attention bound, relative to max |v̂| (docs/gpu-packed.md §2). */
const REL_BOUND = 2e-5;

function gpuCase(name: string, fn: (g: PackedGpu) => Promise<void>): void {
  Deno.test({ name: `kivi[${ADAPTER}] ${name}`, ignore: gpu === null, fn: () => fn(gpu!) });
}

Deno.test("kivi plan: token movement of one append (host only)", () => {
  assert.deepEqual(kiviAppendPlan({ keyResidual: 0, valueFifo: 0 }, 300, 128), {
    keyBlocks: 2,
    keyResidualAfter: 44,
    valueEvict: 172,
    valueFifoAfter: 128,
  });
  assert.deepEqual(kiviAppendPlan({ keyResidual: 63, valueFifo: 64 }, 1, 64), {
    keyBlocks: 1,
    keyResidualAfter: 0,
    valueEvict: 1,
    valueFifoAfter: 64,
  });
});

function firstDiff(a: ArrayLike<number> | null, b: ArrayLike<number> | null): number {
  if (a === null || b === null) return a === b ? -1 : 0;
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Byte comparison of a GPU export with the CPU's. */
function assertSameExport(got: KiviLayerExport, want: KiviLayerExport, when: string): void {
  const counts = (e: KiviLayerExport) => [
    e.tokens,
    e.keyResidualTokens,
    e.keyQuantTokens,
    e.valueFifoTokens,
    e.valueQuantTokens,
    e.keyBlocks.length,
    e.valueChunks.map((c) => c.tokens).join("/"),
  ];
  assert.deepEqual(counts(got), counts(want), `counts ${when}`);
  const same = (what: string, a: ArrayLike<number> | null, b: ArrayLike<number> | null) => {
    const at = firstDiff(a, b);
    assert.equal(at, -1, `${what} ${when}: first difference at ${at} (gpu ${a?.[at]}, cpu ${b?.[at]})`);
  };
  same("key residual", got.keyResidual, want.keyResidual);
  same("value fifo", got.valueFifo, want.valueFifo);
  want.keyBlocks.forEach((q, i) => {
    same(`key block ${i} codes`, got.keyBlocks[i].codes, q.codes);
    same(`key block ${i} scales`, got.keyBlocks[i].scales, q.scales);
    same(`key block ${i} zeros`, got.keyBlocks[i].zeros, q.zeros);
  });
  want.valueChunks.forEach((c, i) => {
    same(`value chunk ${i} codes`, got.valueChunks[i].q.codes, c.q.codes);
    same(`value chunk ${i} scales`, got.valueChunks[i].q.scales, c.q.scales);
    same(`value chunk ${i} zeros`, got.valueChunks[i].q.zeros, c.q.zeros);
  });
}

/** One token row of nKv·D values: random, or an adversarial kind. */
function tokenRow(r: () => number, row: number, kind: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < row; i++) {
    switch (kind) {
      case 1: // flushed tiny values mixed with normal ones
        out.push(r() < 0.5 ? (r() - 0.5) * 2 ** -66 : r() * 2 - 1);
        break;
      case 2: // exact bf16 ties (RNE of the residual) and bf16-exact values
        out.push((128 + Math.floor(r() * 128) + (r() < 0.5 ? 0.5 : 0)) * 2 ** -7 * (r() < 0.5 ? -1 : 1));
        break;
      case 3: // a constant token
        out.push(0.3);
        break;
      case 4: // huge magnitudes
        out.push((r() * 2 - 1) * 2 ** 60);
        break;
      default:
        out.push((r() * 2 - 1) * (1 + 3 * r()));
    }
  }
  return out;
}

interface Config {
  bits: 2 | 4;
  D: number;
  group: number;
  residual: number;
  batch: number;
  nH: number;
  nKv: number;
  maxLen: number;
  /** Adversarial magnitudes up to 2^60 as well (stores only: they make an attention bound meaningless). */
  huge?: boolean;
}

const CONFIGS: Config[] = [
  { bits: 4, D: 64, group: 32, residual: 64, batch: 2, nH: 8, nKv: 2, maxLen: 420 },
  { bits: 2, D: 64, group: 32, residual: 64, batch: 2, nH: 6, nKv: 2, maxLen: 420 },
  { bits: 2, D: 128, group: 128, residual: 128, batch: 1, nH: 4, nKv: 1, maxLen: 560 },
  { bits: 4, D: 128, group: 128, residual: 128, batch: 1, nH: 4, nKv: 1, maxLen: 560 },
  { bits: 4, D: 64, group: 16, residual: 64, batch: 1, nH: 2, nKv: 2, maxLen: 300, huge: true },
  { bits: 2, D: 64, group: 16, residual: 64, batch: 1, nH: 2, nKv: 2, maxLen: 300, huge: true },
];

for (const cfg of CONFIGS) {
  gpuCase(
    `GpuKiviLayer kivi${cfg.bits} D ${cfg.D} g ${cfg.group} R ${cfg.residual} batch ${cfg.batch}${
      cfg.huge ? " (magnitudes to 2^60)" : ""
    }: stores byte-identical to KiviCache after every append${
      cfg.huge ? "" : `, fused attention within ${REL_BOUND}·max|v̂|`
    }`,
    async (g) => {
      const { bits, D, group, residual, batch: B, nH, nKv, maxLen } = cfg;
      const t0 = performance.now();
      const QKV = (nH + 2 * nKv) * D, row = nKv * D;
      const shape = { numLayers: 1, numKvHeads: nKv, headDim: D };
      const cpu = Array.from(
        { length: B },
        () => new KiviCache({ method: "kivi", bits, group, residual }, shape),
      );
      const layer = await GpuKiviLayer.create(g, {
        batch: B,
        numKvHeads: nKv,
        headDim: D,
        bits,
        group,
        residual,
        maxLen,
      });
      const att = cfg.huge
        ? null
        : await FusedAttention.create(g, layer.attentionConfig(nH, { wg: 64, tpt: 1 }));
      const r = mulberry32(1000 * bits + D);
      const sizes = [97, 1, 1, 30, 150, 3, 64, 1, 40, 17, 1, 2, 5, 9];
      const Tmax = Math.max(...sizes);
      const x = g.storage("kivi test qkv", 4 * B * Tmax * QKV);
      const qb = g.storage("kivi test q", 4 * B * QKV);
      const out = g.storage("kivi test out", 4 * B * nH * D);
      let n = 0, appends = 0, worst = 0, worstRel = 0, checks = 0;
      try {
        for (let ai = 0; n < maxLen; ai++) {
          const t = Math.min(
            maxLen - n,
            sizes[ai % sizes.length] + (ai >= sizes.length ? Math.floor(r() * 20) : 0),
          );
          // x: [B, t, QKV] (batchStride t·QKV), the engine's qkv row layout
          const host = new Float32Array(B * t * QKV);
          for (let b = 0; b < B; b++) {
            const k = new Float32Array(t * row), v = new Float32Array(t * row);
            for (let i = 0; i < t; i++) {
              const base = (b * t + i) * QKV;
              host.set(tokenRow(r, nH * D, 0), base);
              const kind = () => (r() < 0.25 ? 1 + Math.floor(r() * (cfg.huge ? 4 : 3)) : 0);
              const kr = tokenRow(r, row, kind()), vr = tokenRow(r, row, kind());
              host.set(kr, base + nH * D);
              host.set(vr, base + (nH + nKv) * D);
              k.set(kr, i * row);
              v.set(vr, i * row);
            }
            cpu[b].append(0, k, v, t);
          }
          g.device.queue.writeBuffer(x, 0, host);
          await layer.append({ x, k: nH * D, v: (nH + nKv) * D, tokStride: QKV, batchStride: t * QKV }, t);
          n += t;
          appends++;
          for (let b = 0; b < B; b++) {
            assertSameExport(
              await layer.exportLayer(b),
              cpu[b].exportLayer(0),
              `sequence ${b} after ${n} tokens (+${t})`,
            );
          }
          if (!att) continue;
          // fused decode attention over the GPU layer + an exact new token vs cpu attention on the CPU view
          const qkv = new Float32Array(B * QKV).map(() => r() * 2 - 1);
          g.device.queue.writeBuffer(qb, 0, qkv);
          const want = new Float32Array(B * nH * D);
          let maxV = 0;
          cpu.forEach((c, b) => {
            const view = c.view(0);
            const q = qkv.subarray(b * QKV, (b + 1) * QKV);
            attention(
              want.subarray(b * nH * D, (b + 1) * nH * D),
              q.subarray(0, nH * D),
              view,
              q.subarray(nH * D, (nH + nKv) * D),
              q.subarray((nH + nKv) * D),
              1,
              nH,
              nKv,
              D,
              new Float64Array(view.length + 1),
            );
            for (const y of view.v) maxV = Math.max(maxV, Math.abs(y));
            for (const y of q.subarray((nH + nKv) * D)) maxV = Math.max(maxV, Math.abs(y));
          });
          const inputs = layer.attentionInputs();
          const params = {
            ...inputs,
            batch: B,
            q: { off: 0, rowStride: QKV },
            newKV: { k: nH * D, v: (nH + nKv) * D },
            splits: { target: 1 + (appends % 4) },
          };
          const plan = att.plan(B, params.counts, params.splits);
          const part = g.storage("kivi test part", 4 * att.partialFloats(B, plan.total));
          const d = att.prepare({ qkv: qb, part, out, stores: inputs.stores }, params);
          await g.submit((p) => att.encode(p, d));
          const got = new Float32Array(await g.read(out, 0, want.byteLength));
          let err = 0;
          for (let i = 0; i < want.length; i++) {
            const e = Math.abs(got[i] - want[i]);
            err = Number.isNaN(e) ? Infinity : Math.max(err, e);
          }
          part.destroy();
          for (const u of d.uniforms) u.destroy();
          assert.ok(
            err <= REL_BOUND * maxV,
            `attention after ${n} tokens: error ${err} > ${REL_BOUND}·${maxV}`,
          );
          worst = Math.max(worst, err);
          worstRel = Math.max(worstRel, err / maxV);
          checks++;
        }
        await layer.checkStatus();
        const c = layer.counts();
        const attMsg = checks === 0
          ? "attention not checked (magnitudes to 2^60)"
          : `attention (${checks} checks) max abs err ${worst.toExponential(2)}, ${
            worstRel.toExponential(2)
          }·max|v̂| (bound ${REL_BOUND})`;
        console.log(
          `  ${appends} appends to ${n} tokens (kQ ${c.keyQuant}, vQ ${c.valueQuant}): every store byte-identical; ` +
            `${attMsg}; ${((performance.now() - t0) / 1000).toFixed(1)} s`,
        );
      } finally {
        layer.destroy();
        for (const b of [x, qb, out]) b.destroy();
      }
    },
  );
}

gpuCase(
  "GpuKiviLayer: NaN, +Inf and 2^64 inputs are flagged (NonFiniteError), clean input is not",
  async (g) => {
    const D = 64, nKv = 1;
    const layer = await GpuKiviLayer.create(g, {
      batch: 1,
      numKvHeads: nKv,
      headDim: D,
      bits: 4,
      group: 32,
      residual: 64,
      maxLen: 256,
    });
    const x = g.storage("kivi bad input", 4 * 70 * 2 * D);
    try {
      for (const [bad, t, tensor] of [[NaN, 1, "k"], [Infinity, 70, "v"], [2 ** 64, 70, "k"]] as const) {
        const host = new Float32Array(70 * 2 * D).fill(0.5);
        host[(t - 1) * 2 * D + (tensor === "k" ? 3 : D + 5)] = bad;
        g.device.queue.writeBuffer(x, 0, host);
        layer.reset();
        await layer.append({ x, k: 0, v: D, tokStride: 2 * D, batchStride: 0 }, t);
        await assert.rejects(() => layer.checkStatus(), NonFiniteError, `${bad} in ${tensor}`);
      }
      layer.reset();
      g.device.queue.writeBuffer(x, 0, new Float32Array(70 * 2 * D).fill(0.5));
      await layer.append({ x, k: 0, v: D, tokStride: 2 * D, batchStride: 0 }, 70);
      await layer.checkStatus();
    } finally {
      layer.destroy();
      x.destroy();
    }
  },
);
