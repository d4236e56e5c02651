/**
 * KIVI (Liu et al., ICML 2024; spec §6.1/§7.1) in the project's numerics and byte accounting: keys
 * per-CHANNEL, values per-TOKEN, a full-precision (bf16-stored) residual. No sink, no budget.
 *
 * Per layer:
 * - keys: a bf16 residual buffer of up to R tokens. When it holds R tokens they are quantized per channel:
 *   for every KV head h, channel d and run of g consecutive tokens (g = `group`, g divides R), the g values
 *   are gathered into a contiguous array and quantized as ONE group of size g by src/quant/quantizer.ts;
 *   the residual is then cleared. Between appends the residual holds (tokens mod R) tokens.
 * - values: a FIFO of the min(tokens, R) most recent tokens in bf16; every token older than R is quantized
 *   per token (groups of G = groupSizeFor(D) along head_dim, as the grouped cache) at b bits into chunks of
 *   128 tokens.
 * Everything is quantized from the STORED bf16 values (the f32 input is rounded to bf16 on arrival), so the
 * result does not depend on how tokens were batched into appends.
 *
 * Storage ({@link KiviCache.exportLayer}; the cache's own arrays; row = nKv·D):
 *
 * | buffer                 | type          | shape                                 | content                          |
 * | ---------------------- | ------------- | ------------------------------------- | -------------------------------- |
 * | `keyResidual`          | `Uint16Array` | [R, nKv, D]                           | bf16 keys, first `keyResidualTokens` rows used |
 * | `keyBlocks[i].codes`   | `Uint32Array` | [R/g, nKv, D, wordsPerGroup(b, g)]    | block i = tokens [i·R, (i+1)·R); group (j, h, d) = tokens i·R + j·g … + g − 1 of channel (h, d) |
 * | `keyBlocks[i].scales`  | `Uint16Array` | [R/g, nKv, D]                         | bf16 bits                        |
 * | `keyBlocks[i].zeros`   | `Uint16Array` | [R/g, nKv, D]                         | bf16 bits                        |
 * | `valueFifo`            | `Uint16Array` | [R, nKv, D]                           | bf16 values, oldest first, `valueFifoTokens` rows used |
 * | `valueChunks[c].codes` | `Uint32Array` | [128, nKv, D/G, wordsPerGroup(b, G)]  | tokens [128c, 128c + tokens)     |
 * | `valueChunks[c].scales`/`zeros` | `Uint16Array` | [128, nKv, D/G]              | bf16 bits                        |
 *
 * Bytes: {@link kiviLayerBytesAt}. The residual and FIFO (R tokens each) are allocated at the first token.
 *
 * @example
 * ```ts
 * import { KiviCache } from "./kivi.ts";
 * const cache = new KiviCache({ method: "kivi", bits: 2 }, { numLayers: 1, numKvHeads: 2, headDim: 128 });
 * cache.append(0, new Float32Array(300 * 256).fill(1), new Float32Array(300 * 256).fill(2), 300);
 * cache.exportLayer(0).keyResidualTokens; // 300 mod 128 = 44
 * cache.exportLayer(0).valueFifoTokens;   // 128
 * ```
 * @module
 */
import type { CacheSpec, CacheStats, KVCache, KVShape, LayerView } from "./cache.ts";
import { dequantizeGroup, type QuantBuffers, quantizeGroup } from "../quant/quantizer.ts";
import { formatFor, groupSizeFor } from "../quant/format.ts";
import { bf16ToF32, f32ToBf16RNE } from "../quant/bf16.ts";
import { TensorShapeError } from "../errors.ts";
import { BODY_CHUNK_TOKENS, checkKiviLayout, groupsPerToken } from "./accounting.ts";
import { allocTokens, dequantizeTokens, quantBytes, quantizeTokens } from "./qstore.ts";
import { ScratchRows } from "./scratch.ts";
import { checkAppend } from "./append_input.ts";

/**
 * Default tokens per key-channel group.
 *
 * @example
 * ```ts
 * import { KIVI_DEFAULT_GROUP, KiviCache } from "./kivi.ts";
 * new KiviCache({ method: "kivi", bits: 2 }, { numLayers: 1, numKvHeads: 1, headDim: 64 }).group === KIVI_DEFAULT_GROUP; // true
 * ```
 */
export const KIVI_DEFAULT_GROUP = 128;
/**
 * Default residual length R.
 *
 * @example
 * ```ts
 * import { KIVI_DEFAULT_RESIDUAL, KiviCache } from "./kivi.ts";
 * new KiviCache({ method: "kivi", bits: 2 }, { numLayers: 1, numKvHeads: 1, headDim: 64 }).residual === KIVI_DEFAULT_RESIDUAL; // true
 * ```
 */
export const KIVI_DEFAULT_RESIDUAL = 128;

/**
 * One chunk of per-token quantized values.
 *
 * @example
 * ```ts
 * import type { KiviValueChunk } from "./kivi.ts";
 * // const c: KiviValueChunk = cache.exportLayer(0).valueChunks[0]; c.q.codes, c.tokens
 * ```
 */
export interface KiviValueChunk {
  /** Codes [128, nKv, D/G, wordsPerGroup(b, G)], bf16 scales and zeros [128, nKv, D/G]. */
  q: QuantBuffers;
  /** Tokens used in this chunk (≤ 128). */
  tokens: number;
}

/**
 * The raw storage of one KIVI layer (module table).
 *
 * @example
 * ```ts
 * import type { KiviLayerExport } from "./kivi.ts";
 * // const ex: KiviLayerExport = cache.exportLayer(0);
 * // ex.keyQuantTokens + ex.keyResidualTokens === ex.tokens
 * ```
 */
export interface KiviLayerExport {
  /** Layer index. */
  layer: number;
  /** KV heads (nKv). */
  numKvHeads: number;
  /** Elements per head (D). */
  headDim: number;
  /** Code width b of keys and values (2 or 4). */
  bits: number;
  /** Tokens per key-channel group g. */
  group: number;
  /** R. */
  residual: number;
  /** G of the per-token value groups. */
  valueGroupSize: number;
  /** Tokens stored in the layer. */
  tokens: number;
  /** null until the first token. */
  keyResidual: Uint16Array | null;
  /** Rows of `keyResidual` in use (tokens mod R between appends). */
  keyResidualTokens: number;
  /** Per-channel quantized key blocks, R tokens each, oldest first. */
  keyBlocks: QuantBuffers[];
  /** Tokens held in `keyBlocks` (keyBlocks.length · R). */
  keyQuantTokens: number;
  /** bf16 values [R, nKv, D] of the most recent tokens, oldest first; null until the first token. */
  valueFifo: Uint16Array | null;
  /** Rows of `valueFifo` in use (min(tokens, R)). */
  valueFifoTokens: number;
  /** Per-token quantized value chunks, oldest first. */
  valueChunks: KiviValueChunk[];
  /** Tokens held in `valueChunks` (tokens − valueFifoTokens). */
  valueQuantTokens: number;
  /** Capacity of each value chunk in tokens (128). */
  valueChunkTokens: number;
}

interface LayerState {
  len: number;
  kRes: Uint16Array | null;
  kResCount: number;
  kBlocks: QuantBuffers[];
  vFifo: Uint16Array | null;
  vFifoCount: number;
  vChunks: KiviValueChunk[];
  vQuant: number;
  bytes: number;
  kf: ScratchRows;
  vf: ScratchRows;
}

/**
 * The KIVI cache.
 *
 * @example
 * ```ts
 * import { KiviCache } from "./kivi.ts";
 * const c = new KiviCache({ method: "kivi", bits: 4, group: 32, residual: 64 }, { numLayers: 1, numKvHeads: 2, headDim: 64 });
 * c.append(0, new Float32Array(70 * 128), new Float32Array(70 * 128), 70);
 * c.exportLayer(0).keyResidualTokens; // 6
 * ```
 */
export class KiviCache implements KVCache {
  /** The spec the cache was built from. */
  readonly spec: CacheSpec;
  /** Layers, KV heads and head size of the cache. */
  readonly shape: KVShape;
  /** Code width b of keys and values. */
  readonly bits: 2 | 4;
  /** Tokens per key-channel group g (`spec.group`, default {@link KIVI_DEFAULT_GROUP}). */
  readonly group: number;
  /** Residual length R in tokens (`spec.residual`, default {@link KIVI_DEFAULT_RESIDUAL}). */
  readonly residual: number;
  /** G of the value groups. */
  readonly valueGroupSize: number;
  readonly #row: number;
  readonly #gpt: number;
  #layers: LayerState[] = [];
  #peak = 0;
  #tmp: Float32Array;

  /**
   * Throws QuantConfigError for bits ∉ {2, 4}, a group that does not divide the residual, or a bad head_dim.
   *
   * @example
   * ```ts
   * import { KiviCache } from "./kivi.ts";
   * new KiviCache({ method: "kivi", bits: 4, group: 32, residual: 128 }, { numLayers: 2, numKvHeads: 2, headDim: 64 });
   * ```
   */
  constructor(spec: CacheSpec & { method: "kivi" }, shape: KVShape) {
    this.spec = spec;
    this.shape = shape;
    this.bits = spec.bits;
    this.group = spec.group ?? KIVI_DEFAULT_GROUP;
    this.residual = spec.residual ?? KIVI_DEFAULT_RESIDUAL;
    checkKiviLayout({ bits: this.bits, group: this.group, residual: this.residual });
    this.valueGroupSize = groupSizeFor(shape.headDim);
    this.#gpt = groupsPerToken(shape);
    this.#row = shape.numKvHeads * shape.headDim;
    this.#tmp = new Float32Array(Math.max(this.group, this.residual * this.#row));
    this.reset();
  }

  /**
   * Empties the cache.
   *
   * @example
   * ```ts
   * // cache.reset(); cache.length(0) === 0
   * ```
   */
  reset(): void {
    this.#layers = Array.from({ length: this.shape.numLayers }, () => ({
      len: 0,
      kRes: null,
      kResCount: 0,
      kBlocks: [],
      vFifo: null,
      vFifoCount: 0,
      vChunks: [],
      vQuant: 0,
      bytes: 0,
      kf: new ScratchRows(this.#row),
      vf: new ScratchRows(this.#row),
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
   * Tokens stored in `layer`.
   *
   * @example
   * ```ts
   * // cache.length(0)
   * ```
   */
  length(layer: number): number {
    return this.#layer(layer).len;
  }

  /**
   * Stores `t` tokens (k, v: [t, nKv, D] f32). Throws TensorShapeError or NonFiniteError with the cache
   * unchanged.
   *
   * @example
   * ```ts
   * // cache.append(0, k, v, 1);
   * ```
   */
  append(layer: number, k: Float32Array, v: Float32Array, t: number): void {
    const L = this.#layer(layer);
    checkAppend(this.shape, layer, k, v, t, L.len);
    if (t === 0) return;
    const row = this.#row, R = this.residual;
    const oldLen = L.len;
    L.kRes ??= new Uint16Array(R * row);
    L.vFifo ??= new Uint16Array(R * row);
    // Keys: fill the residual; quantize and clear it each time it holds R tokens.
    let kDirty = oldLen;
    for (let done = 0; done < t;) {
      const m = Math.min(t - done, R - L.kResCount);
      const dst = L.kRes, base = L.kResCount * row, srcBase = done * row;
      for (let i = 0; i < m * row; i++) dst[base + i] = f32ToBf16RNE(k[srcBase + i]);
      L.kResCount += m;
      done += m;
      if (L.kResCount === R) {
        kDirty = Math.min(kDirty, L.kBlocks.length * R);
        L.kBlocks.push(this.#quantizeKeyBlock(L.kRes));
        L.kRes.fill(0);
        L.kResCount = 0;
      }
    }
    // Values: FIFO of the R most recent tokens; older ones quantized per token (from their bf16 values).
    const vDirty = L.vQuant;
    const c = L.vFifoCount;
    const evict = Math.max(0, c + t - R);
    const fromFifo = Math.min(evict, c);
    if (fromFifo > 0) {
      this.#quantizeValues(L, L.vFifo, 0, fromFifo, true);
      L.vFifo.copyWithin(0, fromFifo * row, c * row);
    }
    const fromNew = evict - fromFifo;
    if (fromNew > 0) this.#quantizeValues(L, v, 0, fromNew, false);
    const kept = c - fromFifo;
    const vf = L.vFifo;
    for (let i = fromNew * row, o = kept * row; i < t * row; i++, o++) vf[o] = f32ToBf16RNE(v[i]);
    L.vFifoCount = kept + (t - fromNew);
    vf.fill(0, L.vFifoCount * row);
    L.len = oldLen + t;
    L.bytes = this.#walkBytes(L);
    this.#refreshKeys(L, kDirty);
    this.#refreshValues(L, vDirty);
    const total = this.#layers.reduce((s, x) => s + x.bytes, 0);
    if (total > this.#peak) this.#peak = total;
  }

  /** Per-channel quantization of a full residual of R tokens (bf16 bits). */
  #quantizeKeyBlock(res: Uint16Array): QuantBuffers {
    const row = this.#row, g = this.group, nT = this.residual / g;
    const fmt = formatFor(this.bits);
    const wpg = fmt.wordsPerGroup(g);
    const n = nT * row;
    const q: QuantBuffers = {
      codes: new Uint32Array(n * wpg),
      scales: new Uint16Array(n),
      zeros: new Uint16Array(n),
    };
    const tmp = this.#tmp;
    for (let j = 0; j < nT; j++) {
      for (let c = 0; c < row; c++) {
        for (let i = 0; i < g; i++) tmp[i] = bf16ToF32(res[(j * g + i) * row + c]);
        const gi = j * row + c;
        quantizeGroup(tmp, 0, g, this.bits, q.codes, gi * wpg, q.scales, q.zeros, gi);
      }
    }
    return q;
  }

  /** Quantizes `n` value rows starting at row `from` of `src` (bf16 bits when `isBf16`, else f32 rounded to bf16). */
  #quantizeValues(
    L: LayerState,
    src: Uint16Array | Float32Array,
    from: number,
    n: number,
    isBf16: boolean,
  ): void {
    const row = this.#row, C = BODY_CHUNK_TOKENS;
    const tmp = this.#tmp;
    for (let done = 0; done < n;) {
      let ch = L.vChunks[L.vChunks.length - 1];
      if (!ch || ch.tokens === C) {
        ch = { q: allocTokens(C, this.#gpt, this.valueGroupSize, this.bits), tokens: 0 };
        L.vChunks.push(ch);
      }
      const m = Math.min(n - done, C - ch.tokens, this.residual);
      const base = (from + done) * row;
      for (let i = 0; i < m * row; i++) {
        tmp[i] = isBf16 ? bf16ToF32(src[base + i]) : bf16ToF32(f32ToBf16RNE(src[base + i]));
      }
      quantizeTokens(tmp, 0, m, this.#gpt, this.valueGroupSize, this.bits, ch.q, ch.tokens);
      ch.tokens += m;
      L.vQuant += m;
      done += m;
    }
  }

  #refreshKeys(L: LayerState, from: number): void {
    L.kf.ensure(L.len, from);
    const row = this.#row, g = this.group, R = this.residual, nT = R / g;
    const wpg = formatFor(this.bits).wordsPerGroup(g);
    const out = L.kf.data;
    const quantEnd = L.kBlocks.length * R;
    const tmp = this.#tmp;
    let i = from;
    for (let b = Math.floor(i / R); i < quantEnd; b++) {
      const q = L.kBlocks[b];
      for (let j = 0; j < nT; j++) {
        for (let c = 0; c < row; c++) {
          const gi = j * row + c;
          dequantizeGroup(q.codes, gi * wpg, g, this.bits, q.scales[gi], q.zeros[gi], tmp, 0);
          for (let s = 0; s < g; s++) out[(b * R + j * g + s) * row + c] = tmp[s];
        }
      }
      i = (b + 1) * R;
    }
    const res = L.kRes!;
    for (let x = (i - quantEnd) * row, o = i * row; o < L.len * row; x++, o++) out[o] = bf16ToF32(res[x]);
  }

  #refreshValues(L: LayerState, from: number): void {
    L.vf.ensure(L.len, from);
    const C = BODY_CHUNK_TOKENS, row = this.#row;
    const out = L.vf.data;
    let i = from;
    while (i < L.vQuant) {
      const ci = Math.floor(i / C), off = i - ci * C;
      const ch = L.vChunks[ci];
      const n = Math.min(ch.tokens - off, L.vQuant - i);
      dequantizeTokens(ch.q, this.bits, this.valueGroupSize, this.#gpt, off, n, out, i);
      i += n;
    }
    const fifo = L.vFifo!;
    for (let x = (i - L.vQuant) * row, o = i * row; o < L.len * row; x++, o++) out[o] = bf16ToF32(fifo[x]);
  }

  #walkBytes(L: LayerState): number {
    let b = (L.kRes?.byteLength ?? 0) + (L.vFifo?.byteLength ?? 0);
    for (const q of L.kBlocks) b += quantBytes(q);
    for (const c of L.vChunks) b += quantBytes(c.q);
    return b;
  }

  /**
   * Dequantized keys/values, chronological [length, nKv, D]; valid until the next append.
   *
   * @example
   * ```ts
   * // const past = cache.view(0);
   * ```
   */
  view(layer: number): LayerView {
    const L = this.#layer(layer);
    return { k: L.kf.rows(L.len), v: L.vf.rows(L.len), length: L.len };
  }

  /**
   * Accounting (same rule as every cache: all storage bytes; scratch apart).
   *
   * @example
   * ```ts
   * // cache.stats().bytes
   * ```
   */
  stats(): CacheStats {
    let scratch = 0, bytes = 0;
    for (const L of this.#layers) {
      scratch += L.kf.bytes + L.vf.bytes;
      bytes += L.bytes;
    }
    return {
      method: `kivi${this.bits}`,
      tokens: this.#layers[0]?.len ?? 0,
      bytes,
      peakBytes: this.#peak,
      scratchBytes: scratch,
      layers: this.#layers.map((L) => ({ bits: this.bits, tokens: L.len, bytes: L.bytes, budget: null })),
      events: [],
    };
  }

  /**
   * The raw storage of `layer` (module table): the cache's own arrays, not copies.
   *
   * @example
   * ```ts
   * // const ex = cache.exportLayer(0); ex.keyBlocks.length === Math.floor(ex.tokens / ex.residual)
   * ```
   */
  exportLayer(layer: number): KiviLayerExport {
    const L = this.#layer(layer);
    return {
      layer,
      numKvHeads: this.shape.numKvHeads,
      headDim: this.shape.headDim,
      bits: this.bits,
      group: this.group,
      residual: this.residual,
      valueGroupSize: this.valueGroupSize,
      tokens: L.len,
      keyResidual: L.kRes,
      keyResidualTokens: L.kResCount,
      keyBlocks: [...L.kBlocks],
      keyQuantTokens: L.kBlocks.length * this.residual,
      valueFifo: L.vFifo,
      valueFifoTokens: L.vFifoCount,
      valueChunks: [...L.vChunks],
      valueQuantTokens: L.vQuant,
      valueChunkTokens: BODY_CHUNK_TOKENS,
    };
  }
}
