/**
 * Helpers for generating WGSL: literals and the bf16 unpacking functions shared by the weight kernels.
 *
 * bf16 weights are stored two per u32: element 2i in the LOW half, element 2i+1 in the HIGH half, so
 * unpacking is exact and costs one shift or one mask:
 * | element | WGSL |
 * |---|---|
 * | 2i   | `bitcast<f32>(w << 16u)` |
 * | 2i+1 | `bitcast<f32>(w & 0xffff0000u)` |
 *
 * @example
 * ```ts
 * const code = `${BF16_WGSL} const EPS = ${f32Lit(1e-5)};`;
 * ```
 * @module
 */

/** How a weight matrix is stored on the GPU. */
export type WeightFormat = "bf16" | "f32";

/** WGSL functions `bf16lo(w)` / `bf16hi(w)`: the two bf16 values packed in a u32, as f32 (exact). */
export const BF16_WGSL = `fn bf16lo(w: u32) -> f32 { return bitcast<f32>(w << 16u); }
fn bf16hi(w: u32) -> f32 { return bitcast<f32>(w & 0xffff0000u); }
`;

/**
 * A WGSL f32 literal that parses to `Math.fround(v)`.
 *
 * @example
 * ```ts
 * f32Lit(1e-5); // "9.99999974737875164e-6f"
 * f32Lit(2);    // "2.0f"
 * ```
 */
export function f32Lit(v: number): string {
  const f = Math.fround(v);
  if (!Number.isFinite(f)) throw new RangeError(`f32Lit: ${v} is not a finite f32`);
  if (Number.isInteger(f) && Math.abs(f) < 1e15) return `${f}.0f`;
  return `${f.toExponential(17)}f`;
}

/**
 * A WGSL u32 literal; RangeError for non-integers or values outside u32.
 *
 * @example
 * ```ts
 * u32Lit(384); // "384u"
 * ```
 */
export function u32Lit(v: number): string {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`u32Lit: ${v} is not a u32`);
  return `${v}u`;
}
