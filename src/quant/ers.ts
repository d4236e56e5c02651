/**
 * Equivalent Right Shift (ERS): shrink codes from 2n to n bits (n ∈ {8, 4, 2}, i.e. 16→8, 8→4, 4→2) with
 * integer arithmetic only, as PM-KVQ's progressive cache does (paper Eq. 3):
 *
 *   q' = (q·M + C) >>> 3n,   M = 2^(2n) − 2^n + 1,   C = M·2^(n−1)        (= round(q / (2^n + 1)), no ties)
 *   S' = bf16RNE(fl32(S·(2^n + 1)))   (the product is exact in f32),       z' = z
 *
 * The intermediate q·M + C is at most 4,286,546,303 for n = 8: it fits in u32 (use u32 in WGSL, and `>>>`
 * on a JS number, never `>>`). With the EXACT scale S·(2^n+1), the shifted codes are exactly the n-bit codes
 * of the same inputs (ERS∘Q_2n = Q_n; docs/numerics.md §7); the stored S' is that scale rounded to bf16.
 *
 * @example
 * ```ts
 * import { ersCode, ersScaleBits } from "./ers.ts";
 * ersCode(65535, 8); // 255
 * ersCode(128, 8);   // 0   (128/257 < 1/2)
 * ersCode(129, 8);   // 1
 * ersScaleBits(0x3f80, 8); // bf16 of 257 = 0x4380 (256; 257 is not a bf16, ties to even)
 * ```
 * @module
 */

import { QuantConfigError, TensorShapeError } from "../errors.ts";
import { bf16ToF32, f32ToBf16RNE } from "./bf16.ts";
import { formatFor } from "./format.ts";

/** Multiplier M = 2^(2n) − 2^n + 1 and bias C = M·2^(n−1) for n = 8, 4, 2. */
function ersConstants(n: number): { M: number; C: number; shift: number } {
  if (n !== 8 && n !== 4 && n !== 2) {
    throw new QuantConfigError(`ERS target width ${n} is not supported: use 8, 4 or 2 (from 16, 8, 4 bits)`);
  }
  const M = 2 ** (2 * n) - 2 ** n + 1;
  return { M, C: M * 2 ** (n - 1), shift: 3 * n };
}

/**
 * Shift one code q ∈ [0, 2^(2n)) from 2n to n bits: (q·M + C) >>> 3n = round(q / (2^n + 1)).
 * Throws QuantConfigError for n ∉ {8, 4, 2}.
 *
 * @example
 * ```ts
 * import { ersCode } from "./ers.ts";
 * ersCode(15, 2); // 3
 * ersCode(7, 2);  // 1  (7/5 = 1.4)
 * ```
 */
export function ersCode(q: number, n: number): number {
  const { M, C, shift } = ersConstants(n);
  // q·M + C < 2^32 for every q < 2^(2n): exact as a JS number, and `>>>` reads it as u32.
  return (q * M + C) >>> shift;
}

/**
 * The scale after an ERS to n bits: bf16 round-to-nearest-even of fl32(S·(2^n + 1)) (the product is exact:
 * 8-bit × ≤ 9-bit significands). Takes and returns bf16 bits.
 *
 * @example
 * ```ts
 * import { ersScaleBits } from "./ers.ts";
 * import { bf16ToF32 } from "./bf16.ts";
 * bf16ToF32(ersScaleBits(0x3f80, 2)); // 5
 * bf16ToF32(ersScaleBits(0x3f80, 4)); // 17
 * ```
 */
export function ersScaleBits(scaleBits: number, n: number): number {
  ersConstants(n);
  return f32ToBf16RNE(Math.fround(bf16ToF32(scaleBits) * (2 ** n + 1)));
}

/**
 * ERS of `nGroups` groups of G codes packed at `bitsIn` ∈ {16, 8, 4} into packed codes at bitsIn/2
 * (layout of format.ts), and their scales into `scalesOut` (zeros are unchanged and not touched).
 * `codesOut` may be `codesIn` itself (in place: every output word is written after the input words it
 * reads, and never over an input word still to be read) and `scalesOut` may be `scalesIn`.
 * Returns `codesOut` (allocated when omitted).
 *
 * @example
 * ```ts
 * import { ersRows } from "./ers.ts";
 * import { allocQuantBuffers, quantizeRows } from "./quantizer.ts";
 * const x = new Float32Array(256).map((_, i) => Math.sin(i));
 * const q = quantizeRows(x, 2, 128, 8, allocQuantBuffers(2, 128, 8));
 * const codes4 = ersRows(q.codes, 8, q.scales, q.scales, 2, 128); // 4-bit codes, scales updated in place
 * ```
 */
export function ersRows(
  codesIn: Uint32Array,
  bitsIn: number,
  scalesIn: Uint16Array,
  scalesOut: Uint16Array,
  nGroups: number,
  G: number,
  codesOut?: Uint32Array,
): Uint32Array {
  const fin = formatFor(bitsIn);
  if (fin.bits === 2) throw new QuantConfigError(`cannot shrink below 2 bits (ERS from bitsIn = ${bitsIn})`);
  const n = fin.bits / 2;
  const fout = formatFor(n);
  const { M, C, shift } = ersConstants(n);
  const wpgIn = fin.wordsPerGroup(G);
  const wpgOut = fout.wordsPerGroup(G);
  if (codesIn.length < nGroups * wpgIn) {
    throw new TensorShapeError(
      `ERS: ${nGroups} groups need ${nGroups * wpgIn} input words, got ${codesIn.length}`,
    );
  }
  if (scalesIn.length < nGroups || scalesOut.length < nGroups) {
    throw new TensorShapeError(
      `ERS: ${nGroups} groups but scalesIn has ${scalesIn.length}, scalesOut ${scalesOut.length} entries`,
    );
  }
  const out = codesOut ?? new Uint32Array(nGroups * wpgOut);
  if (out.length < nGroups * wpgOut) {
    throw new TensorShapeError(
      `ERS: ${nGroups} groups need ${nGroups * wpgOut} output words, got ${out.length}`,
    );
  }
  const bIn = fin.bits;
  const cpwIn = fin.codesPerWord;
  const maskIn = fin.mask;
  const bOut = fout.bits;
  const mul = 2 ** n + 1;
  for (let g = 0; g < nGroups; g++) {
    const inBase = g * wpgIn;
    const outBase = g * wpgOut;
    for (let wo = 0; wo < wpgOut; wo++) {
      // Output word wo holds the codes of input words 2·wo and 2·wo + 1; both are read before the write,
      // and every later read is at a position ≥ this write's, so in-place operation is safe.
      const first = 2 * wo;
      const w0 = codesIn[inBase + first];
      const w1 = first + 1 < wpgIn ? codesIn[inBase + first + 1] : 0;
      const n0 = Math.min(cpwIn, G - first * cpwIn);
      const n1 = Math.min(cpwIn, G - (first + 1) * cpwIn);
      let w = 0;
      for (let j = 0; j < n0; j++) {
        const q = (w0 >>> (j * bIn)) & maskIn;
        w |= ((q * M + C) >>> shift) << (j * bOut);
      }
      for (let j = 0; j < n1; j++) {
        const q = (w1 >>> (j * bIn)) & maskIn;
        w |= ((q * M + C) >>> shift) << ((j + cpwIn) * bOut);
      }
      out[outBase + wo] = w;
    }
    scalesOut[g] = f32ToBf16RNE(Math.fround(bf16ToF32(scalesIn[g]) * mul));
  }
  return out;
}
