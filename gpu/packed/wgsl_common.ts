/**
 * WGSL building blocks shared by the packed-cache kernels. The quantizer functions are the GPU-exact path of
 * docs/numerics.md (Appendix A, verified bit-exact on the H100) — keep them line-by-line equivalent to
 * `src/quant/quantizer_gpu_style.ts`:
 *
 * | WGSL | TypeScript twin | why device-independent |
 * | --- | --- | --- |
 * | `bf16_up_bits(u)` | `f32BitsToBf16Up` (zero → +0) | integer ops |
 * | `bf16_rne_bits(u)` | `f32BitsToBf16RNE` (finite inputs) | integer ops |
 * | `scale_bits(r, qf)` | `gpuScaleBits` | approx quotient, then ≤ 4 exact ±1 steps on `S·qmax ≥ r` (exact product) |
 * | `gpu_code(d, S, qf, qmax)` | `gpuCode` | round(approx) + the `q0 == 1 && d < h` guard + one exact residual test |
 * | `u2f(x)` | exact u32 → f32 for x < 2^23 | `bitcast(x | 0x4B000000) − 2^23`: one OR and one exact subtraction |
 *
 * @example
 * ```ts
 * import { QUANT_WGSL } from "./wgsl_common.ts";
 * const code = `${QUANT_WGSL} @compute @workgroup_size(1) fn main() {}`;
 * ```
 * @module
 */

/** bf16 helpers and the GPU-exact quantizer steps (see the module table). */
export const QUANT_WGSL = /* wgsl */ `
fn bf16_up_bits(u: u32) -> u32 {
  let hi = u >> 16u; var o = hi;
  if ((u & 0xffffu) != 0u && hi < 0x8000u) { o = hi + 1u; }
  if (o == 0x8000u) { o = 0u; }
  return o;
}
fn bf16_rne_bits(u: u32) -> u32 { return (u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u; }
fn bf16(b: u32) -> f32 { return bitcast<f32>(b << 16u); }
// Step 4 (GPU form): smallest bf16 S with S*qf >= r, from an approximate quotient and <= 4 exact steps each way.
fn scale_bits(r: f32, qf: f32) -> u32 {
  var sb = 0u;
  if (r > 0.0) {
    let a = r / qf; sb = 1u;
    if (a > 0.0) { sb = bf16_up_bits(bitcast<u32>(a)); }
    if (sb > 0x7f7fu) { sb = 0x7f7fu; }
    for (var s = 0; s < 4; s++) { if (bf16(sb) * qf < r) { sb += 1u; } }
    for (var s = 0; s < 4; s++) { if (bf16(sb - 1u) * qf >= r) { sb -= 1u; } }
  }
  return sb;
}
// Step 5 (GPU form): round-half-even(d / S) for d >= 0, S > 0: approximate quotient + guard + exact residual.
fn gpu_code(d: f32, S: f32, qf: f32, qmax: u32) -> u32 {
  let h = S * 0.5;
  var q0 = clamp(round(d / S), 0.0, qf);
  if (q0 == 1.0 && d < h) { q0 = 0.0; }
  let e = d - q0 * S; var qi = u32(q0); let odd = (qi & 1u) == 1u;
  if (e > h || (e == h && odd)) { qi = qi + 1u; } else if (e < -h || (e == -h && odd)) { qi = qi - 1u; }
  return min(qi, qmax);
}
`;

/** `u2f(x)`: exact f32 of an integer x < 2^23 without the (slow on NVIDIA) integer→float conversion unit. */
export const U2F_WGSL = /* wgsl */ `
fn u2f(x: u32) -> f32 { return bitcast<f32>(x | 0x4B000000u) - 8388608.0; }
`;

/**
 * WGSL expression extracting code `k` (0-based) of width `bits` from the u32 expression `w`, as an
 * integer (`u32`).
 *
 * @example
 * ```ts
 * import { codeExpr } from "./wgsl_common.ts";
 * codeExpr("w", 2, 0); // "(w & 3u)"
 * codeExpr("w", 2, 15); // "(w >> 30u)"
 * ```
 */
export function codeExpr(w: string, bits: number, k: number): string {
  const mask = bits === 16 ? 0xffff : (1 << bits) - 1;
  const shift = k * bits;
  if (shift === 0) return `(${w} & ${mask}u)`;
  if (shift + bits === 32) return `(${w} >> ${shift}u)`;
  return `((${w} >> ${shift}u) & ${mask}u)`;
}

/**
 * A WGSL u32 literal (RangeError outside u32).
 *
 * @example
 * ```ts
 * import { u32 } from "./wgsl_common.ts";
 * u32(128); // "128u"
 * ```
 */
export function u32(v: number): string {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`not a u32: ${v}`);
  return `${v}u`;
}

/**
 * In-place code extraction (no shift for most codes): code k of width `bits` in word `w` is returned as
 * the exact f32 c·2^sh, where sh is the code's bit offset inside the (possibly pre-shifted) source word.
 * Codes whose bits lie below bit 23 are masked in place; the others are read from `w >> S0` with S0 the
 * smallest multiple of `bits` ≥ 9. One LOP3 (mask | exponent) and one exact FADD per code on NVIDIA; the
 * caller multiplies the other operand by 2^-sh (exact) — see {@link inplaceShift}.
 *
 * @example
 * ```ts
 * import { inplaceCodeExpr } from "./wgsl_common.ts";
 * inplaceCodeExpr("w", 2, 3);  // "(bitcast<f32>((w & 192u) | 0x4B000000u) - 8388608.0)"  (c·2^6)
 * inplaceCodeExpr("w", 2, 15); // code 15 from (w >> 10u), at bit 20
 * ```
 */
export function inplaceCodeExpr(w: string, bits: number, k: number): string {
  const { src, sh } = inplaceParts(bits, k);
  const mask = ((bits === 16 ? 0xffff : (1 << bits) - 1) * 2 ** sh) >>> 0;
  const s = src === 0 ? w : `(${w} >> ${src}u)`;
  return `(bitcast<f32>((${s} & ${mask}u) | 0x4B000000u) - 8388608.0)`;
}

/**
 * The power-of-two exponent sh of {@link inplaceCodeExpr} for code k: the value it yields is c·2^sh.
 *
 * @example
 * ```ts
 * import { inplaceShift } from "./wgsl_common.ts";
 * [inplaceShift(2, 10), inplaceShift(2, 11), inplaceShift(16, 1)]; // [20, 12, 0]
 * ```
 */
export function inplaceShift(bits: number, k: number): number {
  return inplaceParts(bits, k).sh;
}

function inplaceParts(bits: number, k: number): { src: number; sh: number } {
  const pos = k * bits;
  if (pos + bits <= 23) return { src: 0, sh: pos };
  const s0 = Math.ceil(9 / bits) * bits;
  return { src: s0, sh: pos - s0 };
}

/** Invocations of a quantizer workgroup that {@link GROUP_MINMAX_WGSL} reduces over (8 × 8). */
export const GROUP_REDUCE_THREADS = 64;

/**
 * WGSL module-scope workgroup arrays that {@link GROUP_MINMAX_WGSL} needs.
 *
 * | array | shape | type |
 * | --- | --- | --- |
 * | rmn, rmx | [64] | f32 |
 * | r2mn, r2mx | [8] | f32 |
 */
export const GROUP_MINMAX_DECL_WGSL = /* wgsl */ `
var<workgroup> rmn: array<f32, 64>;
var<workgroup> rmx: array<f32, 64>;
var<workgroup> r2mn: array<f32, 8>;
var<workgroup> r2mx: array<f32, 8>;`;

/**
 * WGSL statements for a 64-invocation workgroup (local index `lid`) where each invocation holds a partial
 * `var mn, mx: f32` of one quantization group: afterwards every invocation's `mn`, `mx` are the group's min and
 * max (min/max are exact, so the order of the two-level reduction cannot change a bit). Shared by the
 * grouped quantize-append, KIVI and MixKVQ quantizers.
 *
 * @example
 * ```ts
 * const body = "var mn = 3.0e38; var mx = -3.0e38;" + GROUP_MINMAX_WGSL; // then the scale and the codes
 * ```
 */
export const GROUP_MINMAX_WGSL = /* wgsl */ `
  rmn[lid] = mn; rmx[lid] = mx;
  workgroupBarrier();
  if (lid < 8u) {
    var a = rmn[lid * 8u]; var c = rmx[lid * 8u];
    for (var kr = 1u; kr < 8u; kr++) { a = min(a, rmn[lid * 8u + kr]); c = max(c, rmx[lid * 8u + kr]); }
    r2mn[lid] = a; r2mx[lid] = c;
  }
  workgroupBarrier();
  mn = r2mn[0]; mx = r2mx[0];
  for (var kr = 1u; kr < 8u; kr++) { mn = min(mn, r2mn[kr]); mx = max(mx, r2mx[kr]); }`;
