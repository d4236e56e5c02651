/**
 * The quantizer exactly as a WGSL kernel computes it, written in TypeScript so it can be tested here: only
 * operations that are exact or correctly rounded on every IEEE f32 device (the H100 included) are used:
 *
 *  - single f32 add / sub / mul, each rounded once (`Math.fround`); every product below is EXACT in f32, so
 *    FMA contraction of `a*b + c` / `c - a*b` cannot change a result;
 *  - comparisons, `min` / `max`, `round` (ties to even), integer and bit operations (`bitcast<u32>`);
 *  - an APPROXIMATE quotient `approxDiv(a, b)` (WGSL `a / b`, not correctly rounded on the H100), whose
 *    result is only a starting guess that exact steps then correct.
 *
 * It must give the same codes, scales and zeros, bit for bit, as the CPU reference `quantizeGroup`, for any
 * `approxDiv` whose code quotient is within 1/4 of the exact one and whose scale quotient has relative
 * error below 2^-9 (WGSL promises 2.5 ulp, relative 2^-21.7); see docs/numerics.md §8.
 * Each function here maps to one WGSL function; keep them line-by-line equivalent.
 *
 * @example
 * ```ts
 * import { quantizeGroupGpuStyle, exactDivF32 } from "./quantizer_gpu_style.ts";
 * const x = new Float32Array(128).map((_, i) => Math.sin(i));
 * const codes = new Uint32Array(16), scales = new Uint16Array(1), zeros = new Uint16Array(1);
 * quantizeGroupGpuStyle(x, 0, 128, 4, codes, 0, scales, zeros, 0, exactDivF32);
 * ```
 * @module
 */

import { bf16ToF32, f32BitsToBf16Up, f32ToBits } from "./bf16.ts";
import { formatFor } from "./format.ts";
import { checkGroupBuffers, nonFiniteInputError } from "./quantizer.ts";

/** An approximate f32 quotient a / b (a ≥ 0, b > 0): what WGSL `a / b` returns on some device. */
export type ApproxDiv = (a: number, b: number) => number;

/**
 * Correctly rounded f32 division (what llvmpipe does).
 *
 * @example
 * ```ts
 * import { exactDivF32 } from "./quantizer_gpu_style.ts";
 * exactDivF32(1, 3); // 0.3333333432674408
 * ```
 */
export const exactDivF32: ApproxDiv = (a, b) => Math.fround(a / b);

const f32 = Math.fround;

/** f32 exponent field of |x| ≥ 2^64 (WGSL: `(bitcast<u32>(x) >> 23u) & 0xffu`). 191 = 127 + 64. */
const EXP_REJECT = 191;
/** f32 exponent field of |x| < 2^-64 → treat as +0. 63 = 127 − 64. */
const EXP_FLUSH = 63;

/**
 * WGSL `round(a)`: nearest integer, ties to even, for an f32 `a` (exact: `a − floor(a)` is representable).
 *
 * @example
 * ```ts
 * import { roundF32 } from "./quantizer_gpu_style.ts";
 * [roundF32(0.5), roundF32(1.5), roundF32(2.5), roundF32(-0.5)]; // [0, 2, 2, 0]
 * ```
 */
export function roundF32(a: number): number {
  const f = Math.floor(a);
  const diff = a - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return (f & 1) === 0 ? f : f + 1;
}

/**
 * Step 4, GPU form: bf16 bits of the smallest non-negative bf16 S with S·qmax ≥ r. Start from the bf16
 * round-up of an approximate r/qmax, then step one bf16 ulp at a time (at most 4 steps each way) using the
 * EXACT test S·qmax ≥ r (S has 8 significant bits and qmax ≤ 16, so S·qmax is exact in f32).
 * The TS version throws if the bounded loop did not reach the answer (approxDiv far too inaccurate); the
 * WGSL version cannot throw, which is why the accuracy precondition is documented.
 *
 * @example
 * ```ts
 * import { gpuScaleBits, exactDivF32 } from "./quantizer_gpu_style.ts";
 * gpuScaleBits(3, 3, exactDivF32); // 0x3f80 (S = 1)
 * ```
 */
export function gpuScaleBits(r: number, qmax: number, approxDiv: ApproxDiv): number {
  if (!(r > 0)) return 0;
  const a = approxDiv(r, qmax);
  // Positive bf16 bit patterns are ordered like their values; next up = bits + 1, next down = bits − 1.
  let sb = a > 0 ? f32BitsToBf16Up(f32ToBits(a)) : 1;
  if (sb > 0x7f7f) sb = 0x7f7f; // an absurd guess (+Inf/NaN) is clamped to the largest finite bf16
  for (let s = 0; s < 4 && f32(bf16ToF32(sb) * qmax) < r; s++) sb += 1;
  for (let s = 0; s < 4 && f32(bf16ToF32(sb - 1) * qmax) >= r; s++) sb -= 1;
  // TS-only post-condition (the minimality the loops establish under the accuracy precondition).
  if (!(f32(bf16ToF32(sb) * qmax) >= r) || f32(bf16ToF32(sb - 1) * qmax) >= r) {
    throw new Error(`gpuScaleBits: approxDiv(${r}, ${qmax}) = ${a} is too inaccurate for 4 bf16 steps`);
  }
  return sb;
}

/**
 * Step 5, GPU form: the code roundHalfEven(d / S) clamped to [0, qmax] for an f32 d ≥ 0 and a bf16 S > 0,
 * from an approximate quotient plus ONE exact correction:
 *  h = S·0.5;  q0 = clamp(round(approx(d/S)), 0, qmax);  if q0 == 1 and d < h: q0 = 0;
 *  e = fl32(d − q0·S);
 *  e > h or (e == h and q0 odd) → q0 + 1;  e < −h or (e == −h and q0 odd) → q0 − 1;  else q0.
 * q0·S and S·0.5 are exact, and e is exact in every case (Sterbenz for q0 ≥ 1; e = d for q0 = 0). The
 * `q0 == 1 and d < h` guard closes the one hole of the Sterbenz argument: without it, q0 = 1 with d/S < 1/2
 * can give an inexact e (docs/numerics.md §8).
 *
 * @example
 * ```ts
 * import { gpuCode, exactDivF32 } from "./quantizer_gpu_style.ts";
 * gpuCode(2.5, 1, 3, exactDivF32); // 2 (tie → even)
 * gpuCode(2.5, 1, 3, (a, b) => Math.fround(a / b) * (1 + 2 ** -22)); // still 2
 * ```
 */
export function gpuCode(d: number, S: number, qmax: number, approxDiv: ApproxDiv): number {
  if (S === 0) return 0;
  const a = approxDiv(d, S);
  let q0 = roundF32(a);
  if (!(q0 >= 0)) q0 = 0; // WGSL: clamp(round(a), 0.0, f32(qmax)) (also catches -0 and NaN)
  if (q0 > qmax) q0 = qmax;
  const h = f32(S * 0.5); // exact
  if (q0 === 1 && d < h) q0 = 0; // d/S < 1/2: the answer is 0, and d − 1·S might not be exact
  const p = f32(q0 * S); // exact: ≤ 16-bit integer × 8-bit significand
  const e = f32(d - p); // exact; a device may fuse this as fma(-q0, S, d): same value, since q0*S is exact
  let q = q0;
  if (e > h || (e === h && (q0 & 1) === 1)) q = q0 + 1;
  else if (e < -h || (e === -h && (q0 & 1) === 1)) q = q0 - 1;
  return q > qmax ? qmax : q; // unreachable clamp (d ≤ r ≤ S·qmax), as in the spec
}

/**
 * Quantize ONE group, GPU form; same arguments and outputs as `quantizeGroup` (CPU reference), plus the
 * approximate division used for the two quotients. Same errors as the CPU path.
 *
 * @example
 * ```ts
 * import { quantizeGroupGpuStyle, exactDivF32 } from "./quantizer_gpu_style.ts";
 * const x = new Float32Array([0, 0.5, 1.5, 2.5, 3, 1, 2, 0.25]);
 * const codes = new Uint32Array(1), scales = new Uint16Array(1), zeros = new Uint16Array(1);
 * quantizeGroupGpuStyle(x, 0, 8, 2, codes, 0, scales, zeros, 0, exactDivF32); // codes[0] = 0x27a0
 * ```
 */
export function quantizeGroupGpuStyle(
  x: Float32Array,
  xOff: number,
  G: number,
  bits: number,
  codes: Uint32Array,
  codeOff: number,
  scales: Uint16Array,
  zeros: Uint16Array,
  gIdx: number,
  approxDiv: ApproxDiv = exactDivF32,
): void {
  const fmt = formatFor(bits);
  checkGroupBuffers(x.length, xOff, G, fmt, codes.length, codeOff, scales.length, zeros.length, gIdx);
  const qmax = fmt.qmax;
  // Steps 0 and 1, with exponent-field tests (no x != x: shader compilers may assume no NaN).
  let mn = 0;
  let mx = 0;
  for (let i = 0; i < G; i++) {
    const u = f32ToBits(x[xOff + i]);
    const ex = (u >>> 23) & 0xff;
    if (ex >= EXP_REJECT) throw nonFiniteInputError(x[xOff + i], i, gIdx);
    const v = ex < EXP_FLUSH ? 0 : x[xOff + i];
    if (i === 0) {
      mn = v;
      mx = v;
    } else {
      mn = Math.min(mn, v);
      mx = Math.max(mx, v);
    }
  }
  // Step 2: −mn by flipping the sign bit, then round up to bf16 with integer ops.
  const zb = f32BitsToBf16Up(f32ToBits(mn) ^ 0x80000000);
  const z = bf16ToF32(zb);
  // Step 3.
  const r = f32(mx + z);
  // Step 4.
  const sb = gpuScaleBits(r, qmax, approxDiv);
  const S = bf16ToF32(sb);
  zeros[gIdx] = zb;
  scales[gIdx] = sb;
  // Step 5 + packing.
  const b = fmt.bits;
  const cpw = fmt.codesPerWord;
  let w = 0;
  let k = 0;
  let wi = codeOff;
  for (let i = 0; i < G; i++) {
    const u = f32ToBits(x[xOff + i]);
    const v = ((u >>> 23) & 0xff) < EXP_FLUSH ? 0 : x[xOff + i];
    const d = f32(v + z);
    const q = gpuCode(d, S, qmax, approxDiv);
    w |= q << (k * b);
    if (++k === cpw) {
      codes[wi++] = w;
      w = 0;
      k = 0;
    }
  }
  if (k !== 0) codes[wi] = w;
}
