/**
 * `embed` op (the embedding gather of cpu/forward.ts; WGSL in embed.wgsl.ts).
 *
 * Buffers:
 * | name | shape | type |
 * |---|---|---|
 * | ids | [slots] (token of row t at step.idBase + t) | u32 |
 * | table | [vocab, hidden] | bf16 pairs in u32, or f32 |
 * | out | [T, hidden] | f32 |
 *
 * @example
 * ```ts
 * const emb = await EmbedKernel.create(reg, { hidden: 384, weights: "bf16" });
 * emb.encode(pass, emb.bind(ids, table, h), T);
 * ```
 * @module
 */
import type { Kernel, KernelRegistry } from "../registry.ts";
import { bindBuffers, dispatch } from "./bind.ts";
import { type EmbedVariant, embedWgsl } from "./embed.wgsl.ts";

export type { EmbedVariant } from "./embed.wgsl.ts";

/**
 * A compiled embed variant.
 *
 * @example
 * ```ts
 * const k = await EmbedKernel.create(reg, { hidden: 384, weights: "bf16" });
 * ```
 */
export class EmbedKernel {
  readonly kernel: Kernel;
  readonly variant: EmbedVariant;
  readonly #reg: KernelRegistry;

  private constructor(reg: KernelRegistry, kernel: Kernel, variant: EmbedVariant) {
    this.#reg = reg;
    this.kernel = kernel;
    this.variant = variant;
  }

  /**
   * Compiles (or reuses) the pipeline of `v`.
   *
   * @example
   * ```ts
   * const emb = await EmbedKernel.create(reg, { hidden: 4096, weights: "f32" });
   * ```
   */
  static async create(reg: KernelRegistry, v: EmbedVariant): Promise<EmbedKernel> {
    if (v.weights === "bf16" && v.hidden % 2 !== 0) {
      throw new RangeError(`embed: bf16 needs an even hidden size`);
    }
    const kernel = await reg.kernel(
      `embed:${v.hidden}:${v.weights}`,
      ["read-only-storage", "read-only-storage", "storage"],
      () => embedWgsl(v),
    );
    return new EmbedKernel(reg, kernel, v);
  }

  /**
   * Bind group: ids, table, out.
   *
   * @example
   * ```ts
   * const bg = emb.bind(ids, embedTable, h);
   * ```
   */
  bind(ids: GPUBuffer, table: GPUBuffer, out: GPUBuffer): GPUBindGroup {
    return bindBuffers(this.#reg, this.kernel, [ids, table, out]);
  }

  /**
   * Records the gather of `rows` (= step.T) tokens.
   *
   * @example
   * ```ts
   * emb.encode(pass, bg, T);
   * ```
   */
  encode(pass: GPUComputePassEncoder, bindGroup: GPUBindGroup, rows: number): void {
    const per = this.variant.weights === "bf16" ? this.variant.hidden / 2 : this.variant.hidden;
    dispatch(pass, this.kernel, bindGroup, Math.ceil(per / 64), rows);
  }
}
