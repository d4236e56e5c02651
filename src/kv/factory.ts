/**
 * Builds the KV cache named by a {@link CacheSpec}: exact (f32/bf16/f16), static uniform int8/int4/int2,
 * KIVI and PM-KVQ, all behind the one {@link KVCache} interface with the same byte accounting.
 *
 * | spec                                   | class          | defaults                                   |
 * | -------------------------------------- | -------------- | ------------------------------------------ |
 * | `{method:"exact", dtype}`              | ExactCache     | dtype f32                                  |
 * | `{method:"static", bits, sink, window}`| GroupedCache   | sink 0, window 0 (quantized right away)    |
 * | `{method:"kivi", bits, group, residual}`| KiviCache     | group 128, residual 128                    |
 * | `{method:"pmkvq", finalBits, budgets, maxLen, sink, window, initBits}` | GroupedCache | sink 1, window 128, initBits 16 |
 *
 * @example
 * ```ts
 * import { createCache, kvShapeOf } from "./factory.ts";
 * const shape = { numLayers: 6, numKvHeads: 2, headDim: 128 };
 * const int4 = createCache({ method: "static", bits: 4 }, shape);
 * const kivi = createCache({ method: "kivi", bits: 2 }, shape);
 * // const cache = createCache({ method: "exact" }, kvShapeOf(model.config));
 * ```
 * @module
 */
import type { CacheSpec, KVCache, KVShape } from "./cache.ts";
import type { ModelConfig } from "../model/types.ts";
import { ExactCache } from "./exact.ts";
import { GroupedCache, type GroupedConfig } from "./grouped.ts";
import { KiviCache } from "./kivi.ts";
import { MixKvqCache } from "./mixkvq.ts";
import { QuantConfigError } from "../errors.ts";

/**
 * Default sink and window of the static caches (every token quantized right after its own step).
 *
 * @example
 * ```ts
 * import { createCache, STATIC_DEFAULT_SINK } from "./factory.ts";
 * // createCache({ method: "static", bits: 4 }, shape) keeps STATIC_DEFAULT_SINK (0) sink tokens
 * ```
 */
export const STATIC_DEFAULT_SINK = 0;
/**
 * See {@link STATIC_DEFAULT_SINK}.
 *
 * @example
 * ```ts
 * import { STATIC_DEFAULT_WINDOW } from "./factory.ts";
 * STATIC_DEFAULT_WINDOW; // 0: tokens are quantized right after their own step
 * ```
 */
export const STATIC_DEFAULT_WINDOW = 0;
/**
 * PM-KVQ defaults (paper): 1 sink token, window 128, start at 16 bits.
 *
 * @example
 * ```ts
 * import { PMKVQ_DEFAULT_SINK } from "./factory.ts";
 * PMKVQ_DEFAULT_SINK; // 1
 * ```
 */
export const PMKVQ_DEFAULT_SINK = 1;
/**
 * See {@link PMKVQ_DEFAULT_SINK}.
 *
 * @example
 * ```ts
 * import { PMKVQ_DEFAULT_WINDOW } from "./factory.ts";
 * PMKVQ_DEFAULT_WINDOW; // 128
 * ```
 */
export const PMKVQ_DEFAULT_WINDOW = 128;
/**
 * See {@link PMKVQ_DEFAULT_SINK}.
 *
 * @example
 * ```ts
 * import { PMKVQ_DEFAULT_INIT_BITS } from "./factory.ts";
 * PMKVQ_DEFAULT_INIT_BITS; // 16
 * ```
 */
export const PMKVQ_DEFAULT_INIT_BITS = 16;

/**
 * The cache shape of a model.
 *
 * @example
 * ```ts
 * import { kvShapeOf } from "./factory.ts";
 * // kvShapeOf(model.config) // { numLayers: 6, numKvHeads: 2, headDim: 128 } for tiny-lm
 * ```
 */
export function kvShapeOf(config: ModelConfig): KVShape {
  return { numLayers: config.numLayers, numKvHeads: config.numKvHeads, headDim: config.headDim };
}

/**
 * The {@link GroupedConfig} of a static or PM-KVQ spec (defaults filled in).
 *
 * @example
 * ```ts
 * import { groupedConfigOf } from "./factory.ts";
 * groupedConfigOf({ method: "static", bits: 8 }, 2).finalBits; // [8, 8]
 * ```
 */
export function groupedConfigOf(
  spec: CacheSpec & { method: "static" | "pmkvq" },
  numLayers: number,
): GroupedConfig {
  if (spec.method === "static") {
    return {
      method: `static-int${spec.bits}`,
      sink: spec.sink ?? STATIC_DEFAULT_SINK,
      window: spec.window ?? STATIC_DEFAULT_WINDOW,
      initBits: spec.bits,
      finalBits: Array(numLayers).fill(spec.bits),
      budgets: null,
    };
  }
  return {
    method: "pmkvq",
    sink: spec.sink ?? PMKVQ_DEFAULT_SINK,
    window: spec.window ?? PMKVQ_DEFAULT_WINDOW,
    initBits: spec.initBits ?? PMKVQ_DEFAULT_INIT_BITS,
    finalBits: spec.finalBits,
    budgets: spec.budgets,
    maxLen: spec.maxLen,
  };
}

/**
 * Creates an empty cache for `spec`. Throws QuantConfigError for an unknown method or bad parameters.
 *
 * @example
 * ```ts
 * import { createCache } from "./factory.ts";
 * const c = createCache({ method: "pmkvq", finalBits: [4], budgets: [1 << 20], maxLen: 2048 },
 *   { numLayers: 1, numKvHeads: 2, headDim: 128 });
 * c.stats().layers[0].bits; // 16
 * ```
 */
export function createCache(spec: CacheSpec, shape: KVShape): KVCache {
  switch (spec.method) {
    case "exact":
      return new ExactCache(spec, shape);
    case "static":
    case "pmkvq":
      return new GroupedCache(spec, shape, groupedConfigOf(spec, shape.numLayers));
    case "kivi":
      return new KiviCache(spec, shape);
    case "mixkvq":
      return new MixKvqCache(spec, shape);
    default:
      throw new QuantConfigError(`KV-cache method "${(spec as { method: string }).method}" is not available`);
  }
}
