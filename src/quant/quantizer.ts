/**
 * The project's group quantizer: the CPU reference ("living spec") of the definition in docs/numerics.md.
 *
 * For one group x[0..G) of f32 values and b ∈ {16, 8, 4, 2}, qmax = 2^b − 1:
 *  0. |x| ≥ 2^64, NaN or ±Inf → NonFiniteError (index within the group, value); |x| < 2^-64 → +0.
 *  1. mn = min x, mx = max x.
 *  2. z = smallest bf16 ≥ −mn (exact bit manipulation), stored as bf16 bits.
 *  3. r = fl32(mx + z) ≥ 0.
 *  4. S = smallest non-negative bf16 with S·qmax ≥ r (S = 0 iff r = 0), stored as bf16 bits.
 *  5. d = fl32(x + z); q = 0 if S = 0 else clamp(roundHalfEven(d / S), 0, qmax), d/S the exact quotient.
 *  6. x̂ = fl32(q·S − z)   (q·S is exact in f32).
 *
 * Where this file uses f64 (the quotients r/qmax and d/S), docs/numerics.md proves the f64 result leads to
 * the same bf16 / integer as the exact rational. `quantizer_gpu_style.ts` computes the same bits with only
 * GPU-exact operations; tests check the two agree bit for bit.
 *
 * @example
 * ```ts
 * import { allocQuantBuffers, quantizeRows, dequantizeRows } from "./quantizer.ts";
 * const x = Float32Array.from({ length: 256 }, (_, i) => Math.sin(i));
 * const q = allocQuantBuffers(2, 128, 4);
 * quantizeRows(x, 2, 128, 4, q);
 * const xh = dequantizeRows(q, 2, 128, 4); // |x - xh| <= S/2 + tiny rounding, per element
 * ```
 * @module
 */

import { NonFiniteError, QuantConfigError, TensorShapeError } from "../errors.ts";
import { bf16ToF32, f32ToBf16Up } from "./bf16.ts";
import { formatFor, type PackedFormat } from "./format.ts";

/** Inputs with |x| ≥ 2^64 (and NaN, ±Inf) are rejected. */
export const INPUT_MAX_ABS = 2 ** 64;
/** Inputs with |x| < 2^-64 are treated as +0. */
export const INPUT_FLUSH_ABS = 2 ** -64;

/** The three buffers of many quantized groups (see the layout table in format.ts). */
export interface QuantBuffers {
  /** Packed codes, [nGroups, wordsPerGroup(G)] u32 words. */
  codes: Uint32Array;
  /** bf16 bits of each group's scale, [nGroups]. */
  scales: Uint16Array;
  /** bf16 bits of each group's zero, [nGroups]. */
  zeros: Uint16Array;
}

/** Any writable numeric array (typed or plain) used by the pack/unpack helpers. */
export type NumericArray =
  | number[]
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array;

/**
 * The NonFiniteError thrown for input value `v` at `index` within group `gIdx`. Shared by both code paths so
 * the messages are identical.
 *
 * @example
 * ```ts
 * import { nonFiniteInputError } from "./quantizer.ts";
 * nonFiniteInputError(NaN, 3, 0).message; // "quantizer input NaN at index 3 of group 0 ..."
 * ```
 */
export function nonFiniteInputError(v: number, index: number, gIdx: number): NonFiniteError {
  return new NonFiniteError(
    `quantizer input ${v} at index ${index} of group ${gIdx} is not finite or |x| >= 2^64`,
  );
}

/**
 * Check that one group's slices fit in the given buffers (typed arrays silently drop out-of-bounds writes,
 * so this is checked once per group). Throws TensorShapeError naming the sizes.
 *
 * @example
 * ```ts
 * import { checkGroupBuffers } from "./quantizer.ts";
 * import { formatFor } from "./format.ts";
 * checkGroupBuffers(128, 0, 128, formatFor(4), 16, 0, 1, 1, 0); // ok
 * ```
 */
export function checkGroupBuffers(
  xLen: number,
  xOff: number,
  G: number,
  fmt: PackedFormat,
  codesLen: number,
  codeOff: number,
  scalesLen: number,
  zerosLen: number,
  gIdx: number,
): void {
  const wpg = fmt.wordsPerGroup(G);
  if (!Number.isSafeInteger(xOff) || xOff < 0 || xOff + G > xLen) {
    throw new TensorShapeError(`group ${gIdx}: values [${xOff}, ${xOff + G}) outside an input of ${xLen}`);
  }
  if (!Number.isSafeInteger(codeOff) || codeOff < 0 || codeOff + wpg > codesLen) {
    throw new TensorShapeError(
      `group ${gIdx}: code words [${codeOff}, ${codeOff + wpg}) outside a code buffer of ${codesLen}`,
    );
  }
  if (!Number.isSafeInteger(gIdx) || gIdx < 0 || gIdx >= scalesLen || gIdx >= zerosLen) {
    throw new TensorShapeError(
      `group index ${gIdx} outside scales (${scalesLen}) / zeros (${zerosLen}) buffers`,
    );
  }
}

/**
 * Round half to even of a non-negative f64 `t` (exact: `Math.round` rounds ties up, and `q − t` is exact).
 *
 * @example
 * ```ts
 * import { roundHalfEven } from "./quantizer.ts";
 * [roundHalfEven(0.5), roundHalfEven(1.5), roundHalfEven(2.5), roundHalfEven(2.6)]; // [0, 2, 2, 3]
 * ```
 */
export function roundHalfEven(t: number): number {
  const q = Math.round(t);
  return q - t === 0.5 && (q & 1) === 1 ? q - 1 : q;
}

/**
 * Step 4: bf16 bits of the smallest non-negative bf16 S with S·qmax ≥ r (r an f32 ≥ 0). r/qmax in f64 is not
 * exact, but it can never cross or land on a bf16 value that the exact quotient does not (docs/numerics.md
 * §4), so rounding it up to bf16 gives the exact answer.
 *
 * @example
 * ```ts
 * import { scaleBitsFor } from "./quantizer.ts";
 * import { bf16ToF32 } from "./bf16.ts";
 * bf16ToF32(scaleBitsFor(3, 3)); // 1
 * bf16ToF32(scaleBitsFor(1, 3)); // 0.333984375
 * ```
 */
export function scaleBitsFor(r: number, qmax: number): number {
  return r > 0 ? f32ToBf16Up(r / qmax) : 0;
}

/**
 * Quantize ONE group: G f32 values at `x[xOff..xOff+G)` to `bits`-wide codes written packed at
 * `codes[codeOff..codeOff+wordsPerGroup(G))`, scale bits to `scales[gIdx]`, zero bits to `zeros[gIdx]`.
 * Throws NonFiniteError (index within the group and value) for NaN/±Inf/|x| ≥ 2^64, QuantConfigError for
 * unsupported bits, TensorShapeError when a slice does not fit its buffer.
 *
 * @example
 * ```ts
 * import { quantizeGroup } from "./quantizer.ts";
 * const x = new Float32Array([0, 0.5, 1.5, 2.5, 3, 1, 2, 0.25]);
 * const codes = new Uint32Array(1), scales = new Uint16Array(1), zeros = new Uint16Array(1);
 * quantizeGroup(x, 0, 8, 2, codes, 0, scales, zeros, 0);
 * // S = 1 (scales[0] = 0x3f80), z = 0; codes 0,0,2,2,3,1,2,0 (ties to even): codes[0] = 0x27a0
 * ```
 */
export function quantizeGroup(
  x: Float32Array,
  xOff: number,
  G: number,
  bits: number,
  codes: Uint32Array,
  codeOff: number,
  scales: Uint16Array,
  zeros: Uint16Array,
  gIdx: number,
): void {
  const fmt = formatFor(bits);
  checkGroupBuffers(x.length, xOff, G, fmt, codes.length, codeOff, scales.length, zeros.length, gIdx);
  const qmax = fmt.qmax;
  // Steps 0 and 1.
  let mn = Infinity;
  let mx = -Infinity;
  let anyTiny = false;
  for (let i = 0; i < G; i++) {
    let v = x[xOff + i];
    const a = Math.abs(v);
    if (!(a < INPUT_MAX_ABS)) throw nonFiniteInputError(v, i, gIdx);
    if (a < INPUT_FLUSH_ABS) {
      v = 0;
      anyTiny = true;
    }
    if (v < mn) mn = v;
    if (v > mx) mx = v;
  }
  // Step 2: z = smallest bf16 >= -mn (canonical +0 when mn = 0).
  const zb = f32ToBf16Up(-mn);
  const z = bf16ToF32(zb);
  // Step 3: f64 sum of two f32 then fround = correctly rounded f32 sum (53 >= 2*24 + 2).
  const r = Math.fround(mx + z);
  // Step 4.
  const sb = scaleBitsFor(r, qmax);
  const S = bf16ToF32(sb);
  zeros[gIdx] = zb;
  scales[gIdx] = sb;
  // Step 5 + packing (little-end first).
  const b = fmt.bits;
  const cpw = fmt.codesPerWord;
  let w = 0;
  let k = 0;
  let wi = codeOff;
  for (let i = 0; i < G; i++) {
    let q = 0;
    if (S > 0) {
      let v = x[xOff + i];
      if (anyTiny && Math.abs(v) < INPUT_FLUSH_ABS) v = 0;
      // d/S in f64 then round-half-even equals round-half-even of the exact quotient (docs/numerics.md §5).
      const t = Math.fround(v + z) / S;
      q = Math.round(t);
      if (q - t === 0.5 && (q & 1) === 1) q -= 1;
      if (q > qmax) q = qmax; // unreachable (d <= r <= S*qmax); kept as the spec's clamp
    }
    w |= q << (k * b);
    if (++k === cpw) {
      codes[wi++] = w;
      w = 0;
      k = 0;
    }
  }
  if (k !== 0) codes[wi] = w;
}

/**
 * Allocate zeroed buffers for `nGroups` groups of G values at `bits`.
 *
 * @example
 * ```ts
 * import { allocQuantBuffers } from "./quantizer.ts";
 * const q = allocQuantBuffers(10, 128, 2); // codes: 80 words, scales: 10, zeros: 10
 * ```
 */
export function allocQuantBuffers(nGroups: number, G: number, bits: number): QuantBuffers {
  const wpg = formatFor(bits).wordsPerGroup(G);
  return {
    codes: new Uint32Array(nGroups * wpg),
    scales: new Uint16Array(nGroups),
    zeros: new Uint16Array(nGroups),
  };
}

/**
 * Quantize `nGroups` contiguous groups: group g is `x[g*G .. (g+1)*G)`, its codes go to words
 * `[g*wpg, (g+1)*wpg)` of `out.codes`, its scale/zero to `out.scales[g]` / `out.zeros[g]`. Returns `out`.
 *
 * @example
 * ```ts
 * import { allocQuantBuffers, quantizeRows } from "./quantizer.ts";
 * const x = new Float32Array(4 * 128).map((_, i) => (i % 7) - 3);
 * const q = quantizeRows(x, 4, 128, 8, allocQuantBuffers(4, 128, 8));
 * ```
 */
export function quantizeRows(
  x: Float32Array,
  nGroups: number,
  G: number,
  bits: number,
  out: QuantBuffers,
): QuantBuffers {
  const wpg = formatFor(bits).wordsPerGroup(G);
  for (let g = 0; g < nGroups; g++) {
    quantizeGroup(x, g * G, G, bits, out.codes, g * wpg, out.scales, out.zeros, g);
  }
  return out;
}

/**
 * Dequantize ONE group: x̂_i = fl32(q_i·S − z) into `out[outOff..outOff+G)`. q·S is exact in f32, so the
 * result is the same whether a device fuses the multiply-add or not.
 *
 * @example
 * ```ts
 * import { dequantizeGroup } from "./quantizer.ts";
 * const out = new Float32Array(8);
 * dequantizeGroup(new Uint32Array([0x27a0]), 0, 8, 2, 0x3f80, 0x0000, out, 0);
 * // out = [0, 0, 2, 2, 3, 1, 2, 0]
 * ```
 */
export function dequantizeGroup(
  codes: Uint32Array,
  codeOff: number,
  G: number,
  bits: number,
  scaleBits: number,
  zeroBits: number,
  out: Float32Array,
  outOff: number,
): void {
  const fmt = formatFor(bits);
  const wpg = fmt.wordsPerGroup(G);
  if (codeOff < 0 || codeOff + wpg > codes.length) {
    throw new TensorShapeError(
      `code words [${codeOff}, ${codeOff + wpg}) outside a buffer of ${codes.length}`,
    );
  }
  if (outOff < 0 || outOff + G > out.length) {
    throw new TensorShapeError(`output [${outOff}, ${outOff + G}) outside a buffer of ${out.length}`);
  }
  const S = bf16ToF32(scaleBits);
  const z = bf16ToF32(zeroBits);
  const b = fmt.bits;
  const cpw = fmt.codesPerWord;
  const mask = fmt.mask;
  let i = 0;
  for (let wi = 0; wi < wpg; wi++) {
    const w = codes[codeOff + wi];
    for (let k = 0; k < cpw && i < G; k++, i++) {
      const q = (w >>> (k * b)) & mask;
      out[outOff + i] = q * S - z; // q*S exact; the Float32Array store is the single f32 rounding
    }
  }
}

/**
 * Dequantize `nGroups` contiguous groups (layout of {@link quantizeRows}) into `out` (allocated when omitted).
 *
 * @example
 * ```ts
 * import { allocQuantBuffers, quantizeRows, dequantizeRows } from "./quantizer.ts";
 * const x = new Float32Array(256).map((_, i) => Math.cos(i));
 * const xh = dequantizeRows(quantizeRows(x, 2, 128, 8, allocQuantBuffers(2, 128, 8)), 2, 128, 8);
 * ```
 */
export function dequantizeRows(
  q: QuantBuffers,
  nGroups: number,
  G: number,
  bits: number,
  out?: Float32Array,
): Float32Array {
  const wpg = formatFor(bits).wordsPerGroup(G);
  const dst = out ?? new Float32Array(nGroups * G);
  if (q.scales.length < nGroups || q.zeros.length < nGroups) {
    throw new TensorShapeError(
      `${nGroups} groups but scales has ${q.scales.length} and zeros ${q.zeros.length} entries`,
    );
  }
  for (let g = 0; g < nGroups; g++) {
    dequantizeGroup(q.codes, g * wpg, G, bits, q.scales[g], q.zeros[g], dst, g * G);
  }
  return dst;
}

/**
 * Quantize then dequantize: the values the cache would hand back. `x.length` must be a multiple of G.
 * Used by the sensitivity profiler.
 *
 * @example
 * ```ts
 * import { fakeQuantize } from "./quantizer.ts";
 * const x = new Float32Array(128).map((_, i) => i / 10);
 * const xh = fakeQuantize(x, 128, 2); // 4 distinct levels
 * ```
 */
export function fakeQuantize(x: Float32Array, G: number, bits: number): Float32Array {
  const fmt = formatFor(bits);
  fmt.wordsPerGroup(G); // validates G
  if (x.length % G !== 0) {
    throw new TensorShapeError(`fakeQuantize: length ${x.length} is not a multiple of the group size ${G}`);
  }
  const nGroups = x.length / G;
  const q = allocQuantBuffers(nGroups, G, bits);
  quantizeRows(x, nGroups, G, bits, q);
  return dequantizeRows(q, nGroups, G, bits);
}

/**
 * Pack G codes `src[srcOff..srcOff+G)` (each in [0, 2^bits)) into `words[wordOff..)` in the layout of
 * format.ts (code i → word floor(i/cpw), bit offset (i mod cpw)·bits; padding bits zero).
 * Throws QuantConfigError naming a code that does not fit.
 *
 * @example
 * ```ts
 * import { packCodes } from "./quantizer.ts";
 * const w = new Uint32Array(1);
 * packCodes([1, 2, 3, 4, 5, 6, 7, 8], 0, 8, 4, w, 0); // w[0] = 0x87654321
 * ```
 */
export function packCodes(
  src: ArrayLike<number>,
  srcOff: number,
  G: number,
  bits: number,
  words: Uint32Array,
  wordOff: number,
): void {
  const fmt = formatFor(bits);
  const wpg = fmt.wordsPerGroup(G);
  if (srcOff < 0 || srcOff + G > src.length) {
    throw new TensorShapeError(`codes [${srcOff}, ${srcOff + G}) outside a source of ${src.length}`);
  }
  if (wordOff < 0 || wordOff + wpg > words.length) {
    throw new TensorShapeError(`words [${wordOff}, ${wordOff + wpg}) outside a buffer of ${words.length}`);
  }
  const b = fmt.bits;
  const cpw = fmt.codesPerWord;
  const qmax = fmt.qmax;
  let i = 0;
  for (let wi = 0; wi < wpg; wi++) {
    let w = 0;
    for (let k = 0; k < cpw && i < G; k++, i++) {
      const q = src[srcOff + i];
      if (!(q >= 0 && q <= qmax && Number.isInteger(q))) {
        throw new QuantConfigError(`code ${q} at index ${i} does not fit in ${b} bits`);
      }
      w |= q << (k * b);
    }
    words[wordOff + wi] = w;
  }
}

/**
 * Unpack G codes from `words[wordOff..)` (layout of format.ts) into `dst[dstOff..dstOff+G)`.
 *
 * @example
 * ```ts
 * import { unpackCodes } from "./quantizer.ts";
 * const out = new Uint8Array(8);
 * unpackCodes(new Uint32Array([0x87654321]), 0, 8, 4, out, 0); // out = [1,2,3,4,5,6,7,8]
 * ```
 */
export function unpackCodes(
  words: Uint32Array,
  wordOff: number,
  G: number,
  bits: number,
  dst: NumericArray,
  dstOff: number,
): void {
  const fmt = formatFor(bits);
  const wpg = fmt.wordsPerGroup(G);
  if (wordOff < 0 || wordOff + wpg > words.length) {
    throw new TensorShapeError(`words [${wordOff}, ${wordOff + wpg}) outside a buffer of ${words.length}`);
  }
  if (dstOff < 0 || dstOff + G > dst.length) {
    throw new TensorShapeError(`codes [${dstOff}, ${dstOff + G}) outside a destination of ${dst.length}`);
  }
  const b = fmt.bits;
  const cpw = fmt.codesPerWord;
  const mask = fmt.mask;
  let i = 0;
  for (let wi = 0; wi < wpg; wi++) {
    const w = words[wordOff + wi];
    for (let k = 0; k < cpw && i < G; k++, i++) dst[dstOff + i] = (w >>> (k * b)) & mask;
  }
}
