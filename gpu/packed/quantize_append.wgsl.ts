/**
 * WGSL of `quantize_append`: quantize new K/V tokens into groups of G = min(128, D) values at b ∈ {16, 8, 4,
 * 2} bits and write packed codes + one sz word per group into a store (gpu/packed/layout.ts), byte-identical
 * to `quantizeGroup` of src/quant/quantizer.ts on any IEEE f32 device (docs/numerics.md; the arithmetic is
 * Appendix A's, verified on the H100).
 *
 * One workgroup of 64 invocations per group: each invocation loads ⌈G/64⌉ values (coalesced), min/max are
 * reduced in workgroup memory (exact, so order-free), every invocation then computes z, r and S identically,
 * its codes go to workgroup memory and invocations < wordsPerGroup pack one u32 word each.
 *
 * Buffers:
 * | binding | name | type | shape / content |
 * | --- | --- | --- | --- |
 * | 0 | `p` | uniform | see {@link quantizeAppendWgsl} struct `P` |
 * | 1 | `x` | `array<f32>` read | element (b, i, h, d) of tensor kv at `src[kv] + b·batchStride + i·tokStride + h·D + d` (e.g. the k or v part of a fused qkv [B·t, (nH + 2·nKv)·D]) |
 * | 2 | `st` | `array<u32>` read_write | the destination store: codes [B, nKv, cap, D/G, wpg], sz [B, nKv, cap, D/G] at the offsets in `p.dk` / `p.dv` |
 * | 3 | `status` | `array<atomic<u32>>` read_write | [1]: 0, or 0xffffffff − (g·128 + e) of the FIRST offending value (group g of this dispatch, index e) with NaN/±Inf/\|x\| ≥ 2^64 (atomicMax keeps the smallest g·128 + e) |
 *
 * Group g of a dispatch: g = (((kv·B + b)·t + i)·nKv + h)·(D/G) + j, kv ∈ [0, nTensors): token i of sequence b
 * goes to store token `pos[b] + i`. A flagged group's codes are unspecified (the CPU raises NonFiniteError
 * before storing anything; the GPU caller must check `status`).
 *
 * @example
 * ```ts
 * import { quantizeAppendWgsl } from "./quantize_append.wgsl.ts";
 * const code = quantizeAppendWgsl({ numKvHeads: 8, headDim: 128, bits: 4, maxBatch: 8 });
 * ```
 * @module
 */
import { formatFor, groupSizeFor } from "../../src/quant/format.ts";
import {
  GROUP_MINMAX_DECL_WGSL,
  GROUP_MINMAX_WGSL,
  GROUP_REDUCE_THREADS,
  QUANT_WGSL,
  u32,
} from "./wgsl_common.ts";

/** Compile-time constants of a quantize_append pipeline. */
export interface QuantizeAppendShape {
  numKvHeads: number;
  headDim: number;
  bits: number;
  /** Largest batch the `pos` table holds. */
  maxBatch: number;
}

/** Invocations per workgroup (one workgroup per group). */
export const QA_THREADS = GROUP_REDUCE_THREADS;

/**
 * The WGSL source (module doc for the bindings). Uniform struct:
 * `src = (kBase, vBase, tokStride, batchStride)`, `dims = (B, t, nGroups, gridX)`,
 * `dk`/`dv = (codesOff, szOff, cap, 0)`, `pos[b/4][b%4]` = first store token of sequence b.
 *
 * @example
 * ```ts
 * import { quantizeAppendWgsl } from "./quantize_append.wgsl.ts";
 * quantizeAppendWgsl({ numKvHeads: 2, headDim: 64, bits: 2, maxBatch: 1 }).includes("fn main"); // true
 * ```
 */
export function quantizeAppendWgsl(s: QuantizeAppendShape): string {
  const fmt = formatFor(s.bits);
  const G = groupSizeFor(s.headDim);
  const NE = Math.ceil(G / QA_THREADS);
  const loads: string[] = [];
  const codes: string[] = [];
  for (let e = 0; e < NE; e++) {
    loads.push(`
  var v${e} = 0.0;
  let i${e} = lid + ${u32(e * QA_THREADS)};
  if (i${e} < G) {
    let xv = x[base + i${e}];
    let u = bitcast<u32>(xv);
    let ex = (u >> 23u) & 0xffu;
    if (ex >= 191u) { atomicMax(&status[0], 0xffffffffu - (g * 128u + i${e})); }
    if (ex >= 63u) { v${e} = xv; }
    mn = min(mn, v${e}); mx = max(mx, v${e});
  }`);
    codes.push(`
  if (i${e} < G) {
    var q = 0u;
    if (sb != 0u) { q = gpu_code(v${e} + z, S, QF, QMAX); }
    cs[i${e}] = q;
  }`);
  }
  return /* wgsl */ `
const NKV = ${u32(s.numKvHeads)};
const D = ${u32(s.headDim)};
const G = ${u32(G)};
const GPH = ${u32(s.headDim / G)};
const BITS = ${u32(fmt.bits)};
const CPW = ${u32(fmt.codesPerWord)};
const WPG = ${u32(fmt.wordsPerGroup(G))};
const QMAX = ${u32(fmt.qmax)};
const QF = ${fmt.qmax}.0;
const QT = ${u32(QA_THREADS)};
struct P {
  src: vec4<u32>,
  dims: vec4<u32>,
  dk: vec4<u32>,
  dv: vec4<u32>,
  pos: array<vec4<u32>, ${Math.max(1, Math.ceil(s.maxBatch / 4))}>,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> st: array<u32>;
@group(0) @binding(3) var<storage, read_write> status: array<atomic<u32>>;
${GROUP_MINMAX_DECL_WGSL}
var<workgroup> cs: array<u32, G>;
${QUANT_WGSL}
@compute @workgroup_size(${QA_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = wid.y * p.dims.w + wid.x;
  if (g >= p.dims.z) { return; }
  let B = p.dims.x; let T = p.dims.y;
  let perT = B * T * NKV * GPH;
  let kv = g / perT;
  var r = g % perT;
  let j = r % GPH; r = r / GPH;
  let h = r % NKV; r = r / NKV;
  let i = r % T; let b = r / T;
  let base = select(p.src.x, p.src.y, kv == 1u) + b * p.src.w + i * p.src.z + h * D + j * G;
  var mn = 3.0e38;
  var mx = -3.0e38;
${loads.join("")}
${GROUP_MINMAX_WGSL}
  // Steps 2-4 (every invocation computes the same bits).
  let zb = bf16_up_bits(bitcast<u32>(mn) ^ 0x80000000u);
  let z = bf16(zb);
  let rr = mx + z;
  let sb = scale_bits(rr, QF);
  let S = bf16(sb);
  // Step 5.
${codes.join("")}
  workgroupBarrier();
  let dst = select(p.dk, p.dv, kv == 1u);
  let gi = ((b * NKV + h) * dst.z + p.pos[b / 4u][b % 4u] + i) * GPH + j;
  if (lid < WPG) {
    var w = 0u;
    for (var k = 0u; k < CPW; k++) {
      let e = lid * CPW + k;
      if (e < G) { w = w | (cs[e] << (k * BITS)); }
    }
    st[dst.x + gi * WPG + lid] = w;
  }
  if (lid == 0u) { st[dst.y + gi] = sb | (zb << 16u); }
}
`;
}
