/**
 * Decoding of the floating-point tensor dtypes a model may be stored in (bf16, f16, f32, little-endian)
 * into Float32Array. Encoding to bf16 lives with the quantizer, not here.
 *
 * @example
 * ```ts
 * import { decodeToF32 } from "./dtype.ts";
 * const bytes = new Uint8Array([0x80, 0x3f]); // bf16 1.0, little-endian
 * console.log(decodeToF32(bytes, "BF16")); // Float32Array [ 1 ]
 * ```
 * @module
 */
import { TensorShapeError } from "../errors.ts";

/** The safetensors dtypes this engine can load. */
export type TensorDtype = "BF16" | "F16" | "F32";

/** Bytes per element of each supported dtype. */
export const DTYPE_ITEM_SIZE: Readonly<Record<TensorDtype, number>> = { BF16: 2, F16: 2, F32: 4 };

/**
 * Bytes per element of `dtype`.
 *
 * @example
 * ```ts
 * import { dtypeItemSize } from "./dtype.ts";
 * dtypeItemSize("BF16"); // 2
 * ```
 */
export function dtypeItemSize(dtype: TensorDtype): number {
  return DTYPE_ITEM_SIZE[dtype];
}

/** True when typed-array views read little-endian data natively. */
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function checkLength(bytes: Uint8Array, itemSize: number, dtype: TensorDtype): number {
  if (bytes.byteLength % itemSize !== 0) {
    throw new TensorShapeError(
      `${dtype} data of ${bytes.byteLength} bytes is not a whole number of ${itemSize}-byte elements`,
    );
  }
  return bytes.byteLength / itemSize;
}

/**
 * The f32 bit pattern of an IEEE half-precision value given by its 16 bits: exact for normals,
 * subnormals, ±0, ±Infinity and NaN (the payload is kept, shifted into the f32 mantissa).
 *
 * @example
 * ```ts
 * import { f16BitsToF32Bits } from "./dtype.ts";
 * f16BitsToF32Bits(0x3c00).toString(16); // "3f800000" (1.0)
 * ```
 */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf / nan
  if (exp !== 0) return (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0; // normal
  if (mant === 0) return sign >>> 0; // ±0
  // Subnormal: mant * 2^-24. Normalize: shift until the implicit bit (0x400) is set.
  let e = -14;
  let m = mant;
  while ((m & 0x400) === 0) {
    m <<= 1;
    e--;
  }
  return (sign | ((e + 127) << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

/**
 * The value of an IEEE half-precision number given by its 16 bits.
 *
 * @example
 * ```ts
 * import { f16BitsToF32 } from "./dtype.ts";
 * f16BitsToF32(0x7bff); // 65504
 * ```
 */
export function f16BitsToF32(h: number): number {
  F32_SCRATCH_U32[0] = f16BitsToF32Bits(h & 0xffff);
  return F32_SCRATCH[0];
}

const F32_SCRATCH = new Float32Array(1);
const F32_SCRATCH_U32 = new Uint32Array(F32_SCRATCH.buffer);

/** f16 bits -> f32 bits, built on first use. [65536] */
let f16Table: Uint32Array | null = null;
function getF16Table(): Uint32Array {
  if (f16Table === null) {
    const t = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) t[h] = f16BitsToF32Bits(h);
    f16Table = t;
  }
  return f16Table;
}

/**
 * Decodes little-endian bfloat16 bytes (2 per element) into f32 (bf16 is the upper half of an f32).
 *
 * @example
 * ```ts
 * import { decodeBf16 } from "./dtype.ts";
 * decodeBf16(new Uint8Array([0x00, 0xc0])); // Float32Array [ -2 ]
 * ```
 */
export function decodeBf16(bytes: Uint8Array): Float32Array {
  const n = checkLength(bytes, 2, "BF16");
  const out = new Float32Array(n); // [n]
  const out32 = new Uint32Array(out.buffer); // [n], same memory as out
  if (HOST_LITTLE_ENDIAN && bytes.byteOffset % 2 === 0) {
    const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n); // [n]
    for (let i = 0; i < n; i++) out32[i] = src[i] << 16;
  } else {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) out32[i] = dv.getUint16(2 * i, true) << 16;
  }
  return out;
}

/**
 * Decodes little-endian IEEE half-precision bytes (2 per element) into f32, exactly (subnormals, ±Infinity
 * and NaN included).
 *
 * @example
 * ```ts
 * import { decodeF16 } from "./dtype.ts";
 * decodeF16(new Uint8Array([0x00, 0x3c, 0x01, 0x00])); // Float32Array [ 1, 5.960464477539063e-8 ]
 * ```
 */
export function decodeF16(bytes: Uint8Array): Float32Array {
  const n = checkLength(bytes, 2, "F16");
  const table = getF16Table();
  const out = new Float32Array(n); // [n]
  const out32 = new Uint32Array(out.buffer); // [n], same memory as out
  if (HOST_LITTLE_ENDIAN && bytes.byteOffset % 2 === 0) {
    const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n); // [n]
    for (let i = 0; i < n; i++) out32[i] = table[src[i]];
  } else {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) out32[i] = table[dv.getUint16(2 * i, true)];
  }
  return out;
}

/**
 * Decodes little-endian f32 bytes (4 per element) into a new Float32Array (a copy; bit patterns kept).
 *
 * @example
 * ```ts
 * import { decodeF32 } from "./dtype.ts";
 * decodeF32(new Uint8Array([0, 0, 0x80, 0x3f])); // Float32Array [ 1 ]
 * ```
 */
export function decodeF32(bytes: Uint8Array): Float32Array {
  const n = checkLength(bytes, 4, "F32");
  const out = new Float32Array(n); // [n]
  if (HOST_LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes); // byte copy: works at any alignment
  } else {
    const out32 = new Uint32Array(out.buffer);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) out32[i] = dv.getUint32(4 * i, true);
  }
  return out;
}

/**
 * Decodes raw little-endian tensor bytes of `dtype` into a new Float32Array.
 *
 * @example
 * ```ts
 * import { decodeToF32 } from "./dtype.ts";
 * decodeToF32(new Uint8Array([0x00, 0x3c]), "F16"); // Float32Array [ 1 ]
 * ```
 */
export function decodeToF32(bytes: Uint8Array, dtype: TensorDtype): Float32Array {
  switch (dtype) {
    case "BF16":
      return decodeBf16(bytes);
    case "F16":
      return decodeF16(bytes);
    case "F32":
      return decodeF32(bytes);
  }
}
