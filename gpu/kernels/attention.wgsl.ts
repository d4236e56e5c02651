/**
 * WGSL of causal grouped-query `attention` over the EXACT (f32) cache (mirrors cpu/attention.ts): the new
 * tokens' keys/values are read from the fused q|k|v activation (exact, as on the CPU), the P cached ones from
 * the cache. One workgroup serves one KV head and its G = numHeads/numKvHeads query heads, so each key/value
 * is read once per group. Softmax is the online (flash) form in f32: per 64-token chunk, scores (a thread per
 * token) → chunk max → rescale the running sum/accumulator → accumulate p·v (threads own vec4 columns and a
 * token subset, four independent loads per iteration, subsets summed once at the end); the CPU's two-pass f64
 * softmax agrees to ~1e-7 relative.
 *
 * Kernels:
 * - {@link attentionPrefillWgsl}: grid (step.T, numKvHeads); query t attends to tokens [0, P + t].
 * - {@link attentionDecodePartialWgsl}: one query (step.T = 1); grid (step.nSplits, numKvHeads); split s covers
 *   tokens [s·split, min((s+1)·split, P+1)) (split: a multiple of 16, see `decodeSplit`) and writes
 *   (max, sum, Σ e·v) for each of its heads.
 * - {@link attentionDecodeCombineWgsl}: grid (numHeads); merges the step.nSplits partials of one head: max and
 *   weighted sum tree-reduced over 128 threads, then vec4 columns × split subsets, four loads in flight.
 * - {@link attentionSerialPrefillWgsl} / {@link attentionSerialPartialWgsl}: the same results computed by one
 *   invocation per (query, head) or (split, head) with a per-token online softmax and no workgroup memory or
 *   barriers, for software adapters (gpu/tuning.ts). They write the same outputs and partials;
 *   {@link attentionSerialCombineWgsl} is the barrier-free merge. Grid: ceil(T·nH / 64), resp.
 *   ceil(step.nSplits·nH / 64), resp. (numHeads).
 *
 * Buffers:
 * | name | shape | type |
 * |---|---|---|
 * | qkv | [T, (nH + 2·nKv)·D]: q heads, then k heads, then v heads (post-RoPE q and k) | f32, bound as vec4 |
 * | cacheK, cacheV | [nKv, capacity, D] (head-major; token j of head g at (g·cap + j)·D) | f32, bound as vec4 |
 * | out | [T, nH·D] | f32, bound as vec4 |
 * | partAcc | [nH, maxSplits, D] | f32 (vec4 in pass 1) |
 * | partStats | [nH, maxSplits, 2]: (running max, running sum) | f32 |
 *
 * @example
 * ```ts
 * const shape = { numHeads: 4, numKvHeads: 2, headDim: 128, capacity: 4096, maxSplits: 128 };
 * const code = attentionDecodePartialWgsl(shape);
 * ```
 * @module
 */
import { f32Lit, u32Lit } from "./wgsl_util.ts";
import { STEP_WGSL } from "../step.ts";

/** Baked constants of the attention pipelines. */
export interface AttentionShape {
  numHeads: number;
  numKvHeads: number;
  /** Multiple of 4. */
  headDim: number;
  /** Tokens the cache buffers hold per head. */
  capacity: number;
  /** Rows of the decode partial buffers per head. */
  maxSplits: number;
}

/** Threads per workgroup = tokens per chunk. */
export const ATT_WG = 64;
/** Threads of the (GPU) combine kernel. */
export const COMBINE_WG = 128;

/** Token subsets of the value accumulation: S threads share a column (S = max(1, ⌊64 / (D/4)⌋)). */
function subsets(headDim: number): number {
  return Math.max(1, Math.floor(ATT_WG / (headDim / 4)));
}

function consts(s: AttentionShape): string {
  const G = s.numHeads / s.numKvHeads;
  if (!Number.isInteger(G)) {
    throw new RangeError(`attention: ${s.numHeads} heads not divisible by ${s.numKvHeads}`);
  }
  if (s.headDim % 4 !== 0) throw new RangeError(`attention: headDim ${s.headDim} must be a multiple of 4`);
  const D = s.headDim, S = subsets(D);
  return `const D = ${u32Lit(D)};
const D4 = ${u32Lit(D / 4)};
const G = ${u32Lit(G)};
const NH = ${u32Lit(s.numHeads)};
const QKV4 = ${u32Lit(((s.numHeads + 2 * s.numKvHeads) * D) / 4)};
const KOFF4 = ${u32Lit((s.numHeads * D) / 4)};
const VOFF4 = ${u32Lit(((s.numHeads + s.numKvHeads) * D) / 4)};
const CAP = ${u32Lit(s.capacity)};
const MAXS = ${u32Lit(s.maxSplits)};
const SCALE = ${f32Lit(1 / Math.sqrt(D))};
const WG = ${u32Lit(ATT_WG)};
const S = ${u32Lit(S)};
const CPT = ${u32Lit(Math.ceil(((D / 4) * S) / ATT_WG))};
const NEG = -3.4028234663852886e38f;
`;
}

/** Bindings 0-2 and the K/V accessors: token j < P from the cache, else row j − P of the new tokens. */
const IO = `@group(0) @binding(0) var<storage, read> qkv: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> cacheK: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> cacheV: array<vec4<f32>>;

fn kAt(j: u32, P: u32, kvh: u32, d4: u32) -> vec4<f32> {
  if (j < P) { return cacheK[(kvh * CAP + j) * D4 + d4]; }
  return qkv[(j - P) * QKV4 + KOFF4 + kvh * D4 + d4];
}

fn vAt(j: u32, P: u32, kvh: u32, d4: u32) -> vec4<f32> {
  if (j < P) { return cacheV[(kvh * CAP + j) * D4 + d4]; }
  return qkv[(j - P) * QKV4 + VOFF4 + kvh * D4 + d4];
}
`;

/**
 * The shared online-softmax body: declares workgroup memory and `attend(t, kvh, j0, j1, li)` for query row t
 * over tokens [j0, j1) (j1 > j0). Scores: one thread per token of a 64-token chunk. Values: thread work item
 * e = li + 64·k accumulates column e % (D/4) (a vec4) over the chunk's tokens ≡ e / (D/4) mod S, four tokens
 * per iteration (independent loads in flight); `attend` ends by leaving the per-subset sums in `red`, which
 * {@link reduced} adds up. Leaves the running max `m` and sum `l` per head.
 */
function body(s: AttentionShape): string {
  const G = s.numHeads / s.numKvHeads, D4 = s.headDim / 4, S = subsets(s.headDim);
  const CPT = Math.ceil((D4 * S) / ATT_WG);
  return `var<workgroup> qs: array<vec4<f32>, ${G * D4}>;  // [G, D/4] queries of the group
var<workgroup> ps: array<f32, ${G * ATT_WG}>;        // [G, WG] scores, then probabilities
var<workgroup> red: array<vec4<f32>, ${S * G * D4}>; // [S, G, D/4] per-subset value sums
var<private> m: array<f32, ${G}>;
var<private> l: array<f32, ${G}>;
var<private> acc: array<vec4<f32>, ${G * CPT}>;     // [G, CPT]

fn attend(t: u32, kvh: u32, j0: u32, j1: u32, li: u32) {
  let P = step.P;
  for (var e = li; e < G * D4; e += WG) { qs[e] = qkv[t * QKV4 + kvh * G * D4 + e]; }
  for (var g = 0u; g < G; g++) { m[g] = NEG; l[g] = 0.0; }
  for (var i = 0u; i < G * CPT; i++) { acc[i] = vec4<f32>(0.0); }
  workgroupBarrier();
  for (var c0 = j0; c0 < j1; c0 += WG) {
    let j = c0 + li;
    let cnt = min(WG, j1 - c0);
    var sc: array<f32, ${G}>;
    for (var g = 0u; g < G; g++) { sc[g] = 0.0; } // explicit: naga does not re-zero loop-scoped vars
    if (j < j1) {
      for (var d4 = 0u; d4 < D4; d4++) {
        let k = kAt(j, P, kvh, d4);
        for (var g = 0u; g < G; g++) { sc[g] += dot(qs[g * D4 + d4], k); }
      }
      for (var g = 0u; g < G; g++) { sc[g] = sc[g] * SCALE; ps[g * WG + li] = sc[g]; }
    } else {
      for (var g = 0u; g < G; g++) { ps[g * WG + li] = NEG; }
    }
    workgroupBarrier();
    var alpha: array<f32, ${G}>;
    for (var g = 0u; g < G; g++) {
      var mc = NEG;
      for (var i = 0u; i < cnt; i++) { mc = max(mc, ps[g * WG + i]); }
      let nm = max(m[g], mc);
      alpha[g] = exp(m[g] - nm);
      m[g] = nm;
    }
    workgroupBarrier();
    for (var g = 0u; g < G; g++) {
      ps[g * WG + li] = select(0.0, exp(sc[g] - m[g]), j < j1);
    }
    workgroupBarrier();
    for (var g = 0u; g < G; g++) {
      var sum = 0.0;
      for (var i = 0u; i < cnt; i++) { sum += ps[g * WG + i]; }
      l[g] = l[g] * alpha[g] + sum;
      for (var k = 0u; k < CPT; k++) { acc[g * CPT + k] = acc[g * CPT + k] * alpha[g]; }
    }
    for (var k = 0u; k < CPT; k++) {
      let e = li + WG * k;
      if (e < D4 * S) {
        let c = e % D4;
        var i = e / D4;
        for (; i + 3u * S < cnt; i += 4u * S) {
          let v0 = vAt(c0 + i, P, kvh, c);
          let v1 = vAt(c0 + i + S, P, kvh, c);
          let v2 = vAt(c0 + i + 2u * S, P, kvh, c);
          let v3 = vAt(c0 + i + 3u * S, P, kvh, c);
          for (var g = 0u; g < G; g++) {
            let pb = g * WG + i;
            acc[g * CPT + k] += ps[pb] * v0 + ps[pb + S] * v1 + ps[pb + 2u * S] * v2 + ps[pb + 3u * S] * v3;
          }
        }
        for (; i < cnt; i += S) {
          let v = vAt(c0 + i, P, kvh, c);
          for (var g = 0u; g < G; g++) { acc[g * CPT + k] += ps[g * WG + i] * v; }
        }
      }
    }
    workgroupBarrier();
  }
  for (var k = 0u; k < CPT; k++) {
    let e = li + WG * k;
    if (e < D4 * S) {
      for (var g = 0u; g < G; g++) { red[(e / D4 * G + g) * D4 + e % D4] = acc[g * CPT + k]; }
    }
  }
  workgroupBarrier();
}

/** Σ over the S token subsets of head g's value column c (call after attend). */
fn reduced(g: u32, c: u32) -> vec4<f32> {
  var a = vec4<f32>(0.0);
  for (var s = 0u; s < S; s++) { a += red[(s * G + g) * D4 + c]; }
  return a;
}
`;
}

/**
 * Prefill attention: query t of the step attends to [0, P + t].
 * Bindings: 0 qkv, 1 cacheK, 2 cacheV, 3 out [T, nH·D].
 *
 * @example
 * ```ts
 * attentionPrefillWgsl({ numHeads: 32, numKvHeads: 8, headDim: 128, capacity: 8192, maxSplits: 128 });
 * ```
 */
export function attentionPrefillWgsl(s: AttentionShape): string {
  return `${STEP_WGSL}${consts(s)}${IO}
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
${body(s)}
@compute @workgroup_size(${ATT_WG})
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let t = wg.x;
  let kvh = wg.y;
  attend(t, kvh, 0u, step.P + t + 1u, li);
  for (var e = li; e < G * D4; e += WG) {
    let g = e / D4;
    out[t * NH * D4 + kvh * G * D4 + e] = reduced(g, e % D4) / l[g];
  }
}
`;
}

/**
 * Decode attention, pass 1: split s of the single query's tokens [0, P + 1).
 * Bindings: 0 qkv, 1 cacheK, 2 cacheV, 3 partAcc, 4 partStats.
 *
 * @example
 * ```ts
 * attentionDecodePartialWgsl({ numHeads: 4, numKvHeads: 2, headDim: 128, capacity: 4096, maxSplits: 128 });
 * ```
 */
export function attentionDecodePartialWgsl(s: AttentionShape): string {
  return `${STEP_WGSL}${consts(s)}${IO}
@group(0) @binding(3) var<storage, read_write> partAcc: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> partStats: array<f32>;
${body(s)}
@compute @workgroup_size(${ATT_WG})
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let sp = wg.x;
  let kvh = wg.y;
  let n = step.P + step.T;
  let j0 = sp * step.split;
  let j1 = min(n, j0 + step.split);
  attend(step.T - 1u, kvh, j0, j1, li);
  if (li < G) {
    let row = (kvh * G + li) * MAXS + sp;
    partStats[2u * row] = m[li];
    partStats[2u * row + 1u] = l[li];
  }
  for (var e = li; e < G * D4; e += WG) {
    let g = e / D4;
    partAcc[((kvh * G + g) * MAXS + sp) * D4 + e % D4] = reduced(g, e % D4);
  }
}
`;
}

/**
 * Decode attention, pass 2: out[h] = Σ_s e^(m_s − M)·acc_s / Σ_s e^(m_s − M)·l_s over step.nSplits splits.
 * Bindings: 0 partAcc, 1 partStats, 2 out [1, nH·D].
 *
 * @example
 * ```ts
 * attentionDecodeCombineWgsl({ numHeads: 4, numKvHeads: 2, headDim: 128, capacity: 4096, maxSplits: 128 });
 * ```
 */
export function attentionDecodeCombineWgsl(s: AttentionShape): string {
  const D4 = s.headDim / 4, S2 = Math.max(1, Math.floor(COMBINE_WG / D4));
  return `${STEP_WGSL}${consts(s)}
@group(0) @binding(0) var<storage, read> partAcc: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> partStats: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
const CWG = ${u32Lit(COMBINE_WG)};
const S2 = ${u32Lit(S2)};
const CPT2 = ${u32Lit(Math.ceil((D4 * S2) / COMBINE_WG))};
var<workgroup> w: array<f32, ${s.maxSplits}>;  // e^(m_s − M) per split
var<workgroup> red: array<f32, ${COMBINE_WG}>;
var<workgroup> accs: array<vec4<f32>, ${S2 * D4}>; // [S2, D/4] per-subset sums

@compute @workgroup_size(${COMBINE_WG})
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let h = wg.x;
  let ns = step.nSplits;
  var mx = NEG;
  for (var sp = li; sp < ns; sp += CWG) { mx = max(mx, partStats[2u * (h * MAXS + sp)]); }
  red[li] = mx;
  workgroupBarrier();
  for (var k = CWG / 2u; k > 0u; k = k / 2u) {
    if (li < k) { red[li] = max(red[li], red[li + k]); }
    workgroupBarrier();
  }
  let big = red[0];
  workgroupBarrier();
  var tot = 0.0;
  for (var sp = li; sp < ns; sp += CWG) {
    let r = h * MAXS + sp;
    let e = exp(partStats[2u * r] - big);
    w[sp] = e;
    tot += partStats[2u * r + 1u] * e;
  }
  red[li] = tot;
  workgroupBarrier();
  for (var k = CWG / 2u; k > 0u; k = k / 2u) {
    if (li < k) { red[li] = red[li] + red[li + k]; }
    workgroupBarrier();
  }
  let total = red[0];
  for (var k = 0u; k < CPT2; k++) {
    let e = li + CWG * k;
    if (e < D4 * S2) {
      let c = e % D4;
      var sp = e / D4;
      var a = vec4<f32>(0.0);
      for (; sp + 3u * S2 < ns; sp += 4u * S2) {
        let b = h * MAXS + sp;
        let v0 = partAcc[b * D4 + c];
        let v1 = partAcc[(b + S2) * D4 + c];
        let v2 = partAcc[(b + 2u * S2) * D4 + c];
        let v3 = partAcc[(b + 3u * S2) * D4 + c];
        a += w[sp] * v0 + w[sp + S2] * v1 + w[sp + 2u * S2] * v2 + w[sp + 3u * S2] * v3;
      }
      for (; sp < ns; sp += S2) { a += w[sp] * partAcc[(h * MAXS + sp) * D4 + c]; }
      accs[(e / D4) * D4 + c] = a;
    }
  }
  workgroupBarrier();
  for (var c = li; c < D4; c += CWG) {
    var a = vec4<f32>(0.0);
    for (var sub = 0u; sub < S2; sub++) { a += accs[sub * D4 + c]; }
    out[h * D4 + c] = a / total;
  }
}
`;
}

/**
 * Decode attention, pass 2 for software adapters: the same merge by one barrier-free loop per channel.
 * Bindings: 0 partAcc, 1 partStats, 2 out [1, nH·D].
 *
 * @example
 * ```ts
 * attentionSerialCombineWgsl({ numHeads: 4, numKvHeads: 2, headDim: 128, capacity: 4096, maxSplits: 128 });
 * ```
 */
export function attentionSerialCombineWgsl(s: AttentionShape): string {
  return `${STEP_WGSL}${consts(s)}
@group(0) @binding(0) var<storage, read> partAcc: array<f32>;
@group(0) @binding(1) var<storage, read> partStats: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${ATT_WG})
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let h = wg.x;
  let ns = step.nSplits;
  var mx = NEG;
  for (var sp = 0u; sp < ns; sp++) { mx = max(mx, partStats[2u * (h * MAXS + sp)]); }
  var total = 0.0;
  for (var sp = 0u; sp < ns; sp++) {
    let r = h * MAXS + sp;
    total += partStats[2u * r + 1u] * exp(partStats[2u * r] - mx);
  }
  for (var d = li; d < D; d += WG) {
    var a = 0.0;
    for (var sp = 0u; sp < ns; sp++) {
      let r = h * MAXS + sp;
      a += partAcc[r * D + d] * exp(partStats[2u * r] - mx);
    }
    out[h * D + d] = a / total;
  }
}
`;
}

/** One invocation's online softmax over tokens [j0, j1) for query row t, head h (no barriers). */
function serialBody(s: AttentionShape): string {
  return `var<private> acc: array<vec4<f32>, ${s.headDim / 4}>;

// Returns (max, sum); acc holds Σ e^(s_j - max)·v_j.
fn attendSerial(t: u32, h: u32, j0: u32, j1: u32) -> vec2<f32> {
  let P = step.P;
  let kvh = h / G;
  let qb = t * QKV4 + h * D4;
  var m = NEG;
  var l = 0.0;
  for (var d4 = 0u; d4 < D4; d4++) { acc[d4] = vec4<f32>(0.0); }
  for (var j = j0; j < j1; j++) {
    // One branch per token (not per vec4): keeps the shader small for software compilers.
    let cached = j < P;
    let kb = select((j - P) * QKV4 + KOFF4 + kvh * D4, (kvh * CAP + j) * D4, cached);
    let vb = select((j - P) * QKV4 + VOFF4 + kvh * D4, (kvh * CAP + j) * D4, cached);
    var sc = 0.0;
    if (cached) {
      for (var d4 = 0u; d4 < D4; d4++) { sc += dot(qkv[qb + d4], cacheK[kb + d4]); }
    } else {
      for (var d4 = 0u; d4 < D4; d4++) { sc += dot(qkv[qb + d4], qkv[kb + d4]); }
    }
    sc = sc * SCALE;
    if (sc > m) {
      let alpha = exp(m - sc);
      l = l * alpha;
      for (var d4 = 0u; d4 < D4; d4++) { acc[d4] = acc[d4] * alpha; }
      m = sc;
    }
    let p = exp(sc - m);
    l += p;
    if (cached) {
      for (var d4 = 0u; d4 < D4; d4++) { acc[d4] += p * cacheV[vb + d4]; }
    } else {
      for (var d4 = 0u; d4 < D4; d4++) { acc[d4] += p * qkv[vb + d4]; }
    }
  }
  return vec2<f32>(m, l);
}
`;
}

/**
 * Serial prefill attention (software adapters): invocation (t, h) = (idx / nH, idx % nH).
 * Bindings: 0 qkv, 1 cacheK, 2 cacheV, 3 out [T, nH·D].
 *
 * @example
 * ```ts
 * attentionSerialPrefillWgsl({ numHeads: 4, numKvHeads: 2, headDim: 128, capacity: 4096, maxSplits: 128 });
 * ```
 */
export function attentionSerialPrefillWgsl(s: AttentionShape): string {
  return `${STEP_WGSL}${consts(s)}${IO}
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
${serialBody(s)}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.x / NH;
  let h = gid.x % NH;
  if (t >= step.T) { return; }
  let ml = attendSerial(t, h, 0u, step.P + t + 1u);
  for (var d4 = 0u; d4 < D4; d4++) { out[(t * NH + h) * D4 + d4] = acc[d4] / ml.y; }
}
`;
}

/**
 * Serial decode attention pass 1 (software adapters): invocation (split, h) = (idx / nH, idx % nH).
 * Bindings: 0 qkv, 1 cacheK, 2 cacheV, 3 partAcc, 4 partStats.
 *
 * @example
 * ```ts
 * attentionSerialPartialWgsl({ numHeads: 4, numKvHeads: 2, headDim: 128, capacity: 4096, maxSplits: 128 });
 * ```
 */
export function attentionSerialPartialWgsl(s: AttentionShape): string {
  return `${STEP_WGSL}${consts(s)}${IO}
@group(0) @binding(3) var<storage, read_write> partAcc: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> partStats: array<f32>;
${serialBody(s)}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let sp = gid.x / NH;
  let h = gid.x % NH;
  if (sp >= step.nSplits) { return; }
  let n = step.P + step.T;
  let j0 = sp * step.split;
  let ml = attendSerial(step.T - 1u, h, j0, min(n, j0 + step.split));
  let row = h * MAXS + sp;
  partStats[2u * row] = ml.x;
  partStats[2u * row + 1u] = ml.y;
  for (var d4 = 0u; d4 < D4; d4++) { partAcc[row * D4 + d4] = acc[d4]; }
}
`;
}
