/**
 * The block attention's reduce kernel on its own (block_attention.wgsl.ts `blockReduceWgsl`, the tree kernel and
 * `rsub`): synthetic partials with up to 600 splits — more than `rsub` preloads (pre·128/rdims) and more than
 * one block of RB weights — with and without a new token, against an f64 merge of the same partials. This reaches
 * split counts the end-to-end conformance cases (a few blocks per sequence) never do. WebGPU cases are ignored
 * (printed) when there is no adapter; `rsub` cases are skipped, with the reason, where subgroups cannot run.
 */
import assert from "node:assert/strict";
import { gpuAvailability } from "../../tests/conformance_support.ts";
import { BLOCK_REDUCE, blockReduceDims, blockReduceWgsl } from "./block_attention.wgsl.ts";
import { reduceUniform } from "./attention.ts";
import { bindUniform } from "./uniform_arena.ts";
import { subgroupLanes } from "./subgroups.ts";
import { PackedGpu } from "./util.ts";
import { mulberry32 } from "../../src/sampling.ts";

/** Deterministic uniform floats in [lo, hi) (the project's seeded PRNG). */
function rng(seed: number): (lo: number, hi: number) => number {
  const next = mulberry32(seed);
  return (lo, hi) => lo + (hi - lo) * next();
}

/** f64 merge: out = (Σ_x e^(m_x−M)·acc_x + e^(s_new−M)·v_new) / (Σ_x e^(m_x−M)·l_x + e^(s_new−M)). */
function reference(
  qkv: Float32Array,
  part: Float32Array,
  s: { B: number; NH: number; NKV: number; D: number; S: number; row: number; kOff: number; vOff: number },
  hasNew: boolean,
): Float64Array {
  const { B, NH, NKV, D, S, row, kOff, vOff } = s;
  const statsOff = B * NH * S * D, hpk = NH / NKV, scale = Math.fround(1 / Math.sqrt(D));
  const out = new Float64Array(B * NH * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      const kvh = Math.floor(h / hpk), bh = b * NH + h;
      let sn = -Infinity;
      if (hasNew) {
        sn = 0;
        for (let d = 0; d < D; d++) sn += qkv[b * row + h * D + d] * qkv[b * row + kOff + kvh * D + d];
        sn *= scale;
      }
      let M = sn;
      for (let x = 0; x < S; x++) M = Math.max(M, part[statsOff + (bh * S + x) * 2]);
      const wn = hasNew ? Math.exp(sn - M) : 0;
      let L = wn;
      const w = new Float64Array(S);
      for (let x = 0; x < S; x++) {
        w[x] = Math.exp(part[statsOff + (bh * S + x) * 2] - M);
        L += w[x] * part[statsOff + (bh * S + x) * 2 + 1];
      }
      for (let d = 0; d < D; d++) {
        let a = hasNew ? wn * qkv[b * row + vOff + kvh * D + d] : 0;
        for (let x = 0; x < S; x++) a += w[x] * part[(bh * S + x) * D + d];
        out[bh * D + d] = L === 0 ? 0 : a / L;
      }
    }
  }
  return out;
}

const { ctx, reason } = await gpuAvailability();

Deno.test({
  name: `block reduce on ${
    ctx ? ctx.description : "no adapter"
  }: tree and rsub merge up to 600 splits within 2e-6 of the f64 merge`,
  ignore: !ctx,
  fn: async () => {
    const gpu = new PackedGpu(ctx!);
    const lanes = await subgroupLanes(gpu);
    if (!lanes.ok) console.log(`  rsub not run: ${lanes.reason}`);
    const B = 2, NH = 4, NKV = 2, D = 64, row = (NH + 2 * NKV) * D, kOff = NH * D, vOff = (NH + NKV) * D;
    const rand = rng(7);
    const qkv = new Float32Array(B * row).map(() => rand(-1, 1));
    const qb = gpu.upload("qkv", qkv);
    const out = gpu.storage("out", 4 * B * NH * D);
    const { threads, pre } = BLOCK_REDUCE;
    let ran = 0;
    for (const S of [1, 5, 64, 65, 300, 600]) {
      // split maxima spread over ±8 (weights e^(m−M) from 1 down to ~1e-7), sums l > 0, partials ~ l·v
      const statsOff = B * NH * S * D;
      const part = new Float32Array(statsOff + B * NH * S * 2);
      for (let i = 0; i < B * NH * S; i++) {
        const l = rand(0.5, 40);
        part[statsOff + 2 * i] = rand(-8, 8);
        part[statsOff + 2 * i + 1] = l;
        for (let d = 0; d < D; d++) part[i * D + d] = l * rand(-3, 3);
      }
      const pb = gpu.upload("part", part);
      for (const rdims of [16, 32, 64]) {
        for (const rsub of lanes.ok ? [false, true] : [false]) {
          const shape = { numHeads: NH, numKvHeads: NKV, headDim: D, tuning: { rdims, rsub } };
          const pipe = await gpu.pipeline(`reduce ${rdims} ${rsub}`, blockReduceWgsl(shape), {
            dynamicUniform: true,
          });
          for (const hasNew of [false, true]) {
            const u = bindUniform(
              gpu,
              pipe,
              "reduce",
              reduceUniform(
                { q: { off: 0, rowStride: row }, newKV: hasNew ? { k: kOff, v: vOff } : null },
                S,
                statsOff,
                1 / Math.sqrt(D),
              ),
              [qb, pb, out],
            );
            await gpu.submit((p) => {
              p.setPipeline(pipe.pipeline);
              p.setBindGroup(0, u.bindGroup, u.offsets);
              p.dispatchWorkgroups(NH, B, D / blockReduceDims(shape));
            });
            u.uniform?.destroy();
            const got = new Float32Array(await gpu.read(out, 0, 4 * B * NH * D));
            const want = reference(qkv, part, { B, NH, NKV, D, S, row, kOff, vOff }, hasNew);
            let err = 0, vmax = 0;
            for (let i = 0; i < got.length; i++) {
              const e = Math.abs(got[i] - want[i]);
              err = Number.isNaN(e) ? Infinity : Math.max(err, e);
              vmax = Math.max(vmax, Math.abs(want[i]));
            }
            const tag = `S ${S}, rdims ${rdims} (${threads / rdims} split lanes, ${
              rsub ? `rsub, ${pre * threads / rdims} preloaded` : "trees"
            }), ${hasNew ? "new token" : "no new token"}`;
            assert.ok(err <= 2e-6 * Math.max(1, vmax), `${tag}: max abs err ${err} (max |out| ${vmax})`);
            ran++;
          }
        }
      }
      pb.destroy();
    }
    console.log(`  ${ran} reduce runs within 2e-6 of the f64 merge${lanes.ok ? " (trees and rsub)" : ""}`);
    qb.destroy();
    out.destroy();
  },
});
if (!ctx) console.log(`block_reduce_test: WebGPU cases not run: ${reason}`);
