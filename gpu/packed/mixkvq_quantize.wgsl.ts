/**
 * WGSL of the MixKVQ quantizing steps (layout: mixkvq_layout.ts), one generator per kernel. Each mirrors
 * the CPU `MixKvqCache` (src/kv/mixkvq.ts) step for step; the quantizer arithmetic is `QUANT_WGSL`
 * (wgsl_common.ts, docs/numerics.md Appendix A), so codes, scales and zeros are byte-identical to
 * `quantizeGroup` on any IEEE f32 device.
 *
 * | kernel | CPU step | grid | bindings |
 * | --- | --- | --- | --- |
 * | {@link mixkvqResidualWgsl} | `append`: `resK/resV[dst] = f32ToBf16RNE(k/v[src])` + `checkAppend`'s finite test | one invocation per (tensor, token, word of 2 channels) | 0 uniform, 1 `x` f32 read, 2 `resid` u32 rw, 3 `status` atomic u32 |
 * | {@link mixkvqKeyStatsWgsl} | `normalizedSalience`'s per-channel min / max over the block's bf16 keys | one invocation per channel | 0 uniform, 1 `resid` read, 2 `stats` [2, row] f32 bits (min row, max row), by integer min/max on order-preserving bit patterns |
 * | {@link mixkvqKeyQuantWgsl} | `#flush` keys: tier 16 copy (channel-major), tier 4/2 `quantizeGroup` over g consecutive tokens | one 64-wide workgroup per (channel, key group) | 0 uniform, 1 `resid` read, 2 `arena` rw |
 * | {@link mixkvqValueQuantWgsl} | `#flush` values: `quantizeTokens` (per token, groups of G channels) | one 64-wide workgroup per (token, head, value group) | 0 uniform, 1 `resid` read, 2 `arena` rw |
 *
 * Status word: 0, or 0xffffffff − e for the FIRST offending element e = (tensor·t + token)·row + channel of
 * the append call (tensor 0 = K, 1 = V; atomicMax keeps the smallest e), for NaN / ±Inf / |x| ≥ 2^64
 * (exponent field ≥ 191; no `x != x` test).
 *
 * Why device-independent: f32 → bf16 RNE, min / max, bf16 → f32, and code packing are integer or exact
 * operations; the quantizer steps are those of docs/numerics.md §8 (the workgroup min/max tree is exact and
 * order-free; every invocation derives z, r, S from the same reduced values).
 *
 * @example
 * ```ts
 * import { mixkvqGeometry } from "./mixkvq_layout.ts";
 * import { mixkvqKeyQuantWgsl } from "./mixkvq_quantize.wgsl.ts";
 * const geo = mixkvqGeometry({ numKvHeads: 2, headDim: 128, residual: 128, keyGroup: 32, valueBits: 2, maxLen: 512 });
 * mixkvqKeyQuantWgsl(geo).includes("fn main"); // true
 * ```
 * @module
 */
import type { MixKvqGeometry } from "./mixkvq_layout.ts";
import {
  GROUP_MINMAX_DECL_WGSL,
  GROUP_MINMAX_WGSL,
  GROUP_REDUCE_THREADS,
  QUANT_WGSL,
  u32,
} from "./wgsl_common.ts";

/** Invocations per workgroup of every MixKVQ quantizing kernel. */
export const MQ_THREADS = GROUP_REDUCE_THREADS;

function constants(geo: MixKvqGeometry): string {
  return `
const NKV = ${u32(geo.numKvHeads)};
const D = ${u32(geo.headDim)};
const ROW = ${u32(geo.row)};
const R = ${u32(geo.R)};
const KG = ${u32(geo.g)};
const GPC = ${u32(geo.gpc)};
const VG = ${u32(geo.G)};
const VGPR = ${u32(geo.row / geo.G)};
const RESV = ${u32(geo.residWords)};
const QT = ${u32(MQ_THREADS)};
// bf16 element i (u16 index) of the residual tensor starting at word 'base', as f32 bits / as f32
fn res_bits(base: u32, i: u32) -> u32 {
  let w = resid[base + (i >> 1u)];
  return select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u);
}
fn res_at(base: u32, i: u32) -> f32 { return bitcast<f32>(res_bits(base, i)); }
`;
}

/**
 * The quantizer of one group of `n` (compile-time) values read by `load(i)` (f32, i < n) with 64
 * invocations: step 0 flush, exact min/max tree, z, r, S, codes into `cs`, then packing by invocations
 * < wpg into `arena[codesAt + k]` and `arena[szAt] = sb | zb << 16`. `bits` is a runtime u32 (`qbits`).
 */
function groupQuantBody(n: number): string {
  const NE = Math.ceil(n / MQ_THREADS);
  const loads: string[] = [], codes: string[] = [];
  for (let e = 0; e < NE; e++) {
    loads.push(`
  var v${e} = 0.0;
  let i${e} = lid + ${u32(e * MQ_THREADS)};
  if (i${e} < GN) {
    let xv = load(i${e});
    if (((bitcast<u32>(xv) >> 23u) & 0xffu) >= 63u) { v${e} = xv; }
    mn = min(mn, v${e}); mx = max(mx, v${e});
  }`);
    codes.push(`
  if (i${e} < GN) {
    var q = 0u;
    if (sb != 0u) { q = gpu_code(v${e} + z, S, qf, qmax); }
    cs[i${e}] = q;
  }`);
  }
  return `
  var mn = 3.0e38;
  var mx = -3.0e38;
${loads.join("")}
${GROUP_MINMAX_WGSL}
  let qmax = (1u << qbits) - 1u;
  let qf = f32(qmax);
  let zb = bf16_up_bits(bitcast<u32>(mn) ^ 0x80000000u);
  let z = bf16(zb);
  let sb = scale_bits(mx + z, qf);
  let S = bf16(sb);
${codes.join("")}
  workgroupBarrier();
  let cpw = 32u / qbits;
  let wpg = (GN + cpw - 1u) / cpw;
  if (lid < wpg) {
    var w = 0u;
    for (var k = 0u; k < cpw; k++) {
      let e = lid * cpw + k;
      if (e < GN) { w = w | (cs[e] << (k * qbits)); }
    }
    arena[codesAt + lid] = w;
  }
  if (lid == 0u) { arena[szAt] = sb | (zb << 16u); }`;
}

function groupWorkspace(n: number): string {
  return `
const GN = ${u32(n)};
${GROUP_MINMAX_DECL_WGSL}
var<workgroup> cs: array<u32, GN>;
`;
}

/**
 * Residual append. Uniform `P { src: (kBase, vBase, tokStride, m), dst: (firstRow, done, t, gridX) }`:
 * tokens [done, done + m) of the call (element (i, c) of K at `kBase + i·tokStride + c`) go to residual
 * rows [firstRow, firstRow + m).
 *
 * @example
 * ```ts
 * // const code = mixkvqResidualWgsl(geo);
 * ```
 */
export function mixkvqResidualWgsl(geo: MixKvqGeometry): string {
  return /* wgsl */ `
${constants(geo)}
struct P { src: vec4<u32>, dst: vec4<u32> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> resid: array<u32>;
@group(0) @binding(3) var<storage, read_write> status: array<atomic<u32>>;
${QUANT_WGSL}
fn bf16_of(tensor: u32, i: u32, c: u32) -> u32 {
  let xv = x[select(p.src.x, p.src.y, tensor == 1u) + (p.dst.y + i) * p.src.z + c];
  let u = bitcast<u32>(xv);
  if (((u >> 23u) & 0xffu) >= 191u) {
    atomicMax(&status[0], 0xffffffffu - ((tensor * p.dst.z + p.dst.y + i) * ROW + c));
  }
  return bf16_rne_bits(u);
}
@compute @workgroup_size(${MQ_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let id = (wid.y * p.dst.w + wid.x) * QT + lid;
  let perT = p.src.w * (ROW / 2u);
  if (id >= 2u * perT) { return; }
  let tensor = id / perT;
  let r = id % perT;
  let i = r / (ROW / 2u);
  let c = (r % (ROW / 2u)) * 2u;
  let w = bf16_of(tensor, i, c) | (bf16_of(tensor, i, c + 1u) << 16u);
  resid[tensor * RESV + ((p.dst.x + i) * ROW + c) / 2u] = w;
}
`;
}

/**
 * Per-channel min / max of the R bf16 keys of the full residual: `stats[c]` = min, `stats[ROW + c]` = max
 * (f32 bit patterns). Integer min/max on an order-preserving map of the bits, so subnormal keys are kept
 * exactly (the CPU compares them in f64) even on a GPU that flushes them; only the sign of a zero extreme
 * may differ, which cannot change a tier (S = max − min is the same).
 * Uniform unused but bound for a uniform layout (`P { n: vec4<u32> }`, n.x = channels).
 *
 * @example
 * ```ts
 * // const code = mixkvqKeyStatsWgsl(geo);
 * ```
 */
export function mixkvqKeyStatsWgsl(geo: MixKvqGeometry): string {
  return /* wgsl */ `
struct P { n: vec4<u32> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> resid: array<u32>;
@group(0) @binding(2) var<storage, read_write> stats: array<u32>;
${constants(geo)}
// Total order of f32 bit patterns as u32 (integer min/max: exact even where a GPU flushes subnormals).
fn ord(u: u32) -> u32 { return select(u | 0x80000000u, ~u, (u & 0x80000000u) != 0u); }
fn unord(o: u32) -> u32 { return select(~o, o & 0x7fffffffu, (o & 0x80000000u) != 0u); }
@compute @workgroup_size(${MQ_THREADS})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= p.n.x) { return; }
  var mn = ord(res_bits(0u, c));
  var mx = mn;
  for (var j = 1u; j < R; j++) {
    let o = ord(res_bits(0u, j * ROW + c));
    mn = min(mn, o); mx = max(mx, o);
  }
  stats[c] = unord(mn);
  stats[ROW + c] = unord(mx);
}
`;
}

/**
 * Key quantization of a full residual into a block. Uniform `P { a: (bits, slot, bf16, q4Codes),
 * b: (q4Sz, q2Codes, q2Sz, gridX) }` (arena word offsets of the block, mixkvq_layout.ts). Workgroup
 * (c, gi): tier from `bits`, row s from `slot`; tier 16 → workgroup gi = 0 copies the channel's R bf16
 * values to `bf16` row s; tier 4/2 → `quantizeGroup` of tokens [gi·g, (gi+1)·g) into group s·gpc + gi.
 *
 * @example
 * ```ts
 * // const code = mixkvqKeyQuantWgsl(geo);
 * ```
 */
export function mixkvqKeyQuantWgsl(geo: MixKvqGeometry): string {
  return /* wgsl */ `
struct P { a: vec4<u32>, b: vec4<u32> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> resid: array<u32>;
@group(0) @binding(2) var<storage, read_write> arena: array<u32>;
${constants(geo)}
${groupWorkspace(geo.g)}
${QUANT_WGSL}
var<private> cbase: u32;
var<workgroup> wtier: u32;
var<workgroup> wslot: u32;
fn load(i: u32) -> f32 { return res_at(0u, cbase + i * ROW); }
@compute @workgroup_size(${MQ_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let id = wid.y * p.b.w + wid.x;
  if (id >= ROW * GPC) { return; }
  let c = id / GPC;
  let gi = id % GPC;
  // tier and row through workgroupUniformLoad: the branch below precedes barriers, so it must be uniform
  if (lid == 0u) {
    wtier = (arena[p.a.x + c / 4u] >> ((c % 4u) * 8u)) & 0xffu;
    wslot = (arena[p.a.y + c / 2u] >> ((c % 2u) * 16u)) & 0xffffu;
  }
  let qbits = workgroupUniformLoad(&wtier);
  let s = workgroupUniformLoad(&wslot);
  if (qbits == 16u) {
    if (gi != 0u) { return; }
    for (var w = lid; w < R / 2u; w += QT) {
      let lo = res_bits(0u, (2u * w) * ROW + c) >> 16u;
      let hi = res_bits(0u, (2u * w + 1u) * ROW + c);
      arena[p.a.z + s * (R / 2u) + w] = lo | hi;
    }
    return;
  }
  cbase = gi * KG * ROW + c;
  let grp = s * GPC + gi;
  let codesAt = select(p.b.y, p.a.w, qbits == 4u) + grp * select(${u32(geo.wpg2)}, ${
    u32(geo.wpg4)
  }, qbits == 4u);
  let szAt = select(p.b.z, p.b.x, qbits == 4u) + grp;
${groupQuantBody(geo.g)}
}
`;
}

/**
 * Value quantization of a full residual into a block: workgroup gid → token j, head h, group jg;
 * `quantizeGroup` of channels [jg·G, (jg+1)·G) of token j at valueBits into group gid. Uniform
 * `P { a: (vCodes, vSz, gridX, 0) }`.
 *
 * @example
 * ```ts
 * // const code = mixkvqValueQuantWgsl(geo);
 * ```
 */
export function mixkvqValueQuantWgsl(geo: MixKvqGeometry): string {
  return /* wgsl */ `
struct P { a: vec4<u32> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> resid: array<u32>;
@group(0) @binding(2) var<storage, read_write> arena: array<u32>;
${constants(geo)}
${groupWorkspace(geo.G)}
${QUANT_WGSL}
var<private> vbase: u32;
fn load(i: u32) -> f32 { return res_at(RESV, vbase + i); }
@compute @workgroup_size(${MQ_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let id = wid.y * p.a.z + wid.x;
  if (id >= R * VGPR) { return; }
  vbase = id * VG; // groups of one token are consecutive along the row: (j·nKv + h)·(D/G) + jg
  let qbits = ${u32(geo.valueBits)};
  let codesAt = p.a.x + id * ${u32(geo.vwpg)};
  let szAt = p.a.y + id;
${groupQuantBody(geo.G)}
}
`;
}
