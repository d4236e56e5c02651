/**
 * The exact cache's append op (WGSL in kv_append.wgsl.ts): K/V of the step's new tokens → cache rows
 * [step.P, step.P + T).
 *
 * Buffers:
 * | name | shape | type |
 * |---|---|---|
 * | qkv | [T, (nH + 2·nKv)·D] | f32 |
 * | cacheK, cacheV | [nKv, capacity, D] | f32 |
 *
 * @example
 * ```ts
 * const app = await KvAppendKernel.create(reg, { numHeads: 4, numKvHeads: 2, headDim: 128, capacity: 4096 });
 * app.encode(pass, app.bind(qkv, cacheK, cacheV), T);
 * ```
 * @module
 */
import type { Kernel, KernelRegistry } from "../registry.ts";
import { bindBuffers, dispatch } from "./bind.ts";
import { type KvAppendShape, kvAppendWgsl } from "./kv_append.wgsl.ts";

export type { KvAppendShape } from "./kv_append.wgsl.ts";

/**
 * The compiled append kernel of one shape.
 *
 * @example
 * ```ts
 * const k = await KvAppendKernel.create(reg, shape);
 * ```
 */
export class KvAppendKernel {
  readonly kernel: Kernel;
  readonly shape: KvAppendShape;
  readonly #reg: KernelRegistry;

  private constructor(reg: KernelRegistry, kernel: Kernel, shape: KvAppendShape) {
    this.#reg = reg;
    this.kernel = kernel;
    this.shape = shape;
  }

  /**
   * Compiles (or reuses) the pipeline of `s`.
   *
   * @example
   * ```ts
   * const app = await KvAppendKernel.create(reg, { numHeads: 32, numKvHeads: 8, headDim: 128, capacity: 8192 });
   * ```
   */
  static async create(reg: KernelRegistry, s: KvAppendShape): Promise<KvAppendKernel> {
    const key = `kv_append:${s.numHeads}:${s.numKvHeads}:${s.headDim}:${s.capacity}`;
    const kernel = await reg.kernel(key, ["read-only-storage", "storage", "storage"], () => kvAppendWgsl(s));
    return new KvAppendKernel(reg, kernel, s);
  }

  /**
   * Bind group: qkv, cacheK, cacheV.
   *
   * @example
   * ```ts
   * const bg = app.bind(qkv, k[l], v[l]);
   * ```
   */
  bind(qkv: GPUBuffer, cacheK: GPUBuffer, cacheV: GPUBuffer): GPUBindGroup {
    return bindBuffers(this.#reg, this.kernel, [qkv, cacheK, cacheV]);
  }

  /**
   * Records the append of `rows` (= step.T) tokens.
   *
   * @example
   * ```ts
   * app.encode(pass, bg, T);
   * ```
   */
  encode(pass: GPUComputePassEncoder, bindGroup: GPUBindGroup, rows: number): void {
    dispatch(
      pass,
      this.kernel,
      bindGroup,
      Math.ceil((this.shape.numKvHeads * this.shape.headDim) / 64),
      rows,
    );
  }
}
