/**
 * The prompt's attention for the quantized GPU caches (packed, KIVI, MixKVQ): a prompt on an empty cache
 * attends to its own EXACT K/V — the CPU semantics — with the exact prefill kernel (kernels/attention),
 * bound to placeholder cache buffers that are never read (P = 0).
 *
 * | buffer | shape | type |
 * | --- | --- | --- |
 * | placeholder cacheK, cacheV | [nKv, 1, D] | f32 |
 * | placeholder partial acc | [nH, 1, D] | f32 |
 * | placeholder partial stats | [nH, 1, 2] | f32 |
 * @module
 */
import type { GpuCacheEnv } from "./types.ts";
import { storageBuffer } from "../buffers.ts";
import { type AttentionBindings, AttentionKernels } from "../kernels/attention.ts";
import { GpuError } from "../../src/errors.ts";

/**
 * The quantized caches prefill only a prompt on an empty cache: checks the T of each step of a submission
 * (a multi-token step after cached tokens is a GpuError naming `owner`) and returns the tokens it adds.
 *
 * @example
 * ```ts
 * checkPromptSteps("KIVI", 0, [256, 1, 1]); // 258
 * ```
 */
export function checkPromptSteps(owner: string, length: number, Ts: readonly number[]): number {
  let n = length;
  for (const T of Ts) {
    if (T > 1 && n > 0) {
      throw new GpuError(
        `a ${T}-token prefill after ${n} cached tokens is not yet supported by the ${owner} webgpu cache ` +
          `(prefill the whole prompt at once, or decode token by token)`,
      );
    }
    n += T;
  }
  return n - length;
}

/**
 * Exact prompt attention over the engine's `qkv` activation into its `out` activation.
 *
 * @example
 * ```ts
 * const prompt = await PromptAttention.create(env, "packed");
 * prompt.encode(pass, T, 0, "packed"); // T prompt tokens, nothing cached
 * prompt.destroy();
 * ```
 */
export class PromptAttention {
  readonly #kernels: AttentionKernels;
  readonly #bind: AttentionBindings;
  readonly #buffers: GPUBuffer[];

  private constructor(kernels: AttentionKernels, bind: AttentionBindings, buffers: GPUBuffer[]) {
    this.#kernels = kernels;
    this.#bind = bind;
    this.#buffers = buffers;
  }

  /** Compiles the prefill kernel for `env.shape` and binds it; `label` names the buffers. */
  static async create(env: GpuCacheEnv, label: string): Promise<PromptAttention> {
    const { numHeads: nH, numKvHeads: nKv, headDim: D } = env.shape;
    const kernels = await AttentionKernels.create(env.reg, {
      numHeads: nH,
      numKvHeads: nKv,
      headDim: D,
      capacity: 1,
      maxSplits: 1,
    });
    const ctx = env.reg.ctx;
    const dk = storageBuffer(ctx, `${label} prefill placeholder K`, 4 * nKv * D);
    const dv = storageBuffer(ctx, `${label} prefill placeholder V`, 4 * nKv * D);
    const pa = storageBuffer(ctx, `${label} prefill placeholder partial acc`, 4 * nH * D);
    const ps = storageBuffer(ctx, `${label} prefill placeholder partial stats`, 4 * nH * 2);
    const bind = kernels.bind({
      qkv: env.io.qkv,
      cacheK: dk,
      cacheV: dv,
      out: env.io.out,
      partAcc: pa,
      partStats: ps,
    });
    return new PromptAttention(kernels, bind, [dk, dv, pa, ps]);
  }

  /**
   * Records the attention of `T` prompt tokens (positions 0..T-1, causal) over their own K/V; GpuError naming
   * `owner` when `P` tokens are already cached (only a prompt on an empty cache is supported).
   */
  encode(pass: GPUComputePassEncoder, T: number, P: number, owner: string): void {
    if (P > 0) {
      throw new GpuError(`${owner} cache: ${T}-token prefill after ${P} cached tokens is not supported`);
    }
    this.#kernels.encodePrefill(pass, this.#bind, T);
  }

  /** Frees the placeholder buffers. */
  destroy(): void {
    for (const b of this.#buffers) b.destroy();
  }
}
