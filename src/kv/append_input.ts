/**
 * Checks of the arguments of `KVCache.append`, done BEFORE a cache mutates anything (so a throw leaves the
 * cache unchanged): layer index, token count and array lengths (TensorShapeError), and values the quantizer
 * would reject (NaN, ±Inf, |x| ≥ 2^64; NonFiniteError naming layer, token, head, channel and value, with the
 * quantizer's own error as `cause`).
 *
 * @example
 * ```ts
 * import { checkAppend } from "./append_input.ts";
 * const shape = { numLayers: 1, numKvHeads: 1, headDim: 4 };
 * checkAppend(shape, 0, new Float32Array(4), new Float32Array(4), 1, 0); // ok
 * // checkAppend(shape, 0, new Float32Array([0, NaN, 0, 0]), new Float32Array(4), 1, 7) throws
 * //   NonFiniteError("layer 0: key of token 7, head 0, channel 1 is NaN ...")
 * ```
 * @module
 */
import type { KVShape } from "./cache.ts";
import { NonFiniteError, TensorShapeError } from "../errors.ts";
import { INPUT_MAX_ABS, nonFiniteInputError } from "../quant/quantizer.ts";
import { groupSizeFor } from "../quant/format.ts";

/**
 * Validates `append(layer, k, v, t)` for a cache of `shape` whose layer holds `tokenBase` tokens.
 * Throws TensorShapeError for a bad layer / t / length and NonFiniteError for a value the quantizer rejects.
 *
 * @example
 * ```ts
 * import { checkAppend } from "./append_input.ts";
 * const shape = { numLayers: 2, numKvHeads: 1, headDim: 2 };
 * checkAppend(shape, 1, new Float32Array(2), new Float32Array(2), 1, 5); // ok
 * ```
 */
export function checkAppend(
  shape: KVShape,
  layer: number,
  k: Float32Array,
  v: Float32Array,
  t: number,
  tokenBase: number,
): void {
  if (!Number.isSafeInteger(layer) || layer < 0 || layer >= shape.numLayers) {
    throw new TensorShapeError(`layer ${layer} is outside [0, ${shape.numLayers})`);
  }
  if (!Number.isSafeInteger(t) || t < 0) {
    throw new TensorShapeError(`layer ${layer}: token count ${t} must be a non-negative integer`);
  }
  const row = shape.numKvHeads * shape.headDim;
  const n = t * row;
  if (k.length < n || v.length < n) {
    throw new TensorShapeError(
      `layer ${layer}: ${t} tokens need ${n} floats ([${t}, ${shape.numKvHeads}, ${shape.headDim}]), ` +
        `got k ${k.length}, v ${v.length}`,
    );
  }
  checkFinite(shape, layer, k, "key", t, tokenBase);
  checkFinite(shape, layer, v, "value", t, tokenBase);
}

function checkFinite(
  shape: KVShape,
  layer: number,
  x: Float32Array,
  what: string,
  t: number,
  tokenBase: number,
): void {
  const D = shape.headDim;
  const row = shape.numKvHeads * D;
  const n = t * row;
  for (let i = 0; i < n; i++) {
    if (Math.abs(x[i]) < INPUT_MAX_ABS) continue;
    const tok = Math.floor(i / row);
    const head = Math.floor((i % row) / D);
    const ch = i % D;
    const G = groupSizeFor(D);
    const cause = nonFiniteInputError(x[i], ch % G, tok * (row / G) + head * (D / G) + Math.floor(ch / G));
    throw new NonFiniteError(
      `layer ${layer}: ${what} of token ${tokenBase + tok}, head ${head}, channel ${ch} is ${x[i]} ` +
        `(the quantizer accepts finite |x| < 2^64; nothing was stored)`,
      { cause },
    );
  }
}
