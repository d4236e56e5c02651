/**
 * Builds the KV cache named by a {@link CacheSpec}.
 *
 * @example
 * ```ts
 * const cache = createCache({ method: "exact" }, kvShapeOf(model.config));
 * ```
 * @module
 */
import type { CacheSpec, KVCache, KVShape } from "./cache.ts";
import type { ModelConfig } from "../model/types.ts";
import { ExactCache } from "./exact.ts";
import { QuantConfigError } from "../errors.ts";

/** The cache shape of a model. */
export function kvShapeOf(config: ModelConfig): KVShape {
  return { numLayers: config.numLayers, numKvHeads: config.numKvHeads, headDim: config.headDim };
}

/** Creates an empty cache for `spec`. Throws QuantConfigError for an unknown method. */
export function createCache(spec: CacheSpec, shape: KVShape): KVCache {
  switch (spec.method) {
    case "exact":
      return new ExactCache(spec, shape);
    default:
      throw new QuantConfigError(`KV-cache method "${(spec as { method: string }).method}" is not available`);
  }
}
