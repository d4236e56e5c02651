/**
 * `rmsnorm` op (mirrors cpu/ops.ts `rmsnorm`; WGSL in rmsnorm.wgsl.ts).
 *
 * Buffers:
 * | name | shape | type |
 * |---|---|---|
 * | x | [rows, dim] | f32 |
 * | weight | [dim] | f32 |
 * | out | [rows, dim], or [1, dim] when lastOnly | f32 |
 *
 * @example
 * ```ts
 * const norm = await RmsnormKernel.create(reg, { dim: 384, eps: 1e-5, lastOnly: false });
 * const bg = norm.bind(h, inputNorm, xn);
 * norm.encode(pass, bg, T);
 * ```
 * @module
 */
import type { Kernel, KernelRegistry } from "../registry.ts";
import { bindBuffers, dispatch } from "./bind.ts";
import { type RmsnormVariant, rmsnormWgsl } from "./rmsnorm.wgsl.ts";

export type { RmsnormVariant } from "./rmsnorm.wgsl.ts";

/**
 * A compiled rmsnorm variant.
 *
 * @example
 * ```ts
 * const k = await RmsnormKernel.create(reg, { dim: 384, eps: 1e-5, lastOnly: false });
 * ```
 */
export class RmsnormKernel {
  readonly kernel: Kernel;
  readonly variant: RmsnormVariant;
  readonly #reg: KernelRegistry;

  private constructor(reg: KernelRegistry, kernel: Kernel, variant: RmsnormVariant) {
    this.#reg = reg;
    this.kernel = kernel;
    this.variant = variant;
  }

  /**
   * Compiles (or reuses) the pipeline of `v`.
   *
   * @example
   * ```ts
   * const finalNorm = await RmsnormKernel.create(reg, { dim: 384, eps: 1e-5, lastOnly: true });
   * ```
   */
  static async create(reg: KernelRegistry, v: RmsnormVariant): Promise<RmsnormKernel> {
    const key = `rmsnorm:${v.dim}:${v.eps}:${v.lastOnly ? "last" : "all"}`;
    const kernel = await reg.kernel(
      key,
      ["read-only-storage", "read-only-storage", "storage"],
      () => rmsnormWgsl(v),
    );
    return new RmsnormKernel(reg, kernel, v);
  }

  /**
   * Bind group: x [rows, dim], weight [dim], out.
   *
   * @example
   * ```ts
   * const bg = norm.bind(h, weight, xn);
   * ```
   */
  bind(x: GPUBuffer, weight: GPUBuffer, out: GPUBuffer): GPUBindGroup {
    return bindBuffers(this.#reg, this.kernel, [x, weight, out]);
  }

  /**
   * Records the norm of `rows` rows (= step.T; ignored when lastOnly).
   *
   * @example
   * ```ts
   * norm.encode(pass, bg, T);
   * ```
   */
  encode(pass: GPUComputePassEncoder, bindGroup: GPUBindGroup, rows: number): void {
    dispatch(pass, this.kernel, bindGroup, this.variant.lastOnly ? 1 : rows);
  }
}
