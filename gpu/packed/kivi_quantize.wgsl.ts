/**
 * WGSL of the two KIVI quantize kernels (layout and token movement in gpu/packed/kivi_layout.ts), byte-
 * identical to `KiviCache` (src/kv/kivi.ts) on any IEEE f32 device: the group arithmetic is `QUANT_WGSL`
 * (docs/numerics.md Appendix A, the same definition as `quantizeGroup`), applied to the bf16-rounded values
 * the CPU quantizes.
 *
 * | kind | one workgroup per | group elements | destination |
 * | --- | --- | --- | --- |
 * | `key` (flush) | (b, block k, group row jj, head h, channel d) | the g stream tokens k·R + jj·g … + g − 1 of channel (h, d) | `keys` (kc<b>) group ((b·nKv + h)·cap/g + first + k·R/g + jj)·D + d |
 * | `value` | (b, stream token s, head h, value group j) | the G dims j·G … j·G + G − 1 of token s, head h | `values` (q<b>) token first + s |
 *
 * Stream token p (module doc of kivi_layout.ts): p < c → row p of the bf16 source store (old key residual /
 * old value FIFO), else input token p − c of `x`, rounded to bf16 by `bf16_rne_bits` (integer ops, the CPU's
 * `f32ToBf16RNE`). Then the quantizer's input flush (exponent field < 63 → +0). 64 invocations per group:
 * loads, a two-stage min/max tree in workgroup memory (exact), z / S computed identically by every
 * invocation, codes to workgroup memory, invocations pack whole words.
 *
 * Buffers:
 * | binding | name | type | shape / content |
 * | --- | --- | --- | --- |
 * | 0 | `p` | uniform | `src = (xOff, tokStride, batchStride, c)`, `dims = (B, nGroups, gridX, units)`, `sref = (codesOff, cap, 0, 0)` of the bf16 source tensor, `dst = (codesOff, szOff, cap, first)` |
 * | 1 | `x` | `array<f32>` read | input element (b, i, h, d) at `xOff + b·batchStride + i·tokStride + h·D + d` |
 * | 2 | `bsrc` | `array<u32>` read | the bf16 source store (2 bf16 per word, even dim low) |
 * | 3 | `st` | `array<u32>` read_write | the destination store |
 * | 4 | `status` | `array<atomic<u32>>` read_write | [1]: OR-ed with 1 when an input value (or its bf16 rounding) is NaN, ±Inf or \|x\| ≥ 2^64 |
 *
 * @example
 * ```ts
 * import { kiviQuantizeWgsl } from "./kivi_quantize.wgsl.ts";
 * const code = kiviQuantizeWgsl({ kind: "key", numKvHeads: 2, headDim: 64, bits: 4, group: 32, residual: 64 });
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

/** Compile-time constants of a KIVI quantize pipeline. */
export interface KiviQuantizeShape {
  kind: "key" | "value";
  numKvHeads: number;
  headDim: number;
  bits: 2 | 4;
  /** Key group g. */
  group: number;
  /** Residual R. */
  residual: number;
}

/** Invocations per workgroup (one workgroup per group). */
export const KIVI_QUANT_THREADS = GROUP_REDUCE_THREADS;

/**
 * WGSL helper `load_stream(b, p, h, dim) -> f32` shared by the KIVI kernels that read the stream (module doc
 * of kivi_layout.ts): the bf16-exact, flushed value the CPU quantizes. Expects `p`, `x`, `bsrc`, `status`,
 * `NKV`, `D`, `HALF` and `QUANT_WGSL`'s `bf16`, `bf16_rne_bits`.
 *
 * @example
 * ```ts
 * import { KIVI_LOAD_WGSL } from "./kivi_quantize.wgsl.ts";
 * KIVI_LOAD_WGSL.includes("fn load_stream"); // true
 * ```
 */
export const KIVI_LOAD_WGSL = /* wgsl */ `
fn bad_exp(u: u32) -> bool { return ((u >> 23u) & 0xffu) >= 191u; }
fn load_stream(b: u32, pos: u32, h: u32, dim: u32) -> f32 {
  var bb = 0u;
  if (pos < p.src.w) {
    let w = bsrc[p.sref.x + ((b * NKV + h) * p.sref.y + pos) * HALF + dim / 2u];
    bb = select(w & 0xffffu, w >> 16u, (dim & 1u) == 1u);
  } else {
    let u = bitcast<u32>(x[p.src.x + b * p.src.z + (pos - p.src.w) * p.src.y + h * D + dim]);
    bb = bf16_rne_bits(u);
    if (bad_exp(u) || bad_exp(bb << 16u)) { atomicOr(&status[0], 1u); }
  }
  if (((bb >> 7u) & 0xffu) < 63u) { return 0.0; }
  return bf16(bb);
}
`;

/**
 * The WGSL source (module doc for the bindings and group order).
 *
 * @example
 * ```ts
 * import { kiviQuantizeWgsl } from "./kivi_quantize.wgsl.ts";
 * kiviQuantizeWgsl({ kind: "value", numKvHeads: 1, headDim: 128, bits: 2, group: 128, residual: 128 }).includes("fn main"); // true
 * ```
 */
export function kiviQuantizeWgsl(s: KiviQuantizeShape): string {
  const fmt = formatFor(s.bits);
  const GS = s.kind === "key" ? s.group : groupSizeFor(s.headDim);
  const NE = Math.ceil(GS / KIVI_QUANT_THREADS);
  const loads: string[] = [];
  const codes: string[] = [];
  const elem = s.kind === "key" ? "load_stream(b, pos0 + i$, h, ch)" : "load_stream(b, pos0, h, ch + i$)";
  for (let e = 0; e < NE; e++) {
    loads.push(`
  var v${e} = 0.0;
  let i${e} = lid + ${u32(e * KIVI_QUANT_THREADS)};
  if (i${e} < GS) {
    v${e} = ${elem.replace("i$", `i${e}`)};
    mn = min(mn, v${e}); mx = max(mx, v${e});
  }`);
    codes.push(`
  if (i${e} < GS) {
    var q = 0u;
    if (sb != 0u) { q = gpu_code(v${e} + z, S, QF, QMAX); }
    cs[i${e}] = q;
  }`);
  }
  const decompose = s.kind === "key"
    ? `
  let d = r % D; r = r / D;
  let h = r % NKV; r = r / NKV;
  let jj = r % PB; r = r / PB;
  let k = r % p.dims.w; let b = r / p.dims.w;
  let pos0 = k * R + jj * GS;
  let ch = d;
  let gi = ((b * NKV + h) * (p.dst.z / GS) + p.dst.w + k * PB + jj) * D + d;`
    : `
  let j = r % GPH; r = r / GPH;
  let h = r % NKV; r = r / NKV;
  let sTok = r % p.dims.w; let b = r / p.dims.w;
  let pos0 = sTok;
  let ch = j * GS;
  let gi = ((b * NKV + h) * p.dst.z + p.dst.w + sTok) * GPH + j;`;
  return /* wgsl */ `
const NKV = ${u32(s.numKvHeads)};
const D = ${u32(s.headDim)};
const HALF = ${u32(s.headDim / 2)};
const GS = ${u32(GS)};
const GPH = ${u32(s.headDim / groupSizeFor(s.headDim))};
const R = ${u32(s.residual)};
const PB = ${u32(s.residual / s.group)};
const BITS = ${u32(fmt.bits)};
const CPW = ${u32(fmt.codesPerWord)};
const WPG = ${u32(fmt.wordsPerGroup(GS))};
const QMAX = ${u32(fmt.qmax)};
const QF = ${fmt.qmax}.0;
const QT = ${u32(KIVI_QUANT_THREADS)};
struct P {
  src: vec4<u32>,
  dims: vec4<u32>,
  sref: vec4<u32>,
  dst: vec4<u32>,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bsrc: array<u32>;
@group(0) @binding(3) var<storage, read_write> st: array<u32>;
@group(0) @binding(4) var<storage, read_write> status: array<atomic<u32>>;
${GROUP_MINMAX_DECL_WGSL}
var<workgroup> cs: array<u32, GS>;
${QUANT_WGSL}
${KIVI_LOAD_WGSL}
@compute @workgroup_size(${KIVI_QUANT_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let g = wid.y * p.dims.z + wid.x;
  if (g >= p.dims.y) { return; }
  var r = g;${decompose}
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
  for (var wi = lid; wi < WPG; wi += QT) {
    var w = 0u;
    for (var kk = 0u; kk < CPW; kk++) {
      let e = wi * CPW + kk;
      if (e < GS) { w = w | (cs[e] << (kk * BITS)); }
    }
    st[p.dst.x + gi * WPG + wi] = w;
  }
  if (lid == 0u) { st[p.dst.y + gi] = sb | (zb << 16u); }
}
`;
}
