/**
 * `add` op (mirrors cpu/ops.ts `addInPlace`; WGSL in add.wgsl.ts): x += y over step.T rows.
 *
 * Buffers:
 * | name | shape | type |
 * |---|---|---|
 * | x | [T, width] | f32 (updated) |
 * | y | [T, width] | f32 |
 *
 * @example
 * ```ts
 * const add = await AddKernel.create(reg, { width: 384 });
 * add.encode(pass, add.bind(h, o), T);
 * ```
 * @module
 */
import type { Kernel, KernelRegistry } from "../registry.ts";
import { bindBuffers, dispatch } from "./bind.ts";
import { grid2d } from "../buffers.ts";
import { type AddVariant, addWgsl } from "./add.wgsl.ts";

export type { AddVariant } from "./add.wgsl.ts";

/**
 * A compiled add variant.
 *
 * @example
 * ```ts
 * const k = await AddKernel.create(reg, { width: 384 });
 * ```
 */
export class AddKernel {
  readonly kernel: Kernel;
  readonly variant: AddVariant;
  readonly #reg: KernelRegistry;

  private constructor(reg: KernelRegistry, kernel: Kernel, variant: AddVariant) {
    this.#reg = reg;
    this.kernel = kernel;
    this.variant = variant;
  }

  /**
   * Compiles (or reuses) the pipeline of `v`.
   *
   * @example
   * ```ts
   * const add = await AddKernel.create(reg, { width: 4096 });
   * ```
   */
  static async create(reg: KernelRegistry, v: AddVariant): Promise<AddKernel> {
    const kernel = await reg.kernel(`add:${v.width}`, ["storage", "read-only-storage"], () => addWgsl(v));
    return new AddKernel(reg, kernel, v);
  }

  /**
   * Bind group: x (updated), y.
   *
   * @example
   * ```ts
   * const bg = add.bind(h, o);
   * ```
   */
  bind(x: GPUBuffer, y: GPUBuffer): GPUBindGroup {
    return bindBuffers(this.#reg, this.kernel, [x, y]);
  }

  /**
   * Records x += y over `rows` (= step.T) rows.
   *
   * @example
   * ```ts
   * add.encode(pass, bg, T);
   * ```
   */
  encode(pass: GPUComputePassEncoder, bindGroup: GPUBindGroup, rows: number): void {
    const [gx, gy] = grid2d(this.#reg.ctx, Math.ceil((rows * this.variant.width) / 256));
    dispatch(pass, this.kernel, bindGroup, gx, gy);
  }
}
