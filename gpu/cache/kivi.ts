/**
 * The KIVI KV cache on the GPU — `{ method: "kivi", bits, group?, residual? }` (`--kv kivi2|kivi4`), batch 1:
 * one {@link GpuKiviLayer} per layer (gpu/packed/kivi_layer.ts), which moves tokens exactly like the CPU
 * `KiviCache` (src/kv/kivi.ts), so key blocks, value codes, residual and FIFO bits and the byte accounting
 * match the CPU cache fed the same K/V.
 *
 * Per layer and step (inside the engine's compute pass, see gpu/cache/types.ts):
 * | step | kernels |
 * | --- | --- |
 * | decode (T = 1) | FusedAttention (split-K partial + reduce) over the KIVI segments [keys + values \| keys + FIFO \| residual + FIFO] plus the new token's exact K/V from `io.qkv` |
 * | prefill (T > 1, empty cache) | the exact prefill attention (kernels/attention) over the prompt's own exact K/V (CPU semantics) |
 * | prefill (T > 1, tokens cached) | not supported (GpuError), as for the grouped packed cache |
 * | append | `GpuKiviLayer.recordAppend`: key flush, residual stage, value quantize, FIFO stage, in the same pass |
 *
 * A KIVI cache cannot roll back: {@link KiviGpuCache.truncate} below the length poisons it until `reset()`.
 *
 * Buffers:
 * | buffer | shape | type |
 * |---|---|---|
 * | per layer: keys, values, keyResidual, valueFifo ×2, status | kivi_layout.ts | u32 |
 * | decode partials (all layers) | FusedAttention.partialFloats(1, splits) | f32 |
 * | prefill placeholders (cacheK/V, partials; never read with P = 0): gpu/cache/prompt_attention.ts | [nKv, 1, D], [nH, 1, D + 2] | f32 |
 *
 * @example
 * ```ts
 * const cache = await createKiviGpuCache(env, { method: "kivi", bits: 4 });
 * cache.encodeAttention(pass, 0, 1, P);
 * cache.encodeAppend(pass, 0, 1, P);
 * cache.commit(1);
 * ```
 * @module
 */
import type { CacheSpec, CacheStats } from "../../src/kv/cache.ts";
import type { CacheStepFields, GpuCache, GpuCacheEnv } from "./types.ts";
import { KIVI_DEFAULT_GROUP, KIVI_DEFAULT_RESIDUAL } from "../../src/kv/kivi.ts";
import { kiviLayerBytesAt } from "../../src/kv/accounting.ts";
import { storageBuffer } from "../buffers.ts";
import { checkPromptSteps, PromptAttention } from "./prompt_attention.ts";
import { PackedGpu } from "../packed/util.ts";
import { UniformArena } from "../packed/uniform_arena.ts";
import { GpuKiviLayer } from "../packed/kivi_layer.ts";
import { qkvAppendSource } from "../packed/grouped_layer.ts";
import { decodeSplitTarget, DEFAULT_ATTENTION_TUNING, FusedAttention } from "../packed/attention.ts";
import { GpuError } from "../../src/errors.ts";

type KiviSpec = CacheSpec & { method: "kivi" };

/**
 * Creates the KIVI cache of `spec`: allocates every layer (capacity = the engine's) and compiles the append
 * kernels and the one fused attention pipeline. GpuError for a non-KIVI spec; QuantConfigError for bad
 * bits / group / residual / head_dim.
 *
 * @example
 * ```ts
 * const cache = await createKiviGpuCache(env, { method: "kivi", bits: 2, group: 128, residual: 128 });
 * ```
 */
export async function createKiviGpuCache(env: GpuCacheEnv, spec: CacheSpec): Promise<KiviGpuCache> {
  if (spec.method !== "kivi") throw new GpuError(`KIVI GPU cache: method "${spec.method}" is not "kivi"`);
  const s = env.shape;
  const gpu = new PackedGpu(env.reg.ctx);
  const layers: GpuKiviLayer[] = [];
  try {
    for (let l = 0; l < s.numLayers; l++) {
      layers.push(
        await GpuKiviLayer.create(gpu, {
          batch: 1,
          numKvHeads: s.numKvHeads,
          headDim: s.headDim,
          bits: spec.bits,
          group: spec.group ?? KIVI_DEFAULT_GROUP,
          residual: spec.residual ?? KIVI_DEFAULT_RESIDUAL,
          maxLen: env.capacity,
        }),
      );
    }
    const att = await FusedAttention.create(
      gpu,
      layers[0].attentionConfig(s.numHeads, DEFAULT_ATTENTION_TUNING),
    );
    const prompt = await PromptAttention.create(env, "kivi");
    return new KiviGpuCache(env, spec, gpu, layers, att, prompt);
  } catch (e) {
    for (const L of layers) L.destroy();
    throw e;
  }
}

/**
 * See the module doc.
 *
 * @example
 * ```ts
 * const cache: KiviGpuCache = await createKiviGpuCache(env, { method: "kivi", bits: 4 });
 * ```
 */
export class KiviGpuCache implements GpuCache {
  readonly spec: CacheSpec;
  readonly capacity: number;
  readonly canTruncate = false;
  /** The GPU layers (`exportLayer` reads them back, for tests and tools). */
  readonly layers: readonly GpuKiviLayer[];
  readonly gpu: PackedGpu;
  readonly #env: GpuCacheEnv;
  readonly #kivi: KiviSpec;
  readonly #att: FusedAttention;
  readonly #prompt: PromptAttention;
  /** decode partials, shared by all layers */ readonly #part: GPUBuffer;
  readonly #qkvStride: number;
  readonly #target: number;
  /** Uniforms of the recorded, not yet committed steps (one upload per submission in flush()). */
  readonly #arena: UniformArena;
  #peak = 0;
  #length = 0;
  #broken = false;

  constructor(
    env: GpuCacheEnv,
    spec: KiviSpec,
    gpu: PackedGpu,
    layers: GpuKiviLayer[],
    att: FusedAttention,
    prompt: PromptAttention,
  ) {
    this.#env = env;
    this.spec = spec;
    this.#kivi = spec;
    this.capacity = env.capacity;
    this.gpu = gpu;
    this.layers = layers;
    this.#att = att;
    this.#prompt = prompt;
    const { numHeads: nH, numKvHeads: nKv, headDim: D } = env.shape;
    this.#qkvStride = (nH + 2 * nKv) * D;
    this.#target = decodeSplitTarget(nKv);
    this.#arena = new UniformArena(gpu, "KIVI cache uniforms");
    const ctx = env.reg.ctx;
    // splits ≤ target + one per segment (planSplits rounds each segment up)
    const floats = att.partialFloats(1, this.#target + 4);
    this.#part = storageBuffer(ctx, `kivi decode partials [${floats}] f32`, 4 * floats);
  }

  get length(): number {
    return this.#length;
  }

  #checkUsable(): void {
    if (this.#broken) {
      throw new GpuError("the KIVI GPU cache cannot roll back a failed or overshooting step; reset() it");
    }
  }

  /**
   * Throws (before anything is recorded) what recording steps of `Ts` tokens would raise: GpuError for a
   * multi-token step after cached tokens, TensorShapeError beyond the capacity.
   *
   * @example
   * ```ts
   * cache.checkSteps([1, 1]);
   * ```
   */
  checkSteps(Ts: readonly number[]): void {
    this.#checkUsable();
    const added = checkPromptSteps("KIVI", this.#length, Ts);
    for (const L of this.layers) L.checkCapacity(added);
  }

  stepFields(_T: number, _P: number): CacheStepFields {
    return { split: 64, nSplits: 1 };
  }

  encodeAttention(pass: GPUComputePassEncoder, layer: number, T: number, P: number): void {
    this.#checkUsable();
    const L = this.layers[layer];
    if (L.tokens !== P) {
      throw new GpuError(`KIVI cache layer ${layer}: step after ${P} tokens, holds ${L.tokens}`);
    }
    if (T > 1) {
      this.#prompt.encode(pass, T, P, "KIVI");
      return;
    }
    const { numHeads: nH, numKvHeads: nKv, headDim: D } = this.#env.shape;
    const inp = L.attentionInputs();
    const d = this.#att.prepare({
      qkv: this.#env.io.qkv,
      part: this.#part,
      out: this.#env.io.out,
      stores: inp.stores,
    }, {
      batch: 1,
      q: { off: 0, rowStride: this.#qkvStride },
      newKV: { k: nH * D, v: (nH + nKv) * D },
      refs: inp.refs,
      counts: inp.counts,
      splits: { target: this.#target },
    }, this.#arena);
    this.#att.encode(pass, d);
  }

  encodeAppend(pass: GPUComputePassEncoder, layer: number, T: number, _P: number): void {
    this.#checkUsable();
    // with an arena, recordAppend creates no temporaries (its only ones were per-call uniforms)
    this.layers[layer].recordAppend(pass, qkvAppendSource(this.#env.io.qkv, this.#env.shape), T, this.#arena);
    const total = this.#totalBytes();
    if (total > this.#peak) this.#peak = total;
  }

  /**
   * Uploads the uniforms staged while recording (call after recording, before the submit).
   *
   * @example
   * ```ts
   * cache.flush();
   * ```
   */
  flush(): void {
    this.#arena.flush();
  }

  commit(T: number): void {
    this.#length += T;
    this.#arena.release();
  }

  truncate(length: number): void {
    this.#arena.release(true);
    if (length < this.#length || this.layers.some((L) => L.tokens !== this.#length)) this.#broken = true;
  }

  /** Bytes the CPU KiviCache holds for `L` (its allocation rule). */
  #layerBytes(L: GpuKiviLayer): number {
    const s = L.spec;
    return kiviLayerBytesAt(
      { numLayers: 1, numKvHeads: s.numKvHeads, headDim: s.headDim },
      { bits: s.bits, group: s.group, residual: s.residual },
      L.tokens,
    );
  }

  #totalBytes(): number {
    let b = 0;
    for (const L of this.layers) b += this.#layerBytes(L);
    return b;
  }

  /** Accounting in the CPU KiviCache's terms (GPU store sizes + partials in `scratchBytes`). */
  stats(): CacheStats {
    let gpuBytes = this.#part.size;
    for (const L of this.layers) gpuBytes += L.bytes();
    return {
      method: `kivi${this.#kivi.bits}`,
      tokens: this.#length,
      bytes: this.#totalBytes(),
      peakBytes: this.#peak,
      scratchBytes: gpuBytes,
      layers: this.layers.map((L) => ({
        bits: L.spec.bits,
        tokens: L.tokens,
        bytes: this.#layerBytes(L),
        budget: null,
      })),
      events: [],
    };
  }

  reset(): void {
    this.#arena.release(true);
    for (const L of this.layers) L.reset();
    this.#peak = 0;
    this.#length = 0;
    this.#broken = false;
  }

  destroy(): void {
    this.#arena.destroy();
    for (const L of this.layers) L.destroy();
    for (const b of [this.#part]) b.destroy();
    this.#prompt.destroy();
  }
}
