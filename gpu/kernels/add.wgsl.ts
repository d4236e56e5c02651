/**
 * WGSL of `add` (mirrors cpu/ops.ts `addInPlace`): x[i] += y[i] for i < step.T · width.
 * (The engine fuses the residual adds into the matmul epilogue; this kernel is the standalone op.)
 *
 * Bindings (group 0):
 * | binding | buffer | shape | type |
 * |---|---|---|---|
 * | 0 | x | [T, width] | f32 (read_write) |
 * | 1 | y | [T, width] | f32 (read) |
 * Grid: ceil(T·width / 256) workgroups, 2-D when above the per-dimension limit.
 *
 * @example
 * ```ts
 * const code = addWgsl({ width: 384 });
 * ```
 * @module
 */
import { u32Lit } from "./wgsl_util.ts";
import { STEP_WGSL } from "../step.ts";

/** Baked constants of one add pipeline. */
export interface AddVariant {
  /** Elements per token row. */
  width: number;
}

/**
 * The add kernel.
 *
 * @example
 * ```ts
 * addWgsl({ width: 4096 });
 * ```
 */
export function addWgsl(v: AddVariant): string {
  return `${STEP_WGSL}
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
const W = ${u32Lit(v.width)};

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nw: vec3<u32>) {
  let i = (wg.x + wg.y * nw.x) * 256u + li;
  if (i >= step.T * W) { return; }
  x[i] = x[i] + y[i];
}
`;
}
