/**
 * `swiglu` op (mirrors cpu/ops.ts `swiglu`; WGSL in swiglu.wgsl.ts).
 *
 * Buffers:
 * | name | shape | type |
 * |---|---|---|
 * | gu | [T, 2·I] (gate columns, then up columns) | f32 |
 * | out | [T, I] | f32 |
 *
 * @example
 * ```ts
 * const sw = await SwigluKernel.create(reg, { intermediate: 1024 });
 * sw.encode(pass, sw.bind(gu, act), T);
 * ```
 * @module
 */
import type { Kernel, KernelRegistry } from "../registry.ts";
import { bindBuffers, dispatch } from "./bind.ts";
import { type SwigluVariant, swigluWgsl } from "./swiglu.wgsl.ts";

export type { SwigluVariant } from "./swiglu.wgsl.ts";

/**
 * A compiled swiglu variant.
 *
 * @example
 * ```ts
 * const k = await SwigluKernel.create(reg, { intermediate: 1024 });
 * ```
 */
export class SwigluKernel {
  readonly kernel: Kernel;
  readonly variant: SwigluVariant;
  readonly #reg: KernelRegistry;

  private constructor(reg: KernelRegistry, kernel: Kernel, variant: SwigluVariant) {
    this.#reg = reg;
    this.kernel = kernel;
    this.variant = variant;
  }

  /**
   * Compiles (or reuses) the pipeline of `v`.
   *
   * @example
   * ```ts
   * const sw = await SwigluKernel.create(reg, { intermediate: 14336 });
   * ```
   */
  static async create(reg: KernelRegistry, v: SwigluVariant): Promise<SwigluKernel> {
    const kernel = await reg.kernel(
      `swiglu:${v.intermediate}`,
      ["read-only-storage", "storage"],
      () => swigluWgsl(v),
    );
    return new SwigluKernel(reg, kernel, v);
  }

  /**
   * Bind group: gu [T, 2I], out [T, I].
   *
   * @example
   * ```ts
   * const bg = sw.bind(gu, act);
   * ```
   */
  bind(gu: GPUBuffer, out: GPUBuffer): GPUBindGroup {
    return bindBuffers(this.#reg, this.kernel, [gu, out]);
  }

  /**
   * Records swiglu over `rows` (= step.T) rows.
   *
   * @example
   * ```ts
   * sw.encode(pass, bg, T);
   * ```
   */
  encode(pass: GPUComputePassEncoder, bindGroup: GPUBindGroup, rows: number): void {
    dispatch(pass, this.kernel, bindGroup, Math.ceil(this.variant.intermediate / 256), rows);
  }
}
