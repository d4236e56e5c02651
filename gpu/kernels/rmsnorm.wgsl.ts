/**
 * WGSL of `rmsnorm` (mirrors cpu/ops.ts `rmsnorm`): out[t] = weight · (x[t] · 1/sqrt(mean(x[t]²) + eps)).
 * One 256-thread workgroup per row; the sum of squares is reduced in workgroup memory.
 *
 * Bindings (group 0):
 * | binding | buffer | shape | type |
 * |---|---|---|---|
 * | 0 | x | [rows, dim] | f32 (read) |
 * | 1 | weight | [dim] | f32 (read) |
 * | 2 | out | [rows, dim], or [1, dim] when `lastOnly` | f32 (write) |
 * Grid: step.T workgroups, or 1 when `lastOnly` (normalizes row step.T − 1 into out row 0, for the LM head).
 *
 * @example
 * ```ts
 * const code = rmsnormWgsl({ dim: 384, eps: 1e-5, lastOnly: false });
 * ```
 * @module
 */
import { f32Lit, u32Lit } from "./wgsl_util.ts";
import { STEP_WGSL } from "../step.ts";

/** Baked constants of one rmsnorm pipeline. */
export interface RmsnormVariant {
  dim: number;
  eps: number;
  /** Normalize only the last row of the step (row step.T − 1) into row 0 of out. */
  lastOnly: boolean;
}

/**
 * The rmsnorm kernel.
 *
 * @example
 * ```ts
 * rmsnormWgsl({ dim: 4096, eps: 1e-6, lastOnly: true });
 * ```
 */
export function rmsnormWgsl(v: RmsnormVariant): string {
  return `${STEP_WGSL}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
const DIM = ${u32Lit(v.dim)};
const EPS = ${f32Lit(v.eps)};
var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let row = ${v.lastOnly ? "step.T - 1u" : "wg.x"};
  let orow = ${v.lastOnly ? "0u" : "wg.x"};
  let xb = row * DIM;
  var ss = 0.0;
  for (var i = li; i < DIM; i += 256u) { let a = x[xb + i]; ss += a * a; }
  red[li] = ss;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s / 2u) {
    if (li < s) { red[li] = red[li] + red[li + s]; }
    workgroupBarrier();
  }
  let r = 1.0 / sqrt(red[0] / f32(DIM) + EPS);
  let ob = orow * DIM;
  for (var i = li; i < DIM; i += 256u) { out[ob + i] = weight[i] * (x[xb + i] * r); }
}
`;
}
