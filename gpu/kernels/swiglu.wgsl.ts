/**
 * WGSL of `swiglu` (mirrors cpu/ops.ts `swiglu`): out[t, i] = silu(gate[t, i]) · up[t, i], where gate and up
 * are the two halves of one fused gate|up matmul row.
 *
 * Bindings (group 0):
 * | binding | buffer | shape | type |
 * |---|---|---|---|
 * | 0 | gu | [T, 2·I]: columns [0, I) gate, [I, 2I) up | f32 (read) |
 * | 1 | out | [T, I] | f32 (write) |
 * Grid: (ceil(I / 256), step.T).
 *
 * @example
 * ```ts
 * const code = swigluWgsl({ intermediate: 1024 });
 * ```
 * @module
 */
import { u32Lit } from "./wgsl_util.ts";
import { STEP_WGSL } from "../step.ts";

/** Baked constants of one swiglu pipeline. */
export interface SwigluVariant {
  intermediate: number;
}

/**
 * The swiglu kernel.
 *
 * @example
 * ```ts
 * swigluWgsl({ intermediate: 14336 });
 * ```
 */
export function swigluWgsl(v: SwigluVariant): string {
  return `${STEP_WGSL}
@group(0) @binding(0) var<storage, read> gu: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
const I = ${u32Lit(v.intermediate)};

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let t = g.y;
  let i = g.x;
  if (t >= step.T || i >= I) { return; }
  let gate = gu[t * 2u * I + i];
  let up = gu[t * 2u * I + I + i];
  out[t * I + i] = (gate / (1.0 + exp(-gate))) * up;
}
`;
}
