/**
 * The **int8 query** of the fused attention's integer K phase (`AttentionTuning.kdot`,
 * gpu/packed/attention.wgsl.ts mirrors this file). Each head's scaled query q (q·1/√D in f32) is rounded to
 * int8 codes with a power-of-two scale, so the rounding is exact arithmetic on every adapter (a multiply by
 * 2^-e and a round-half-even) and the codes are identical on CPU and GPU:
 *
 * | step | value |
 * | --- | --- |
 * | a | max_d \|q_d\| of the head |
 * | e | a < 2^-126 (or NaN): 0; else the smallest e ≥ −126 with 127·2^e ≥ a (so 63.5·2^e < a for e > −126) |
 * | qi_d | round-half-even(q_d·2^-e) ∈ [−127, 127] |
 * | q̂_d | qi_d·2^e |
 *
 * Scores over a 2-, 4- or 8-bit K segment are then S·2^e·Σ qi·c − z·2^e·Σ qi with exact integer sums. The
 * rounding error per element is at most 2^(e−1) ≤ a/127: between 4 and 8 times below the 4-bit key's own
 * rounding (range/30) and 16–32 times below the 2-bit key's (range/6); docs/gpu-packed.md §2b states the
 * attention bound.
 *
 * @module
 */
import { TensorShapeError } from "../src/errors.ts";
import { roundHalfEven } from "../src/quant/quantizer.ts";

/** Smallest normal f32, 2^-126. */
const MIN_NORMAL = 2 ** -126;

/**
 * Exponent e of a head whose largest |q| is `a` (table in the module doc).
 *
 * @example
 * ```ts
 * import { int8QueryExponent } from "./query_int8.ts";
 * int8QueryExponent(1.0); // -6: 127/64 ≥ 1 > 63.5/64
 * int8QueryExponent(0); // 0
 * ```
 */
export function int8QueryExponent(a: number): number {
  if (!(a >= MIN_NORMAL)) return 0;
  // biased exponent field of the f32 a (a is an f32 value; frexp-style without bit casts)
  let E = Math.floor(Math.log2(a));
  if (2 ** E > a) E--;
  else if (2 ** (E + 1) <= a) E++;
  let e = Math.max(E - 6, -126);
  if (a > 127 * 2 ** e) e++;
  return e;
}

/** Int8 codes and per-head exponents of a query. */
export interface Int8Query {
  /** [numHeads, headDim] codes in [−127, 127]. */
  codes: Int8Array;
  /** [numHeads] exponents: q̂ = code·2^e. */
  exps: Int32Array;
}

/**
 * Rounds each head of the scaled query `q` ([numHeads, headDim] f32 values) to int8 (module doc).
 *
 * @example
 * ```ts
 * import { int8Query } from "./query_int8.ts";
 * const { codes, exps } = int8Query(new Float32Array([0.5, -1, 0.25, 0]), 1, 4);
 * // exps[0] = -6, codes = [32, -64, 16, 0]
 * ```
 */
export function int8Query(q: Float32Array, numHeads: number, headDim: number): Int8Query {
  if (q.length !== numHeads * headDim) {
    throw new TensorShapeError(`int8Query: q has ${q.length} values, want ${numHeads}·${headDim}`);
  }
  const codes = new Int8Array(q.length), exps = new Int32Array(numHeads);
  for (let h = 0; h < numHeads; h++) {
    let a = 0;
    for (let d = 0; d < headDim; d++) a = Math.max(a, Math.abs(q[h * headDim + d]));
    const e = int8QueryExponent(a);
    exps[h] = e;
    const inv = 2 ** -e;
    for (let d = 0; d < headDim; d++) codes[h * headDim + d] = roundHalfEven(q[h * headDim + d] * inv);
  }
  return { codes, exps };
}

/**
 * q̂ = code·2^e as f32 ([numHeads, headDim]), the query the integer K phase effectively scores with.
 *
 * @example
 * ```ts
 * import { int8Query, int8QueryValues } from "./query_int8.ts";
 * const qh = int8QueryValues(int8Query(new Float32Array([0.3, -0.7]), 1, 2), 2);
 * ```
 */
export function int8QueryValues(iq: Int8Query, headDim: number): Float32Array {
  const out = new Float32Array(iq.codes.length);
  for (let i = 0; i < out.length; i++) out[i] = iq.codes[i] * 2 ** iq.exps[Math.floor(i / headDim)];
  return out;
}
