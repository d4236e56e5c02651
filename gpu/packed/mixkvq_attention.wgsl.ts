/**
 * WGSL of the fused MixKVQ decode attention (one new query token, batch 1), reading the MixKVQ layout
 * (mixkvq_layout.ts) directly: split-K over the quantized blocks and the bf16 residual, then a reduce kernel
 * that merges the splits with the new token's EXACT K/V (the CPU contract of cpu/attention.ts).
 *
 * Partial kernel, grid (nBlocks + 1, nKv), one workgroup of {@link MA_THREADS} per (split, KV head) serving
 * the GS = nH/nKv query heads of that KV head. Split s < nBlocks is block s (R tokens), split nBlocks is the
 * residual (resCount tokens, possibly 0):
 * 1. tokens in parallel: k̂[j, d] dequantized exactly as the CPU view does (bf16 → f32; codes → q·S − z,
 *    one rounding since q·S is exact), scores s = (q·k̂)·scale into workgroup memory;
 * 2. per head: max m and Σ exp(s − m) by workgroup tree reductions;
 * 3. channels in parallel: acc[d] = Σ_j p_j·v̂[j, d].
 *
 * | binding | name | type | shape |
 * | --- | --- | --- | --- |
 * | 0 | `p` | uniform | `a = (nBlocks, resCount, qOff, 0)`, `b = (bitcast scale, 0, 0, 0)` |
 * | 1 | `qkv` | f32 read | query head h at `qOff + h·D` |
 * | 2 | `resid` | u32 read | residual K / V (mixkvq_layout.ts) |
 * | 3 | `arena` | u32 read | blocks |
 * | 4 | `desc` | u32 read | [maxBlocks, 12] block regions |
 * | 5 | `part` | f32 rw | acc [nH, SMAX, D], then (m, l) [nH, SMAX, 2]; SMAX = maxBlocks + 1 |
 *
 * Reduce kernel, grid (nH), {@link MA_THREADS} invocations over D: bindings 0 `p` (`a = (nSplits, kOff,
 * vOff, outOff)`, `b = (qOff, bitcast scale, 0, 0)`), 1 `qkv`, 2 `part` (read), 3 `out` (f32 rw, head h at
 * `outOff + h·D`). out = (Σ_s e^(m_s − M)·acc_s + e^(s_new − M)·v_new) / (Σ_s e^(m_s − M)·l_s + e^(s_new − M)).
 *
 * Not bit-exact by design (f32 sums in a different order than the CPU's f64, WGSL `exp`); the tested bound
 * is in tests/conformance_mixkvq_test.ts.
 *
 * @example
 * ```ts
 * import { mixkvqGeometry } from "./mixkvq_layout.ts";
 * import { mixkvqPartialWgsl } from "./mixkvq_attention.wgsl.ts";
 * const geo = mixkvqGeometry({ numKvHeads: 2, headDim: 128, residual: 128, keyGroup: 128, valueBits: 2, maxLen: 512 });
 * mixkvqPartialWgsl(geo, 4).includes("fn main"); // true
 * ```
 * @module
 */
import type { MixKvqGeometry } from "./mixkvq_layout.ts";
import { u32 } from "./wgsl_common.ts";
import { formatFor } from "../../src/quant/format.ts";

/** Invocations per workgroup of both attention kernels (a power of two). */
export const MA_THREADS = 64;

/**
 * Workgroup bytes the partial kernel needs for `numHeads` query heads.
 *
 * @example
 * ```ts
 * // mixkvqPartialWorkgroupBytes(geo, 4) <= 16384
 * ```
 */
export function mixkvqPartialWorkgroupBytes(geo: MixKvqGeometry, numHeads: number): number {
  const GS = numHeads / geo.numKvHeads;
  return 4 * (GS * geo.headDim + GS * geo.R + MA_THREADS + geo.headDim);
}

function tree(op: "max" | "+"): string {
  const f = op === "max"
    ? "red[lid] = max(red[lid], red[lid + st]);"
    : "red[lid] = red[lid] + red[lid + st];";
  return `for (var st = ${u32(MA_THREADS / 2)}; st > 0u; st = st >> 1u) {
      if (lid < st) { ${f} }
      workgroupBarrier();
    }`;
}

/**
 * The partial kernel for `numHeads` query heads (module table).
 *
 * @example
 * ```ts
 * // const code = mixkvqPartialWgsl(geo, 4);
 * ```
 */
export function mixkvqPartialWgsl(geo: MixKvqGeometry, numHeads: number): string {
  const GS = numHeads / geo.numKvHeads;
  const vf = formatFor(geo.valueBits);
  return /* wgsl */ `
const NKV = ${u32(geo.numKvHeads)};
const D = ${u32(geo.headDim)};
const ROW = ${u32(geo.row)};
const R = ${u32(geo.R)};
const KG = ${u32(geo.g)};
const GPC = ${u32(geo.gpc)};
const VG = ${u32(geo.G)};
const VGPH = ${u32(geo.headDim / geo.G)};
const RESV = ${u32(geo.residWords)};
const GS = ${u32(GS)};
const WG = ${u32(MA_THREADS)};
const WPG4 = ${u32(geo.wpg4)};
const WPG2 = ${u32(geo.wpg2)};
const VB = ${u32(geo.valueBits)};
const VCPW = ${u32(vf.codesPerWord)};
const VMASK = ${u32(vf.qmax)};
const VWPG = ${u32(geo.vwpg)};
const SMAX = ${u32(geo.maxBlocks + 1)};
const NH = ${u32(numHeads)};
struct P { a: vec4<u32>, b: vec4<u32> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> resid: array<u32>;
@group(0) @binding(3) var<storage, read> arena: array<u32>;
@group(0) @binding(4) var<storage, read> desc: array<u32>;
@group(0) @binding(5) var<storage, read_write> part: array<f32>;
var<workgroup> qs: array<f32, ${GS * geo.headDim}>;
var<workgroup> sc: array<f32, ${GS * geo.R}>;
var<workgroup> red: array<f32, WG>;
var<workgroup> tmap: array<u32, D>;
fn half_of(w: u32, i: u32) -> f32 { return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u)); }
fn res_at(base: u32, i: u32) -> f32 { return half_of(resid[base + (i >> 1u)], i); }
fn sz_deq(code: u32, szw: u32) -> f32 {
  return f32(code) * bitcast<f32>(szw << 16u) - bitcast<f32>(szw & 0xffff0000u);
}
fn key_at(blk: bool, dsc: vec4<u32>, dsc2: vec4<u32>, j: u32, d: u32, kvh: u32) -> f32 {
  if (!blk) { return res_at(0u, j * ROW + kvh * D + d); }
  let tm = tmap[d];
  let tier = tm & 0xffu;
  let sl = tm >> 8u;
  if (tier == 16u) {
    let i = sl * R + j;
    return half_of(arena[dsc.z + (i >> 1u)], i);
  }
  let grp = sl * GPC + j / KG;
  let e = j % KG;
  if (tier == 4u) {
    let w = arena[dsc.w + grp * WPG4 + e / 8u];
    return sz_deq((w >> ((e % 8u) * 4u)) & 15u, arena[dsc2.x + grp]);
  }
  let w = arena[dsc2.y + grp * WPG2 + e / 16u];
  return sz_deq((w >> ((e % 16u) * 2u)) & 3u, arena[dsc2.z + grp]);
}
fn val_at(blk: bool, vc: u32, vsz: u32, j: u32, d: u32, kvh: u32) -> f32 {
  if (!blk) { return res_at(RESV, j * ROW + kvh * D + d); }
  let grp = (j * NKV + kvh) * VGPH + d / VG;
  let e = d % VG;
  let w = arena[vc + grp * VWPG + e / VCPW];
  return sz_deq((w >> ((e % VCPW) * VB)) & VMASK, arena[vsz + grp]);
}
@compute @workgroup_size(${MA_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let s = wid.x;
  let kvh = wid.y;
  let nB = p.a.x;
  if (s > nB) { return; }
  let blk = s < nB;
  let n = select(p.a.y, R, blk);
  let db = select(0u, s * 12u, blk);
  let dsc = vec4<u32>(desc[db], desc[db + 1u], desc[db + 2u], desc[db + 3u]);
  let dsc2 = vec4<u32>(desc[db + 4u], desc[db + 5u], desc[db + 6u], 0u);
  let vc = desc[db + 7u];
  let vsz = desc[db + 8u];
  for (var i = lid; i < GS * D; i += WG) { qs[i] = qkv[p.a.z + kvh * GS * D + i]; }
  if (blk) {
    for (var d = lid; d < D; d += WG) {
      let c = kvh * D + d;
      let tier = (arena[dsc.x + c / 4u] >> ((c % 4u) * 8u)) & 0xffu;
      let sl = (arena[dsc.y + c / 2u] >> ((c % 2u) * 16u)) & 0xffffu;
      tmap[d] = tier | (sl << 8u);
    }
  }
  workgroupBarrier();
  let scale = bitcast<f32>(p.b.x);
  for (var j = lid; j < n; j += WG) {
    var acc: array<f32, GS>;
    for (var h = 0u; h < GS; h++) { acc[h] = 0.0; } // explicit: a loop-local var is not re-zeroed on every adapter
    for (var d = 0u; d < D; d++) {
      let k = key_at(blk, dsc, dsc2, j, d, kvh);
      for (var h = 0u; h < GS; h++) { acc[h] += qs[h * D + d] * k; }
    }
    for (var h = 0u; h < GS; h++) { sc[h * R + j] = acc[h] * scale; }
  }
  workgroupBarrier();
  let ST = NH * SMAX * D;
  for (var h = 0u; h < GS; h++) {
    var m = -3.0e38;
    for (var j = lid; j < n; j += WG) { m = max(m, sc[h * R + j]); }
    red[lid] = m;
    workgroupBarrier();
    ${tree("max")}
    let mh = red[0];
    workgroupBarrier();
    var l = 0.0;
    for (var j = lid; j < n; j += WG) {
      let e = exp(sc[h * R + j] - mh);
      sc[h * R + j] = e;
      l += e;
    }
    red[lid] = l;
    workgroupBarrier();
    ${tree("+")}
    if (lid == 0u) {
      let o = ST + ((kvh * GS + h) * SMAX + s) * 2u;
      part[o] = mh;
      part[o + 1u] = red[0];
    }
    workgroupBarrier();
  }
  for (var d = lid; d < D; d += WG) {
    var acc: array<f32, GS>;
    for (var h = 0u; h < GS; h++) { acc[h] = 0.0; } // explicit: a loop-local var is not re-zeroed on every adapter
    for (var j = 0u; j < n; j++) {
      let v = val_at(blk, vc, vsz, j, d, kvh);
      for (var h = 0u; h < GS; h++) { acc[h] += sc[h * R + j] * v; }
    }
    for (var h = 0u; h < GS; h++) { part[((kvh * GS + h) * SMAX + s) * D + d] = acc[h]; }
  }
}
`;
}

/**
 * The reduce kernel (module table).
 *
 * @example
 * ```ts
 * // const code = mixkvqReduceWgsl(geo, 4);
 * ```
 */
export function mixkvqReduceWgsl(geo: MixKvqGeometry, numHeads: number): string {
  const GS = numHeads / geo.numKvHeads;
  return /* wgsl */ `
const D = ${u32(geo.headDim)};
const GS = ${u32(GS)};
const WG = ${u32(MA_THREADS)};
const SMAX = ${u32(geo.maxBlocks + 1)};
const NH = ${u32(numHeads)};
struct P { a: vec4<u32>, b: vec4<u32> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> part: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
var<workgroup> red: array<f32, WG>;
@compute @workgroup_size(${MA_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let kvh = h / GS;
  var s = 0.0;
  for (var d = lid; d < D; d += WG) { s += qkv[p.b.x + h * D + d] * qkv[p.a.y + kvh * D + d]; }
  red[lid] = s;
  workgroupBarrier();
  ${tree("+")}
  let snew = red[0] * bitcast<f32>(p.b.y);
  let ST = NH * SMAX * D;
  let nS = p.a.x;
  var M = snew;
  for (var i = 0u; i < nS; i++) { M = max(M, part[ST + (h * SMAX + i) * 2u]); }
  let en = exp(snew - M);
  var L = en;
  for (var i = 0u; i < nS; i++) {
    let o = ST + (h * SMAX + i) * 2u;
    L += part[o + 1u] * exp(part[o] - M);
  }
  for (var d = lid; d < D; d += WG) {
    var o = en * qkv[p.a.z + kvh * D + d];
    for (var i = 0u; i < nS; i++) {
      o += part[(h * SMAX + i) * D + d] * exp(part[ST + (h * SMAX + i) * 2u] - M);
    }
    out[p.a.w + h * D + d] = o / L;
  }
}
`;
}
