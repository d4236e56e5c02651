/**
 * The vec4 copy kernel (bandwidth reference; WGSL in copy.wgsl.ts).
 *
 * Buffers:
 * | name | shape | type |
 * |---|---|---|
 * | src | [n] | vec4<f32> |
 * | dst | [n] | vec4<f32> |
 *
 * @example
 * ```ts
 * const copy = await CopyKernel.create(reg);
 * copy.encode(pass, copy.bind(src, dst), bytes / 16);
 * ```
 * @module
 */
import type { Kernel, KernelRegistry } from "../registry.ts";
import { bindBuffers, dispatch } from "./bind.ts";
import { grid2d } from "../buffers.ts";
import { copyWgsl } from "./copy.wgsl.ts";

/**
 * The compiled copy kernel.
 *
 * @example
 * ```ts
 * const k = await CopyKernel.create(reg);
 * ```
 */
export class CopyKernel {
  readonly kernel: Kernel;
  readonly #reg: KernelRegistry;

  private constructor(reg: KernelRegistry, kernel: Kernel) {
    this.#reg = reg;
    this.kernel = kernel;
  }

  /**
   * Compiles (or reuses) the copy pipeline.
   *
   * @example
   * ```ts
   * const copy = await CopyKernel.create(reg);
   * ```
   */
  static async create(reg: KernelRegistry): Promise<CopyKernel> {
    return new CopyKernel(reg, await reg.kernel("copy_vec4", ["read-only-storage", "storage"], copyWgsl));
  }

  /**
   * Bind group: src, dst (same size).
   *
   * @example
   * ```ts
   * const bg = copy.bind(src, dst);
   * ```
   */
  bind(src: GPUBuffer, dst: GPUBuffer): GPUBindGroup {
    return bindBuffers(this.#reg, this.kernel, [src, dst]);
  }

  /**
   * Records the copy of `vec4s` 16-byte elements.
   *
   * @example
   * ```ts
   * copy.encode(pass, bg, 1 << 20);
   * ```
   */
  encode(pass: GPUComputePassEncoder, bindGroup: GPUBindGroup, vec4s: number): void {
    const [x, y] = grid2d(this.#reg.ctx, Math.ceil(vec4s / 256));
    dispatch(pass, this.kernel, bindGroup, x, y);
  }
}
