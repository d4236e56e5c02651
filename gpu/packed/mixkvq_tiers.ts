/**
 * MixKVQ key-channel selection on the host, from statistics the GPU produced exactly. The CPU cache
 * (`MixKvqCache.#flush`) ranks channels with `normalizedSalience` (src/kv/mixkvq_select.ts), which works in
 * f64: S = (max − min)/3, A = I·S, the per-head mean of A and Ã = A/mean are f64 roundings. WGSL has no f64,
 * and an f32 (or approximate-division) replica would flip tiers of channels whose Ã lies within rounding of
 * τ16 / τ4, breaking byte identity. But the selection only needs, per channel, the block's key min and max
 * (exact on the GPU: bf16 values, min/max) and the mean query magnitude (kept on the host, see
 * mixkvq_layer.ts): 2·nKv·D + nKv·D numbers per block. So the GPU computes the min/max, the host reads them
 * back (one readback of 2·row floats per block of R tokens) and calls the CPU's own functions on them.
 *
 * `normalizedSalience` takes the block's keys [R, nKv, D]; it is called with the 2-row array [min, max],
 * whose per-channel min and max are exactly the block's, so every later f64 operation is the CPU's.
 *
 * @example
 * ```ts
 * import { tiersFromStats } from "./mixkvq_tiers.ts";
 * // 1 head, D = 2: channel 0 spans 3, channel 1 spans 1; no queries → I = 1
 * const t = tiersFromStats(new Float32Array([0, 0, 3, 1]), 1, 2, null, 1.2, 0.8);
 * [...t.bits]; // [16, 2]
 * ```
 * @module
 */
import { normalizedSalience, tierOf } from "../../src/kv/mixkvq_select.ts";
import type { TierCounts } from "../../src/kv/mixkvq.ts";
import { TensorShapeError } from "../../src/errors.ts";

/** A block's tier map and counts, exactly as `MixKvqCache` builds them. */
export interface TierMap extends TierCounts {
  /** [nKv, D] tier of each channel: 16, 4 or 2 */
  bits: Uint8Array;
  /** [nKv, D] row of each channel in its tier's arrays */
  slot: Uint16Array;
}

/**
 * Tiers from `stats` = [min row, max row] ([2, nKv·D] f32, the GPU key-stats output) and `qMean`
 * ([nKv, D] f32 mean query magnitude, or null for I = 1). TensorShapeError for short arrays.
 *
 * @example
 * ```ts
 * import { tiersFromStats } from "./mixkvq_tiers.ts";
 * tiersFromStats(new Float32Array([0, 0, 1, 1]), 1, 2, new Float32Array([3, 1]), 1.2, 0.8).n16; // 1
 * ```
 */
export function tiersFromStats(
  stats: Float32Array,
  numKvHeads: number,
  headDim: number,
  qMean: Float32Array | null,
  tau16: number,
  tau4: number,
): TierMap {
  const row = numKvHeads * headDim;
  if (stats.length < 2 * row || (qMean !== null && qMean.length < row)) {
    throw new TensorShapeError(
      `tier selection needs stats [2, ${row}] and qMean [${row}], got ${stats.length} and ${qMean?.length}`,
    );
  }
  const sal = normalizedSalience(stats.subarray(0, 2 * row), 2, numKvHeads, headDim, qMean);
  const bits = new Uint8Array(row), slot = new Uint16Array(row);
  const n = { 16: 0, 4: 0, 2: 0 };
  for (let c = 0; c < row; c++) {
    const tier = tierOf(sal[c], tau16, tau4);
    bits[c] = tier;
    slot[c] = n[tier]++;
  }
  return { bits, slot, n16: n[16], n4: n[4], n2: n[2] };
}

/**
 * The CPU's I: qMean[c] = fl32(qsum[c] / qTokens), or null when no query was observed (qTokens = 0).
 *
 * @example
 * ```ts
 * import { queryMean } from "./mixkvq_tiers.ts";
 * queryMean(new Float32Array([3, 6]), 3); // Float32Array [1, 2]
 * ```
 */
export function queryMean(qsum: Float32Array, qTokens: number): Float32Array | null {
  if (qTokens === 0) return null;
  const out = new Float32Array(qsum.length);
  for (let c = 0; c < qsum.length; c++) out[c] = qsum[c] / qTokens;
  return out;
}
