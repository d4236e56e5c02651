/**
 * bfloat16 (bf16) ⇄ float32 bit conversions, done with integer bit manipulation only, so the same
 * code can be written line by line in WGSL (`bitcast<u32>`, shifts, adds) and gives identical bits on
 * every device.
 *
 * A bf16 value is the upper 16 bits of an f32: sign, 8 exponent bits, 7 fraction bits (8 significant bits
 * with the hidden one). Every bf16 value is exactly an f32 value, so `bf16ToF32` is exact.
 *
 * Zero convention: functions that round (`f32ToBf16Up`, `bf16NextUp`, `bf16NextDown`) return +0 (bits
 * `0x0000`) whenever the result is a zero, never -0 (`0x8000`): the quantizer stores canonical zeros.
 *
 * @example
 * ```ts
 * import { bf16ToF32, f32ToBf16RNE, f32ToBf16Up } from "./bf16.ts";
 * f32ToBf16RNE(1.00390625); // 0x3f80 (tie, rounds to even 1.0)
 * f32ToBf16Up(1.00390625);  // 0x3f81 (1.0078125, the smallest bf16 >= x)
 * bf16ToF32(0x3f81);        // 1.0078125
 * ```
 * @module
 */

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** bf16 bit patterns of some useful constants. */
export const BF16_POS_ZERO = 0x0000;
/** +Infinity as bf16 bits. */
export const BF16_POS_INF = 0x7f80;
/** The largest finite bf16 (≈ 3.3895e38) as bits. */
export const BF16_MAX_FINITE = 0x7f7f;
/** The canonical quiet NaN this module returns. */
export const BF16_NAN = 0x7fc0;

/**
 * The IEEE-754 binary32 bit pattern of `x` (rounded to f32 first, as a `Float32Array` store does).
 *
 * @example
 * ```ts
 * import { f32ToBits } from "./bf16.ts";
 * f32ToBits(1); // 0x3f800000
 * ```
 */
export function f32ToBits(x: number): number {
  f32Scratch[0] = x;
  return u32Scratch[0];
}

/**
 * The f32 value with bit pattern `u` (u32).
 *
 * @example
 * ```ts
 * import { bitsToF32 } from "./bf16.ts";
 * bitsToF32(0x3f800000); // 1
 * ```
 */
export function bitsToF32(u: number): number {
  u32Scratch[0] = u;
  return f32Scratch[0];
}

/**
 * The exact f32 (and JS number) value of the bf16 bit pattern `bits` (low 16 bits are used).
 *
 * @example
 * ```ts
 * import { bf16ToF32 } from "./bf16.ts";
 * bf16ToF32(0x3fc0); // 1.5
 * bf16ToF32(0xc000); // -2
 * ```
 */
export function bf16ToF32(bits: number): number {
  u32Scratch[0] = (bits & 0xffff) << 16;
  return f32Scratch[0];
}

/** True when the f32 bit pattern `u` is a NaN. */
function isNaNBits(u: number): boolean {
  return (u & 0x7f800000) === 0x7f800000 && (u & 0x007fffff) !== 0;
}

/**
 * Round an f32 bit pattern `u` to bf16, round-to-nearest-ties-to-even. NaN stays NaN (made quiet, sign kept);
 * values beyond the largest finite bf16 round to ±Inf exactly as IEEE RNE does. This is the integer form a
 * WGSL kernel uses.
 *
 * @example
 * ```ts
 * import { f32BitsToBf16RNE } from "./bf16.ts";
 * f32BitsToBf16RNE(0x3f808000); // 0x3f80 (tie → even)
 * f32BitsToBf16RNE(0x3f818000); // 0x3f82 (tie → even)
 * ```
 */
export function f32BitsToBf16RNE(u: number): number {
  u = u >>> 0;
  if (isNaNBits(u)) return ((u >>> 16) | 0x0040) & 0xffff;
  // Largest non-NaN input is 0xff800000; + 0x8000 stays below 2^32, so no wrap-around.
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Round `x` to bf16, round-to-nearest-ties-to-even; returns the bf16 bits. `x` is first converted to f32
 * (`Math.fround`), so pass f32 values when the result must be a single correct rounding. NaN → quiet NaN.
 *
 * @example
 * ```ts
 * import { f32ToBf16RNE } from "./bf16.ts";
 * f32ToBf16RNE(1.00390625); // 0x3f80
 * f32ToBf16RNE(NaN);        // 0x7fc0
 * ```
 */
export function f32ToBf16RNE(x: number): number {
  return f32BitsToBf16RNE(f32ToBits(x));
}

/**
 * The smallest bf16 value ≥ the f32 with bit pattern `u` (rounding toward +∞); zero results are +0
 * (`0x0000`). NaN → quiet NaN. Integer-only, the form a WGSL kernel uses.
 *
 * @example
 * ```ts
 * import { f32BitsToBf16Up } from "./bf16.ts";
 * f32BitsToBf16Up(0x3f800001); // 0x3f81
 * f32BitsToBf16Up(0xbf800001); // 0xbf80 (-1.0000001 rounds up to -1)
 * ```
 */
export function f32BitsToBf16Up(u: number): number {
  u = u >>> 0;
  if (isNaNBits(u)) return ((u >>> 16) | 0x0040) & 0xffff;
  const hi = u >>> 16;
  let out: number;
  if ((u & 0xffff) === 0) out = hi; // exactly a bf16 value
  else if (hi < 0x8000) out = hi + 1; // positive: away from zero (0x7f7f + 1 = +Inf, as it must)
  else out = hi; // negative: truncation moves toward zero, i.e. up
  return out === 0x8000 ? 0 : out;
}

/**
 * The smallest bf16 value ≥ `x` (rounding toward +∞), for ANY JS number `x` (f64 included: the f32
 * rounding is done upward too, so the result is the true directed rounding of `x`). Zero results are +0.
 * NaN → quiet NaN. Values above the largest finite bf16 give +Inf (`0x7f80`).
 *
 * @example
 * ```ts
 * import { f32ToBf16Up, bf16ToF32 } from "./bf16.ts";
 * bf16ToF32(f32ToBf16Up(0.1)); // 0.10009765625 (≥ 0.1)
 * f32ToBf16Up(-0);             // 0x0000
 * ```
 */
export function f32ToBf16Up(x: number): number {
  if (x !== x) return BF16_NAN;
  const f = Math.fround(x);
  let u = f32ToBits(f);
  if (f < x) {
    // Step the f32 up by one ulp (f is finite here: x > f ≥ -MAX, and fround(x) < x excludes +Inf).
    if (f === 0) u = 1;
    else if (f > 0) u = u + 1;
    else u = u - 1;
  }
  return f32BitsToBf16Up(u);
}

/**
 * The next bf16 value above `bits` (toward +∞). ±0 → smallest positive subnormal `0x0001`; +Inf and NaN are
 * returned unchanged; a zero result is +0.
 *
 * @example
 * ```ts
 * import { bf16NextUp } from "./bf16.ts";
 * bf16NextUp(0x3f80); // 0x3f81
 * bf16NextUp(0xbf80); // 0xbf7f
 * ```
 */
export function bf16NextUp(bits: number): number {
  bits &= 0xffff;
  if ((bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0) return bits; // NaN
  if (bits === 0x7f80) return bits;
  if (bits === 0x0000 || bits === 0x8000) return 0x0001;
  const out = bits < 0x8000 ? bits + 1 : bits - 1;
  return out === 0x8000 ? 0 : out;
}

/**
 * The next bf16 value below `bits` (toward -∞). ±0 → `0x8001`; -Inf and NaN are returned unchanged; a zero
 * result is +0.
 *
 * @example
 * ```ts
 * import { bf16NextDown } from "./bf16.ts";
 * bf16NextDown(0x3f81); // 0x3f80
 * bf16NextDown(0x0001); // 0x0000
 * ```
 */
export function bf16NextDown(bits: number): number {
  bits &= 0xffff;
  if ((bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0) return bits; // NaN
  if (bits === 0xff80) return bits;
  if (bits === 0x0000 || bits === 0x8000) return 0x8001;
  const out = bits < 0x8000 ? bits - 1 : bits + 1;
  return out === 0x8000 ? 0 : out;
}
