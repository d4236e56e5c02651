/**
 * Exact byte accounting of the quantized caches, as closed formulas. The caches allocate exactly what these
 * functions say (tests walk the real storage and compare), so a plan can be sized before a token is seen.
 *
 * Notation: nKv KV heads, head_dim D, G = groupSizeFor(D), gpt = nKv·D/G groups per token per tensor,
 * bpg(b, G) = PACKED_FORMATS[b].bytesPerGroup(G) (packed u32 code words + bf16 scale + bf16 zero).
 *
 * | quantity                        | formula                                                     |
 * | ------------------------------- | ----------------------------------------------------------- |
 * | tokenBytes(b)                   | 2 (K and V) · gpt · bpg(b, G)                               |
 * | grouped layer, 0 tokens         | 0                                                           |
 * | grouped layer, N ≥ 1 tokens     | sink·tokenBytes(16) + [N > sink] · window part              |
 * | window part, W > 0              | W·tokenBytes(16) + ⌊(N − sink)/W⌋·W·tokenBytes(b)            |
 * | window part, W = 0              | ⌈(N − sink)/128⌉·128·tokenBytes(b)                          |
 * | KIVI layer, N ≥ 1 tokens        | 4·R·nKv·D (bf16 key residual + bf16 value FIFO)              |
 * |                                 | + ⌊N/R⌋·(R/g)·nKv·D·bpg(b, g)  (per-channel key blocks)      |
 * |                                 | + ⌈max(0, N − R)/128⌉·128·gpt·bpg(b, G) (per-token values)  |
 *
 * Storage is allocated lazily: the sink (its full capacity `sink`) at the first token, the window (its full
 * capacity W) at the first token that reaches it, body chunks of W tokens (W = 0: of {@link BODY_CHUNK_TOKENS})
 * as they fill. docs/cache.md has the derivation and worked numbers.
 *
 * @example
 * ```ts
 * import { layerBytesAt, tokenBytes } from "./accounting.ts";
 * const shape = { numLayers: 6, numKvHeads: 2, headDim: 128 };
 * tokenBytes(shape, 4);                                        // 272
 * layerBytesAt(shape, { bits: 4, sink: 1, window: 128 }, 300); // 1040 + 133120 + 256·272 = 203792
 * ```
 * @module
 */
import type { KVShape } from "./cache.ts";
import { formatFor, groupSizeFor } from "../quant/format.ts";
import { QuantConfigError } from "../errors.ts";

/**
 * Tokens per body chunk when the window is 0, and per KIVI value chunk.
 *
 * @example
 * ```ts
 * import { BODY_CHUNK_TOKENS, layerBytesAt } from "./accounting.ts";
 * const shape = { numLayers: 1, numKvHeads: 2, headDim: 128 };
 * layerBytesAt(shape, { bits: 4, sink: 0, window: 0 }, 1) === BODY_CHUNK_TOKENS * 272; // true
 * ```
 */
export const BODY_CHUNK_TOKENS = 128;

/**
 * Storage layout of one grouped-cache layer: body width, sink tokens, window capacity.
 *
 * @example
 * ```ts
 * import type { GroupedLayout } from "./accounting.ts";
 * const paper: GroupedLayout = { bits: 16, sink: 1, window: 128 };
 * ```
 */
export interface GroupedLayout {
  /** Bit-width of the body (16, 8, 4 or 2). */
  bits: number;
  /** 16-bit sink tokens (the first `sink` tokens of the sequence). */
  sink: number;
  /** 16-bit window capacity W (0: tokens go straight to the body). */
  window: number;
}

/**
 * Parameters of a KIVI layer.
 *
 * @example
 * ```ts
 * import type { KiviLayout } from "./accounting.ts";
 * const kivi2: KiviLayout = { bits: 2, group: 128, residual: 128 };
 * ```
 */
export interface KiviLayout {
  /** Code width, 2 or 4. */
  bits: number;
  /** Tokens per key-channel group g (divides `residual`). */
  group: number;
  /** Residual length R: bf16 key buffer capacity and bf16 value FIFO length. */
  residual: number;
}

function checkCount(name: string, n: number, min: number): void {
  if (!Number.isSafeInteger(n) || n < min) {
    throw new QuantConfigError(`${name} must be an integer >= ${min}, got ${n}`);
  }
}

/**
 * Groups per token per tensor (K or V): nKv · D / G.
 *
 * @example
 * ```ts
 * import { groupsPerToken } from "./accounting.ts";
 * groupsPerToken({ numLayers: 1, numKvHeads: 2, headDim: 256 }); // 4
 * ```
 */
export function groupsPerToken(shape: KVShape): number {
  checkCount("numKvHeads", shape.numKvHeads, 1);
  return shape.numKvHeads * (shape.headDim / groupSizeFor(shape.headDim));
}

/**
 * Bytes one token occupies in one layer at `bits`, K and V together (codes, scales, zeros).
 *
 * @example
 * ```ts
 * import { tokenBytes } from "./accounting.ts";
 * tokenBytes({ numLayers: 1, numKvHeads: 2, headDim: 128 }, 16); // 2·2·260 = 1040
 * ```
 */
export function tokenBytes(shape: KVShape, bits: number): number {
  const G = groupSizeFor(shape.headDim);
  return 2 * groupsPerToken(shape) * formatFor(bits).bytesPerGroup(G);
}

/**
 * Exact bytes the grouped cache holds for ONE layer with `tokens` tokens and body width `layout.bits`
 * (formula in the module table). Equals the sum of byteLength of the layer's storage arrays.
 *
 * @example
 * ```ts
 * import { layerBytesAt } from "./accounting.ts";
 * const shape = { numLayers: 1, numKvHeads: 2, headDim: 128 };
 * layerBytesAt(shape, { bits: 2, sink: 0, window: 0 }, 1);   // 128·144 = 18432 (one 128-token chunk)
 * layerBytesAt(shape, { bits: 16, sink: 1, window: 128 }, 1); // 1040 (the sink only)
 * ```
 */
export function layerBytesAt(shape: KVShape, layout: GroupedLayout, tokens: number): number {
  checkCount("tokens", tokens, 0);
  checkCount("sink", layout.sink, 0);
  checkCount("window", layout.window, 0);
  const tb = tokenBytes(shape, layout.bits);
  if (tokens === 0) return 0;
  const t16 = tokenBytes(shape, 16);
  let bytes = layout.sink * t16;
  const rest = tokens - layout.sink;
  if (rest <= 0) return bytes;
  const W = layout.window;
  if (W > 0) bytes += W * t16 + Math.floor(rest / W) * W * tb;
  else bytes += Math.ceil(rest / BODY_CHUNK_TOKENS) * BODY_CHUNK_TOKENS * tb;
  return bytes;
}

/**
 * Validates KIVI parameters (bits 2|4, group ≥ 1, residual a positive multiple of group); QuantConfigError
 * naming the value otherwise.
 *
 * @example
 * ```ts
 * import { checkKiviLayout } from "./accounting.ts";
 * checkKiviLayout({ bits: 2, group: 32, residual: 128 }); // ok
 * // checkKiviLayout({ bits: 2, group: 48, residual: 128 }) throws QuantConfigError
 * ```
 */
export function checkKiviLayout(layout: KiviLayout): void {
  if (layout.bits !== 2 && layout.bits !== 4) {
    throw new QuantConfigError(`KIVI bits must be 2 or 4, got ${layout.bits}`);
  }
  checkCount("KIVI group", layout.group, 1);
  checkCount("KIVI residual", layout.residual, 1);
  if (layout.residual % layout.group !== 0) {
    throw new QuantConfigError(
      `KIVI group ${layout.group} must divide the residual length ${layout.residual}`,
    );
  }
}

/**
 * Exact bytes the KIVI cache holds for ONE layer with `tokens` tokens (formula in the module table).
 *
 * @example
 * ```ts
 * import { kiviLayerBytesAt } from "./accounting.ts";
 * const shape = { numLayers: 1, numKvHeads: 2, headDim: 128 };
 * kiviLayerBytesAt(shape, { bits: 2, group: 128, residual: 128 }, 10); // 4·128·256 = 131072
 * ```
 */
export function kiviLayerBytesAt(shape: KVShape, layout: KiviLayout, tokens: number): number {
  checkCount("tokens", tokens, 0);
  checkKiviLayout(layout);
  if (tokens === 0) return 0;
  const row = shape.numKvHeads * shape.headDim;
  const R = layout.residual;
  const fmt = formatFor(layout.bits);
  const G = groupSizeFor(shape.headDim);
  const keyBlocks = Math.floor(tokens / R) * (R / layout.group) * row * fmt.bytesPerGroup(layout.group);
  const vq = Math.max(0, tokens - R);
  const valueChunks = Math.ceil(vq / BODY_CHUNK_TOKENS) * BODY_CHUNK_TOKENS * groupsPerToken(shape) *
    fmt.bytesPerGroup(G);
  return 4 * R * row + keyBlocks + valueChunks;
}
