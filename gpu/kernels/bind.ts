/**
 * Bind-group helper shared by the kernel wrappers: binding i ← buffers[i] (whole buffer).
 *
 * @example
 * ```ts
 * const bg = bindBuffers(reg, kernel, [x, weight, out]);
 * pass.setPipeline(kernel.pipeline);
 * pass.setBindGroup(0, bg);
 * ```
 * @module
 */
import type { Kernel, KernelRegistry } from "../registry.ts";

/**
 * A group-0 bind group of `kernel` over `buffers` in binding order.
 *
 * @example
 * ```ts
 * const bg = bindBuffers(reg, swiglu.kernel, [gu, act]);
 * ```
 */
export function bindBuffers(
  reg: KernelRegistry,
  kernel: Kernel,
  buffers: readonly GPUBuffer[],
): GPUBindGroup {
  return reg.ctx.device.createBindGroup({
    label: kernel.key,
    layout: kernel.layout,
    entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
}

/**
 * Sets `kernel`'s pipeline and group 0, then dispatches (group 1, the step, must already be set).
 *
 * @example
 * ```ts
 * dispatch(pass, kernel, bg, Math.ceil(n / 256));
 * ```
 */
export function dispatch(
  pass: GPUComputePassEncoder,
  kernel: Kernel,
  bindGroup: GPUBindGroup,
  x: number,
  y = 1,
  z = 1,
): void {
  pass.setPipeline(kernel.pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(x, y, z);
}
