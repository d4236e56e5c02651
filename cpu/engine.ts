/**
 * The CPU backend: the {@link Engine} contract over {@link CpuForward} and a {@link KVCache}.
 * This backend is the living specification that the WebGPU backend is tested against.
 *
 * @example
 * ```ts
 * const engine = createCpuEngine(await loadModel("models/tiny-lm"), { method: "exact" });
 * const logits = await engine.prefill([85, 296, 270]);
 * ```
 * @module
 */
import type { Engine, PrefillOptions } from "../src/engine.ts";
import type { LoadedModel, ModelConfig } from "../src/model/types.ts";
import type { CacheSpec, CacheStats, KVCache } from "../src/kv/cache.ts";
import { createCache, kvShapeOf } from "../src/kv/factory.ts";
import { CpuForward } from "./forward.ts";
import { InputError } from "../src/errors.ts";

/**
 * CPU engine: one sequence, one cache. Logits are f32 [vocab_size]; positions advance by the tokens run.
 *
 * @example
 * ```ts
 * import { CpuEngine } from "./engine.ts";
 * import { loadModel } from "../src/model/load.ts";
 * const model = await loadModel("models/tiny-lm");
 * const engine = new CpuEngine(model, { method: "static", bits: 8 });
 * await engine.prefill([85, 296, 270]);
 * const logits = await engine.decode(261); // [vocab_size]
 * engine.position; // 4
 * engine.cacheStats().bytes;
 * engine.reset(); // empty cache, position 0
 * ```
 */
export class CpuEngine implements Engine {
  readonly backend = "cpu" as const;
  readonly device = "CPU (TypeScript, f32 with f64 accumulation)";
  readonly config: ModelConfig;
  readonly cacheSpec: CacheSpec;
  /** The stateless forward pass over the model's weights. */
  readonly forwardPass: CpuForward;
  /** This sequence's KV cache (built from `cacheSpec`, or the one given to the constructor). */
  readonly cache: KVCache;
  #position = 0;

  /**
   * Builds the engine; prefer {@link createCpuEngine}.
   *
   * @param model the loaded model (weights stay shared, not copied)
   * @param cacheSpec the cache to build, and to report as `cacheSpec`
   * @param cache an already built cache to use instead of building one from `cacheSpec` (e.g. a custom {@link KVCache})
   */
  constructor(model: LoadedModel, cacheSpec: CacheSpec, cache?: KVCache) {
    this.config = model.config;
    this.cacheSpec = cacheSpec;
    this.forwardPass = new CpuForward(model);
    this.cache = cache ?? createCache(cacheSpec, kvShapeOf(model.config));
  }

  get position(): number {
    return this.#position;
  }

  #checkRoom(n: number): void {
    const max = this.config.maxPositionEmbeddings;
    if (this.#position + n > max) {
      throw new InputError(
        `context of ${
          this.#position + n
        } tokens (${this.#position} in context + ${n} new) exceeds the model's ` +
          `max_position_embeddings ${max}`,
      );
    }
  }

  // deno-lint-ignore require-await
  async prefill(ids: ArrayLike<number>, options: PrefillOptions = {}): Promise<Float32Array> {
    if (ids.length === 0) throw new InputError("prefill needs at least one token (the prompt is empty)");
    this.#checkRoom(ids.length);
    const positions = Array.from({ length: ids.length }, (_, i) => this.#position + i);
    const logits = this.forwardPass.forward(ids, positions, this.cache, {
      logits: "last",
      onProgress: options.onProgress,
    });
    this.#position += ids.length;
    return logits;
  }

  // deno-lint-ignore require-await
  async decode(id: number): Promise<Float32Array> {
    this.#checkRoom(1);
    const logits = this.forwardPass.forward([id], [this.#position], this.cache, { logits: "last" });
    this.#position += 1;
    return logits;
  }

  cacheStats(): CacheStats {
    return this.cache.stats();
  }

  reset(): void {
    this.cache.reset();
    this.#position = 0;
  }

  dispose(): void {
    this.reset();
  }
}

/**
 * Creates a CPU engine for `model` with a cache built from `cacheSpec` (default: exact f32).
 *
 * @example
 * ```ts
 * import { createCpuEngine } from "./engine.ts";
 * import { loadModel } from "../src/model/load.ts";
 * const model = await loadModel("models/tiny-lm");
 * const engine = createCpuEngine(model, { method: "kivi", bits: 2 });
 * const logits = await engine.prefill([85, 296, 270]); // [vocab_size] of the last token
 * ```
 */
export function createCpuEngine(model: LoadedModel, cacheSpec: CacheSpec = { method: "exact" }): CpuEngine {
  return new CpuEngine(model, cacheSpec);
}
