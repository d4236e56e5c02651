/**
 * Per-channel key magnitudes for calibration (spec §4.2): run calibration windows through the model with
 * stretched positions (0, s, 2s, …; positional interpolation, spec §4.3) and record, per layer, KV head h and
 * half-channel j < D/2,
 *
 *   m[h, j] = max over tokens and windows of max(|k[t, h, j]|, |k[t, h, j + D/2]|)
 *
 * on POST-RoPE keys. Both channels of a RoPE rotation pair share one value, so a smoothing factor built from it
 * commutes with RoPE.
 *
 * Layout: one Float32Array per layer, [numKvHeads, headDim / 2], index h·(D/2) + j.
 *
 * @example
 * ```ts
 * const mk = collectMaxKeys(model, windows, { stretch: 4 });
 * mk[0][0]; // layer 0, KV head 0, pair (0, D/2)
 * ```
 * @module
 */
import type { LoadedModel } from "../src/model/types.ts";
import { CpuForward } from "../cpu/forward.ts";
import { createCache, kvShapeOf } from "../src/kv/factory.ts";
import { stretchedPositions } from "./corpus.ts";
import { InputError } from "../src/errors.ts";

/** Per-layer maxima, each [numKvHeads, headDim / 2]. */
export type MaxKeys = Float32Array[];

/**
 * An all-zero {@link MaxKeys} for a model shape.
 *
 * @example
 * ```ts
 * const mk = emptyMaxKeys(6, 2, 128); // 6 arrays of 2·64 zeros
 * ```
 */
export function emptyMaxKeys(numLayers: number, numKvHeads: number, headDim: number): MaxKeys {
  return Array.from({ length: numLayers }, () => new Float32Array((numKvHeads * headDim) / 2));
}

/**
 * Folds T tokens of post-RoPE keys `k` [T, numKvHeads, headDim] into `m` [numKvHeads, headDim/2] in place:
 * m[h, j] = max(m[h, j], |k[t, h, j]|, |k[t, h, j + D/2]|).
 *
 * @example
 * ```ts
 * const m = new Float32Array(1);
 * updateMaxKeys(m, new Float32Array([0.5, -3]), 1, 1, 2); // m = [3]
 * ```
 */
export function updateMaxKeys(
  m: Float32Array,
  k: Float32Array,
  T: number,
  numKvHeads: number,
  headDim: number,
): void {
  const half = headDim / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < numKvHeads; h++) {
      const base = (t * numKvHeads + h) * headDim;
      const mb = h * half;
      for (let j = 0; j < half; j++) {
        const a = Math.abs(k[base + j]), b = Math.abs(k[base + j + half]);
        const x = a > b ? a : b;
        if (x > m[mb + j]) m[mb + j] = x;
      }
    }
  }
}

/** Options of {@link collectMaxKeys}. */
export interface MaxKeysOptions {
  /** Position stretch s: token i of a window runs at position i·s (default 4). */
  stretch?: number;
  /** Also observe each layer's input hidden states [T, hidden] (a view: copy to keep). */
  onLayerInput?: (window: number, layer: number, h: Float32Array, T: number) => void;
  /** Progress: after each layer of each window. */
  onProgress?: (window: number, windows: number, layer: number, layers: number) => void;
}

/**
 * Runs every window (fresh exact f32 cache each) at positions stretchedPositions(length, s) and returns the
 * running maxima (see the module comment). Throws InputError for an empty window list.
 *
 * @example
 * ```ts
 * const mk = collectMaxKeys(model, [[1, 2, 3, 4]], { stretch: 4 }); // positions 0, 4, 8, 12
 * ```
 */
export function collectMaxKeys(
  model: LoadedModel,
  windows: number[][],
  options: MaxKeysOptions = {},
): MaxKeys {
  if (windows.length === 0) throw new InputError("calibration needs at least one window");
  const c = model.config;
  const s = options.stretch ?? 4;
  const fwd = new CpuForward(model);
  const m = emptyMaxKeys(c.numLayers, c.numKvHeads, c.headDim);
  windows.forEach((ids, w) => {
    const cache = createCache({ method: "exact" }, kvShapeOf(c));
    fwd.forward(ids, stretchedPositions(ids.length, s), cache, {
      logits: "none",
      hooks: {
        onKV: (l, k, _v, T) => updateMaxKeys(m[l], k, T, c.numKvHeads, c.headDim),
        onLayerInput: options.onLayerInput ? (l, h, T) => options.onLayerInput!(w, l, h, T) : undefined,
      },
      onProgress: (done, total) => options.onProgress?.(w + 1, windows.length, done, total),
    });
  });
  return m;
}
