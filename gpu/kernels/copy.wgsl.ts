/**
 * WGSL of the vec4 copy kernel: the bandwidth reference of bench/gpu_bench.ts (dst[i] = src[i]).
 *
 * Bindings (group 0):
 * | binding | buffer | shape | type |
 * |---|---|---|---|
 * | 0 | src | [n] | vec4<f32> (read) |
 * | 1 | dst | [n] | vec4<f32> (write) |
 * Grid: ceil(n / 256) workgroups, 2-D when above the per-dimension limit.
 *
 * @example
 * ```ts
 * const code = copyWgsl();
 * ```
 * @module
 */
import { STEP_WGSL } from "../step.ts";

/**
 * The copy kernel (its length is the bound buffers' length).
 *
 * @example
 * ```ts
 * const code = copyWgsl();
 * ```
 */
export function copyWgsl(): string {
  return `${STEP_WGSL}
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nw: vec3<u32>) {
  let i = (wg.x + wg.y * nw.x) * 256u + li;
  if (i < arrayLength(&dst)) { dst[i] = src[i]; }
}
`;
}
