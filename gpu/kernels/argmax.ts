/**
 * `argmax` op (mirrors src/sampling.ts `argmax`, plus a non-finite count; WGSL in argmax.wgsl.ts).
 *
 * Buffers:
 * | name | shape | type |
 * |---|---|---|
 * | logits | [vocab] | f32 |
 * | ids | [slots]: ids[step.idOut] ← argmax | u32 |
 * | flags | [slots]: flags[step.idOut] ← non-finite logit count | u32 |
 *
 * @example
 * ```ts
 * const am = await ArgmaxKernel.create(reg, { vocab: 4096 });
 * am.encode(pass, am.bind(logits, ids, flags));
 * ```
 * @module
 */
import type { Kernel, KernelRegistry } from "../registry.ts";
import { bindBuffers, dispatch } from "./bind.ts";
import { type ArgmaxVariant, argmaxWgsl } from "./argmax.wgsl.ts";

export type { ArgmaxVariant } from "./argmax.wgsl.ts";

/**
 * A compiled argmax variant.
 *
 * @example
 * ```ts
 * const k = await ArgmaxKernel.create(reg, { vocab: 4096 });
 * ```
 */
export class ArgmaxKernel {
  readonly kernel: Kernel;
  readonly variant: ArgmaxVariant;
  readonly #reg: KernelRegistry;

  private constructor(reg: KernelRegistry, kernel: Kernel, variant: ArgmaxVariant) {
    this.#reg = reg;
    this.kernel = kernel;
    this.variant = variant;
  }

  /**
   * Compiles (or reuses) the pipeline of `v`.
   *
   * @example
   * ```ts
   * const am = await ArgmaxKernel.create(reg, { vocab: 151936 });
   * ```
   */
  static async create(reg: KernelRegistry, v: ArgmaxVariant): Promise<ArgmaxKernel> {
    const kernel = await reg.kernel(
      `argmax:${v.vocab}`,
      ["read-only-storage", "storage", "storage"],
      () => argmaxWgsl(v),
    );
    return new ArgmaxKernel(reg, kernel, v);
  }

  /**
   * Bind group: logits, ids, flags.
   *
   * @example
   * ```ts
   * const bg = am.bind(logits, ids, flags);
   * ```
   */
  bind(logits: GPUBuffer, ids: GPUBuffer, flags: GPUBuffer): GPUBindGroup {
    return bindBuffers(this.#reg, this.kernel, [logits, ids, flags]);
  }

  /**
   * Records the argmax (one workgroup).
   *
   * @example
   * ```ts
   * am.encode(pass, bg);
   * ```
   */
  encode(pass: GPUComputePassEncoder, bindGroup: GPUBindGroup): void {
    dispatch(pass, this.kernel, bindGroup, 1);
  }
}
