/**
 * WGSL of `matmul` (mirrors cpu/ops.ts `matmul`): out[t, j] = Σ_k x[t, k]·w[j, k] (+ bias[j]) (+ out[t, j]).
 *
 * Two paths, same bindings:
 * - {@link matvecWgsl} (decode, one row of x): 256 threads = 8 rows × 32 lanes; each lane reads 8 weights
 *   (one `vec4<u32>` of bf16 pairs, or two `vec4<f32>`) per iteration, lanes are reduced in workgroup memory.
 *   Grid: ceil(N / 8) workgroups (2-D when above the per-dimension limit).
 * - {@link matmulTiledWgsl} (prefill, T = step.T rows): 64×64 output tiles, K in steps of 16, 16×16 threads
 *   each computing 4×4 outputs. Grid: (ceil(N / 64), ceil(T / 64)).
 *
 * Bindings (group 0):
 * | binding | buffer | shape | type |
 * |---|---|---|---|
 * | 0 | x | [rows, K] | f32 (read) |
 * | 1 | w | [N, K] | bf16 pairs in u32 (K/2 words per row) or f32 (read) |
 * | 2 | out | [rows, N] | f32 (read_write: `residual` adds into it) |
 * | 3 | bias | [N] | f32 (read), only when `bias` |
 * Accumulation is f32 (the CPU accumulates in f64): relative error grows like sqrt(K)·2⁻²⁴.
 *
 * @example
 * ```ts
 * const code = matvecWgsl({ K: 384, N: 1024, weights: "bf16", bias: false, residual: false });
 * ```
 * @module
 */
import { BF16_WGSL, u32Lit, type WeightFormat } from "./wgsl_util.ts";
import { STEP_WGSL } from "../step.ts";

/** Shape and epilogue of one matmul pipeline. */
export interface MatmulVariant {
  /** Input features (multiple of 8). */
  K: number;
  /** Output features. */
  N: number;
  weights: WeightFormat;
  /** Adds bias[j]. */
  bias: boolean;
  /** Adds into out (out += x·wᵀ), i.e. the residual `add` fused into the epilogue. */
  residual: boolean;
}

/** Rows per workgroup of the matrix-vector path. */
export const MATVEC_ROWS = 8;
/** Lanes per row of the matrix-vector path. */
export const MATVEC_LANES = 32;
/** Output tile (tokens and features) of the tiled path. */
export const TILE = 64;

function bindings(v: MatmulVariant, xType: string, wType: string): string {
  return `@group(0) @binding(0) var<storage, read> x: array<${xType}>;
@group(0) @binding(1) var<storage, read> w: array<${wType}>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${v.bias ? "@group(0) @binding(3) var<storage, read> bias: array<f32>;" : ""}
`;
}

function epilogue(v: MatmulVariant, idx: string, col: string, val: string): string {
  const b = v.bias ? ` + bias[${col}]` : "";
  return v.residual ? `out[${idx}] = out[${idx}] + (${val}${b});` : `out[${idx}] = ${val}${b};`;
}

/**
 * The matrix-vector kernel (x has one row).
 *
 * @example
 * ```ts
 * matvecWgsl({ K: 1024, N: 384, weights: "bf16", bias: false, residual: true });
 * ```
 */
export function matvecWgsl(v: MatmulVariant): string {
  if (v.K % 8 !== 0) throw new RangeError(`matvec: K=${v.K} must be a multiple of 8`);
  const K8 = v.K / 8;
  const load = v.weights === "bf16"
    ? `let p = w[base + i];
      acc += a.x * bf16lo(p.x) + a.y * bf16hi(p.x) + a.z * bf16lo(p.y) + a.w * bf16hi(p.y)
           + b.x * bf16lo(p.z) + b.y * bf16hi(p.z) + b.z * bf16lo(p.w) + b.w * bf16hi(p.w);`
    : `let p = w[2u * (base + i)];
      let q = w[2u * (base + i) + 1u];
      acc += dot(a, p) + dot(b, q);`;
  return `${STEP_WGSL}${BF16_WGSL}
${bindings(v, "vec4<f32>", v.weights === "bf16" ? "vec4<u32>" : "vec4<f32>")}
const K8 = ${u32Lit(K8)};
const N = ${u32Lit(v.N)};
const ROWS = ${u32Lit(MATVEC_ROWS)};
const LANES = ${u32Lit(MATVEC_LANES)};
var<workgroup> red: array<f32, ${MATVEC_ROWS * MATVEC_LANES}>;

@compute @workgroup_size(${MATVEC_ROWS * MATVEC_LANES})
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nw: vec3<u32>) {
  let lane = li % LANES;
  let row = (wg.x + wg.y * nw.x) * ROWS + li / LANES;
  var acc = 0.0;
  if (row < N) {
    let base = row * K8;
    for (var i = lane; i < K8; i += LANES) {
      let a = x[2u * i];
      let b = x[2u * i + 1u];
      ${load}
    }
  }
  red[li] = acc;
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s = s / 2u) {
    if (lane < s) { red[li] = red[li] + red[li + s]; }
    workgroupBarrier();
  }
  if (lane == 0u && row < N) {
    ${epilogue(v, "row", "row", "red[li]")}
  }
}
`;
}

/**
 * The tiled kernel for step.T rows of x.
 *
 * @example
 * ```ts
 * matmulTiledWgsl({ K: 384, N: 2048, weights: "bf16", bias: false, residual: false });
 * ```
 */
export function matmulTiledWgsl(v: MatmulVariant): string {
  if (v.K % 2 !== 0) throw new RangeError(`matmul: K=${v.K} must be even`);
  // Weight tile: 64 features × 16 k. bf16: 64 × 8 words (2 per thread); f32: 1024 floats (4 per thread).
  const loadW = v.weights === "bf16"
    ? `for (var e = 0u; e < 2u; e++) {
      let idx = li + 256u * e;
      let nn = idx / 8u;
      let kp = idx % 8u;
      let n = n0 + nn;
      let k = k0 + 2u * kp;
      var p = 0u;
      if (n < N && k < K) { p = w[n * (K / 2u) + k / 2u]; }
      ws[(2u * kp) * 64u + nn] = bf16lo(p);
      ws[(2u * kp + 1u) * 64u + nn] = bf16hi(p);
    }`
    : `for (var e = 0u; e < 4u; e++) {
      let idx = li + 256u * e;
      let nn = idx / 16u;
      let kk = idx % 16u;
      let n = n0 + nn;
      let k = k0 + kk;
      var p = 0.0;
      if (n < N && k < K) { p = w[n * K + k]; }
      ws[kk * 64u + nn] = p;
    }`;
  return `${STEP_WGSL}${BF16_WGSL}
${bindings(v, "f32", v.weights === "bf16" ? "u32" : "f32")}
const K = ${u32Lit(v.K)};
const N = ${u32Lit(v.N)};
var<workgroup> xs: array<f32, 1024>; // [16 k][64 t]
var<workgroup> ws: array<f32, 1024>; // [16 k][64 n]

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(workgroup_id) wg: vec3<u32>) {
  let T = step.T;
  let n0 = wg.x * 64u;
  let t0 = wg.y * 64u;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < K; k0 += 16u) {
    for (var e = 0u; e < 4u; e++) {
      let idx = li + 256u * e;
      let tt = idx / 16u;
      let kk = idx % 16u;
      let t = t0 + tt;
      let k = k0 + kk;
      var a = 0.0;
      if (t < T && k < K) { a = x[t * K + k]; }
      xs[kk * 64u + tt] = a;
    }
    ${loadW}
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = xs[kk * 64u + lid.y + 16u * i];
        b[i] = ws[kk * 64u + lid.x + 16u * i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i][j] += a[i] * b[j]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let t = t0 + lid.y + 16u * i;
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x + 16u * j;
      if (t < T && n < N) {
        ${epilogue(v, "t * N + n", "n", "acc[i][j]")}
      }
    }
  }
}
`;
}
