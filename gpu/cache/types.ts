/**
 * The GPU KV-cache contract: what the engine asks of a cache, so that a packed (quantized) cache can own its
 * buffers and bring its own append (quantize) and fused decode-attention kernels without engine changes.
 *
 * Per layer and step the engine records, inside one compute pass, with the step uniform (group 1) already set:
 *   rope(q, k) → cache.encodeAttention(layer) → cache.encodeAppend(layer) → o_proj ...
 * exactly the CPU order (attention over the P cached tokens as the cache stores them plus the T new tokens'
 * EXACT K/V from `io.qkv`, then the append). After recording and before the submit the engine calls
 * {@link GpuCache.flush} (uniforms a cache staged while recording). Host bookkeeping follows with {@link GpuCache.commit}, then
 * (optional) the awaited {@link GpuCache.settle}; a cache that needs the host every few steps bounds the
 * steps per submission with {@link GpuCache.maxChainSteps}.
 *
 * Engine-owned buffers a cache reads/writes ({@link GpuCacheIO}):
 * | buffer | shape | type | use |
 * |---|---|---|---|
 * | qkv | [Tmax, (nH + 2·nKv)·D]: q heads, k heads, v heads; q and k post-RoPE | f32 | read |
 * | out | [Tmax, nH·D] | f32 | attention output, written |
 *
 * @example
 * ```ts
 * const cache = await createExactGpuCache({ reg, shape, capacity: 4096, io: { qkv, out } });
 * cache.encodeAttention(pass, 0, 1, P);
 * cache.encodeAppend(pass, 0, 1, P);
 * cache.commit(1);
 * ```
 * @module
 */
import type { CacheSpec, CacheStats } from "../../src/kv/cache.ts";
import type { KernelRegistry } from "../registry.ts";

/** Head geometry of the model a cache serves. */
export interface GpuCacheShape {
  /** Transformer layers (one cache layer each). */
  numLayers: number;
  /** Query heads per token. */
  numHeads: number;
  /** Key/value heads per token (GQA: numHeads is a multiple). */
  numKvHeads: number;
  /** Channels per head. */
  headDim: number;
}

/** Engine activation buffers shared with the cache (see the module doc). */
export interface GpuCacheIO {
  /** [Tmax, (nH + 2·nKv)·D] f32 */ qkv: GPUBuffer;
  /** [Tmax, nH·D] f32 */ out: GPUBuffer;
}

/** What a cache factory receives. */
export interface GpuCacheEnv {
  /** The engine's kernel registry (device, pipelines). */
  reg: KernelRegistry;
  /** Head geometry of the model. */
  shape: GpuCacheShape;
  /** Tokens the cache must hold (prompt + generated). */
  capacity: number;
  /** The engine's activation buffers the cache reads K/V/q from and writes attention output to. */
  io: GpuCacheIO;
}

/** Step-uniform fields a cache controls (written into the `Step` slot of each step). */
export interface CacheStepFields {
  /** Tokens per split of the split-K decode attention of the exact cache (packed caches split their own way). */
  split: number;
  /** Number of splits of that attention for this step. */
  nSplits: number;
}

/** A per-sequence KV cache living on the GPU. */
export interface GpuCache {
  /** The cache method and settings it was created for. */
  readonly spec: CacheSpec;
  /** Tokens it can hold. */
  readonly capacity: number;
  /** Tokens stored (all layers alike) after the committed steps. */
  readonly length: number;
  /** Step fields for a step of T new tokens after P cached (decode split sizes). */
  stepFields(T: number, P: number): CacheStepFields;
  /** Records attention of layer `layer` for the step's T queries (writes io.out). */
  encodeAttention(pass: GPUComputePassEncoder, layer: number, T: number, P: number): void;
  /** Records storing the step's T new keys/values of layer `layer` at positions [P, P + T). */
  encodeAppend(pass: GPUComputePassEncoder, layer: number, T: number, P: number): void;
  /**
   * Uploads what recording staged on the host (uniforms of the recorded steps); called after the steps of a
   * submission are recorded and before it is submitted. Optional: nothing staged.
   */
  flush?(): void;
  /** Host bookkeeping after a recorded step of T tokens (called in step order, after the submit). */
  commit(T: number): void;
  /**
   * Throws (before anything is recorded) what recording steps of `Ts` new tokens would raise, e.g. the
   * BudgetError of a budgeted cache (the CPU's `checkCapacity`). Optional: no check when absent.
   */
  checkSteps?(Ts: readonly number[]): void;
  /**
   * False when {@link GpuCache.truncate} cannot drop stored tokens (a packed cache); the engine then records
   * nothing it may have to roll back (greedy steps with stop ids one per submit). Absent: true.
   */
  readonly canTruncate?: boolean;
  /**
   * Single-token steps that may be recorded in one submission before the cache needs the host (at least 1;
   * a MixKVQ cache: until its residual fills). The engine ends a greedy chain there. Optional: no limit.
   */
  maxChainSteps?(): number;
  /**
   * Host work due after a submission (a MixKVQ cache: read back statistics and queries, choose a block's
   * tiers on the host, submit its quantization). The engine awaits it after every submit, before it reads
   * results or records more, so the cache is complete (stats as the CPU's) when an engine call returns.
   * An error leaves the engine rolling back (see `truncate`). Optional: nothing to do.
   */
  settle?(): Promise<void>;
  /** Truncates to `length` tokens (used to roll back after an error). */
  truncate(length: number): void;
  /** Byte accounting (src/kv/cache.ts rules: allocated storage in `bytes`). */
  stats(): CacheStats;
  /** Empties the cache (buffers stay allocated). */
  reset(): void;
  /** Frees its buffers. */
  destroy(): void;
}
