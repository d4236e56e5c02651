/**
 * The MixKVQ GPU buffer layout (one layer, batch 1): the CPU `MixKvqCache.exportLayer` arrays
 * (src/kv/mixkvq.ts, docs/mixkvq.md) placed in three u32 GPU buffers, with the SAME bytes: every CPU
 * `Uint16Array` / `Uint8Array` is stored little-end first in u32 words, so its bytes are the CPU array's
 * bytes; only scale/zero pairs are fused into one `sz` word (scale | zero << 16), as everywhere in gpu/packed.
 *
 * Notation: nKv KV heads, D head_dim, row = nKv·D, R block length (= residual capacity), g key group
 * (tokens), gpc = R/g, G = min(128, D) value group (channels), vb value bits, wpg(b, n) =
 * `PACKED_FORMATS[b].wordsPerGroup(n)`, n16/n4/n2 = channels of a block (all heads) at each tier.
 *
 * | buffer | region | words (u32) | shape (CPU element order) | content |
 * | --- | --- | --- | --- | --- |
 * | `resid` | K residual | [0, R·row/2) | [R, nKv, D] bf16, 2 per word | `residualK`; rows ≥ residualTokens are 0 |
 * | `resid` | V residual | [R·row/2, R·row) | [R, nKv, D] bf16, 2 per word | `residualV` |
 * | `arena` | block b: `bits` | row/4 | [nKv, D] u8, 4 per word | tier 16 / 4 / 2 of each key channel |
 * | `arena` | block b: `slot` | row/2 | [nKv, D] u16, 2 per word | row of the channel in its tier's arrays |
 * | `arena` | block b: `bf16` | n16·R/2 | [n16, R] bf16, channel-major | bf16 key channels |
 * | `arena` | block b: `q4Codes` | n4·gpc·wpg(4, g) | [n4, gpc, wpg(4, g)] | 4-bit key codes, token j → group ⌊j/g⌋, code j mod g |
 * | `arena` | block b: `q4Sz` | n4·gpc | [n4, gpc] | scale \| zero << 16 (bf16 bits each) |
 * | `arena` | block b: `q2Codes` | n2·gpc·wpg(2, g) | [n2, gpc, wpg(2, g)] | 2-bit key codes |
 * | `arena` | block b: `q2Sz` | n2·gpc | [n2, gpc] | scale \| zero << 16 |
 * | `arena` | block b: `vCodes` | R·(row/G)·wpg(vb, G) | [R, nKv, D/G, wpg(vb, G)] | per-token value codes |
 * | `arena` | block b: `vSz` | R·row/G | [R, nKv, D/G] | scale \| zero << 16 |
 * | `desc` | block b | [b·12, b·12 + 12) | [maxBlocks, 12] | word offsets in `arena` of the 9 regions above, then `end`, 0, 0 |
 *
 * - Blocks lie one after the other in `arena` (block b+1 starts at block b's `end`); every region starts at
 *   a multiple of 4 words. Region sizes depend on the block's tier counts, which the host knows when it
 *   writes the block (it chose the tiers), so the host computes {@link blockRegion} and writes `desc`.
 * - `arena` is allocated for the worst case ({@link MixKvqGeometry.blockWordsMax} per block, maxLen / R
 *   blocks); the CPU-equivalent bytes of the stored data are `mixkvqLayerBytes` (src/kv/mixkvq.ts).
 * - Query sums (`querySum` [nKv, D] f32) stay on the host (gpu/packed/mixkvq_layer.ts says why).
 * - Dequantization is the CPU's: key (block b, token j, head h, channel d), c = h·D + d, s = slot[c]:
 *   tier 16 → bf16[s·R + j]; tier 4/2 → group s·gpc + ⌊j/g⌋, code j mod g, x̂ = q·S − z. Value → group
 *   (j·nKv + h)·(D/G) + ⌊d/G⌋, code d mod G.
 *
 * @example
 * ```ts
 * import { blockRegion, mixkvqGeometry } from "./mixkvq_layout.ts";
 * const geo = mixkvqGeometry({ numKvHeads: 2, headDim: 128, residual: 128, keyGroup: 128, valueBits: 2, maxLen: 1024 });
 * const r = blockRegion(geo, 0, { n16: 4, n4: 20, n2: 232 });
 * r.end; // words of the block
 * ```
 * @module
 */
import { formatFor, groupSizeFor } from "../../src/quant/format.ts";
import type { QuantBuffers } from "../../src/quant/quantizer.ts";
import type { MixBlock, TierCounts } from "../../src/kv/mixkvq.ts";
import { QuantConfigError } from "../../src/errors.ts";

/** Parameters of one GPU MixKVQ layer's layout. */
export interface MixKvqGpuShape {
  numKvHeads: number;
  headDim: number;
  /** R: block length and residual capacity (even). */
  residual: number;
  /** g: tokens per key group (divides R). */
  keyGroup: number;
  valueBits: 2 | 4;
  /** Longest sequence: arena holds ⌊maxLen / R⌋ blocks. */
  maxLen: number;
}

/** Derived sizes of a layout (module table). */
export interface MixKvqGeometry {
  numKvHeads: number;
  headDim: number;
  row: number;
  R: number;
  g: number;
  /** R / g */
  gpc: number;
  /** value group G = min(128, D) */
  G: number;
  valueBits: 2 | 4;
  wpg4: number;
  wpg2: number;
  /** wpg(valueBits, G) */
  vwpg: number;
  maxBlocks: number;
  /** words of one residual tensor, R·row/2 */
  residWords: number;
  /** arena words of the largest possible block */
  blockWordsMax: number;
}

/** u32 words per block descriptor in `desc`. */
export const DESC_WORDS = 12;

const align4 = (n: number) => Math.ceil(n / 4) * 4;

/**
 * Validates `s` and derives the layout sizes. QuantConfigError naming the value for an odd or
 * non-positive R, g not dividing R, valueBits ∉ {2, 4}, row not a multiple of 4, a head_dim that
 * `groupSizeFor` rejects, or maxLen < 0.
 *
 * @example
 * ```ts
 * import { mixkvqGeometry } from "./mixkvq_layout.ts";
 * mixkvqGeometry({ numKvHeads: 2, headDim: 128, residual: 64, keyGroup: 32, valueBits: 2, maxLen: 512 }).maxBlocks; // 8
 * ```
 */
export function mixkvqGeometry(s: MixKvqGpuShape): MixKvqGeometry {
  const { numKvHeads: nKv, headDim: D, residual: R, keyGroup: g, valueBits, maxLen } = s;
  if (!Number.isSafeInteger(R) || R < 2 || R % 2 !== 0) {
    throw new QuantConfigError(`GPU MixKVQ needs an even residual R >= 2 (bf16 pairs per word), got ${R}`);
  }
  if (!Number.isSafeInteger(g) || g < 1 || R % g !== 0) {
    throw new QuantConfigError(`GPU MixKVQ keyGroup ${g} must be a positive integer dividing residual ${R}`);
  }
  if (valueBits !== 2 && valueBits !== 4) {
    throw new QuantConfigError(`GPU MixKVQ valueBits must be 2 or 4, got ${valueBits}`);
  }
  if (!Number.isSafeInteger(nKv) || nKv < 1) {
    throw new QuantConfigError(`GPU MixKVQ numKvHeads must be a positive integer, got ${nKv}`);
  }
  const G = groupSizeFor(D);
  const row = nKv * D;
  if (row % 4 !== 0) {
    throw new QuantConfigError(`GPU MixKVQ needs numKvHeads·headDim % 4 == 0 (u8 tier map), got ${row}`);
  }
  if (!Number.isSafeInteger(maxLen) || maxLen < 0) {
    throw new QuantConfigError(`GPU MixKVQ maxLen must be an integer >= 0, got ${maxLen}`);
  }
  const gpc = R / g;
  const wpg4 = formatFor(4).wordsPerGroup(g), wpg2 = formatFor(2).wordsPerGroup(g);
  const vwpg = formatFor(valueBits).wordsPerGroup(G);
  const geo: MixKvqGeometry = {
    numKvHeads: nKv,
    headDim: D,
    row,
    R,
    g,
    gpc,
    G,
    valueBits,
    wpg4,
    wpg2,
    vwpg,
    maxBlocks: Math.floor(maxLen / R),
    residWords: (R * row) / 2,
    blockWordsMax: 0,
  };
  // Per channel the largest tier cost, plus the 9 regions' alignment padding.
  const perChannel = Math.max(R / 2, gpc * (wpg4 + 1), gpc * (wpg2 + 1));
  geo.blockWordsMax = align4(row / 4) + align4(row / 2) + row * perChannel + 3 * 4 +
    align4((R * row / G) * vwpg) + align4(R * row / G);
  return geo;
}

/** Absolute word offsets in `arena` of one block's regions (module table). */
export interface MixKvqBlockRegion {
  bits: number;
  slot: number;
  bf16: number;
  q4Codes: number;
  q4Sz: number;
  q2Codes: number;
  q2Sz: number;
  vCodes: number;
  vSz: number;
  /** first word after the block (the next block's base) */
  end: number;
}

/**
 * The regions of a block with tier counts `t` starting at arena word `base` (a multiple of 4).
 *
 * @example
 * ```ts
 * import { blockRegion, mixkvqGeometry } from "./mixkvq_layout.ts";
 * const geo = mixkvqGeometry({ numKvHeads: 1, headDim: 128, residual: 128, keyGroup: 128, valueBits: 2, maxLen: 128 });
 * blockRegion(geo, 0, { n16: 0, n4: 0, n2: 128 }).slot; // 32 (after the 128-byte tier map)
 * ```
 */
export function blockRegion(geo: MixKvqGeometry, base: number, t: TierCounts): MixKvqBlockRegion {
  const { row, R, gpc, G, vwpg } = geo;
  let o = base;
  const take = (n: number) => {
    const at = o;
    o += align4(n);
    return at;
  };
  const bits = take(row / 4);
  const slot = take(row / 2);
  const bf16 = take((t.n16 * R) / 2);
  const q4Codes = take(t.n4 * gpc * geo.wpg4);
  const q4Sz = take(t.n4 * gpc);
  const q2Codes = take(t.n2 * gpc * geo.wpg2);
  const q2Sz = take(t.n2 * gpc);
  const vCodes = take(((R * row) / G) * vwpg);
  const vSz = take((R * row) / G);
  return { bits, slot, bf16, q4Codes, q4Sz, q2Codes, q2Sz, vCodes, vSz, end: o };
}

/**
 * The `desc` entry of a block (DESC_WORDS u32).
 *
 * @example
 * ```ts
 * import { blockDescriptor, blockRegion, mixkvqGeometry } from "./mixkvq_layout.ts";
 * const geo = mixkvqGeometry({ numKvHeads: 1, headDim: 128, residual: 128, keyGroup: 128, valueBits: 2, maxLen: 128 });
 * blockDescriptor(blockRegion(geo, 0, { n16: 0, n4: 0, n2: 128 }))[1]; // 32
 * ```
 */
export function blockDescriptor(r: MixKvqBlockRegion): Uint32Array<ArrayBuffer> {
  const d = new Uint32Array(DESC_WORDS);
  d.set([r.bits, r.slot, r.bf16, r.q4Codes, r.q4Sz, r.q2Codes, r.q2Sz, r.vCodes, r.vSz, r.end]);
  return d;
}

/**
 * The u32 words of the CPU tier map (`bits` u8 and `slot` u16 arrays), as uploaded into a block's `bits`
 * and `slot` regions (same bytes).
 *
 * @example
 * ```ts
 * import { tierMapWords } from "./mixkvq_layout.ts";
 * tierMapWords(new Uint8Array([2, 2, 16, 4]), new Uint16Array([0, 1, 0, 0])).bits[0]; // 0x04100202
 * ```
 */
export function tierMapWords(
  bits: Uint8Array,
  slot: Uint16Array,
): { bits: Uint32Array<ArrayBuffer>; slot: Uint32Array<ArrayBuffer> } {
  const b = new Uint8Array(align4(bits.length / 4) * 4);
  b.set(bits);
  const s = new Uint16Array(align4(slot.length / 2) * 2);
  s.set(slot);
  return { bits: new Uint32Array(b.buffer), slot: new Uint32Array(s.buffer) };
}

function splitSz(words: Uint32Array, off: number, n: number): { scales: Uint16Array; zeros: Uint16Array } {
  const scales = new Uint16Array(n), zeros = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const w = words[off + i];
    scales[i] = w & 0xffff;
    zeros[i] = w >>> 16;
  }
  return { scales, zeros };
}

function quantAt(words: Uint32Array, codes: number, sz: number, nGroups: number, wpg: number): QuantBuffers {
  return { codes: words.slice(codes, codes + nGroups * wpg), ...splitSz(words, sz, nGroups) };
}

/**
 * Decodes one block of an `arena` readback into the CPU's {@link MixBlock} arrays (for byte comparison
 * with `MixKvqCache.exportLayer`).
 *
 * @example
 * ```ts
 * // const blk = unpackBlock(geo, new Uint32Array(await gpu.read(arena, 0, bytes)), region, tiers);
 * ```
 */
export function unpackBlock(
  geo: MixKvqGeometry,
  arena: Uint32Array,
  r: MixKvqBlockRegion,
  t: TierCounts,
): MixBlock {
  const { row, R, gpc } = geo;
  const bytes = new Uint8Array(arena.buffer, arena.byteOffset, arena.byteLength);
  const bits = bytes.slice(r.bits * 4, r.bits * 4 + row);
  const slot = new Uint16Array(bytes.slice(r.slot * 4, r.slot * 4 + 2 * row).buffer);
  const bf16 = new Uint16Array(bytes.slice(r.bf16 * 4, r.bf16 * 4 + 2 * t.n16 * R).buffer);
  const nvg = (R * row) / geo.G;
  return {
    k: {
      bits,
      slot,
      bf16,
      q4: quantAt(arena, r.q4Codes, r.q4Sz, t.n4 * gpc, geo.wpg4),
      q2: quantAt(arena, r.q2Codes, r.q2Sz, t.n2 * gpc, geo.wpg2),
      n16: t.n16,
      n4: t.n4,
      n2: t.n2,
    },
    v: quantAt(arena, r.vCodes, r.vSz, nvg, geo.vwpg),
  };
}
