/**
 * The MixKVQ KV cache on the GPU — `{ method: "mixkvq", tau16?, tau4?, residual?, keyGroup?, valueBits?,
 * numHeads? }` (`--kv mixkvq`), batch 1: one {@link GpuMixKvqLayer} per layer (gpu/packed/mixkvq_layer.ts),
 * byte-identical to the CPU `MixKvqCache` (src/kv/mixkvq.ts) fed the same K/V and queries, so the engine's
 * greedy tokens are the CPU engine's.
 *
 * A block flush needs the host: the tiers are chosen in f64 (the CPU's `normalizedSalience`) from the
 * block's key min/max and the f32 sum of its tokens' query magnitudes, which the CPU reduces over the GQA
 * group in f64 (docs/mixkvq.md, "GPU kernels"). So the cache records everything else into the engine's pass
 * and does the host part in {@link MixKvqGpuCache.settle}, which the engine awaits after each submission:
 *
 * | step | recorded in the engine's pass | host, in `settle()` after the submission |
 * | --- | --- | --- |
 * | decode (T = 1) | fused MixKVQ attention (blocks + residual + the exact new K/V); q → query log row r; K/V → residual row r (+ key min/max when r = R − 1) | when the residual is full: read the log, `addQueries` (the CPU's `queryMagnitudes` + f32 sums in token order), `finishBlock` (stats readback, tiers, quantize) |
 * | prefill (T > 1, empty cache) | exact prefill attention over the prompt's own K/V (CPU semantics); the T q/k/v rows → a staging buffer | read the q rows, `observeQuery` + `append` from the staging buffer (every block the prompt completes, the rest into the residual) |
 * | prefill (T > 1, tokens cached) | not supported (GpuError), as for the other packed caches | |
 *
 * {@link MixKvqGpuCache.maxChainSteps} = R − residual tokens: the engine ends a chain of greedy steps at the
 * step that fills the residual (the next step must attend to the quantized block), so a flush costs one
 * extra submit and 2 readbacks per layer, once per R tokens. The CPU cache quantizes a block within the
 * append that completes it; so does this one, as far as an engine caller can see: `settle` runs before the
 * engine returns, so `stats()` after any engine call equals the CPU's.
 *
 * A MixKVQ cache cannot roll back: {@link MixKvqGpuCache.truncate} below the length poisons it until
 * `reset()`. A NaN/Inf K or V is reported (NonFiniteError) when its block is flushed, usually after the
 * engine saw non-finite logits.
 *
 * Buffers (besides each layer's, mixkvq_layout.ts):
 * | buffer | shape | type |
 * |---|---|---|
 * | query log, per layer | [R, nH·D]: q of residual row r | f32 |
 * | prompt staging, per layer, during a prefill only | [T, (nH + 2·nKv)·D] (the qkv rows) | f32 |
 * | decode partials (all layers) | MixKvqAttention.partFloats() | f32 |
 * | prefill placeholders (cacheK/V, partials; never read with P = 0): gpu/cache/prompt_attention.ts | [nKv, 1, D], [nH, 1, D + 2] | f32 |
 *
 * @example
 * ```ts
 * const cache = await createMixKvqGpuCache(env, { method: "mixkvq", tau16: 6, tau4: 1.15 });
 * cache.encodeAttention(pass, 0, 1, P);
 * cache.encodeAppend(pass, 0, 1, P);
 * cache.commit(1);
 * await cache.settle();
 * ```
 * @module
 */
import type { CacheSpec, CacheStats } from "../../src/kv/cache.ts";
import type { MixKvqLayerExport, TierCounts } from "../../src/kv/mixkvq.ts";
import type { CacheStepFields, GpuCache, GpuCacheEnv } from "./types.ts";
import { PromptAttention } from "./prompt_attention.ts";
import { PackedGpu } from "../packed/util.ts";
import { GpuMixKvqLayer, type MixKvqSource } from "../packed/mixkvq_layer.ts";
import { MixKvqAttention } from "../packed/mixkvq_attention.ts";
import { CopyWords } from "../packed/copy_words.ts";
import { GpuError, QuantConfigError, TensorShapeError } from "../../src/errors.ts";

type MixSpec = CacheSpec & { method: "mixkvq" };

/**
 * Creates the MixKVQ cache of `spec`: validates it (the CPU's rules; QuantConfigError naming the field, or
 * a `numHeads` other than the model's), allocates every layer (capacity = the engine's) and compiles the
 * kernels. GpuError for a non-MixKVQ spec.
 *
 * @example
 * ```ts
 * const cache = await createMixKvqGpuCache(env, { method: "mixkvq", residual: 64 });
 * ```
 */
export async function createMixKvqGpuCache(env: GpuCacheEnv, spec: CacheSpec): Promise<MixKvqGpuCache> {
  if (spec.method !== "mixkvq") {
    throw new GpuError(`MixKVQ GPU cache: method "${spec.method}" is not "mixkvq"`);
  }
  const s = env.shape;
  if (spec.numHeads !== undefined && spec.numHeads !== s.numHeads) {
    throw new QuantConfigError(
      `MixKVQ numHeads ${spec.numHeads} differs from the model's ${s.numHeads} query heads`,
    );
  }
  const gpu = new PackedGpu(env.reg.ctx);
  const layers: GpuMixKvqLayer[] = [];
  try {
    for (let l = 0; l < s.numLayers; l++) {
      layers.push(
        await GpuMixKvqLayer.create(gpu, spec, {
          numKvHeads: s.numKvHeads,
          headDim: s.headDim,
          maxLen: env.capacity,
        }),
      );
    }
    const [att, copy, prompt] = await Promise.all([
      MixKvqAttention.create(gpu, layers[0].geo, s.numHeads),
      CopyWords.create(gpu),
      PromptAttention.create(env, "mixkvq"),
    ]);
    return new MixKvqGpuCache(env, spec, gpu, layers, att, copy, prompt);
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
 * const cache: MixKvqGpuCache = await createMixKvqGpuCache(env, { method: "mixkvq" });
 * ```
 */
export class MixKvqGpuCache implements GpuCache {
  readonly spec: CacheSpec;
  readonly capacity: number;
  readonly canTruncate = false;
  /** The GPU layers (`readExport` reads them back, for tests and tools). */
  readonly layers: readonly GpuMixKvqLayer[];
  readonly gpu: PackedGpu;
  readonly #env: GpuCacheEnv;
  readonly #att: MixKvqAttention;
  readonly #copy: CopyWords;
  readonly #prompt: PromptAttention;
  /** decode partials, shared by all layers */ readonly #part: GPUBuffer;
  /** per layer [R, nH·D] f32: q of residual row r */ readonly #qlog: GPUBuffer[];
  /** per layer: a recorded prompt waiting for settle() */ #staged: ({ buf: GPUBuffer; T: number } | null)[];
  readonly #qkvStride: number;
  readonly #qWords: number;
  #temps: GPUBuffer[] = [];
  #peak = 0;
  #length = 0;
  #broken = false;

  constructor(
    env: GpuCacheEnv,
    spec: MixSpec,
    gpu: PackedGpu,
    layers: GpuMixKvqLayer[],
    att: MixKvqAttention,
    copy: CopyWords,
    prompt: PromptAttention,
  ) {
    this.#env = env;
    this.spec = spec;
    this.capacity = env.capacity;
    this.gpu = gpu;
    this.layers = layers;
    this.#att = att;
    this.#copy = copy;
    this.#prompt = prompt;
    const { numHeads: nH, numKvHeads: nKv, headDim: D } = env.shape;
    this.#qkvStride = (nH + 2 * nKv) * D;
    this.#qWords = nH * D;
    this.#part = gpu.storage("mixkvq decode partials", 4 * att.partFloats());
    this.#qlog = layers.map((L, l) =>
      gpu.storage(`mixkvq query log ${l} [${L.geo.R}, ${nH * D}] f32`, 4 * L.geo.R * nH * D)
    );
    this.#staged = layers.map(() => null);
  }

  get length(): number {
    return this.#length;
  }

  #checkUsable(): void {
    if (this.#broken) {
      throw new GpuError("the MixKVQ GPU cache cannot roll back a failed or overshooting step; reset() it");
    }
  }

  /** True when a submission left host work for {@link settle}. */
  #unsettled(): boolean {
    return this.#staged.some((s) => s !== null) || this.layers.some((L) => L.blockDue);
  }

  /**
   * Single-token steps that may be recorded before the cache needs the host: the residual's free rows (the
   * step that fills it ends the chain). At least 1.
   *
   * @example
   * ```ts
   * const m = Math.min(64, cache.maxChainSteps());
   * ```
   */
  maxChainSteps(): number {
    return Math.max(1, this.layers.length ? this.layers[0].room : 1);
  }

  /**
   * Throws (before anything is recorded) what recording steps of `Ts` tokens would raise: GpuError when
   * the cache is unusable, {@link settle} is due, a multi-token step follows cached tokens or is not the
   * last step, or single-token steps go past the residual's free rows ({@link maxChainSteps});
   * TensorShapeError beyond the capacity.
   *
   * @example
   * ```ts
   * cache.checkSteps([1, 1]);
   * ```
   */
  checkSteps(Ts: readonly number[]): void {
    this.#checkUsable();
    if (this.#unsettled()) throw new GpuError("MixKVQ GPU cache: settle() the last submission first");
    Ts.forEach((T, i) => {
      if (T > 1 && (this.#length > 0 || i < Ts.length - 1)) {
        throw new GpuError(
          `a ${T}-token prefill after ${this.#length} cached tokens${
            i > 0 ? " or other steps" : ""
          } is not ` +
            `yet supported by the MixKVQ webgpu cache (prefill the whole prompt at once, or decode token by token)`,
        );
      }
    });
    const ones = Ts.filter((T) => T === 1).length;
    if (ones > this.maxChainSteps()) {
      throw new GpuError(
        `MixKVQ GPU cache: ${ones} single-token steps in one submission, but a block is due after ` +
          `${this.maxChainSteps()} (the host chooses its tiers)`,
      );
    }
    const n = Ts.reduce((a, b) => a + b, this.#length);
    if (n > this.capacity) {
      throw new TensorShapeError(`MixKVQ GPU cache: ${n} tokens exceed its capacity ${this.capacity}`);
    }
  }

  stepFields(_T: number, _P: number): CacheStepFields {
    return { split: 64, nSplits: 1 };
  }

  encodeAttention(pass: GPUComputePassEncoder, layer: number, T: number, P: number): void {
    this.#checkUsable();
    const L = this.layers[layer];
    if (L.length !== P || this.#staged[layer] !== null) {
      throw new GpuError(
        `MixKVQ cache layer ${layer}: step after ${P} tokens, holds ${L.length} (or unsettled)`,
      );
    }
    if (T > 1) {
      this.#prompt.encode(pass, T, P, "MixKVQ");
      return;
    }
    const { numHeads: nH, numKvHeads: nKv, headDim: D } = this.#env.shape;
    this.#temps.push(
      ...this.#att.encode(
        pass,
        L.attentionBuffers(this.#env.io.qkv, this.#part, this.#env.io.out),
        L.attentionParams({ q: 0, k: nH * D, v: (nH + nKv) * D, out: 0 }),
      ),
    );
  }

  encodeAppend(pass: GPUComputePassEncoder, layer: number, T: number, _P: number): void {
    this.#checkUsable();
    const L = this.layers[layer], qkv = this.#env.io.qkv;
    if (T > 1) {
      const n = T * this.#qkvStride;
      const buf = this.gpu.storage(`mixkvq prompt staging ${layer} [${T}, ${this.#qkvStride}] f32`, 4 * n);
      this.#staged[layer] = { buf, T };
      this.#temps.push(this.#copy.encode(pass, { src: qkv, srcOff: 0 }, { dst: buf, dstOff: 0 }, n));
      return;
    }
    const row = L.residualTokens;
    this.#temps.push(
      this.#copy.encode(pass, { src: qkv, srcOff: 0 }, {
        dst: this.#qlog[layer],
        dstOff: row * this.#qWords,
      }, this.#qWords),
      ...L.recordToken(pass, this.#source(qkv)),
    );
  }

  /** K/V of token i at row i of `x` (the qkv layout). */
  #source(x: GPUBuffer): MixKvqSource {
    const { numHeads: nH, numKvHeads: nKv, headDim: D } = this.#env.shape;
    return { x, k: nH * D, v: (nH + nKv) * D, tokStride: this.#qkvStride };
  }

  commit(T: number): void {
    this.#length += T;
    for (const b of this.#temps) b.destroy();
    this.#temps = [];
  }

  /**
   * The host part of the last submission (module doc): stores a staged prompt, completes every block the
   * recorded tokens filled. Layers run concurrently (their readbacks overlap). On any error the cache is
   * unusable until `reset()` (NonFiniteError for a bad K/V/q, as the CPU would raise).
   *
   * @example
   * ```ts
   * queue.submit([enc.finish()]); cache.commit(1); await cache.settle();
   * ```
   */
  async settle(): Promise<void> {
    if (this.#unsettled()) {
      this.#checkUsable();
      const res = await Promise.allSettled(this.layers.map((_, l) => this.#settleLayer(l)));
      const failed = res.find((r) => r.status === "rejected");
      if (failed) {
        this.#broken = true;
        throw (failed as PromiseRejectedResult).reason;
      }
    }
    // the CPU's bytes only grow between resets, so its peak is the total after the last append
    const total = this.#totalBytes();
    if (total > this.#peak) this.#peak = total;
  }

  async #settleLayer(l: number): Promise<void> {
    const L = this.layers[l], staged = this.#staged[l];
    if (staged) {
      this.#staged[l] = null;
      try {
        await this.#foldQueries(l);
        const rows = new Float32Array(await this.gpu.read(staged.buf, 0, 4 * staged.T * this.#qkvStride));
        L.observeQuery(this.#queryRows(rows, 0, staged.T, this.#qkvStride), staged.T);
        await L.append(this.#source(staged.buf), staged.T);
      } finally {
        staged.buf.destroy();
      }
    }
    if (L.blockDue) {
      await this.#foldQueries(l);
      await L.finishBlock();
    }
  }

  /** Reads the logged queries of the residual tokens not yet in the layer's sums and folds them in. */
  async #foldQueries(l: number): Promise<void> {
    const L = this.layers[l];
    const first = L.queryTokens, n = L.residualTokens - first;
    if (n === 0) return;
    const w = this.#qWords;
    const q = new Float32Array(await this.gpu.read(this.#qlog[l], 4 * first * w, 4 * n * w));
    L.addQueries(q, n);
  }

  /** q [t, nH, D] of rows [from, from + t) of `rows` (row stride `stride` floats, q first). */
  #queryRows(rows: Float32Array, from: number, t: number, stride: number): Float32Array {
    const w = this.#qWords;
    const q = new Float32Array(t * w);
    for (let i = 0; i < t; i++) q.set(rows.subarray((from + i) * stride, (from + i) * stride + w), i * w);
    return q;
  }

  /**
   * Layer `layer` in the CPU's `exportLayer` form (the query sums include every residual token: the query
   * log is folded first). For tests and tools: it waits for the GPU. GpuError before {@link settle}.
   *
   * @example
   * ```ts
   * const ex = await cache.readExport(0); // same bytes as MixKvqCache.exportLayer(0)
   * ```
   */
  async readExport(layer: number): Promise<MixKvqLayerExport> {
    this.#checkUsable();
    if (this.#unsettled()) throw new GpuError("MixKVQ GPU cache: settle() the last submission first");
    await this.#foldQueries(layer);
    return await this.layers[layer].readExport(layer);
  }

  truncate(length: number): void {
    for (const b of this.#temps) b.destroy();
    this.#temps = [];
    if (
      length < this.#length || this.layers.some((L) => L.length !== this.#length) ||
      this.#staged.some((s) => s !== null)
    ) this.#broken = true;
  }

  #totalBytes(): number {
    let b = 0;
    for (const L of this.layers) b += L.cpuBytes();
    return b;
  }

  /** Accounting in the CPU MixKvqCache's terms (GPU buffer sizes in `scratchBytes`). */
  stats(): CacheStats {
    let gpuBytes = this.#part.size;
    for (const [l, L] of this.layers.entries()) gpuBytes += L.gpuBytes() + this.#qlog[l].size;
    const sum = (ts: readonly { tiers: TierCounts }[]) =>
      ts.reduce((a, b) => ({ n16: a.n16 + b.tiers.n16, n4: a.n4 + b.tiers.n4, n2: a.n2 + b.tiers.n2 }), {
        n16: 0,
        n4: 0,
        n2: 0,
      });
    const kBits = (t: TierCounts) => {
      const n = t.n16 + t.n4 + t.n2;
      return n === 0 ? 16 : (16 * t.n16 + 4 * t.n4 + 2 * t.n2) / n;
    };
    const vb = this.layers.length ? this.layers[0].config.valueBits : 2;
    const per = this.layers.map((L) => sum(L.blocks));
    const all = per.reduce((a, b) => ({ n16: a.n16 + b.n16, n4: a.n4 + b.n4, n2: a.n2 + b.n2 }), {
      n16: 0,
      n4: 0,
      n2: 0,
    });
    const out: CacheStats = {
      method: "mixkvq",
      tokens: this.#length,
      bytes: this.#totalBytes(),
      peakBytes: this.#peak,
      scratchBytes: gpuBytes,
      layers: this.layers.map((L, l) => ({
        bits: L.blocks.length === 0 ? 16 : Math.round(((kBits(per[l]) + vb) / 2) * 1000) / 1000,
        tokens: L.length,
        bytes: L.cpuBytes(),
        budget: null,
      })),
      events: [],
    };
    if (all.n16 + all.n4 + all.n2 > 0) out.avgBits = { k: kBits(all), v: vb };
    return out;
  }

  reset(): void {
    for (const b of this.#temps) b.destroy();
    this.#temps = [];
    for (const [l, s] of this.#staged.entries()) {
      s?.buf.destroy();
      this.#staged[l] = null;
    }
    for (const L of this.layers) L.reset();
    this.#peak = 0;
    this.#length = 0;
    this.#broken = false;
  }

  destroy(): void {
    for (const b of this.#temps) b.destroy();
    for (const s of this.#staged) s?.buf.destroy();
    for (const L of this.layers) L.destroy();
    for (const b of [this.#part, ...this.#qlog]) b.destroy();
    this.#prompt.destroy();
  }
}
