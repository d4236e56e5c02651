/**
 * The WebGPU backend: the {@link Engine} contract over {@link GpuForward} and a {@link GpuCache}.
 *
 * Everything is allocated at creation (weights, activations for one prefill chunk, the cache at full capacity,
 * step uniforms, readback staging); a step allocates nothing. A decode step is ONE command buffer, ONE
 * submit and ONE readback (the logits, or 8 bytes for {@link GpuEngine.decodeGreedy}). Prefill runs the prompt
 * in chunks of `prefillChunk` tokens, one submit per chunk, and reads back only the last logits.
 * {@link GpuEngine.decodeGreedyMany} chains greedy steps on the GPU (each step embeds the token the previous
 * step's argmax wrote) and reads back all tokens of a chunk at once, avoiding a GPU→host round trip per
 * token, which in Deno costs ≥ 10 ms (its mapAsync polls every 10 ms); it submits further chunks before
 * reading earlier ones back (all of them when the caller needs no token early), so the host records while the
 * GPU runs.
 *
 * Caches: `{ method: "exact" }` (f32 K/V, gpu/cache/exact.ts), the grouped packed methods `static` and
 * `pmkvq` (gpu/cache/packed.ts), `kivi` (gpu/cache/kivi.ts) and `mixkvq` (gpu/cache/mixkvq.ts); the packed
 * ones prefill a prompt in one chunk by default. bf16 exact throws GpuError "not yet supported on webgpu".
 * A cache may need the host between submissions (MixKVQ's block flush): the engine awaits its optional
 * `settle()` after every submit and ends greedy chains at its optional `maxChainSteps()`.
 *
 * Host-side buffers:
 * | buffer | shape | type |
 * |---|---|---|
 * | step params | [stepSlots, stride] (gpu/step.ts) | uniform u32 |
 * | logits readback | [vocab] | f32, MAP_READ |
 * | token readback | [ceil(capacity / greedyChunk) + 1, 2, greedyChunk + 1]: per chunk slot, chosen ids then non-finite counts | u32, MAP_READ |
 *
 * @example
 * ```ts
 * import { loadModel } from "../src/model/load.ts";
 * const engine = await createGpuEngine(await loadModel("models/tiny-lm"), { method: "exact" });
 * console.log(engine.device);
 * let logits = await engine.prefill([85, 296, 270]);
 * const next = await engine.decodeGreedy(261);
 * const more = await engine.decodeGreedyMany(next, 32);
 * engine.dispose();
 * ```
 * @module
 */
import type { Engine, PrefillOptions } from "../src/engine.ts";
import type { LoadedModel, ModelConfig } from "../src/model/types.ts";
import type { CacheSpec, CacheStats } from "../src/kv/cache.ts";
import type { GpuCache, GpuCacheEnv } from "./cache/types.ts";
import { acquireGpu, type GpuContext } from "./device.ts";
import { type KernelRegistry, registryFor } from "./registry.ts";
import { StepBuffer } from "./step.ts";
import { Readback } from "./buffers.ts";
import { type GpuWeights, uploadWeights } from "./weights.ts";
import { GpuForward } from "./forward.ts";
import { createExactGpuCache } from "./cache/exact.ts";
import { createPackedGpuCache } from "./cache/packed.ts";
import { createKiviGpuCache } from "./cache/kivi.ts";
import { createMixKvqGpuCache } from "./cache/mixkvq.ts";
import { GpuError, InputError, NonFiniteError } from "../src/errors.ts";

/** Options of {@link createGpuEngine}. */
export interface GpuEngineOptions {
  /** Context capacity in tokens (default: max_position_embeddings). The cache is allocated for it. */
  maxLen?: number;
  /**
   * Prompt tokens per prefill step (default 256; packed caches: {@link PACKED_PREFILL_CHUNK}, capped at
   * maxLen, since they prefill a prompt in one chunk). Activations are sized for it.
   */
  prefillChunk?: number;
  /** Greedy steps chained per submit by {@link GpuEngine.decodeGreedyMany} (default 64). */
  greedyChunk?: number;
  /** An existing context to run on (not destroyed by dispose). Default: acquire one (destroyed by dispose). */
  context?: GpuContext;
  /** Weight storage: "auto" (bf16 when exact, default) or "f32". */
  weights?: "auto" | "f32";
  /** Builds the cache instead of the built-in one for `spec` (phase 2: packed caches). */
  cacheFactory?: (env: GpuCacheEnv) => Promise<GpuCache>;
}

/** Options of {@link GpuEngine.decodeGreedyMany}. */
export interface GreedyManyOptions {
  /** Stop after this token (it is included). Steps already recorded past it are rolled back. */
  stopIds?: readonly number[];
  /** Called with each token as its chunk is read back. */
  onToken?: (id: number, index: number) => void;
}

/**
 * Default prefill chunk of the packed caches (static, pmkvq, kivi, mixkvq): they prefill a prompt in one chunk, so this is
 * the longest prompt they take without an explicit `prefillChunk`.
 */
export const PACKED_PREFILL_CHUNK = 4096;

function cacheFactoryFor(spec: CacheSpec): (env: GpuCacheEnv) => Promise<GpuCache> {
  if (spec.method === "exact") {
    if (spec.dtype !== undefined && spec.dtype !== "f32") {
      throw new GpuError(`KV cache exact-${spec.dtype} is not yet supported on webgpu (only exact f32)`);
    }
    return createExactGpuCache;
  }
  if (spec.method === "static" || spec.method === "pmkvq") {
    return (env) => createPackedGpuCache(env, spec);
  }
  if (spec.method === "kivi") return (env) => createKiviGpuCache(env, spec);
  if (spec.method === "mixkvq") return (env) => createMixKvqGpuCache(env, spec);
  throw new GpuError(
    `KV cache method "${
      (spec as { method: string }).method
    }" is not yet supported on webgpu (exact f32, static, kivi, pmkvq and mixkvq are)`,
  );
}

/**
 * Creates a WebGPU engine for `model` with the cache of `spec` (phase 1: exact f32).
 * Rejects with GpuError when no adapter exists, the method is unsupported, or a buffer exceeds the limits.
 *
 * @example
 * ```ts
 * const engine = await createGpuEngine(model, { method: "exact" }, { maxLen: 2048 });
 * ```
 */
export async function createGpuEngine(
  model: LoadedModel,
  spec: CacheSpec,
  options: GpuEngineOptions = {},
): Promise<GpuEngine> {
  const makeCache = options.cacheFactory ?? cacheFactoryFor(spec);
  const c = model.config;
  const capacity = options.maxLen ?? c.maxPositionEmbeddings;
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > c.maxPositionEmbeddings) {
    throw new InputError(`maxLen ${capacity} must be an integer in [1, ${c.maxPositionEmbeddings}]`);
  }
  // packed caches: a prompt attends to its own EXACT K/V (CPU semantics), so it is prefilled in one chunk
  // (activations sized for up to PACKED_PREFILL_CHUNK tokens unless prefillChunk says otherwise)
  const packed = !options.cacheFactory &&
    (spec.method === "static" || spec.method === "pmkvq" || spec.method === "kivi" ||
      spec.method === "mixkvq");
  const chunk = Math.min(options.prefillChunk ?? (packed ? PACKED_PREFILL_CHUNK : 256), capacity);
  const greedyChunk = options.greedyChunk ?? 64;
  if (!Number.isInteger(chunk) || chunk < 1) {
    throw new InputError(`prefillChunk ${chunk} must be a positive integer`);
  }
  if (!Number.isInteger(greedyChunk) || greedyChunk < 1) {
    throw new InputError(`greedyChunk ${greedyChunk} must be a positive integer`);
  }
  const owned = !options.context;
  const ctx = options.context ?? await acquireGpu();
  let weights: GpuWeights | null = null;
  try {
    const reg = registryFor(ctx);
    weights = uploadWeights(ctx, model, { format: options.weights ?? "auto" });
    // greedy chains alternate between two id regions of greedyChunk + 1 slots (engine.decodeGreedyMany)
    const sizes = { capacity, maxTokens: chunk, idSlots: Math.max(chunk, 2 * (greedyChunk + 1)) };
    const fwd = await GpuForward.create(reg, model, weights, sizes, makeCache);
    const engine = new GpuEngine(ctx, owned, reg, weights, fwd, spec, greedyChunk);
    ctx.check();
    return engine;
  } catch (e) {
    weights?.destroy();
    if (owned) ctx.destroy();
    throw e;
  }
}

/**
 * The WebGPU engine (see the module doc).
 *
 * @example
 * ```ts
 * const engine: GpuEngine = await createGpuEngine(model, { method: "exact" });
 * ```
 */
export class GpuEngine implements Engine {
  readonly backend = "webgpu" as const;
  readonly device: string;
  readonly config: ModelConfig;
  readonly cacheSpec: CacheSpec;
  /** The device context the engine runs on. */
  readonly ctx: GpuContext;
  /** Compiled kernels of the device (one registry per device). */
  readonly registry: KernelRegistry;
  /** Model weights uploaded to the device. */
  readonly weights: GpuWeights;
  /** The recorded forward pass (activations, cache, per-step encoding). */
  readonly forward: GpuForward;
  readonly #owned: boolean;
  readonly #steps: StepBuffer;
  readonly #logitsRb: Readback;
  /** [slots, 2, greedyChunk + 1] u32: per chunk of a greedy chain, chosen tokens then non-finite counts */
  readonly #tokensRb: Readback;
  /** Chunk slots of #tokensRb: every chunk of the longest possible chain can be in flight at once. */
  readonly #tokenSlots: number;
  readonly #greedyChunk: number;
  #position = 0;
  #disposed = false;

  /** Internal: use {@link createGpuEngine}, which validates options and allocates every buffer. */
  constructor(
    ctx: GpuContext,
    owned: boolean,
    reg: KernelRegistry,
    weights: GpuWeights,
    fwd: GpuForward,
    spec: CacheSpec,
    greedyChunk: number,
  ) {
    this.ctx = ctx;
    this.#owned = owned;
    this.device = ctx.description;
    this.registry = reg;
    this.weights = weights;
    this.forward = fwd;
    this.config = fwd.config;
    this.cacheSpec = spec;
    this.#greedyChunk = greedyChunk;
    this.#steps = new StepBuffer(reg, greedyChunk);
    this.#logitsRb = new Readback(ctx, `logits [${fwd.config.vocabSize}] f32`, 4 * fwd.config.vocabSize);
    const R = greedyChunk + 1;
    this.#tokenSlots = Math.ceil(fwd.sizes.capacity / greedyChunk) + 1;
    this.#tokensRb = new Readback(ctx, `tokens [${this.#tokenSlots}, 2, ${R}] u32`, this.#tokenSlots * 8 * R);
  }

  get position(): number {
    return this.#position;
  }

  /** Tokens the cache can hold. */
  get capacity(): number {
    return this.forward.sizes.capacity;
  }

  #check(): void {
    if (this.#disposed) throw new GpuError("the WebGPU engine was disposed");
    this.ctx.check();
  }

  #checkRoom(n: number): void {
    if (this.#position + n > this.capacity) {
      const max = this.config.maxPositionEmbeddings;
      const what = this.capacity === max
        ? `the model's max_position_embeddings ${max}`
        : `the engine's maxLen ${this.capacity}`;
      throw new InputError(
        `context of ${this.#position + n} tokens (${this.#position} in context + ${n} new) exceeds ${what}`,
      );
    }
  }

  #checkIds(ids: ArrayLike<number>): void {
    const V = this.config.vocabSize;
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t];
      if (!Number.isInteger(id) || id < 0 || id >= V) {
        throw new InputError(`token id ${id} at index ${t} is outside the vocabulary [0, ${V})`);
      }
    }
  }

  /** Stages step slot `slot` for T tokens after P cached. */
  #setStep(slot: number, T: number, P: number, idBase: number, idOut: number): void {
    const f = this.forward.cache.stepFields(T, P);
    this.#steps.set(slot, { T, P, pos0: P, idBase, idOut, split: f.split, nSplits: f.nSplits });
  }

  /** Records the steps [first, first + count) of `plan` into one command buffer and submits it. */
  #submitSteps(
    steps: { T: number; P: number; argmax: boolean }[],
    after?: (enc: GPUCommandEncoder) => void,
  ): void {
    this.forward.cache.checkSteps?.(steps.map((s) => s.T));
    this.#steps.flush();
    const enc = this.ctx.device.createCommandEncoder({ label: "forward" });
    const pass = enc.beginComputePass({ label: "forward" });
    steps.forEach((s, i) => {
      pass.setBindGroup(1, this.#steps.bindGroup, [this.#steps.offset(i)]);
      this.forward.encodeStep(pass, s.T, s.P, s.argmax);
    });
    pass.end();
    after?.(enc);
    this.forward.cache.flush?.();
    this.ctx.device.queue.submit([enc.finish()]);
    for (const s of steps) this.forward.cache.commit(s.T);
  }

  /** Awaits the cache's host work after a submission (GpuCache.settle; absent for most caches). */
  async #settle(): Promise<void> {
    const cache = this.forward.cache;
    if (cache.settle) await cache.settle();
  }

  async #readLogits(): Promise<Float32Array> {
    const logits = new Float32Array(await this.#logitsRb.read(4 * this.config.vocabSize));
    this.ctx.check();
    for (let i = 0; i < logits.length; i++) {
      if (!Number.isFinite(logits[i])) {
        throw new NonFiniteError(`logit ${i} of position ${this.#position - 1} is ${logits[i]}`);
      }
    }
    return logits;
  }

  async prefill(ids: ArrayLike<number>, options: PrefillOptions = {}): Promise<Float32Array> {
    this.#check();
    if (ids.length === 0) throw new InputError("prefill needs at least one token (the prompt is empty)");
    this.#checkRoom(ids.length);
    this.#checkIds(ids);
    const chunk = this.forward.sizes.maxTokens;
    const total = Math.ceil(ids.length / chunk);
    const start = this.#position;
    try {
      for (let c = 0; c < total; c++) {
        const t0 = c * chunk;
        const T = Math.min(chunk, ids.length - t0);
        const P = start + t0;
        this.ctx.device.queue.writeBuffer(
          this.forward.act.ids,
          0,
          Uint32Array.from({ length: T }, (_, i) => ids[t0 + i]),
        );
        this.#setStep(0, T, P, 0, 0);
        const last = c === total - 1;
        this.#submitSteps([{ T, P, argmax: false }], last ? (enc) => this.#copyLogits(enc) : undefined);
        this.#position = P + T;
        await this.#settle();
        if (options.onProgress && !last) {
          await this.ctx.device.queue.onSubmittedWorkDone();
          this.#check();
          options.onProgress(c + 1, total);
        }
      }
      const logits = await this.#readLogits();
      options.onProgress?.(total, total);
      return logits;
    } catch (e) {
      this.#rollback(start);
      throw e;
    }
  }

  #copyLogits(enc: GPUCommandEncoder): void {
    this.#logitsRb.copyFrom(enc, this.forward.act.logits, 0, 4 * this.config.vocabSize);
  }

  #rollback(position: number): void {
    this.#position = position;
    this.forward.cache.truncate(position);
  }

  async decode(id: number): Promise<Float32Array> {
    this.#check();
    this.#checkRoom(1);
    this.#checkIds([id]);
    const P = this.#position;
    this.ctx.device.queue.writeBuffer(this.forward.act.ids, 0, new Uint32Array([id]));
    this.#setStep(0, 1, P, 0, 1);
    this.#submitSteps([{ T: 1, P, argmax: false }], (enc) => this.#copyLogits(enc));
    this.#position = P + 1;
    try {
      await this.#settle();
      return await this.#readLogits();
    } catch (e) {
      this.#rollback(P);
      throw e;
    }
  }

  /**
   * One decode step that returns the greedy (argmax, lowest id on ties) next token, reading back 8 bytes
   * instead of the logits. Throws NonFiniteError when any logit is NaN/Inf (like {@link decode}).
   *
   * @example
   * ```ts
   * let id = argmax(await engine.prefill(prompt));
   * for (let i = 0; i < 16; i++) id = await engine.decodeGreedy(id);
   * ```
   */
  async decodeGreedy(id: number): Promise<number> {
    const [next] = await this.decodeGreedyMany(id, 1);
    return next;
  }

  /**
   * Runs `n` greedy decode steps chained on the GPU: step i embeds the token step i−1 chose (step 0 embeds
   * `id`) and returns the n chosen tokens; the context grows by n (less when a stop id ends it early).
   * Steps are recorded `greedyChunk` per submit, each chunk copying its tokens to its own readback slot.
   * Chunks alternate between two id regions and read their input token from the previous chunk's last
   * slot on the GPU, so chunks are submitted without waiting for the host:
   * | caller / cache | chunks in flight before the host reads one back |
   * | --- | --- |
   * | no `onToken`, no stop ids, cache needs no host between submissions | all (one readback wait at the end) |
   * | `onToken` or stop ids (a cache that can roll back) | 1 (chunk k+1 is recorded while chunk k runs) |
   * | a cache with `settle`/`maxChainSteps` (MixKVQ), or stop ids on a cache that cannot roll back | 0 |
   * (In Deno a readback wait lasts until ALL submitted work is done — bench/gpu_map_probe.ts — so every
   * wait leaves the GPU idle while the host records the next chunk; fewer waits, less idle time.) A stop
   * id or a non-finite logit found in chunk k rolls back the steps already submitted after it.
   *
   * | chunk in region r, step i | reads `ids[…]` | writes `ids[…]` and `flags[…]` |
   * | --- | --- | --- |
   * | i = 0 | r·R (`id`, first chunk) or the previous chunk's last slot | r·R + 1 |
   * | 0 < i < m | r·R + i | r·R + i + 1 |
   * (R = greedyChunk + 1.)
   *
   * @example
   * ```ts
   * const first = argmax(await engine.prefill(prompt));
   * const rest = await engine.decodeGreedyMany(first, 255, { stopIds: [0] });
   * ```
   */
  async decodeGreedyMany(id: number, n: number, options: GreedyManyOptions = {}): Promise<number[]> {
    this.#check();
    if (!Number.isInteger(n) || n < 0) {
      throw new InputError(`decodeGreedyMany: n=${n} must be a non-negative integer`);
    }
    this.#checkRoom(n);
    this.#checkIds([id]);
    const stop = new Set(options.stopIds ?? []);
    const cache = this.forward.cache;
    const out: number[] = [];
    const R = this.#greedyChunk + 1;
    // a cache that cannot roll back records no step past a possible stop token
    const chain = stop.size > 0 && cache.canTruncate === false ? 1 : this.#greedyChunk;
    const hostFree = !cache.settle && !cache.maxChainSteps &&
      (stop.size === 0 || cache.canTruncate !== false);
    const depth = !hostFree ? 0 : options.onToken || stop.size > 0 ? 1 : Infinity;
    type Chunk = { P0: number; m: number; slot: number };
    /** Reads chunk `c`'s tokens; true when the chain ended (stop id), after rolling back what follows it. */
    const finish = async (c: Chunk): Promise<boolean> => {
      let words: Uint32Array;
      try {
        await this.#settle();
        words = new Uint32Array(await this.#tokensRb.read(8 * R, c.slot * 8 * R));
        this.ctx.check();
      } catch (e) {
        this.#rollback(c.P0);
        throw e;
      }
      for (let i = 0; i < c.m; i++) {
        if (words[R + i] !== 0) {
          this.#rollback(c.P0 + i);
          throw new NonFiniteError(`${words[R + i]} logits of position ${c.P0 + i} are NaN or infinite`);
        }
        const tok = words[i];
        out.push(tok);
        options.onToken?.(tok, out.length - 1);
        if (stop.has(tok)) {
          this.#rollback(c.P0 + i + 1);
          return true;
        }
      }
      return false;
    };
    /** Reads back pending chunks, oldest first, until at most `keep` remain; true when a stop id ended it. */
    const pending: Chunk[] = [];
    const drain = async (keep: number): Promise<boolean> => {
      while (pending.length > keep) {
        if (await finish(pending.shift()!)) return true;
      }
      return false;
    };
    let submitted = 0, chunks = 0;
    let inSlot = -1; // ids slot holding the next chunk's input token (-1: `id`, written from the host)
    while (submitted < n) {
      // a cache that needs the host every few steps (MixKVQ: at a block flush) ends the chain there
      const m = Math.min(chain, n - submitted, Math.max(1, cache.maxChainSteps?.() ?? chain));
      const P0 = this.#position, base = (chunks % 2) * R, slot = chunks % this.#tokenSlots;
      if (inSlot < 0) {
        this.ctx.device.queue.writeBuffer(this.forward.act.ids, 4 * base, new Uint32Array([id]));
        inSlot = base;
      }
      const steps = [];
      for (let i = 0; i < m; i++) {
        this.#setStep(i, 1, P0 + i, i === 0 ? inSlot : base + i, base + i + 1);
        steps.push({ T: 1, P: P0 + i, argmax: true });
      }
      try {
        this.#submitSteps(steps, (enc) => {
          this.#tokensRb.copyFrom(enc, this.forward.act.ids, 4 * (base + 1), 4 * m, slot * 8 * R);
          this.#tokensRb.copyFrom(enc, this.forward.act.flags, 4 * (base + 1), 4 * m, slot * 8 * R + 4 * R);
        });
      } catch (e) {
        // e.g. a BudgetError of this chunk: the chunks before it still deliver their tokens first
        if (await drain(0)) return out;
        throw e;
      }
      this.#position = P0 + m;
      submitted += m;
      chunks++;
      inSlot = base + m;
      pending.push({ P0, m, slot });
      if (await drain(depth)) return out;
    }
    await drain(0);
    return out;
  }

  cacheStats(): CacheStats {
    return this.forward.cache.stats();
  }

  reset(): void {
    this.#position = 0;
    this.forward.cache.reset();
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.forward.destroy();
    this.weights.destroy();
    this.#steps.destroy();
    this.#logitsRb.destroy();
    this.#tokensRb.destroy();
    if (this.#owned) this.ctx.destroy();
  }
}
