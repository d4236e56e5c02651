/**
 * MixKVQ (arXiv 2512.19206, spec §7.2) as a {@link KVCache}: query-aware mixed-precision KEY channels
 * (bf16 / 4-bit / 2-bit per channel, chosen per block of R tokens), per-token 2-bit VALUES, and a bf16
 * residual buffer of the most recent tokens. No reference code exists; every interpretation is marked
 * "Ix" here and listed in docs/mixkvq.md.
 *
 * Per layer:
 * - residual: the newest 0 … R−1 tokens (between appends) of K and V, stored as bf16, capacity R. When it
 *   holds R tokens the block is quantized ("lazy block update") and the residual is cleared (I6: K and V share
 *   the one chunked residual; values are not a KIVI-style sliding FIFO). At prefill the largest multiple of R
 *   is quantized block by block, in token order, and the remainder stays in the residual.
 * - blocks: block b = tokens [b·R, (b+1)·R). Keys: per KV head, every channel gets a tier from its normalized
 *   salience (mixkvq_select.ts); a bf16 channel is stored as R bf16 values, a 4-/2-bit channel as R/g
 *   per-channel groups of g consecutive tokens (g = `keyGroup`, default R, I7) in the packed format of
 *   src/quant/format.ts (u32 codes, bf16 scale, bf16 zero). Values: per token, groups of G = min(128, D)
 *   channels at `valueBits` (default 2).
 * - query statistics: Σ over the residual tokens of mean_{GQA group}|q| per (KV head, channel), f32 [nKv, D],
 *   fed by {@link MixKvqCache.observeQuery}; counted as storage (I8).
 *
 * The current token attends with its exact K/V (the backend's attention does that); the block is quantized
 * by the `append` that completes it, so the next step sees it quantized (I9).
 *
 * Storage of one layer ({@link MixKvqCache.exportLayer}: the cache's own arrays, not copies). nKv KV heads,
 * D head_dim, R residual, g key group, G value group, wpg(b, n) = PACKED_FORMATS[b].wordsPerGroup(n);
 * n16/n4/n2 = channels of the block (all heads) at each tier:
 *
 * | field                    | type          | shape                          | content                                   |
 * | ------------------------ | ------------- | ------------------------------ | ----------------------------------------- |
 * | `residualK`, `residualV` | `Uint16Array` | [R, nKv, D]                    | bf16 bits, token-major; rows ≥ residualTokens are 0 |
 * | `querySum`               | `Float32Array`| [nKv, D]                       | Σ_t mean_{h∈group}|q[t,h,d]| over residual tokens with queries |
 * | `blocks[b].k.bits`       | `Uint8Array`  | [nKv, D]                       | tier of the channel: 16, 4 or 2           |
 * | `blocks[b].k.slot`       | `Uint16Array` | [nKv, D]                       | row of the channel in its tier's arrays   |
 * | `blocks[b].k.bf16`       | `Uint16Array` | [n16, R]                       | bf16 bits, channel-major (row = 1 channel)|
 * | `blocks[b].k.q4.codes`   | `Uint32Array` | [n4, R/g, wpg(4, g)]           | packed 4-bit codes, token j → group ⌊j/g⌋, code j mod g |
 * | `blocks[b].k.q4.scales`  | `Uint16Array` | [n4, R/g]                      | bf16 scale S                              |
 * | `blocks[b].k.q4.zeros`   | `Uint16Array` | [n4, R/g]                      | bf16 zero z                               |
 * | `blocks[b].k.q2.*`       | as q4         | [n2, R/g, wpg(2, g)], [n2, R/g]| 2-bit channels                            |
 * | `blocks[b].v.codes`      | `Uint32Array` | [R, nKv, D/G, wpg(vb, G)]      | per-token value codes                     |
 * | `blocks[b].v.scales`     | `Uint16Array` | [R, nKv, D/G]                  | bf16 scale                                |
 * | `blocks[b].v.zeros`      | `Uint16Array` | [R, nKv, D/G]                  | bf16 zero                                 |
 *
 * Tier rows are ordered by (head, channel) ascending; `slot` is that row (redundant with `bits`, stored for
 * O(1) lookup, and counted). Dequantization: bf16 → exact f32; codes → x̂ = q·S − z (src/quant/quantizer.ts).
 * Key (block b, token j, head h, channel d): s = slot[h·D+d]; tier 16: bf16[s·R + j]; tier 4/2: group
 * s·(R/g) + ⌊j/g⌋, code j mod g. `bytes` = Σ byteLength of all arrays above = {@link mixkvqLayerBytes}.
 *
 * @example
 * ```ts
 * import { MixKvqCache } from "./mixkvq.ts";
 * const cache = new MixKvqCache({ method: "mixkvq", tau16: 1.44, tau4: 0.79 },
 *   { numLayers: 1, numKvHeads: 2, headDim: 128 });
 * const k = new Float32Array(256).map(Math.sin), v = new Float32Array(256).map(Math.cos);
 * cache.observeQuery(0, new Float32Array(4 * 128).fill(1), 1); // 4 query heads
 * cache.append(0, k, v, 1);
 * cache.view(0).length; // 1 (in the bf16 residual)
 * ```
 * @module
 */
import type { CacheSpec, CacheStats, KVCache, KVShape, LayerView } from "./cache.ts";
import type { QuantBuffers } from "../quant/quantizer.ts";
import { allocQuantBuffers, dequantizeGroup, quantizeGroup } from "../quant/quantizer.ts";
import { formatFor, groupSizeFor, PACKED_FORMATS } from "../quant/format.ts";
import { bf16ToF32, f32ToBf16RNE } from "../quant/bf16.ts";
import { NonFiniteError, QuantConfigError, TensorShapeError } from "../errors.ts";
import { allocTokens, dequantizeTokens, quantizeTokens } from "./qstore.ts";
import { ScratchRows } from "./scratch.ts";
import { checkAppend } from "./append_input.ts";
import {
  accumulateQueryStats,
  checkThresholds,
  type KeyTier,
  normalizedSalience,
  queryMagnitudes,
  tierOf,
} from "./mixkvq_select.ts";

/**
 * Parameters of a MixKVQ cache (all optional but `method`).
 *
 * @example
 * ```ts
 * import type { MixKvqSpec } from "./mixkvq.ts";
 * const spec: MixKvqSpec = { method: "mixkvq", tau16: 1.44, tau4: 0.79, residual: 128 };
 * ```
 */
export type MixKvqSpec = {
  method: "mixkvq";
  /** Normalized salience above which a key channel is kept bf16 (default {@link MIXKVQ_DEFAULTS}.tau16). */
  tau16?: number;
  /** Normalized salience above which (up to tau16) a key channel gets 4 bits; else 2 bits. */
  tau4?: number;
  /** R: block length and residual capacity in tokens (default 128). */
  residual?: number;
  /** g: tokens per per-channel key quantization group; divides R (default R: one group per channel per block). */
  keyGroup?: number;
  /** Per-token value code width (default 2). */
  valueBits?: 2 | 4;
  /** Query heads; inferred from the first `observeQuery` when absent. */
  numHeads?: number;
};

/**
 * Defaults. τ16 = 1.44, τ4 = 0.79 are the paper's R1-Llama-8B pair (spec §7.2), used numerically as a
 * starting point only (the paper's salience normalization is unknown, I10): calibrate with
 * calib/mixkvq_thresholds.ts.
 *
 * @example
 * ```ts
 * import { MIXKVQ_DEFAULTS } from "./mixkvq.ts";
 * MIXKVQ_DEFAULTS.residual; // 128
 * ```
 */
export const MIXKVQ_DEFAULTS = Object.freeze({
  tau16: 1.44,
  tau4: 0.79,
  residual: 128,
  valueBits: 2 as const,
});

/** Resolved parameters of a {@link MixKvqCache}. */
export interface MixKvqConfig {
  /** Normalized-salience threshold above which a key channel is kept bf16. */
  tau16: number;
  /** Normalized-salience threshold above which (up to `tau16`) a key channel gets 4 bits; else 2 bits. */
  tau4: number;
  /** R: block length and residual capacity in tokens. */
  residual: number;
  /** g: tokens per per-channel key quantization group (divides R). */
  keyGroup: number;
  /** Per-token value code width. */
  valueBits: 2 | 4;
  /** Query heads, or null until inferred from the first `observeQuery`. */
  numHeads: number | null;
}

const SPEC_KEYS = new Set(["method", "tau16", "tau4", "residual", "keyGroup", "valueBits", "numHeads"]);

/**
 * Validates a `{method: "mixkvq", …}` spec and fills in defaults. QuantConfigError naming the field and value
 * for an unknown field, a bad threshold, R not a positive integer, g not dividing R, or valueBits ∉ {2, 4}.
 *
 * @example
 * ```ts
 * import { resolveMixKvqSpec } from "./mixkvq.ts";
 * resolveMixKvqSpec({ method: "mixkvq", residual: 64 }).keyGroup; // 64
 * ```
 */
export function resolveMixKvqSpec(spec: CacheSpec & { method: "mixkvq" }): MixKvqConfig {
  const s = spec as Record<string, unknown>;
  for (const key of Object.keys(s)) {
    if (!SPEC_KEYS.has(key)) {
      throw new QuantConfigError(
        `MixKVQ spec has an unknown field "${key}" (known: ${[...SPEC_KEYS].join(", ")})`,
      );
    }
  }
  const num = (key: string, dflt: number | null): number | null => {
    const v = s[key];
    if (v === undefined) return dflt;
    if (typeof v !== "number") {
      throw new QuantConfigError(`MixKVQ ${key} must be a number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const tau16 = num("tau16", MIXKVQ_DEFAULTS.tau16)!;
  const tau4 = num("tau4", MIXKVQ_DEFAULTS.tau4)!;
  checkThresholds(tau16, tau4);
  const residual = num("residual", MIXKVQ_DEFAULTS.residual)!;
  if (!Number.isSafeInteger(residual) || residual < 1) {
    throw new QuantConfigError(`MixKVQ residual R must be a positive integer, got ${residual}`);
  }
  const keyGroup = num("keyGroup", residual)!;
  if (!Number.isSafeInteger(keyGroup) || keyGroup < 1 || residual % keyGroup !== 0) {
    throw new QuantConfigError(
      `MixKVQ keyGroup ${keyGroup} must be a positive integer dividing residual ${residual}`,
    );
  }
  const valueBits = num("valueBits", MIXKVQ_DEFAULTS.valueBits);
  if (valueBits !== 2 && valueBits !== 4) {
    throw new QuantConfigError(`MixKVQ valueBits must be 2 or 4, got ${valueBits}`);
  }
  const numHeads = num("numHeads", null);
  if (numHeads !== null && (!Number.isSafeInteger(numHeads) || numHeads < 1)) {
    throw new QuantConfigError(`MixKVQ numHeads must be a positive integer, got ${numHeads}`);
  }
  return { tau16, tau4, residual, keyGroup, valueBits, numHeads };
}

/** The keys of one quantized block (module table). */
export interface MixKeyBlock {
  /** [nKv, D] tier (16, 4, 2) of each channel. */
  bits: Uint8Array;
  /** [nKv, D] row of each channel in its tier's arrays. */
  slot: Uint16Array;
  /** [n16, R] bf16 bits, channel-major. */
  bf16: Uint16Array;
  /** 4-bit channels: codes [n4, R/g, wpg(4, g)], scales/zeros [n4, R/g]. */
  q4: QuantBuffers;
  /** 2-bit channels: codes [n2, R/g, wpg(2, g)], scales/zeros [n2, R/g]. */
  q2: QuantBuffers;
  /** Channels (all heads) per tier. */
  n16: number;
  /** 4-bit channels (all heads). */
  n4: number;
  /** 2-bit channels (all heads). */
  n2: number;
}

/** One quantized block of R tokens. */
export interface MixBlock {
  /** Mixed-precision keys of the block. */
  k: MixKeyBlock;
  /** Per-token value groups [R, nKv, D/G] at valueBits. */
  v: QuantBuffers;
}

/** The raw storage of one layer (module table). */
export interface MixKvqLayerExport {
  /** Layer index. */
  layer: number;
  /** KV heads (nKv). */
  numKvHeads: number;
  /** Elements per head (D). */
  headDim: number;
  /** R. */
  residual: number;
  /** g (tokens per key group). */
  keyGroup: number;
  /** G (channels per value group). */
  valueGroup: number;
  /** Per-token value code width (2 or 4). */
  valueBits: number;
  /** Threshold for bf16 key channels. */
  tau16: number;
  /** Threshold for 4-bit key channels. */
  tau4: number;
  /** Block b holds tokens [b·R, (b+1)·R). */
  blocks: MixBlock[];
  /** [R, nKv, D] bf16 bits; null before the first token. */
  residualK: Uint16Array | null;
  /** [R, nKv, D] bf16 bits of the residual values; null before the first token. */
  residualV: Uint16Array | null;
  /** Rows of `residualK`/`residualV` in use (tokens mod R between appends). */
  residualTokens: number;
  /** [nKv, D]; null before the first token. */
  querySum: Float32Array | null;
  /** Residual tokens whose queries were observed. */
  queryTokens: number;
}

/** Tier counts of a set of channels. */
export interface TierCounts {
  /** Channels kept bf16. */
  n16: number;
  /** Channels at 4 bits. */
  n4: number;
  /** Channels at 2 bits. */
  n2: number;
}

interface LayerState {
  blocks: MixBlock[];
  resK: Uint16Array | null;
  resV: Uint16Array | null;
  resCount: number;
  qsum: Float32Array | null;
  qTokens: number;
  /** Query magnitudes [t, nKv, D] of the next append, from observeQuery. */
  pending: { t: number; mags: Float32Array } | null;
  kf: ScratchRows;
  vf: ScratchRows;
  bytes: number;
  tiers: TierCounts;
}

/**
 * Storage bytes of one quantized block: keys (tier map u8 + slot u16 per channel, bf16 rows, 4-/2-bit groups)
 * and values.
 *
 * @example
 * ```ts
 * import { mixkvqBlockBytes } from "./mixkvq.ts";
 * const shape = { numLayers: 1, numKvHeads: 1, headDim: 128 };
 * // all 128 channels at 2 bits, R = g = 128: map 384 + 128·36 keys + 128·36 values
 * mixkvqBlockBytes(shape, { residual: 128, keyGroup: 128, valueBits: 2 }, { n16: 0, n4: 0, n2: 128 }); // 9600
 * ```
 */
export function mixkvqBlockBytes(
  shape: KVShape,
  cfg: Pick<MixKvqConfig, "residual" | "keyGroup" | "valueBits">,
  t: TierCounts,
): number {
  const R = cfg.residual, g = cfg.keyGroup, row = shape.numKvHeads * shape.headDim;
  const G = groupSizeFor(shape.headDim);
  const gpc = R / g;
  const keys = 3 * row + 2 * R * t.n16 + gpc * (t.n4 * PACKED_FORMATS[4].bytesPerGroup(g) +
        t.n2 * PACKED_FORMATS[2].bytesPerGroup(g));
  const values = R * (row / G) * formatFor(cfg.valueBits).bytesPerGroup(G);
  return keys + values;
}

/**
 * Storage bytes of one layer: 0 before the first token; then the residual (2·R·nKv·D·2), the query sums
 * (4·nKv·D) and {@link mixkvqBlockBytes} of each block.
 *
 * @example
 * ```ts
 * import { mixkvqLayerBytes } from "./mixkvq.ts";
 * const shape = { numLayers: 1, numKvHeads: 1, headDim: 128 };
 * mixkvqLayerBytes(shape, { residual: 128, keyGroup: 128, valueBits: 2 }, 5, []); // 65536 + 512
 * ```
 */
export function mixkvqLayerBytes(
  shape: KVShape,
  cfg: Pick<MixKvqConfig, "residual" | "keyGroup" | "valueBits">,
  tokens: number,
  blocks: TierCounts[],
): number {
  if (tokens === 0) return 0;
  const row = shape.numKvHeads * shape.headDim;
  let b = 4 * cfg.residual * row + 4 * row;
  for (const t of blocks) b += mixkvqBlockBytes(shape, cfg, t);
  return b;
}

function qBytes(q: QuantBuffers): number {
  return q.codes.byteLength + q.scales.byteLength + q.zeros.byteLength;
}

/**
 * The MixKVQ cache: per block of R tokens, key channels at bf16 / 4 / 2 bits chosen from query-aware
 * salience, per-token values at `valueBits`, and a bf16 residual of the newest tokens (see the module docs).
 *
 * @example
 * ```ts
 * import { MixKvqCache } from "./mixkvq.ts";
 * const shape = { numLayers: 1, numKvHeads: 2, headDim: 128 };
 * const cache = new MixKvqCache({ method: "mixkvq", residual: 64 }, shape);
 * const t = 64; // one full block: it is quantized by this append
 * cache.observeQuery(0, new Float32Array(t * 4 * 128).fill(1), t); // q: [t, numHeads = 4, headDim]
 * cache.append(0, new Float32Array(t * 256).map(Math.sin), new Float32Array(t * 256).map(Math.cos), t);
 * const { n16, n4, n2 } = cache.keyTierCounts(0); // n16 + n4 + n2 === 256 channels
 * cache.exportLayer(0).blocks.length; // 1
 * ```
 */
export class MixKvqCache implements KVCache {
  /** The spec the cache was built from. */
  readonly spec: CacheSpec;
  /** Layers, KV heads and head size of the cache. */
  readonly shape: KVShape;
  /** Resolved parameters (spec with defaults filled in, see {@link resolveMixKvqSpec}). */
  readonly config: Readonly<MixKvqConfig>;
  /** G: channels per value group. */
  readonly valueGroup: number;
  readonly #row: number;
  #numHeads: number | null;
  #layers: LayerState[] = [];
  #peak = 0;

  /**
   * `spec`: a {@link MixKvqSpec}; `shape`: the model's KV shape. Throws QuantConfigError for bad parameters,
   * an unsupported head_dim, or nKv·D > 65536 (slots are u16).
   *
   * @example
   * ```ts
   * import { MixKvqCache } from "./mixkvq.ts";
   * const c = new MixKvqCache({ method: "mixkvq" }, { numLayers: 6, numKvHeads: 2, headDim: 128 });
   * c.config.residual; // 128
   * ```
   */
  constructor(spec: CacheSpec & { method: "mixkvq" }, shape: KVShape) {
    this.spec = spec;
    this.shape = shape;
    this.config = Object.freeze(resolveMixKvqSpec(spec));
    if (!Number.isSafeInteger(shape.numLayers) || shape.numLayers < 0) {
      throw new QuantConfigError(`numLayers must be an integer >= 0, got ${shape.numLayers}`);
    }
    if (!Number.isSafeInteger(shape.numKvHeads) || shape.numKvHeads < 1) {
      throw new QuantConfigError(`numKvHeads must be a positive integer, got ${shape.numKvHeads}`);
    }
    this.valueGroup = groupSizeFor(shape.headDim);
    this.#row = shape.numKvHeads * shape.headDim;
    if (this.#row > 65536) {
      throw new QuantConfigError(`MixKVQ slots are u16: numKvHeads·headDim = ${this.#row} exceeds 65536`);
    }
    if (this.config.numHeads !== null && this.config.numHeads % shape.numKvHeads !== 0) {
      throw new QuantConfigError(
        `MixKVQ numHeads ${this.config.numHeads} is not a multiple of numKvHeads ${shape.numKvHeads}`,
      );
    }
    this.#numHeads = this.config.numHeads;
    this.reset();
  }

  /**
   * Empties the cache (storage, pending queries, peak).
   *
   * @example
   * ```ts
   * // cache.reset(); cache.stats().bytes === 0
   * ```
   */
  reset(): void {
    this.#layers = Array.from({ length: this.shape.numLayers }, () => ({
      blocks: [],
      resK: null,
      resV: null,
      resCount: 0,
      qsum: null,
      qTokens: 0,
      pending: null,
      kf: new ScratchRows(this.#row),
      vf: new ScratchRows(this.#row),
      bytes: 0,
      tiers: { n16: 0, n4: 0, n2: 0 },
    }));
    this.#peak = 0;
  }

  #layer(layer: number): LayerState {
    const L = this.#layers[layer];
    if (!L || !Number.isSafeInteger(layer)) {
      throw new TensorShapeError(`layer ${layer} is outside [0, ${this.shape.numLayers})`);
    }
    return L;
  }

  /**
   * Tokens stored in `layer`: blocks·R + residual tokens.
   *
   * @example
   * ```ts
   * // cache.length(0) === cache.view(0).length
   * ```
   */
  length(layer: number): number {
    const L = this.#layer(layer);
    return L.blocks.length * this.config.residual + L.resCount;
  }

  /**
   * Records the post-RoPE queries [t, numHeads, headDim] of the `t` tokens the next `append(layer, …, t)` will
   * store (the array is reduced right away; the caller may reuse it). numHeads comes from the spec or is
   * inferred from `q.length / (t·headDim)` on first use. Throws TensorShapeError (bad layer/shape) or
   * NonFiniteError (layer, token, head, channel) with the cache unchanged. A later call before the append
   * replaces the pending queries.
   *
   * @example
   * ```ts
   * // cpu/forward.ts: cache.observeQuery?.(l, q, T); const past = cache.view(l); … cache.append(l, k, v, T);
   * ```
   */
  observeQuery(layer: number, q: Float32Array, t: number): void {
    const L = this.#layer(layer);
    const D = this.shape.headDim, nKv = this.shape.numKvHeads;
    if (!Number.isSafeInteger(t) || t < 0) {
      throw new TensorShapeError(`layer ${layer}: query token count ${t} must be a non-negative integer`);
    }
    let nH = this.#numHeads;
    if (nH === null) {
      nH = t > 0 ? q.length / (t * D) : nKv;
      if (!Number.isSafeInteger(nH) || nH < 1 || nH % nKv !== 0) {
        throw new TensorShapeError(
          `layer ${layer}: ${q.length} query floats for ${t} tokens of head_dim ${D} is not [t, numHeads, ${D}] ` +
            `with numHeads a multiple of ${nKv} (set numHeads in the spec)`,
        );
      }
    }
    let mags: Float32Array;
    try {
      mags = queryMagnitudes(q, t, nH, nKv, D);
    } catch (e) {
      if (e instanceof NonFiniteError) {
        throw new NonFiniteError(
          `layer ${layer}: ${e.message} (token index within this call; nothing was recorded)`,
          {
            cause: e,
          },
        );
      }
      if (e instanceof TensorShapeError) {
        throw new TensorShapeError(`layer ${layer}: ${e.message}`, { cause: e });
      }
      throw e;
    }
    if (t > 0) this.#numHeads = nH;
    L.pending = { t, mags };
  }

  /**
   * Stores `t` tokens of `layer` (k, v: [t, nKv, D] post-RoPE f32), quantizing every block the residual
   * completes. Throws TensorShapeError (bad layer/lengths, or pending queries for a different token count)
   * or NonFiniteError (layer, token, head, channel) with the cache unchanged.
   *
   * @example
   * ```ts
   * // cache.append(0, k, v, 300); // 2 blocks of 128 quantized, 44 tokens in the residual
   * ```
   */
  append(layer: number, k: Float32Array, v: Float32Array, t: number): void {
    const L = this.#layer(layer);
    const oldLen = this.length(layer);
    checkAppend(this.shape, layer, k, v, t, oldLen);
    const pending = L.pending;
    if (pending && pending.t !== t) {
      throw new TensorShapeError(
        `layer ${layer}: observeQuery was given ${pending.t} tokens but append ${t}; nothing was stored`,
      );
    }
    if (t === 0) {
      L.pending = null;
      return;
    }
    // --- mutation starts here; nothing below throws for validated input ---
    L.pending = null;
    const R = this.config.residual, row = this.#row;
    L.resK ??= new Uint16Array(R * row);
    L.resV ??= new Uint16Array(R * row);
    L.qsum ??= new Float32Array(row);
    L.kf.ensure(oldLen + t);
    L.vf.ensure(oldLen + t);
    for (let done = 0; done < t;) {
      const m = Math.min(t - done, R - L.resCount);
      const base = this.length(layer);
      for (let i = 0; i < m * row; i++) {
        const src = done * row + i, dst = L.resCount * row + i, out = base * row + i;
        L.resK[dst] = f32ToBf16RNE(k[src]);
        L.resV[dst] = f32ToBf16RNE(v[src]);
        L.kf.data[out] = bf16ToF32(L.resK[dst]);
        L.vf.data[out] = bf16ToF32(L.resV[dst]);
      }
      if (pending) {
        accumulateQueryStats(L.qsum, pending.mags, done, m, row);
        L.qTokens += m;
      }
      L.resCount += m;
      done += m;
      if (L.resCount === R) this.#flush(L);
    }
    L.bytes = this.#walkBytes(L);
    const total = this.#totalBytes();
    if (total > this.#peak) this.#peak = total;
  }

  /** Quantizes the full residual as a new block, writes its dequantized rows into the view, clears it. */
  #flush(L: LayerState): void {
    const { residual: R, keyGroup: g, valueBits, tau16, tau4 } = this.config;
    const row = this.#row, D = this.shape.headDim, nKv = this.shape.numKvHeads;
    const start = L.blocks.length * R;
    const kb = new Float32Array(R * row), vb = new Float32Array(R * row);
    for (let i = 0; i < R * row; i++) {
      kb[i] = bf16ToF32(L.resK![i]);
      vb[i] = bf16ToF32(L.resV![i]);
    }
    // I4: mean query magnitude of the block's own tokens; I = 1 when none was observed.
    let qMean: Float32Array | null = null;
    if (L.qTokens > 0) {
      qMean = new Float32Array(row);
      for (let c = 0; c < row; c++) qMean[c] = L.qsum![c] / L.qTokens;
    }
    const sal = normalizedSalience(kb, R, nKv, D, qMean);
    const bits = new Uint8Array(row), slot = new Uint16Array(row);
    const n = { 16: 0, 4: 0, 2: 0 };
    for (let c = 0; c < row; c++) {
      const tier = tierOf(sal[c], tau16, tau4);
      bits[c] = tier;
      slot[c] = n[tier]++;
    }
    const gpc = R / g;
    const key: MixKeyBlock = {
      bits,
      slot,
      bf16: new Uint16Array(n[16] * R),
      q4: allocQuantBuffers(n[4] * gpc, g, 4),
      q2: allocQuantBuffers(n[2] * gpc, g, 2),
      n16: n[16],
      n4: n[4],
      n2: n[2],
    };
    const ch = new Float32Array(R), deq = new Float32Array(R);
    for (let c = 0; c < row; c++) {
      for (let j = 0; j < R; j++) ch[j] = kb[j * row + c];
      const tier = bits[c] as KeyTier, s = slot[c];
      if (tier === 16) {
        for (let j = 0; j < R; j++) key.bf16[s * R + j] = L.resK![j * row + c];
        deq.set(ch);
      } else {
        const q = tier === 4 ? key.q4 : key.q2;
        const wpg = PACKED_FORMATS[tier].wordsPerGroup(g);
        for (let gi = 0; gi < gpc; gi++) {
          const gIdx = s * gpc + gi;
          quantizeGroup(ch, gi * g, g, tier, q.codes, gIdx * wpg, q.scales, q.zeros, gIdx);
          dequantizeGroup(q.codes, gIdx * wpg, g, tier, q.scales[gIdx], q.zeros[gIdx], deq, gi * g);
        }
      }
      for (let j = 0; j < R; j++) L.kf.data[(start + j) * row + c] = deq[j];
    }
    const G = this.valueGroup, gpt = row / G;
    const val = allocTokens(R, gpt, G, valueBits);
    quantizeTokens(vb, 0, R, gpt, G, valueBits, val, 0);
    dequantizeTokens(val, valueBits, G, gpt, 0, R, L.vf.data, start);
    L.blocks.push({ k: key, v: val });
    L.tiers.n16 += n[16];
    L.tiers.n4 += n[4];
    L.tiers.n2 += n[2];
    L.resK!.fill(0);
    L.resV!.fill(0);
    L.qsum!.fill(0);
    L.resCount = 0;
    L.qTokens = 0;
  }

  #walkBytes(L: LayerState): number {
    let b = 0;
    for (const a of [L.resK, L.resV, L.qsum]) if (a) b += a.byteLength;
    for (const { k, v } of L.blocks) {
      b += k.bits.byteLength + k.slot.byteLength + k.bf16.byteLength + qBytes(k.q4) + qBytes(k.q2) +
        qBytes(v);
    }
    return b;
  }

  #totalBytes(): number {
    let b = 0;
    for (const L of this.#layers) b += L.bytes;
    return b;
  }

  /**
   * The stored tokens as attention sees them, chronological [length, nKv, D]: quantized blocks dequantized,
   * residual tokens as bf16. Valid until the next append.
   *
   * @example
   * ```ts
   * // const { k, v, length } = cache.view(0);
   * ```
   */
  view(layer: number): LayerView {
    const L = this.#layer(layer);
    const n = this.length(layer);
    return { k: L.kf.rows(n), v: L.vf.rows(n), length: n };
  }

  /**
   * Key channels per tier over all quantized blocks of `layer` (all heads), or of every layer when omitted.
   *
   * @example
   * ```ts
   * // cache.keyTierCounts(0) // { n16: 12, n4: 40, n2: 204 } after one block of a 2-head, D = 128 layer
   * ```
   */
  keyTierCounts(layer?: number): TierCounts {
    const ls = layer === undefined ? this.#layers : [this.#layer(layer)];
    const out = { n16: 0, n4: 0, n2: 0 };
    for (const L of ls) {
      out.n16 += L.tiers.n16;
      out.n4 += L.tiers.n4;
      out.n2 += L.tiers.n2;
    }
    return out;
  }

  /**
   * Accounting. `bytes`: all storage (residual, query sums, blocks incl. tier maps and slots). `avgBits`: the
   * mean code width per element of the quantized blocks (keys: 16/4/2 by channel; values: valueBits), scales,
   * zeros, maps and the bf16 residual not included (I11, the paper's "effective bits"); absent until a block
   * exists. `layers[l].bits`: that layer's (k + v)/2 code width, 16 before its first block.
   *
   * @example
   * ```ts
   * // cache.stats().avgBits // { k: 2.71, v: 2 }
   * ```
   */
  stats(): CacheStats {
    let scratch = 0;
    for (const L of this.#layers) scratch += L.kf.bytes + L.vf.bytes;
    const kBits = (t: TierCounts) => {
      const n = t.n16 + t.n4 + t.n2;
      return n === 0 ? 16 : (16 * t.n16 + 4 * t.n4 + 2 * t.n2) / n;
    };
    const all = this.keyTierCounts();
    const vb = this.config.valueBits;
    const out: CacheStats = {
      method: "mixkvq",
      tokens: this.#layers.length ? this.length(0) : 0,
      bytes: this.#totalBytes(),
      peakBytes: this.#peak,
      scratchBytes: scratch,
      layers: this.#layers.map((L, l) => ({
        bits: L.blocks.length === 0 ? 16 : Math.round(((kBits(L.tiers) + vb) / 2) * 1000) / 1000,
        tokens: this.length(l),
        bytes: L.bytes,
        budget: null,
      })),
      events: [],
    };
    if (all.n16 + all.n4 + all.n2 > 0) out.avgBits = { k: kBits(all), v: vb };
    return out;
  }

  /**
   * The raw storage of `layer` (module table): the cache's own arrays, not copies; read-only, valid until
   * the next append or reset.
   *
   * @example
   * ```ts
   * // const ex = cache.exportLayer(0); ex.blocks[0].k.bits // Uint8Array [nKv, D] of 16/4/2
   * ```
   */
  exportLayer(layer: number): MixKvqLayerExport {
    const L = this.#layer(layer);
    return {
      layer,
      numKvHeads: this.shape.numKvHeads,
      headDim: this.shape.headDim,
      residual: this.config.residual,
      keyGroup: this.config.keyGroup,
      valueGroup: this.valueGroup,
      valueBits: this.config.valueBits,
      tau16: this.config.tau16,
      tau4: this.config.tau4,
      blocks: [...L.blocks],
      residualK: L.resK,
      residualV: L.resV,
      residualTokens: L.resCount,
      querySum: L.qsum,
      queryTokens: L.qTokens,
    };
  }
}
