/**
 * WGSL of `matmul` (mirrors cpu/ops.ts `matmul`): out[t, j] = Σ_k x[t, k]·w[j, k] (+ bias[j]) (+ out[t, j]).
 *
 * Paths, same bindings (the engine picks by row count and gpu/tuning.ts):
 * - {@link matvecWgsl} (decode and LM head: one row of x). `lanes` threads per output row read 8 weights per
 *   iteration (one `vec4<u32>` of bf16 pairs, or two `vec4<f32>`); with lanes > 1 the lanes are tree-reduced
 *   in workgroup memory. 256 threads per workgroup; grid ceil(N / (256 / lanes)), 2-D above the limit.
 *   `swiglu`: w holds [gate; up] (2·N rows) and out[j] = silu(gate_j·x)·(up_j·x) (the swiglu op fused).
 * - {@link matmulTiledWgsl} (prefill on GPUs, T = step.T rows): 64×64 output tiles through workgroup memory,
 *   K in steps of 16, 16×16 threads each computing 4×4 outputs. Grid (ceil(N / 64), ceil(T / 64)).
 * - {@link matmulBlockedWgsl} (prefill on software adapters): each thread computes 4 rows × 8 outputs
 *   straight from storage, no barriers. Grid (ceil(N / 512), ceil(T / 4)).
 *
 * Bindings (group 0):
 * | binding | buffer | shape | type |
 * |---|---|---|---|
 * | 0 | x | [rows, K] | f32 (read) |
 * | 1 | w | [N, K] ([2N, K] with swiglu) | bf16 pairs in u32 (K/2 words per row) or f32 (read) |
 * | 2 | out | [rows, N] | f32 (read_write: `residual` adds into it) |
 * | 3 | bias | [N] | f32 (read), only when `bias` |
 * Accumulation is f32 (the CPU accumulates in f64): relative error grows like sqrt(K)·2⁻²⁴.
 *
 * @example
 * ```ts
 * const code = matvecWgsl({ K: 384, N: 1024, weights: "bf16", bias: false, residual: false }, 32);
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
  /** Matrix-vector only: w is [gate; up] and out = silu(gate·x)·(up·x) (swiglu fused). */
  swiglu?: boolean;
}

/** Output tile (tokens and features) of the tiled path. */
export const TILE = 64;
/** Rows × outputs per thread of the blocked path. */
export const BLOCK_T = 4, BLOCK_N = 8;

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

/** Σ over 8 weights at word index `i` of row base `rb` into accumulator `acc` (x chunks a, b). */
function dot8(v: MatmulVariant, acc: string, rb: string): string {
  return v.weights === "bf16"
    ? `{ let p = w[${rb} + i];
      ${acc} += a.x * bf16lo(p.x) + a.y * bf16hi(p.x) + a.z * bf16lo(p.y) + a.w * bf16hi(p.y)
           + b.x * bf16lo(p.z) + b.y * bf16hi(p.z) + b.z * bf16lo(p.w) + b.w * bf16hi(p.w); }`
    : `{ let p = w[2u * (${rb} + i)];
      let q = w[2u * (${rb} + i) + 1u];
      ${acc} += dot(a, p) + dot(b, q); }`;
}

/**
 * The matrix-vector kernel (x has one row), `lanes` threads per output row.
 *
 * @example
 * ```ts
 * matvecWgsl({ K: 1024, N: 384, weights: "bf16", bias: false, residual: true }, 1);
 * ```
 */
export function matvecWgsl(v: MatmulVariant, lanes: number): string {
  if (v.K % 8 !== 0) throw new RangeError(`matvec: K=${v.K} must be a multiple of 8`);
  if (!(lanes >= 1 && lanes <= 256 && (lanes & (lanes - 1)) === 0)) {
    throw new RangeError(`matvec: lanes=${lanes} must be a power of two in [1, 256]`);
  }
  const rows = 256 / lanes;
  const sw = v.swiglu === true;
  const reduce = (name: string) =>
    lanes === 1 ? "" : `red[li] = ${name};
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s = s / 2u) {
    if (lane < s) { red[li] = red[li] + red[li + s]; }
    workgroupBarrier();
  }
  ${name} = red[li];
  workgroupBarrier();`;
  const result = sw ? "(g / (1.0 + exp(-g))) * u" : "g";
  return `${STEP_WGSL}${BF16_WGSL}
${bindings(v, "vec4<f32>", v.weights === "bf16" ? "vec4<u32>" : "vec4<f32>")}
const K8 = ${u32Lit(v.K / 8)};
const N = ${u32Lit(v.N)};
const ROWS = ${u32Lit(rows)};
const LANES = ${u32Lit(lanes)};
${lanes > 1 ? "var<workgroup> red: array<f32, 256>;" : ""}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nw: vec3<u32>) {
  let lane = li % LANES;
  let row = (wg.x + wg.y * nw.x) * ROWS + li / LANES;
  var g = 0.0;
  var u = 0.0;
  if (row < N) {
    let gb = row * K8;
    ${sw ? "let ub = (row + N) * K8;" : ""}
    for (var i = lane; i < K8; i += LANES) {
      let a = x[2u * i];
      let b = x[2u * i + 1u];
      ${dot8(v, "g", "gb")}
      ${sw ? dot8(v, "u", "ub") : ""}
    }
  }
  ${reduce("g")}
  ${sw ? reduce("u") : ""}
  if (lane == 0u && row < N) {
    ${epilogue(v, "row", "row", result)}
  }
}
`;
}

/**
 * The workgroup-memory tiled kernel for step.T rows of x.
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

/**
 * The barrier-free register-blocked kernel for step.T rows of x (4 rows × 8 outputs per thread).
 *
 * @example
 * ```ts
 * matmulBlockedWgsl({ K: 384, N: 2048, weights: "bf16", bias: false, residual: false });
 * ```
 */
export function matmulBlockedWgsl(v: MatmulVariant): string {
  if (v.K % 8 !== 0) throw new RangeError(`matmul: K=${v.K} must be a multiple of 8`);
  const K8 = v.K / 8;
  let decl = "", body = "", epi = "";
  for (let t = 0; t < BLOCK_T; t++) for (let j = 0; j < BLOCK_N; j++) decl += `var a${t}_${j} = 0.0;\n  `;
  for (let j = 0; j < BLOCK_N; j++) {
    const row = `min(n0 + ${j}u, N - 1u)`;
    body += v.weights === "bf16"
      ? `let p${j} = w[${row} * K8 + i];
      let l${j} = vec4<f32>(bf16lo(p${j}.x), bf16hi(p${j}.x), bf16lo(p${j}.y), bf16hi(p${j}.y));
      let h${j} = vec4<f32>(bf16lo(p${j}.z), bf16hi(p${j}.z), bf16lo(p${j}.w), bf16hi(p${j}.w));
      `
      : `let l${j} = w[2u * (${row} * K8 + i)];
      let h${j} = w[2u * (${row} * K8 + i) + 1u];
      `;
  }
  for (let t = 0; t < BLOCK_T; t++) {
    body += `{ let r = min(t0 + ${t}u, T - 1u) * (2u * K8) + 2u * i;
        let xa = x[r];
        let xb = x[r + 1u];
`;
    for (let j = 0; j < BLOCK_N; j++) body += `        a${t}_${j} += dot(xa, l${j}) + dot(xb, h${j});\n`;
    body += "      }\n      ";
  }
  for (let t = 0; t < BLOCK_T; t++) {
    for (let j = 0; j < BLOCK_N; j++) {
      epi += `if (t0 + ${t}u < T && n0 + ${j}u < N) { let t = t0 + ${t}u; let n = n0 + ${j}u; ${
        epilogue(v, "t * N + n", "n", `a${t}_${j}`)
      } }\n  `;
    }
  }
  return `${STEP_WGSL}${BF16_WGSL}
${bindings(v, "vec4<f32>", v.weights === "bf16" ? "vec4<u32>" : "vec4<f32>")}
const K8 = ${u32Lit(K8)};
const N = ${u32Lit(v.N)};

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let T = step.T;
  let n0 = gid.x * ${BLOCK_N}u;
  let t0 = gid.y * ${BLOCK_T}u;
  if (n0 >= N || t0 >= T) { return; }
  ${decl}
  for (var i = 0u; i < K8; i++) {
      ${body}
  }
  ${epi}
}
`;
}
