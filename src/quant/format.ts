/**
 * THE packed-code format table. Every module that stores, counts or reads quantized KV codes (CPU caches,
 * byte accounting, WGSL kernels) reads its numbers from {@link PACKED_FORMATS}; do not re-derive them.
 *
 * A group is G contiguous f32 values along head_dim, G = min(128, head_dim) ({@link groupSizeFor}). A group
 * stores G unsigned b-bit codes packed into u32 words, little-end first: code i lives in word
 * `floor(i / codesPerWord)` at bit offset `(i mod codesPerWord) * bits`. When G is not a multiple of
 * codesPerWord the last word is padded with zero bits. Each group also stores a bf16 scale and a bf16 zero
 * (2 bytes each).
 *
 * | bits | qmax = mask | codesPerWord | wordsPerGroup(G) | bytesPerGroup(G)       | G = 128: words | G = 128: bytes |
 * | ---: | ----------: | -----------: | ---------------- | ---------------------- | -------------: | -------------: |
 * |   16 |    `0xffff` |            2 | ceil(G / 2)      | 4·wordsPerGroup + 2 + 2 |             64 |            260 |
 * |    8 |      `0xff` |            4 | ceil(G / 4)      | 4·wordsPerGroup + 2 + 2 |             32 |            132 |
 * |    4 |       `0xf` |            8 | ceil(G / 8)      | 4·wordsPerGroup + 2 + 2 |             16 |             68 |
 * |    2 |       `0x3` |           16 | ceil(G / 16)     | 4·wordsPerGroup + 2 + 2 |              8 |             36 |
 *
 * Buffer layout for `nGroups` groups (group g = token t, head h, group j in the caller's order):
 *
 * | buffer   | type          | shape                       | content                          |
 * | -------- | ------------- | --------------------------- | -------------------------------- |
 * | `codes`  | `Uint32Array` | [nGroups, wordsPerGroup(G)] | packed codes, layout above       |
 * | `scales` | `Uint16Array` | [nGroups]                   | bf16 bits of the scale S ≥ 0     |
 * | `zeros`  | `Uint16Array` | [nGroups]                   | bf16 bits of the zero z          |
 *
 * @example
 * ```ts
 * import { PACKED_FORMATS, formatFor, groupSizeFor } from "./format.ts";
 * const G = groupSizeFor(128);                  // 128
 * PACKED_FORMATS[4].wordsPerGroup(G);           // 16
 * formatFor(2).bytesPerGroup(G);                // 36
 * ```
 * @module
 */

import { QuantConfigError } from "../errors.ts";

/** A supported code width. */
export type QuantBits = 16 | 8 | 4 | 2;

/** The supported code widths, widest first (the progressive order 16 → 8 → 4 → 2). */
export const QUANT_BITS: readonly QuantBits[] = Object.freeze([16, 8, 4, 2] as QuantBits[]);

/** Largest group size; G = min(MAX_GROUP_SIZE, head_dim). */
export const MAX_GROUP_SIZE = 128;

/** Bytes of the per-group bf16 scale. */
export const SCALE_BYTES = 2;

/** Bytes of the per-group bf16 zero. */
export const ZERO_BYTES = 2;

/** One row of the format table. */
export interface PackedFormat {
  /** Code width b. */
  readonly bits: QuantBits;
  /** Largest code, 2^b − 1. */
  readonly qmax: number;
  /** Bit mask of one code (equals qmax). */
  readonly mask: number;
  /** Codes per u32 word, 32 / b. */
  readonly codesPerWord: number;
  /** u32 words holding the codes of one group of G values: ceil(G / codesPerWord). */
  wordsPerGroup(G: number): number;
  /** Every byte one group occupies: 4·wordsPerGroup(G) + 2 (bf16 scale) + 2 (bf16 zero). */
  bytesPerGroup(G: number): number;
}

function checkG(G: number): void {
  if (!Number.isSafeInteger(G) || G < 1) {
    throw new QuantConfigError(`group size must be a positive integer, got ${G}`);
  }
}

function makeFormat(bits: QuantBits): PackedFormat {
  const codesPerWord = 32 / bits;
  const qmax = bits === 16 ? 0xffff : (1 << bits) - 1;
  return Object.freeze({
    bits,
    qmax,
    mask: qmax,
    codesPerWord,
    wordsPerGroup(G: number): number {
      checkG(G);
      return Math.ceil(G / codesPerWord);
    },
    bytesPerGroup(G: number): number {
      checkG(G);
      return 4 * Math.ceil(G / codesPerWord) + SCALE_BYTES + ZERO_BYTES;
    },
  });
}

/**
 * The format table, keyed by bit width. See the module comment for the same table in Markdown.
 *
 * @example
 * ```ts
 * import { PACKED_FORMATS } from "./format.ts";
 * const f = PACKED_FORMATS[8];
 * [f.codesPerWord, f.mask, f.wordsPerGroup(128), f.bytesPerGroup(128)]; // [4, 255, 32, 132]
 * ```
 */
export const PACKED_FORMATS: Readonly<Record<QuantBits, PackedFormat>> = Object.freeze({
  16: makeFormat(16),
  8: makeFormat(8),
  4: makeFormat(4),
  2: makeFormat(2),
});

/**
 * Validate a bit width; returns it typed as {@link QuantBits}. Throws QuantConfigError naming the value.
 *
 * @example
 * ```ts
 * import { checkBits } from "./format.ts";
 * checkBits(4);  // 4
 * // checkBits(3) throws QuantConfigError("unsupported bit width 3 ...")
 * ```
 */
export function checkBits(bits: number): QuantBits {
  if (bits === 16 || bits === 8 || bits === 4 || bits === 2) return bits;
  throw new QuantConfigError(`unsupported bit width ${bits}: supported widths are 16, 8, 4, 2`);
}

/**
 * The format-table row of `bits` (throws QuantConfigError for unsupported widths).
 *
 * @example
 * ```ts
 * import { formatFor } from "./format.ts";
 * formatFor(2).codesPerWord; // 16
 * ```
 */
export function formatFor(bits: number): PackedFormat {
  return PACKED_FORMATS[checkBits(bits)];
}

/**
 * Group size for a head dimension: G = min(128, headDim); requires headDim % G == 0, else QuantConfigError
 * naming the value (e.g. 192: 192 % 128 != 0).
 *
 * @example
 * ```ts
 * import { groupSizeFor } from "./format.ts";
 * groupSizeFor(128); // 128
 * groupSizeFor(96);  // 96
 * groupSizeFor(256); // 128
 * // groupSizeFor(192) throws QuantConfigError
 * ```
 */
export function groupSizeFor(headDim: number): number {
  if (!Number.isSafeInteger(headDim) || headDim < 1) {
    throw new QuantConfigError(`head_dim must be a positive integer, got ${headDim}`);
  }
  const G = Math.min(MAX_GROUP_SIZE, headDim);
  if (headDim % G !== 0) {
    throw new QuantConfigError(
      `head_dim ${headDim} is not a multiple of the group size ${G} (G = min(${MAX_GROUP_SIZE}, head_dim))`,
    );
  }
  return G;
}
