/**
 * MixKVQ key-channel selection (arXiv 2512.19206, spec §7.2): the pure functions shared by the cache
 * (`mixkvq.ts`) and the threshold search (`calib/mixkvq_thresholds.ts`), so both rank channels with
 * bit-identical arithmetic.
 *
 * For one block of R tokens, one layer and one KV head, key channel d gets
 *
 *   I_d = mean over the block's tokens t and the heads h of the KV head's GQA group of |q[t, h, d]|
 *   S_d = (max_t k[t, d] − min_t k[t, d]) / (2^B − 1),   B = {@link SALIENCE_SCALE_BITS} = 2
 *   A_d = I_d · S_d,                        Ã_d = A_d / mean_d' A_d'   (Ã_d = 0 when the mean is 0)
 *
 * and tier 16 (bf16) when Ã_d > τ16, 4 when τ4 < Ã_d ≤ τ16, else 2 ({@link tierOf}).
 *
 * Interpretations (no reference code exists; docs/mixkvq.md lists them all):
 * - I1. Normalization by the per-(layer, block, KV head) mean of A makes the thresholds scale-free, so one
 *   (τ16, τ4) pair works across layers and heads; a constant factor in A (the 2^B − 1, the 1/R of the mean, the
 *   1/groupSize of the head average) cancels, so B only matters for the absolute A reported in debugging.
 * - I2. B = 2 (the floor width): S_d is the channel's 2-bit quantization step over the whole block.
 * - I3. S_d is measured on the values the cache actually quantizes: the bf16-rounded residual keys.
 * - I4. I_d uses the queries of the block's OWN tokens (the queries observed while the block sat in the
 *   residual buffer), averaged over the GQA group's query heads. Without any observed query (a backend that
 *   does not call `observeQuery`) I_d = 1 for every channel: the selection falls back to error-only (scale).
 * - I5. Query sums are accumulated in f32, token by token, in token order ({@link accumulateQueryStats}), in
 *   the cache and in calibration alike.
 *
 * @example
 * ```ts
 * import { normalizedSalience, tierOf } from "./mixkvq_select.ts";
 * const keys = new Float32Array([0, 0, 3, 1]);          // R = 2 tokens, 1 head, D = 2
 * const a = normalizedSalience(keys, 2, 1, 2, null);     // S = [1, 1/3] → Ã = [1.5, 0.5]
 * [tierOf(a[0], 1.2, 0.8), tierOf(a[1], 1.2, 0.8)];      // [16, 2]
 * ```
 * @module
 */
import { NonFiniteError, QuantConfigError, TensorShapeError } from "../errors.ts";
import { bf16ToF32, f32ToBf16RNE } from "../quant/bf16.ts";
import { fakeQuantize } from "../quant/quantizer.ts";

/** B of the salience scale S_d = range / (2^B − 1) (interpretation I2). */
export const SALIENCE_SCALE_BITS = 2;

/** Code width of one key channel of one block: 16 = bf16 passthrough, 4 or 2 = per-channel min/max codes. */
export type KeyTier = 16 | 4 | 2;

/** The key tiers, widest first. */
export const KEY_TIERS: readonly KeyTier[] = Object.freeze([16, 4, 2] as KeyTier[]);

/**
 * Validates a threshold pair: each a number ≥ 0 (`Infinity` allowed: the tier above it is empty), no NaN,
 * τ16 ≥ τ4. QuantConfigError naming the values otherwise.
 *
 * @example
 * ```ts
 * import { checkThresholds } from "./mixkvq_select.ts";
 * checkThresholds(1.44, 0.79);      // ok
 * checkThresholds(Infinity, 0.5);   // ok: no bf16 channels
 * // checkThresholds(0.5, 1) throws QuantConfigError (τ16 < τ4)
 * ```
 */
export function checkThresholds(tau16: number, tau4: number): void {
  for (const [name, t] of [["tau16", tau16], ["tau4", tau4]] as const) {
    if (typeof t !== "number" || !(t >= 0)) {
      throw new QuantConfigError(`MixKVQ ${name} must be a number >= 0 (Infinity allowed), got ${t}`);
    }
  }
  if (tau16 < tau4) {
    throw new QuantConfigError(`MixKVQ tau16 (${tau16}) must be >= tau4 (${tau4})`);
  }
}

/**
 * The tier of a channel with normalized salience `a`: 16 if a > τ16, 4 if τ4 < a ≤ τ16, else 2.
 *
 * @example
 * ```ts
 * import { tierOf } from "./mixkvq_select.ts";
 * [tierOf(2, 1.44, 0.79), tierOf(1, 1.44, 0.79), tierOf(0.79, 1.44, 0.79)]; // [16, 4, 2]
 * ```
 */
export function tierOf(a: number, tau16: number, tau4: number): KeyTier {
  return a > tau16 ? 16 : a > tau4 ? 4 : 2;
}

/**
 * Per-token query magnitudes per KV head: out[t, kvh, d] = mean over the query heads h of kvh's GQA group
 * (h = kvh·gs … kvh·gs + gs − 1, gs = numHeads / numKvHeads, Hugging Face `repeat_kv` order) of |q[t, h, d]|.
 * `q`: [t, numHeads, headDim]. Throws TensorShapeError for a bad shape and NonFiniteError (token, head,
 * channel) for NaN/±Inf.
 *
 * @example
 * ```ts
 * import { queryMagnitudes } from "./mixkvq_select.ts";
 * // 1 token, 2 query heads sharing 1 KV head, D = 2
 * queryMagnitudes(new Float32Array([1, -2, 3, 0]), 1, 2, 1, 2); // [2, 1]
 * ```
 */
export function queryMagnitudes(
  q: Float32Array,
  t: number,
  numHeads: number,
  numKvHeads: number,
  headDim: number,
): Float32Array {
  if (!Number.isSafeInteger(numHeads) || numHeads < 1 || numHeads % numKvHeads !== 0) {
    throw new TensorShapeError(`${numHeads} query heads are not a multiple of ${numKvHeads} KV heads`);
  }
  if (q.length < t * numHeads * headDim) {
    throw new TensorShapeError(
      `queries of ${t} tokens need ${
        t * numHeads * headDim
      } floats ([${t}, ${numHeads}, ${headDim}]), got ${q.length}`,
    );
  }
  const gs = numHeads / numKvHeads;
  const out = new Float32Array(t * numKvHeads * headDim);
  const acc = new Float64Array(headDim);
  for (let i = 0; i < t; i++) {
    for (let kvh = 0; kvh < numKvHeads; kvh++) {
      acc.fill(0);
      for (let g = 0; g < gs; g++) {
        const h = kvh * gs + g;
        const base = (i * numHeads + h) * headDim;
        for (let d = 0; d < headDim; d++) {
          const x = q[base + d];
          if (!Number.isFinite(x)) {
            throw new NonFiniteError(`query of token ${i}, head ${h}, channel ${d} is ${x}`);
          }
          acc[d] += Math.abs(x);
        }
      }
      const ob = (i * numKvHeads + kvh) * headDim;
      for (let d = 0; d < headDim; d++) out[ob + d] = acc[d] / gs;
    }
  }
  return out;
}

/**
 * Adds the magnitudes of tokens [from, from + n) of `mags` ([*, nKv, D], from {@link queryMagnitudes}) into
 * `sum` ([nKv, D], f32), token by token in order (interpretation I5).
 *
 * @example
 * ```ts
 * import { accumulateQueryStats } from "./mixkvq_select.ts";
 * const sum = new Float32Array(2);
 * accumulateQueryStats(sum, new Float32Array([1, 2, 3, 4]), 0, 2, 2); // sum = [4, 6]
 * ```
 */
export function accumulateQueryStats(
  sum: Float32Array,
  mags: Float32Array,
  from: number,
  n: number,
  row: number,
): void {
  for (let i = from; i < from + n; i++) {
    const b = i * row;
    for (let c = 0; c < row; c++) sum[c] += mags[b + c];
  }
}

/**
 * Normalized salience Ã [nKv, D] of one block. `keys`: the block's keys [R, nKv, D] f32 (the bf16-rounded
 * values the cache quantizes); `qMean`: I [nKv, D] (mean query magnitude per channel), or null for I = 1
 * (no queries observed). A_d = I_d·S_d, Ã_d = A_d / mean_d A_d per KV head, 0 when that mean is 0. When
 * `rawOut` is given it receives A [nKv, D].
 *
 * @example
 * ```ts
 * import { normalizedSalience } from "./mixkvq_select.ts";
 * // R = 2, 1 head, D = 2: equal key ranges, query magnitudes 3 and 1
 * normalizedSalience(new Float32Array([0, 0, 1, 1]), 2, 1, 2, new Float32Array([3, 1])); // [1.5, 0.5]
 * ```
 */
export function normalizedSalience(
  keys: Float32Array,
  R: number,
  numKvHeads: number,
  headDim: number,
  qMean: Float32Array | null,
  rawOut?: Float64Array,
): Float64Array {
  const row = numKvHeads * headDim;
  const out = new Float64Array(row);
  for (let h = 0; h < numKvHeads; h++) {
    let mean = 0;
    for (let d = 0; d < headDim; d++) {
      const c = h * headDim + d;
      let mn = Infinity, mx = -Infinity;
      for (let j = 0; j < R; j++) {
        const x = keys[j * row + c];
        if (x < mn) mn = x;
        if (x > mx) mx = x;
      }
      const S = (mx - mn) / ((1 << SALIENCE_SCALE_BITS) - 1);
      const A = (qMean ? qMean[c] : 1) * S;
      out[c] = A;
      if (rawOut) rawOut[c] = A;
      mean += A;
    }
    mean /= headDim;
    for (let d = 0; d < headDim; d++) {
      const c = h * headDim + d;
      out[c] = mean > 0 ? out[c] / mean : 0;
    }
  }
  return out;
}

/**
 * The values the cache hands back for one key channel of one block: `x` = the channel over the block's R
 * tokens (contiguous f32, bf16-rounded). Tier 16: bf16 round-to-nearest-even (exact for bf16 inputs);
 * tier 4 / 2: the project quantizer (src/quant/quantizer.ts) on groups of `group` consecutive tokens.
 *
 * @example
 * ```ts
 * import { keyChannelRoundTrip } from "./mixkvq_select.ts";
 * keyChannelRoundTrip(new Float32Array([0, 1, 2, 3]), 2, 4); // [0, 1, 2, 3] (exact: 4 levels)
 * ```
 */
export function keyChannelRoundTrip(x: Float32Array, bits: KeyTier, group: number): Float32Array {
  if (bits === 16) return x.map((v) => bf16ToF32(f32ToBf16RNE(v)));
  return fakeQuantize(x, group, bits);
}
