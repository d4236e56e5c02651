/**
 * `attention` ops over the exact f32 cache (mirror cpu/attention.ts; WGSL in attention.wgsl.ts): prefill
 * (T queries, causal) and decode (one query; split over the sequence, then combined). The registry's
 * tuning picks the workgroup (GPU) or serial (software adapter) kernels; dispatch shapes follow.
 *
 * Buffers ({@link AttentionBuffers}):
 * | name | shape | type |
 * |---|---|---|
 * | qkv | [T, (nH + 2·nKv)·D] | f32 |
 * | cacheK, cacheV | [nKv, capacity, D] | f32 |
 * | out | [T, nH·D] | f32 |
 * | partAcc | [nH, maxSplits, D] | f32 (decode scratch) |
 * | partStats | [nH, maxSplits, 2] | f32 (decode scratch) |
 *
 * @example
 * ```ts
 * const att = await AttentionKernels.create(reg, { numHeads: 4, numKvHeads: 2, headDim: 128, capacity: 4096, maxSplits: 128 });
 * const bgs = att.bind({ qkv, cacheK, cacheV, out, partAcc, partStats });
 * att.encodeDecode(pass, bgs, decodeSplit(P + 1, 128).nSplits);
 * ```
 * @module
 */
import type { Kernel, KernelRegistry } from "../registry.ts";
import { bindBuffers, dispatch } from "./bind.ts";
import {
  attentionDecodeCombineWgsl,
  attentionDecodePartialWgsl,
  attentionPrefillWgsl,
  attentionSerialCombineWgsl,
  attentionSerialPartialWgsl,
  attentionSerialPrefillWgsl,
  type AttentionShape,
} from "./attention.wgsl.ts";

export type { AttentionShape } from "./attention.wgsl.ts";

/** The buffers of one layer's attention. */
export interface AttentionBuffers {
  /** [T, (nH + 2·nKv)·D] f32 */ qkv: GPUBuffer;
  /** [nKv, capacity, D] f32 */ cacheK: GPUBuffer;
  /** [nKv, capacity, D] f32 */ cacheV: GPUBuffer;
  /** [T, nH·D] f32 */ out: GPUBuffer;
  /** [nH, maxSplits, D] f32 */ partAcc: GPUBuffer;
  /** [nH, maxSplits, 2] f32 */ partStats: GPUBuffer;
}

/** Bind groups of one layer. */
export interface AttentionBindings {
  prefill: GPUBindGroup;
  partial: GPUBindGroup;
  combine: GPUBindGroup;
}

/** Granularity of the decode split (tokens). */
export const SPLIT_STEP = 16;

/**
 * Tokens per decode split for a context of `n` tokens: the smallest multiple of {@link SPLIT_STEP} with at
 * most `maxSplits` splits, i.e. as many parallel workgroups as the partial buffers allow (a single decode
 * query has no other parallelism; short contexts are latency-bound).
 *
 * @example
 * ```ts
 * decodeSplit(1000, 128); // { split: 16, nSplits: 63 }
 * decodeSplit(32768, 128); // { split: 256, nSplits: 128 }
 * ```
 */
export function decodeSplit(n: number, maxSplits: number): { split: number; nSplits: number } {
  const split = SPLIT_STEP * Math.max(1, Math.ceil(n / (SPLIT_STEP * maxSplits)));
  return { split, nSplits: Math.ceil(n / split) };
}

/**
 * The three compiled attention kernels of one shape.
 *
 * @example
 * ```ts
 * const k = await AttentionKernels.create(reg, shape);
 * ```
 */
export class AttentionKernels {
  readonly shape: AttentionShape;
  readonly prefill: Kernel;
  readonly partial: Kernel;
  readonly combine: Kernel;
  /** True for the serial (software adapter) kernels. */
  readonly serial: boolean;
  readonly #reg: KernelRegistry;

  private constructor(reg: KernelRegistry, shape: AttentionShape, kernels: [Kernel, Kernel, Kernel]) {
    this.#reg = reg;
    this.shape = shape;
    this.serial = reg.tuning.attention === "serial";
    [this.prefill, this.partial, this.combine] = kernels;
  }

  /**
   * Compiles (or reuses) the kernels of `s`.
   *
   * @example
   * ```ts
   * const att = await AttentionKernels.create(reg, { numHeads: 32, numKvHeads: 8, headDim: 128, capacity: 8192, maxSplits: 128 });
   * ```
   */
  static async create(reg: KernelRegistry, s: AttentionShape): Promise<AttentionKernels> {
    const tag = `${s.numHeads}:${s.numKvHeads}:${s.headDim}:${s.capacity}:${s.maxSplits}`;
    const ro = "read-only-storage" as const, rw = "storage" as const;
    const serial = reg.tuning.attention === "serial";
    const kernels = await Promise.all([
      serial
        ? reg.kernel(`attention_serial_prefill:${tag}`, [ro, ro, ro, rw], () => attentionSerialPrefillWgsl(s))
        : reg.kernel(`attention_prefill:${tag}`, [ro, ro, ro, rw], () => attentionPrefillWgsl(s)),
      serial
        ? reg.kernel(
          `attention_serial_partial:${tag}`,
          [ro, ro, ro, rw, rw],
          () => attentionSerialPartialWgsl(s),
        )
        : reg.kernel(
          `attention_decode_partial:${tag}`,
          [ro, ro, ro, rw, rw],
          () => attentionDecodePartialWgsl(s),
        ),
      serial
        ? reg.kernel(`attention_serial_combine:${tag}`, [ro, ro, rw], () => attentionSerialCombineWgsl(s))
        : reg.kernel(`attention_decode_combine:${tag}`, [ro, ro, rw], () => attentionDecodeCombineWgsl(s)),
    ]);
    return new AttentionKernels(reg, s, kernels);
  }

  /**
   * Bind groups over one layer's buffers.
   *
   * @example
   * ```ts
   * const bgs = att.bind({ qkv, cacheK: k[l], cacheV: v[l], out: att, partAcc, partStats });
   * ```
   */
  bind(b: AttentionBuffers): AttentionBindings {
    return {
      prefill: bindBuffers(this.#reg, this.prefill, [b.qkv, b.cacheK, b.cacheV, b.out]),
      partial: bindBuffers(this.#reg, this.partial, [b.qkv, b.cacheK, b.cacheV, b.partAcc, b.partStats]),
      combine: bindBuffers(this.#reg, this.combine, [b.partAcc, b.partStats, b.out]),
    };
  }

  /**
   * Records prefill attention of `T` (= step.T) queries.
   *
   * @example
   * ```ts
   * att.encodePrefill(pass, bgs, T);
   * ```
   */
  encodePrefill(pass: GPUComputePassEncoder, b: AttentionBindings, T: number): void {
    if (this.serial) dispatch(pass, this.prefill, b.prefill, Math.ceil((T * this.shape.numHeads) / 64));
    else dispatch(pass, this.prefill, b.prefill, T, this.shape.numKvHeads);
  }

  /**
   * Records decode attention (step.T = 1) over `nSplits` (= step.nSplits) splits, then the combine.
   *
   * @example
   * ```ts
   * att.encodeDecode(pass, bgs, decodeSplit(P + 1, 128).nSplits);
   * ```
   */
  encodeDecode(pass: GPUComputePassEncoder, b: AttentionBindings, nSplits: number): void {
    this.encodePartial(pass, b, nSplits);
    this.encodeCombine(pass, b);
  }

  /**
   * Records decode pass 1 only (the partials of `nSplits` splits).
   *
   * @example
   * ```ts
   * att.encodePartial(pass, bgs, sp.nSplits);
   * ```
   */
  encodePartial(pass: GPUComputePassEncoder, b: AttentionBindings, nSplits: number): void {
    if (this.serial) dispatch(pass, this.partial, b.partial, Math.ceil((nSplits * this.shape.numHeads) / 64));
    else dispatch(pass, this.partial, b.partial, nSplits, this.shape.numKvHeads);
  }

  /**
   * Records decode pass 2 only (merging step.nSplits partials per head).
   *
   * @example
   * ```ts
   * att.encodeCombine(pass, bgs);
   * ```
   */
  encodeCombine(pass: GPUComputePassEncoder, b: AttentionBindings): void {
    dispatch(pass, this.combine, b.combine, this.shape.numHeads);
  }
}
