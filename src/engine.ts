/**
 * The engine contract: what every backend (CPU now, WebGPU next) implements. Nothing else lives here.
 *
 * A backend owns the weights on its device and a KV cache built from a {@link CacheSpec}; the model code never
 * sees the cache's storage format, only the {@link KVCache} interface (CPU) or the cache's packed layout
 * (WebGPU kernels), so quantized caches replace the exact one without touching the model.
 *
 * @example
 * ```ts
 * import { loadModel } from "./model/load.ts";
 * import { createCpuEngine } from "../cpu/engine.ts";
 * const model = await loadModel("models/tiny-lm");
 * const engine = createCpuEngine(model, { method: "exact" });
 * let logits = await engine.prefill([85, 296, 270]);
 * logits = await engine.decode(261);
 * console.log(engine.position, engine.cacheStats().bytes);
 * ```
 * @module
 */
import type { ModelConfig } from "./model/config.ts";
import type { CacheSpec, CacheStats } from "./kv/cache.ts";

/** Which implementation runs the model. */
export type BackendName = "cpu" | "webgpu";

/** Options for a prefill call. */
export interface PrefillOptions {
  /** Called after each layer (or chunk) so long prompts can show progress: done of total units. */
  onProgress?: (done: number, total: number) => void;
}

/** One model instance with one sequence's KV cache on one backend. */
export interface Engine {
  /** The backend's name. */
  readonly backend: BackendName;
  /** A human-readable device description (e.g. the WebGPU adapter). */
  readonly device: string;
  /** The model's configuration. */
  readonly config: ModelConfig;
  /** The cache this engine was built with. */
  readonly cacheSpec: CacheSpec;
  /** Tokens currently in the context (prompt + decoded). */
  readonly position: number;
  /**
   * Runs `ids` (appended after any existing context) and returns the logits of the last position,
   * shape [vocab_size]. Prefill attention uses the exact keys/values of the new tokens; they are
   * stored in the cache afterwards.
   */
  prefill(ids: ArrayLike<number>, options?: PrefillOptions): Promise<Float32Array>;
  /** Runs one token and returns its logits, shape [vocab_size]. The token attends with its exact K/V. */
  decode(id: number): Promise<Float32Array>;
  /** Cache bit-widths, bytes and shrink events. */
  cacheStats(): CacheStats;
  /** Forgets the sequence (position 0, empty cache); weights stay loaded. */
  reset(): void;
  /** Frees device resources. The engine is unusable afterwards. */
  dispose(): void;
}
