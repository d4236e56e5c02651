/**
 * Token-major quantized storage helpers shared by the caches: a store of `capacity` tokens holds
 * capacity·gpt groups (gpt = groups per token per tensor) in the buffers of format.ts
 * (`codes` [capacity, gpt, wordsPerGroup(G)] u32, `scales`/`zeros` [capacity, gpt] bf16 bits). These helpers
 * only slice and call the quantizer and ERS of src/quant; they implement no numerics of their own.
 *
 * @example
 * ```ts
 * import { allocTokens, quantizeTokens, dequantizeTokens } from "./qstore.ts";
 * const x = new Float32Array(2 * 256).map((_, i) => Math.sin(i)); // 2 tokens, gpt 2, G 128
 * const q = allocTokens(4, 2, 128, 8);
 * quantizeTokens(x, 0, 2, 2, 128, 8, q, 0);
 * const out = new Float32Array(2 * 256);
 * dequantizeTokens(q, 8, 128, 2, 0, 2, out, 0);
 * ```
 * @module
 */
import { allocQuantBuffers, dequantizeRows, type QuantBuffers, quantizeRows } from "../quant/quantizer.ts";
import { ersRows } from "../quant/ers.ts";
import { formatFor } from "../quant/format.ts";
import { QuantConfigError } from "../errors.ts";

/**
 * Zeroed buffers for `capacity` tokens of `gpt` groups of G values at `bits`.
 *
 * @example
 * ```ts
 * import { allocTokens } from "./qstore.ts";
 * allocTokens(128, 2, 128, 4).codes.length; // 128·2·16 = 4096
 * ```
 */
export function allocTokens(capacity: number, gpt: number, G: number, bits: number): QuantBuffers {
  return allocQuantBuffers(capacity * gpt, G, bits);
}

/**
 * Storage bytes of a set of buffers: byteLength of codes + scales + zeros.
 *
 * @example
 * ```ts
 * import { allocTokens, quantBytes } from "./qstore.ts";
 * quantBytes(allocTokens(1, 2, 128, 4)); // 2·68 = 136
 * ```
 */
export function quantBytes(q: QuantBuffers): number {
  return q.codes.byteLength + q.scales.byteLength + q.zeros.byteLength;
}

/** The buffers of tokens [tok, tok + n) of a store, as views (no copy). */
function tokenSlice(q: QuantBuffers, tok: number, n: number, gpt: number, wpg: number): QuantBuffers {
  return {
    codes: q.codes.subarray(tok * gpt * wpg, (tok + n) * gpt * wpg),
    scales: q.scales.subarray(tok * gpt, (tok + n) * gpt),
    zeros: q.zeros.subarray(tok * gpt, (tok + n) * gpt),
  };
}

/**
 * Quantizes `n` tokens of `x` (rows of gpt·G f32 values starting at token `xTok`) at `bits` into tokens
 * [dstTok, dstTok + n) of `dst`. NonFiniteError from the quantizer propagates (callers check first).
 *
 * @example
 * ```ts
 * import { allocTokens, quantizeTokens } from "./qstore.ts";
 * const q = allocTokens(1, 1, 4, 2);
 * quantizeTokens(new Float32Array([0, 1, 2, 3]), 0, 1, 1, 4, 2, q, 0); // codes[0] = 0b11100100
 * ```
 */
export function quantizeTokens(
  x: Float32Array,
  xTok: number,
  n: number,
  gpt: number,
  G: number,
  bits: number,
  dst: QuantBuffers,
  dstTok: number,
): void {
  const row = gpt * G;
  const wpg = formatFor(bits).wordsPerGroup(G);
  quantizeRows(
    x.subarray(xTok * row, (xTok + n) * row),
    n * gpt,
    G,
    bits,
    tokenSlice(dst, dstTok, n, gpt, wpg),
  );
}

/**
 * Dequantizes tokens [tok, tok + n) of `src` (at `bits`) into rows [outTok, outTok + n) of `out`.
 *
 * @example
 * ```ts
 * import { allocTokens, quantizeTokens, dequantizeTokens } from "./qstore.ts";
 * const q = allocTokens(1, 1, 4, 2);
 * quantizeTokens(new Float32Array([0, 1, 2, 3]), 0, 1, 1, 4, 2, q, 0);
 * const out = new Float32Array(4);
 * dequantizeTokens(q, 2, 4, 1, 0, 1, out, 0); // [0, 1, 2, 3]
 * ```
 */
export function dequantizeTokens(
  src: QuantBuffers,
  bits: number,
  G: number,
  gpt: number,
  tok: number,
  n: number,
  out: Float32Array,
  outTok: number,
): void {
  if (n <= 0) return;
  const row = gpt * G;
  const wpg = formatFor(bits).wordsPerGroup(G);
  dequantizeRows(
    tokenSlice(src, tok, n, gpt, wpg),
    n * gpt,
    G,
    bits,
    out.subarray(outTok * row, (outTok + n) * row),
  );
}

/**
 * Shrinks the first `nGroups` groups of `src` from `fromBits` to `toBits` by repeated ERS (src/quant/ers.ts),
 * into NEW code words sized for `capGroups` groups at `toBits`. Scales go to `scalesOut` (which may be
 * `src.scales` for an in-place update); zeros are unchanged by ERS. With fromBits === toBits the codes are
 * copied. Returns the new code words.
 *
 * @example
 * ```ts
 * import { allocTokens, quantizeTokens, ersCodes } from "./qstore.ts";
 * const q = allocTokens(2, 1, 128, 16);
 * quantizeTokens(new Float32Array(256).map(Math.sin), 0, 2, 1, 128, 16, q, 0);
 * const codes2 = ersCodes(q, 16, 2, 2, 128, 2, q.scales); // 16 → 8 → 4 → 2; 2·8 words
 * ```
 */
export function ersCodes(
  src: QuantBuffers,
  fromBits: number,
  toBits: number,
  nGroups: number,
  G: number,
  capGroups: number,
  scalesOut: Uint16Array,
): Uint32Array {
  let codes = src.codes;
  let b = formatFor(fromBits).bits as number;
  if (formatFor(toBits).bits > b) {
    throw new QuantConfigError(`ERS cannot widen ${fromBits} to ${toBits} bits`);
  }
  if (b === formatFor(toBits).bits) {
    if (scalesOut !== src.scales) scalesOut.set(src.scales.subarray(0, nGroups));
    return codes.slice(0, capGroups * formatFor(b).wordsPerGroup(G));
  }
  let scalesIn = src.scales;
  while (b > toBits) {
    const out = new Uint32Array(capGroups * formatFor(b / 2).wordsPerGroup(G));
    ersRows(codes, b, scalesIn, scalesOut, nGroups, G, out);
    codes = out;
    scalesIn = scalesOut;
    b /= 2;
  }
  return codes;
}
