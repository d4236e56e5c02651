/**
 * WGSL of the block attention's reduce kernels: the fused reduce's merge over the blocks' splits and the new
 * token, dims spread over a third grid axis; with `rsub`, every load first and subgroup folds (the kernels'
 * module doc: block_attention.wgsl.ts; the schedule: block_schedule.ts).
 *
 * @example
 * ```ts
 * import { blockReduceWgsl } from "./block_reduce.wgsl.ts";
 * const code = blockReduceWgsl({ numHeads: 32, numKvHeads: 8, headDim: 128 });
 * ```
 * @module
 */
import { type BlockAttentionTuning, DEFAULT_BLOCK_TUNING } from "./block_schedule.ts";
import { QuantConfigError } from "../../src/errors.ts";
import { u32 } from "./wgsl_common.ts";
import { reduceDecls, reduceKernelHead } from "./attention.wgsl.ts";

/**
 * Dims per workgroup of the block reduce kernel: the tuning's `rdims`, else {@link DEFAULT_BLOCK_TUNING}`.rdims`
 * (32), or 16 where head_dim is not a multiple of 32. A given `rdims` must divide head_dim.
 *
 * @example
 * ```ts
 * blockReduceDims({ headDim: 128 }); // 32
 * blockReduceDims({ headDim: 48 }); // 16
 * blockReduceDims({ headDim: 128, tuning: { rdims: 64 } }); // 64
 * ```
 */
export function blockReduceDims(s: { headDim: number; tuning?: BlockAttentionTuning }): number {
  const given = s.tuning?.rdims;
  const dc = given ?? DEFAULT_BLOCK_TUNING.rdims;
  if (![16, 32, 64, 128].includes(dc)) {
    throw new QuantConfigError(`block reduce: rdims ${dc} must be 16, 32, 64 or 128`);
  }
  if (s.headDim % dc !== 0) {
    if (given === undefined && s.headDim % 16 === 0) return 16;
    throw new QuantConfigError(`block reduce: head_dim ${s.headDim} is not a multiple of rdims ${dc}`);
  }
  return dc;
}

/**
 * The end of both block reduce kernels: after each invocation's sum went to `red[lid]`, the SL split lanes of
 * dim d are added, the new token's share (`wn`·v_new) joins, and out = a / L (0 where L is 0).
 */
const REDUCE_LANES = `  workgroupBarrier();
  if (sl == 0u) {
    var a = 0.0;
    for (var l = 0u; l < SL; l++) { a += red[l * DC + dl]; }
    if (hasNew) { a += wn * qkv[p.nw.y + b * p.io.y + kvh * D + d]; }
    out[(b * NH + h) * D + d] = select(a / L, 0.0, L == 0.0);
  }
}`;

/**
 * Invocations of a block reduce workgroup (128/rdims split lanes per dim), splits per weight block, and (`rsub`)
 * partials each invocation loads before the statistics are reduced.
 */
export const BLOCK_REDUCE = { threads: 128, splitBlock: 256, pre: 16 } as const;

/**
 * WGSL of the block attention's reduce kernel: the fused kernel's merge (attention.wgsl.ts
 * `attentionReduceWgsl`: out = (Σ_x e^(m_x−M)·acc_x + e^(s_new−M)·v_new) / (Σ_x e^(m_x−M)·l_x + e^(s_new−M)))
 * with the many splits of the block schedule spread over more invocations: grid (nH, B, D/DC), 128
 * invocations with DC = {@link blockReduceDims} (default 32); invocation (lane, d) sums splits lane,
 * lane + 128/DC, … of dim d with 4 independent partial sums, the 128/DC lanes are added in workgroup memory.
 * Same uniform and bindings as the fused reduce.
 *
 * @example
 * ```ts
 * const code = blockReduceWgsl({ numHeads: 32, numKvHeads: 8, headDim: 128 });
 * ```
 */
export function blockReduceWgsl(
  s: { numHeads: number; numKvHeads: number; headDim: number; tuning?: BlockAttentionTuning },
): string {
  const { threads: RW, splitBlock: RB } = BLOCK_REDUCE;
  const DC = blockReduceDims(s);
  if (s.tuning?.rsub) return blockReduceSubWgsl(s, DC);
  return /* wgsl */ `
const DC = ${u32(DC)};
const SL = ${u32(RW / DC)};
${reduceKernelHead(s, RW, RB)}
  let dl = lid % DC; let sl = lid / DC;
  let d = wid.z * DC + dl;
  let ab = (b * NH + h) * S * D + d;
  var a0 = 0.0; var a1 = 0.0; var a2 = 0.0; var a3 = 0.0;
  for (var xb = 0u; xb < S; xb += RB) {
    workgroupBarrier();
    let n = min(RB, S - xb);
    for (var i = lid; i < n; i += RW) { wsh[i] = exp(part[sb + (xb + i) * 2u] - M); }
    workgroupBarrier();
    let base = ab + xb * D;
    var x = sl;
    for (; x + 3u * SL < n; x += 4u * SL) {
      a0 += wsh[x] * part[base + x * D];
      a1 += wsh[x + SL] * part[base + (x + SL) * D];
      a2 += wsh[x + 2u * SL] * part[base + (x + 2u * SL) * D];
      a3 += wsh[x + 3u * SL] * part[base + (x + 3u * SL) * D];
    }
    for (; x < n; x += SL) { a0 += wsh[x] * part[base + x * D]; }
  }
  workgroupBarrier();
  red[lid] = (a0 + a1) + (a2 + a3);
${REDUCE_LANES}
`;
}

/**
 * The `rsub` reduce (same grid, uniform, bindings and formula as {@link blockReduceWgsl}): all loads first —
 * the new token's products q·k_new, the statistics of splits lid, lid + RW, … and the partials of splits
 * sl + k·SL, k < PRE (scalars pv0 … pv15, so they stay in registers) — then M and Σ q·k_new per subgroup
 * (subgroupMax / subgroupAdd) and over the subgroups (`rg`, one barrier), the split weights e^(m_x − M) of the
 * first RB splits into `wsh` with L per subgroup (`rl`, one barrier), the preloaded partials summed, further
 * splits in blocks of RB weights as the tree kernel does, and the SL split lanes of a dim added in `red` (one
 * barrier).
 */
function blockReduceSubWgsl(
  s: { numHeads: number; numKvHeads: number; headDim: number; tuning?: BlockAttentionTuning },
  DC: number,
): string {
  const { threads: RW, splitBlock: RB, pre: PRE } = BLOCK_REDUCE;
  const SL = RW / DC;
  return /* wgsl */ `
const DC = ${u32(DC)};
const SL = ${u32(SL)};
const PRE = ${u32(PRE)};
${reduceDecls(s, RW, RB)}
// split weights e^(m_x − M) of a block of RB splits [RB]; lane sums [RW]; per subgroup (max, Σ q·k_new) and
// Σ e^(m_x − M)·l_x [RW/4: subgroups of ≥ 4 lanes]
var<workgroup> wsh: array<f32, ${RB}>;
var<workgroup> red: array<f32, ${RW}>;
var<workgroup> rg: array<vec2<f32>, ${RW / 4}>;
var<workgroup> rl: array<f32, ${RW / 4}>;
@compute @workgroup_size(${RW})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32) {
  let h = wid.x; let b = wid.y; let kvh = h / HPK;
  let S = p.io.z;
  let hasNew = p.nw.z != 0u;
  let sb = p.io.w + (b * NH + h) * S * 2u;
  let dl = lid % DC; let sl = lid / DC;
  let d = wid.z * DC + dl;
  let ab = (b * NH + h) * S * D + d;
  // every load first: the new token's products, split lid's statistics, the partials of splits sl + k·SL
  var qk = 0.0;
  if (hasNew) {
    for (var e = lid; e < D; e += RW) {
      qk += qkv[p.io.x + b * p.io.y + h * D + e] * qkv[p.nw.x + b * p.io.y + kvh * D + e];
    }
  }
  var m0 = NEG; var l0 = 0.0;
  if (lid < S) { m0 = part[sb + lid * 2u]; l0 = part[sb + lid * 2u + 1u]; }
${
    [...Array(PRE).keys()].map((k) =>
      `  let pv${k} = select(0.0, part[ab + min(sl + ${u32(k * SL)}, S - 1u) * D], sl + ${u32(k * SL)} < S);`
    ).join("\n")
  }
  var mloc = m0;
  for (var x = lid + RW; x < S; x += RW) { mloc = max(mloc, part[sb + x * 2u]); }
  // M and the new token's score: per subgroup, then over the subgroups
  let ns = (RW + sgs - 1u) / sgs;
  let gm = subgroupMax(mloc);
  let gq = subgroupAdd(qk);
  if (sid == 0u) { rg[lid / sgs] = vec2<f32>(gm, gq); }
  workgroupBarrier();
  var M = rg[0].x; var qs = rg[0].y;
  for (var j = 1u; j < ns; j++) { M = max(M, rg[j].x); qs += rg[j].y; }
  let sn = select(NEG, qs * p.sc.x, hasNew);
  M = max(M, sn);
  // L, and the weights of the first RB splits
  var lloc = 0.0;
  if (lid < S) { let w = exp(m0 - M); lloc = w * l0; wsh[lid] = w; }
  for (var x = lid + RW; x < S; x += RW) {
    let w = exp(part[sb + x * 2u] - M);
    lloc += w * part[sb + x * 2u + 1u];
    if (x < RB) { wsh[x] = w; }
  }
  let gl = subgroupAdd(lloc);
  if (sid == 0u) { rl[lid / sgs] = gl; }
  workgroupBarrier();
  var L = rl[0];
  for (var j = 1u; j < ns; j++) { L += rl[j]; }
  let wn = select(0.0, exp(sn - M), hasNew);
  L += wn;
  var a0 = 0.0; var a1 = 0.0;
${
    [...Array(PRE).keys()].map((k) =>
      `  a${k % 2} += select(0.0, wsh[min(sl + ${u32(k * SL)}, RB - 1u)], sl + ${u32(k * SL)} < S) * pv${k};`
    ).join("\n")
  }
  // splits from PRE·SL on (none at S ≤ PRE·SL): blocks of RB weights, the first one's already in wsh
  for (var xb = 0u; xb < S; xb += RB) {
    let n = min(RB, S - xb);
    if (xb > 0u) {
      workgroupBarrier();
      for (var i = lid; i < n; i += RW) { wsh[i] = exp(part[sb + (xb + i) * 2u] - M); }
      workgroupBarrier();
    }
    var x = select(xb + sl, PRE * SL + sl, xb == 0u);
    for (; x < xb + n; x += SL) { a0 += wsh[x - xb] * part[ab + x * D]; }
  }
  red[lid] = a0 + a1;
${REDUCE_LANES}
`;
}
