/**
 * The packed (quantized) KV cache on the GPU for the grouped methods — `{ method: "static", bits }` and
 * `{ method: "pmkvq", ... }` — batch 1: one {@link GpuGroupedLayer} per layer (gpu/packed/grouped_layer.ts),
 * which moves tokens exactly like the CPU `GroupedCache` (src/kv/grouped.ts), so codes, scales, zeros,
 * widths, shrink events and byte counts match the CPU cache fed the same K/V.
 *
 * Per layer and step (inside the engine's compute pass, see gpu/cache/types.ts):
 * | step | kernels |
 * | --- | --- |
 * | decode (T = 1) | FusedAttention (split-K partial + reduce) over [sink \| body \| window] of the packed store plus the new token's exact K/V from `io.qkv` |
 * | prefill (T > 1, empty cache) | the exact prefill attention (kernels/attention) over the prompt's own exact K/V (CPU semantics) |
 * | prefill (T > 1, tokens cached) | not supported (GpuError): would need the cached tokens dequantized head-major |
 * | append | `GpuGroupedLayer.recordAppend`: quantize_append / ERS flushes / shrink, recorded into the same pass |
 *
 * Uniforms: every kernel of a step stages its uniform in the cache's {@link UniformArena} (bind groups cached,
 * one upload per submission in {@link PackedGpuCache.flush}); recording a decode step creates no GPU object
 * (before: two buffers and two bind groups per kernel call, ≈ 1 ms per tiny-lm token on the H100 host).
 * Host decisions (width, BudgetError) are taken at record time from the token counts, so chained greedy
 * steps record correctly; {@link PackedGpuCache.checkSteps} raises the BudgetError before anything is recorded.
 * A packed cache cannot roll back: {@link PackedGpuCache.truncate} below the length poisons it until `reset()`.
 *
 * Buffers:
 * | buffer | shape | type |
 * |---|---|---|
 * | per layer: sinkWindow, body, status | GpuGroupedLayer stores (layout.ts) | u32 |
 * | decode partials (all layers) | FusedAttention.partialFloats(1, splits) | f32 |
 * | uniform arena pages | uniform_arena.ts | u32 |
 * | prefill placeholders (cacheK/V, partials; never read with P = 0): gpu/cache/prompt_attention.ts | [nKv, 1, D], [nH, 1, D + 2] | f32 |
 *
 * @example
 * ```ts
 * const cache = await createPackedGpuCache(env, { method: "static", bits: 4 });
 * cache.checkSteps([1]);
 * cache.encodeAttention(pass, 0, 1, P);
 * cache.encodeAppend(pass, 0, 1, P);
 * cache.flush();
 * device.queue.submit([encoder.finish()]);
 * cache.commit(1);
 * ```
 * @module
 */
import type { CacheSpec, CacheStats, ShrinkEvent } from "../../src/kv/cache.ts";
import type { CacheStepFields, GpuCache, GpuCacheEnv } from "./types.ts";
import { groupedConfigOf } from "../../src/kv/factory.ts";
import { layerBytesAt } from "../../src/kv/accounting.ts";
import { storageBuffer } from "../buffers.ts";
import { checkPromptSteps, PromptAttention } from "./prompt_attention.ts";
import { PackedGpu } from "../packed/util.ts";
import { UniformArena } from "../packed/uniform_arena.ts";
import { GpuGroupedLayer, qkvAppendSource } from "../packed/grouped_layer.ts";
import {
  decodeSplitTarget,
  DEFAULT_ATTENTION_TUNING,
  FusedAttention,
  type FusedAttentionConfig,
} from "../packed/attention.ts";
import { type TensorFormat, tokenFormat } from "../packed/layout.ts";
import { GpuError } from "../../src/errors.ts";

/**
 * Creates the packed cache of `spec` ("static" or "pmkvq"): allocates every layer and compiles every kernel
 * any width it can reach needs.
 *
 * @example
 * ```ts
 * const cache = await createPackedGpuCache(env, { method: "pmkvq", finalBits: [2, 2], budgets: null, maxLen: 512 });
 * ```
 */
export async function createPackedGpuCache(env: GpuCacheEnv, spec: CacheSpec): Promise<PackedGpuCache> {
  if (spec.method !== "static" && spec.method !== "pmkvq") {
    throw new GpuError(`packed GPU cache: method "${spec.method}" is not a grouped method`);
  }
  const s = env.shape;
  const cfg = groupedConfigOf(spec, s.numLayers);
  if (cfg.finalBits.length !== s.numLayers) {
    throw new GpuError(
      `packed GPU cache: finalBits has ${cfg.finalBits.length} entries for ${s.numLayers} layers`,
    );
  }
  if (cfg.budgets !== null && cfg.budgets.length !== s.numLayers) {
    throw new GpuError(
      `packed GPU cache: budgets has ${cfg.budgets.length} entries for ${s.numLayers} layers`,
    );
  }
  const gpu = new PackedGpu(env.reg.ctx);
  const layers: GpuGroupedLayer[] = [];
  try {
    for (let l = 0; l < s.numLayers; l++) {
      const layer = await GpuGroupedLayer.create(gpu, {
        batch: 1,
        numKvHeads: s.numKvHeads,
        headDim: s.headDim,
        sink: cfg.sink,
        window: cfg.window,
        initBits: cfg.initBits === "final" ? cfg.finalBits[l] : cfg.initBits,
        finalBits: cfg.finalBits[l],
        budget: cfg.budgets?.[l] ?? null,
        maxLen: env.capacity,
      });
      layers.push(layer);
      await layer.precompile();
    }
    const widths = new Set<number>();
    layers.forEach((L) => {
      for (let b = L.spec.initBits; b >= L.spec.finalBits; b /= 2) widths.add(b);
    });
    const att = new Map<number, FusedAttention>();
    for (const b of widths) {
      att.set(b, await FusedAttention.create(gpu, fusedConfig(env, cfg.sink, cfg.window, b)));
    }
    const prompt = await PromptAttention.create(env, "packed");
    return new PackedGpuCache(env, spec, cfg.method, gpu, layers, att, prompt);
  } catch (e) {
    for (const L of layers) L.destroy();
    throw e;
  }
}

/** The FusedAttention config of a layer at body width `bits` (mirrors GpuGroupedLayer.attentionConfig). */
function fusedConfig(env: GpuCacheEnv, sink: number, window: number, bits: number): FusedAttentionConfig {
  const stores: { k: TensorFormat; v: TensorFormat }[] = [];
  const sw = sink + window > 0;
  if (sw) stores.push({ k: "q16", v: "q16" });
  const bf = tokenFormat(bits);
  stores.push({ k: bf, v: bf });
  const seg = (i: number) => ({
    k: { store: i, tensor: "k" as const },
    v: { store: i, tensor: "v" as const },
  });
  const segments = [];
  if (sink > 0) segments.push(seg(0));
  segments.push(seg(sw ? 1 : 0));
  if (window > 0) segments.push(seg(0));
  return {
    numHeads: env.shape.numHeads,
    numKvHeads: env.shape.numKvHeads,
    headDim: env.shape.headDim,
    maxBatch: 1,
    tuning: DEFAULT_ATTENTION_TUNING,
    stores,
    segments,
  };
}

/**
 * See the module doc.
 *
 * @example
 * ```ts
 * const cache: PackedGpuCache = await createPackedGpuCache(env, { method: "static", bits: 4 });
 * ```
 */
export class PackedGpuCache implements GpuCache {
  readonly spec: CacheSpec;
  readonly capacity: number;
  readonly canTruncate = false;
  /** The GPU layers (stores readable with `gpu.read`, for tests and tools). */
  readonly layers: readonly GpuGroupedLayer[];
  readonly gpu: PackedGpu;
  readonly #env: GpuCacheEnv;
  readonly #method: string;
  readonly #att: Map<number, FusedAttention>;
  readonly #prompt: PromptAttention;
  /** decode partials, shared by all layers */ readonly #part: GPUBuffer;
  readonly #qkvStride: number;
  readonly #target: number;
  /** Uniforms of the recorded, not yet committed steps. */
  readonly #arena: UniformArena;
  /** Temporaries recorded since the last commit (replaced stores). */
  #temps: GPUBuffer[] = [];
  #events: ShrinkEvent[] = [];
  #peak = 0;
  #length = 0;
  #broken = false;

  constructor(
    env: GpuCacheEnv,
    spec: CacheSpec,
    method: string,
    gpu: PackedGpu,
    layers: GpuGroupedLayer[],
    att: Map<number, FusedAttention>,
    prompt: PromptAttention,
  ) {
    this.#env = env;
    this.spec = spec;
    this.#method = method;
    this.capacity = env.capacity;
    this.gpu = gpu;
    this.layers = layers;
    this.#att = att;
    this.#prompt = prompt;
    const { numHeads: nH, numKvHeads: nKv, headDim: D } = env.shape;
    this.#qkvStride = (nH + 2 * nKv) * D;
    this.#target = decodeSplitTarget(nKv);
    this.#arena = new UniformArena(gpu, "packed cache uniforms");
    const ctx = env.reg.ctx;
    // splits ≤ target + one per segment (planSplits rounds each segment up)
    let floats = 0;
    for (const a of att.values()) floats = Math.max(floats, a.partialFloats(1, this.#target + 4));
    this.#part = storageBuffer(ctx, `packed decode partials [${floats}] f32`, 4 * floats);
  }

  get length(): number {
    return this.#length;
  }

  #checkUsable(): void {
    if (this.#broken) {
      throw new GpuError("the packed GPU cache cannot roll back a failed or overshooting step; reset() it");
    }
  }

  /**
   * Throws (before anything is recorded) what recording steps of `Ts` tokens would raise: BudgetError when
   * a layer outgrows its budget, GpuError for a multi-token step after cached tokens.
   *
   * @example
   * ```ts
   * cache.checkSteps([1, 1, 1]);
   * ```
   */
  checkSteps(Ts: readonly number[]): void {
    this.#checkUsable();
    const added = checkPromptSteps("packed", this.#length, Ts);
    for (const L of this.layers) L.checkCapacity(added);
  }

  stepFields(_T: number, _P: number): CacheStepFields {
    return { split: 64, nSplits: 1 };
  }

  encodeAttention(pass: GPUComputePassEncoder, layer: number, T: number, P: number): void {
    this.#checkUsable();
    const L = this.layers[layer];
    if (L.tokens !== P) {
      throw new GpuError(`packed cache layer ${layer}: step after ${P} tokens, holds ${L.tokens}`);
    }
    if (T > 1) {
      this.#prompt.encode(pass, T, P, "packed");
      return;
    }
    const { numHeads: nH, numKvHeads: nKv, headDim: D } = this.#env.shape;
    const att = this.#att.get(L.bits)!;
    const inp = L.attentionInputs();
    const d = att.prepare({
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
    att.encode(pass, d);
  }

  encodeAppend(pass: GPUComputePassEncoder, layer: number, T: number, _P: number): void {
    this.#checkUsable();
    const L = this.layers[layer];
    const before = L.events.length;
    const temps = L.recordAppend(pass, qkvAppendSource(this.#env.io.qkv, this.#env.shape), T, this.#arena);
    this.#temps.push(...temps);
    for (const e of L.events.slice(before)) {
      this.#events.push({ step: e.step, layer, from: e.from, to: e.to });
    }
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
    this.#dropTemps();
    // the submission reading the staged uniforms is queued: the slots may be reused (GpuError if unflushed)
    this.#arena.release();
  }

  /** Destroys replaced stores (the pass using them is submitted: freed once the GPU is done with it). */
  #dropTemps(): void {
    if (this.#temps.length > 0) this.#arena.forget();
    for (const b of this.#temps) b.destroy();
    this.#temps = [];
  }

  truncate(length: number): void {
    this.#dropTemps();
    this.#arena.release(true);
    if (length < this.#length || this.layers.some((L) => L.tokens !== this.#length)) this.#broken = true;
  }

  /** Bytes the CPU GroupedCache holds for `L` (layerBytesAt: its allocation rule). */
  #layerBytes(L: GpuGroupedLayer): number {
    const shape = { numLayers: 1, numKvHeads: L.spec.numKvHeads, headDim: L.spec.headDim };
    return layerBytesAt(shape, { bits: L.bits, sink: L.spec.sink, window: L.spec.window }, L.tokens);
  }

  #totalBytes(): number {
    let b = 0;
    for (const L of this.layers) b += this.#layerBytes(L);
    return b;
  }

  /** Accounting in the CPU GroupedCache's terms (bytes by its allocation rule; GPU store sizes in `scratchBytes`). */
  stats(): CacheStats {
    let gpuBytes = this.#part.size;
    for (const L of this.layers) gpuBytes += L.bytes();
    return {
      method: this.#method,
      tokens: this.#length,
      bytes: this.#totalBytes(),
      peakBytes: this.#peak,
      scratchBytes: gpuBytes,
      layers: this.layers.map((L) => ({
        bits: L.bits,
        tokens: L.tokens,
        bytes: this.#layerBytes(L),
        budget: L.spec.budget,
      })),
      events: this.#events.map((e) => ({ ...e })),
    };
  }

  reset(): void {
    this.#dropTemps();
    this.#arena.release(true);
    for (const L of this.layers) L.reset();
    this.#events = [];
    this.#peak = 0;
    this.#length = 0;
    this.#broken = false;
  }

  destroy(): void {
    for (const b of this.#temps) b.destroy();
    this.#arena.destroy();
    for (const L of this.layers) L.destroy();
    for (const b of [this.#part]) b.destroy();
    this.#prompt.destroy();
  }
}
