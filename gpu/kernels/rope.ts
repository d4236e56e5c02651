/**
 * `rope` op (mirrors src/model/rope.ts `applyRope`; WGSL in rope.wgsl.ts), in place on x.
 *
 * Buffers:
 * | name | shape | type |
 * |---|---|---|
 * | x | [T, rowStride], heads at columns [0, heads·D) | f32 |
 * | cos, sin | [positions, D/2] from `ropeTable` | f32 |
 *
 * @example
 * ```ts
 * const rope = await RopeKernel.create(reg, { heads: nH + nKv, headDim: 128, rowStride: qkvWidth });
 * const bg = rope.bind(qkv, cos, sin);
 * rope.encode(pass, bg, T);
 * ```
 * @module
 */
import type { Kernel, KernelRegistry } from "../registry.ts";
import { bindBuffers, dispatch } from "./bind.ts";
import { type RopeVariant, ropeWgsl } from "./rope.wgsl.ts";

export type { RopeVariant } from "./rope.wgsl.ts";

/**
 * A compiled rope variant.
 *
 * @example
 * ```ts
 * const k = await RopeKernel.create(reg, { heads: 6, headDim: 128, rowStride: 1024 });
 * ```
 */
export class RopeKernel {
  readonly kernel: Kernel;
  readonly variant: RopeVariant;
  readonly #reg: KernelRegistry;

  private constructor(reg: KernelRegistry, kernel: Kernel, variant: RopeVariant) {
    this.#reg = reg;
    this.kernel = kernel;
    this.variant = variant;
  }

  /**
   * Compiles (or reuses) the pipeline of `v`.
   *
   * @example
   * ```ts
   * const rope = await RopeKernel.create(reg, { heads: 4, headDim: 128, rowStride: 512 });
   * ```
   */
  static async create(reg: KernelRegistry, v: RopeVariant): Promise<RopeKernel> {
    const key = `rope:${v.heads}:${v.headDim}:${v.rowStride}`;
    const kernel = await reg.kernel(
      key,
      ["storage", "read-only-storage", "read-only-storage"],
      () => ropeWgsl(v),
    );
    return new RopeKernel(reg, kernel, v);
  }

  /**
   * Bind group: x, cos, sin.
   *
   * @example
   * ```ts
   * const bg = rope.bind(qkv, cosTable, sinTable);
   * ```
   */
  bind(x: GPUBuffer, cos: GPUBuffer, sin: GPUBuffer): GPUBindGroup {
    return bindBuffers(this.#reg, this.kernel, [x, cos, sin]);
  }

  /**
   * Records the rotation of `rows` (= step.T) token rows.
   *
   * @example
   * ```ts
   * rope.encode(pass, bg, T);
   * ```
   */
  encode(pass: GPUComputePassEncoder, bindGroup: GPUBindGroup, rows: number): void {
    dispatch(
      pass,
      this.kernel,
      bindGroup,
      Math.ceil((this.variant.heads * this.variant.headDim) / 2 / 64),
      rows,
    );
  }
}
