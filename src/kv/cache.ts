/**
 * The KV-cache contract. Backends store post-RoPE keys and values through this interface only; each
 * method (exact, static int, KIVI, PM-KVQ, MixKVQ) is one implementation with the same byte accounting.
 *
 * Accounting rule (project decision, spec section 0): `bytes` counts EVERY byte of storage the cache
 * holds for the sequence: packed codes, scales, zeros, full-precision sink/window/residual tokens, at their
 * allocated capacity. The f32 working copy that the CPU backend attends over (`view`) is scratch of the
 * CPU backend, not cache storage, and is reported separately as `scratchBytes`.
 *
 * @module
 */

/**
 * Shape of the cache of one model.
 *
 * @example
 * ```ts
 * import type { KVShape } from "./cache.ts";
 * const tiny: KVShape = { numLayers: 6, numKvHeads: 2, headDim: 128 };
 * ```
 */
export interface KVShape {
  /** Transformer layers, each with its own K and V cache. */
  numLayers: number;
  /** Key/value heads per layer (GQA: may be fewer than the query heads). */
  numKvHeads: number;
  /** Elements per head vector. */
  headDim: number;
}

/**
 * Which cache to build, and its parameters.
 *
 * @example
 * ```ts
 * import type { CacheSpec } from "./cache.ts";
 * const specs: CacheSpec[] = [{ method: "exact" }, { method: "static", bits: 4 }, { method: "kivi", bits: 2 }];
 * ```
 */
export type CacheSpec =
  | { method: "exact"; dtype?: "f32" | "bf16" | "f16" }
  | { method: "static"; bits: 2 | 4 | 8 | 16; sink?: number; window?: number }
  | { method: "kivi"; bits: 2 | 4; group?: number; residual?: number }
  | {
    method: "pmkvq";
    /** Per-layer final (floor) bit-widths, from a plan. */
    finalBits: number[];
    /** Per-layer byte budgets, from a plan. */
    budgets: number[];
    /** The sequence length the budgets were planned for. */
    maxLen: number;
    sink?: number;
    window?: number;
    /** 16 (default, progressive), or "final": every layer starts at its final width (static ablation). */
    initBits?: 16 | 8 | 4 | 2 | "final";
  }
  | { method: "mixkvq"; [key: string]: unknown };

/**
 * One bit-width change of one layer.
 *
 * @example
 * ```ts
 * import type { ShrinkEvent } from "./cache.ts";
 * const e: ShrinkEvent = { step: 1153, layer: 0, from: 16, to: 8 };
 * ```
 */
export interface ShrinkEvent {
  /** Tokens in the layer when it shrank. */
  step: number;
  /** Layer index (0-based). */
  layer: number;
  /** Bit-width before the change. */
  from: number;
  /** Bit-width after the change (lower than `from`). */
  to: number;
}

/**
 * Per-layer accounting.
 *
 * @example
 * ```ts
 * import type { LayerStats } from "./cache.ts";
 * // const l: LayerStats = cache.stats().layers[0]; l.bytes <= (l.budget ?? Infinity)
 * ```
 */
export interface LayerStats {
  /** Current bit-width of the layer's quantized body (16 for exact caches). */
  bits: number;
  /** Tokens stored in the layer. */
  tokens: number;
  /** Storage bytes the layer holds now, K and V (allocated capacity: see the module's accounting rule). */
  bytes: number;
  /** Byte budget of the layer, or null when unbounded. */
  budget: number | null;
}

/**
 * What a cache reports.
 *
 * @example
 * ```ts
 * import type { CacheStats } from "./cache.ts";
 * // const s: CacheStats = cache.stats(); s.bytes, s.scratchBytes, s.events
 * ```
 */
export interface CacheStats {
  /** Cache method and variant, e.g. `"exact-f32"`, `"static-int4"`, `"kivi2"`. */
  method: string;
  /** Tokens stored (layer 0; every layer holds the same count after a complete forward pass). */
  tokens: number;
  /** Storage bytes held now (all layers, K and V). */
  bytes: number;
  /** Largest `bytes` seen since the last reset. */
  peakBytes: number;
  /** Backend scratch (dequantized working copy), not counted in `bytes`. */
  scratchBytes: number;
  /** Per-layer accounting, one entry per layer. */
  layers: LayerStats[];
  /** Bit-width changes so far, in order (empty for caches that never shrink). */
  events: ShrinkEvent[];
  /**
   * Average code width in bits per stored element of the quantized body (caches with a mixed-precision body,
   * e.g. MixKVQ): `k` per key element, `v` per value element. Absent when the cache does not report it.
   */
  avgBits?: { k: number; v: number };
}

/**
 * Dequantized keys and values of one layer, token-major.
 *
 * @example
 * ```ts
 * import type { LayerView } from "./cache.ts";
 * // const past: LayerView = cache.view(0); past.k.length === past.length * numKvHeads * headDim
 * ```
 */
export interface LayerView {
  /** [length, numKvHeads, headDim] */ k: Float32Array;
  /** [length, numKvHeads, headDim] */ v: Float32Array;
  /** Tokens in the view (rows of `k` and `v`). */
  length: number;
}

/**
 * A per-sequence KV cache.
 *
 * @example
 * ```ts
 * import type { KVCache } from "./cache.ts";
 * // const cache: KVCache = createCache({ method: "kivi", bits: 4 }, shape);
 * // cache.append(0, k, v, t); const past = cache.view(0);
 * ```
 */
export interface KVCache {
  /** The spec the cache was built from. */
  readonly spec: CacheSpec;
  /** Layers, KV heads and head size of the cache. */
  readonly shape: KVShape;
  /** Tokens stored in `layer`. */
  length(layer: number): number;
  /**
   * Stores `t` new tokens of `layer`. `k`, `v`: [t, numKvHeads, headDim] post-RoPE, f32.
   * May change the layer's bit-width (recorded as a {@link ShrinkEvent}); throws BudgetError when the
   * sequence outgrows its budget and NonFiniteError on NaN/Inf, leaving the cache unchanged.
   */
  append(layer: number, k: Float32Array, v: Float32Array, t: number): void;
  /** The stored tokens as the attention sees them (dequantized). Views stay valid until the next append. */
  view(layer: number): LayerView;
  /**
   * Optional: post-RoPE queries of the `t` new tokens of `layer`, [t, numHeads, headDim] f32 (a view the
   * caller may reuse: copy what you keep). Backends call it before `append` of the same layer and the same
   * tokens (the CPU backend: right before `view`). Query-aware caches (MixKVQ) use it to rank key channels;
   * caches that do not need queries leave it undefined.
   */
  observeQuery?(layer: number, q: Float32Array, t: number): void;
  /** Current accounting: storage bytes, peak, scratch, per-layer widths and shrink events. */
  stats(): CacheStats;
  /**
   * Optional: throws the BudgetError that appending `t` more tokens to EVERY layer would raise, without
   * changing anything. A backend can call it before a forward pass so that no layer of the step is stored
   * when a later layer would not fit (append itself is transactional per layer only).
   */
  checkCapacity?(t: number): void;
  /** Empties the cache. */
  reset(): void;
}
