/**
 * The grouped-quantization KV cache: PM-KVQ's progressive cache and the static uniform int8/int4/int2 caches
 * are this one class with different parameters ({@link GroupedConfig}).
 *
 * Per layer, K and V alike, tokens are kept in chronological order [sink | body | window]:
 * - sink: the first `sink` tokens, 16-bit group quantization (never shrunk);
 * - window (W > 0): up to W − 1 most recent tokens at 16 bits between appends; when it reaches W tokens the
 *   whole window is flushed as one chunk: its 16-bit codes are shrunk by repeated ERS to the layer's current
 *   width and appended to the body. With W = 0 new tokens go straight into the body, quantized directly at
 *   the current width;
 * - body: chunks of W tokens (W = 0: of 128 tokens, the last one partly filled) at the layer's width `bits`.
 *
 * Progressive mode (a budget per layer): a layer starts at `initBits`; after storing new tokens, while its
 * bytes exceed its budget and its width is above its final width, the whole body is shrunk one ERS step
 * (16 → 8 → 4 → 2) and reallocated at the new width (a {@link ShrinkEvent} is recorded). The widths an append
 * ends at are decided BEFORE anything is mutated, from {@link layerBytesAt}; an append that cannot fit even at
 * the final width throws BudgetError and leaves the cache unchanged. A budget is never exceeded at rest.
 *
 * Groups: per token, per KV head, G = groupSizeFor(headDim) consecutive head_dim values; gpt = nKv·D/G
 * groups per token per tensor. Storage returned by {@link GroupedCache.exportLayer} (the arrays ARE the
 * cache's storage, not copies; read-only, valid until the next append or reset), for K and V each:
 *
 * | region        | buffer   | type          | shape                                   | width      |
 * | ------------- | -------- | ------------- | --------------------------------------- | ---------- |
 * | sink          | `codes`  | `Uint32Array` | [sink, nKv, D/G, wordsPerGroup(16, G)]  | 16         |
 * | sink          | `scales` | `Uint16Array` | [sink, nKv, D/G] (bf16 bits)            |            |
 * | sink          | `zeros`  | `Uint16Array` | [sink, nKv, D/G] (bf16 bits)            |            |
 * | body chunk c  | `codes`  | `Uint32Array` | [C, nKv, D/G, wordsPerGroup(bits, G)]   | layer bits |
 * | body chunk c  | `scales` | `Uint16Array` | [C, nKv, D/G]                           |            |
 * | body chunk c  | `zeros`  | `Uint16Array` | [C, nKv, D/G]                           |            |
 * | window        | `codes`  | `Uint32Array` | [W, nKv, D/G, wordsPerGroup(16, G)]     | 16         |
 * | window        | `scales` | `Uint16Array` | [W, nKv, D/G]                           |            |
 * | window        | `zeros`  | `Uint16Array` | [W, nKv, D/G]                           |            |
 *
 * C = W (W > 0) or 128 (W = 0). Sink token i is logical token i; body chunk c token j is logical token
 * sink + c·C + j; window token j is logical token sink + bodyTokens + j. Rows past the counts are zero.
 * Code packing and the bf16 scale/zero are those of src/quant/format.ts; dequantization is
 * x̂ = q·S − z (src/quant/quantizer.ts). `bytes` = Σ byteLength of all these arrays (= layerBytesAt).
 *
 * @example
 * ```ts
 * import { GroupedCache } from "./grouped.ts";
 * const shape = { numLayers: 1, numKvHeads: 2, headDim: 128 };
 * const cache = new GroupedCache({ method: "static", bits: 4 }, shape, {
 *   method: "static-int4", sink: 0, window: 0, initBits: 4, finalBits: [4], budgets: null,
 * });
 * cache.append(0, new Float32Array(256).fill(1), new Float32Array(256).fill(2), 1);
 * cache.view(0).length; // 1
 * cache.stats().bytes;  // 128·272 = 34816 (one 128-token 4-bit chunk)
 * ```
 * @module
 */
import type { CacheSpec, CacheStats, KVCache, KVShape, LayerView, ShrinkEvent } from "./cache.ts";
import type { QuantBuffers } from "../quant/quantizer.ts";
import { checkBits, groupSizeFor, type QuantBits } from "../quant/format.ts";
import { BudgetError, QuantConfigError, TensorShapeError } from "../errors.ts";
import { BODY_CHUNK_TOKENS, groupsPerToken, layerBytesAt } from "./accounting.ts";
import { allocTokens, dequantizeTokens, ersCodes, quantBytes, quantizeTokens } from "./qstore.ts";
import { ScratchRows } from "./scratch.ts";
import { checkAppend } from "./append_input.ts";

/**
 * Width of sink and window tokens.
 *
 * @example
 * ```ts
 * import { SINK_WINDOW_BITS } from "./grouped.ts";
 * // cache.exportLayer(0).sinkBits === SINK_WINDOW_BITS (16)
 * ```
 */
export const SINK_WINDOW_BITS = 16;

/**
 * Parameters of a {@link GroupedCache}.
 *
 * @example
 * ```ts
 * import type { GroupedConfig } from "./grouped.ts";
 * const int4: GroupedConfig = { method: "static-int4", sink: 0, window: 0, initBits: 4, finalBits: [4, 4], budgets: null };
 * ```
 */
export interface GroupedConfig {
  /** Reported as `stats().method`, e.g. "pmkvq" or "static-int4". */
  method: string;
  /** 16-bit sink tokens. */
  sink: number;
  /** 16-bit window capacity W (0: tokens go straight to the body). */
  window: number;
  /** Width every layer starts at (16 for PM-KVQ), or "final": each layer starts at its final width (the
   * "static instead of progressive" ablation of a per-layer plan). */
  initBits: number | "final";
  /** Per-layer final (floor) widths; each ≤ initBits. */
  finalBits: number[];
  /** Per-layer byte budgets, or null for an unbounded (static) cache. */
  budgets: number[] | null;
  /** The sequence length the budgets were planned for (only used in error messages). */
  maxLen?: number | null;
}

/**
 * K and V buffers of one region.
 *
 * @example
 * ```ts
 * import type { KVBuffers } from "./grouped.ts";
 * // const sink: KVBuffers | null = cache.exportLayer(0).sink;
 * ```
 */
export interface KVBuffers {
  /** Key codes, scales and zeros of the region. */
  k: QuantBuffers;
  /** Value codes, scales and zeros of the region. */
  v: QuantBuffers;
}

/**
 * One body chunk: capacity `chunkTokens`, `tokens` of them used.
 *
 * @example
 * ```ts
 * import type { BodyChunk } from "./grouped.ts";
 * // const first: BodyChunk = cache.exportLayer(0).body[0]; first.tokens <= ex.chunkTokens
 * ```
 */
export interface BodyChunk extends KVBuffers {
  /** Tokens used in this chunk (≤ `chunkTokens`; only the last chunk may be partly filled). */
  tokens: number;
}

/**
 * The raw storage of one layer (see the module table).
 *
 * @example
 * ```ts
 * import type { GroupedLayerExport } from "./grouped.ts";
 * // const ex: GroupedLayerExport = cache.exportLayer(0);
 * // ex.sinkTokens + ex.bodyTokens + ex.windowTokens === cache.length(0)
 * ```
 */
export interface GroupedLayerExport {
  /** Layer index. */
  layer: number;
  /** KV heads (nKv). */
  numKvHeads: number;
  /** Elements per head (D). */
  headDim: number;
  /** G. */
  groupSize: number;
  /** nKv·D/G. */
  groupsPerToken: number;
  /** Width of the body codes. */
  bits: number;
  /** Width of sink and window codes (16). */
  sinkBits: number;
  /** Width of window codes (16). */
  windowBits: number;
  /** Sink capacity in tokens (the configured `sink`). */
  sinkCapacity: number;
  /** Window capacity W in tokens (0: no window). */
  windowCapacity: number;
  /** Capacity of each body chunk in tokens. */
  chunkTokens: number;
  /** Tokens stored in the sink (logical tokens 0 … sinkTokens − 1). */
  sinkTokens: number;
  /** Tokens stored in the body chunks. */
  bodyTokens: number;
  /** Tokens waiting in the window (< W between appends). */
  windowTokens: number;
  /** null until the first token. */
  sink: KVBuffers | null;
  /** Body chunks in chronological order, each at width `bits`. */
  body: BodyChunk[];
  /** null until the first token reaches the window (always null when W = 0). */
  window: KVBuffers | null;
}

interface LayerState {
  bits: QuantBits;
  sink: KVBuffers | null;
  sinkCount: number;
  chunks: BodyChunk[];
  bodyTokens: number;
  win: KVBuffers | null;
  winCount: number;
  bytes: number;
  kf: ScratchRows;
  vf: ScratchRows;
}

function checkCount(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new QuantConfigError(`${name} must be an integer >= 0, got ${n}`);
  }
}

/**
 * The grouped-quantization cache (PM-KVQ progressive, static uniform).
 *
 * @example
 * ```ts
 * import { GroupedCache } from "./grouped.ts";
 * const shape = { numLayers: 1, numKvHeads: 2, headDim: 128 };
 * const c = new GroupedCache({ method: "static", bits: 2 }, shape,
 *   { method: "static-int2", sink: 0, window: 0, initBits: 2, finalBits: [2], budgets: null });
 * c.append(0, new Float32Array(256), new Float32Array(256), 1);
 * c.stats().layers[0].bytes; // 18432
 * ```
 */
export class GroupedCache implements KVCache {
  /** The spec the cache was built from. */
  readonly spec: CacheSpec;
  /** Layers, KV heads and head size of the cache. */
  readonly shape: KVShape;
  /** Resolved parameters (method name, sink, window, initial/final widths, budgets). */
  readonly config: Readonly<GroupedConfig>;
  /** Group size G. */
  readonly groupSize: number;
  /** Groups per token per tensor. */
  readonly gpt: number;
  readonly #row: number;
  readonly #chunkCap: number;
  #layers: LayerState[] = [];
  #events: ShrinkEvent[] = [];
  #peak = 0;

  /**
   * Throws QuantConfigError for an unsupported head_dim, width, count or budget list.
   *
   * @example
   * ```ts
   * import { GroupedCache } from "./grouped.ts";
   * const pm = new GroupedCache(
   *   { method: "pmkvq", finalBits: [2], budgets: [1 << 20], maxLen: 4096 },
   *   { numLayers: 1, numKvHeads: 2, headDim: 128 },
   *   { method: "pmkvq", sink: 1, window: 128, initBits: 16, finalBits: [2], budgets: [1 << 20], maxLen: 4096 },
   * );
   * ```
   */
  constructor(spec: CacheSpec, shape: KVShape, config: GroupedConfig) {
    this.spec = spec;
    this.shape = shape;
    checkCount("numLayers", shape.numLayers);
    this.groupSize = groupSizeFor(shape.headDim);
    this.gpt = groupsPerToken(shape);
    this.#row = shape.numKvHeads * shape.headDim;
    checkCount("sink", config.sink);
    checkCount("window", config.window);
    const init = config.initBits === "final" ? 16 : checkBits(config.initBits);
    if (config.finalBits.length !== shape.numLayers) {
      throw new QuantConfigError(
        `finalBits has ${config.finalBits.length} entries for ${shape.numLayers} layers`,
      );
    }
    config.finalBits.forEach((b, l) => {
      if (checkBits(b) > init) {
        throw new QuantConfigError(
          `layer ${l}: final width ${b} bits is wider than the initial ${init} bits`,
        );
      }
    });
    if (config.budgets !== null) {
      if (config.budgets.length !== shape.numLayers) {
        throw new QuantConfigError(
          `budgets has ${config.budgets.length} entries for ${shape.numLayers} layers`,
        );
      }
      config.budgets.forEach((b, l) => {
        if (!(Number.isFinite(b) && b >= 0)) {
          throw new QuantConfigError(`layer ${l}: budget ${b} bytes is invalid`);
        }
      });
    }
    this.config = Object.freeze({
      ...config,
      finalBits: [...config.finalBits],
      budgets: config.budgets && [...config.budgets],
    });
    this.#chunkCap = config.window > 0 ? config.window : BODY_CHUNK_TOKENS;
    this.reset();
  }

  /**
   * Empties the cache (storage, events, peak).
   *
   * @example
   * ```ts
   * // cache.reset(); cache.stats().bytes === 0
   * ```
   */
  reset(): void {
    const init = this.config.initBits;
    this.#layers = Array.from({ length: this.shape.numLayers }, (_, l) => ({
      bits: init === "final" ? checkBits(this.config.finalBits[l]) : checkBits(init),
      sink: null,
      sinkCount: 0,
      chunks: [],
      bodyTokens: 0,
      win: null,
      winCount: 0,
      bytes: 0,
      kf: new ScratchRows(this.#row),
      vf: new ScratchRows(this.#row),
    }));
    this.#events = [];
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
   * // cache.length(0) === cache.view(0).length
   * ```
   */
  length(layer: number): number {
    const L = this.#layer(layer);
    return L.sinkCount + L.bodyTokens + L.winCount;
  }

  #pair(capacity: number, bits: number): KVBuffers {
    return {
      k: allocTokens(capacity, this.gpt, this.groupSize, bits),
      v: allocTokens(capacity, this.gpt, this.groupSize, bits),
    };
  }

  /** Width the layer must end this append at; BudgetError (before any mutation) when none fits. */
  #targetBits(layer: number, L: LayerState, tokens: number): QuantBits {
    const budget = this.config.budgets?.[layer];
    if (budget === undefined) return L.bits;
    const fin = this.config.finalBits[layer];
    const layout = { bits: L.bits as number, sink: this.config.sink, window: this.config.window };
    let bytes = layerBytesAt(this.shape, layout, tokens);
    while (bytes > budget && layout.bits > fin) {
      layout.bits /= 2;
      bytes = layerBytesAt(this.shape, layout, tokens);
    }
    if (bytes > budget) {
      const plan = this.config.maxLen != null ? `, plan maxLen ${this.config.maxLen}` : "";
      throw new BudgetError(
        `layer ${layer}: ${tokens} tokens need ${bytes} bytes at ${layout.bits} bits, budget ${budget} bytes` +
          `${plan}: the sequence outgrew its plan`,
      );
    }
    return layout.bits as QuantBits;
  }

  /**
   * Throws the BudgetError that appending `t` tokens to every layer would raise; changes nothing.
   *
   * @example
   * ```ts
   * // cache.checkCapacity(1); // before a decode step: fail before any layer stores the token
   * ```
   */
  checkCapacity(t: number): void {
    this.#layers.forEach((L, l) => this.#targetBits(l, L, this.length(l) + t));
  }

  /**
   * Stores `t` tokens of `layer` (k, v: [t, nKv, D] post-RoPE f32). Throws TensorShapeError, NonFiniteError
   * or BudgetError with the cache unchanged.
   *
   * @example
   * ```ts
   * // cache.append(0, k, v, 300); // prefill, then cache.append(0, k1, v1, 1) per decode step
   * ```
   */
  append(layer: number, k: Float32Array, v: Float32Array, t: number): void {
    const L = this.#layer(layer);
    const oldLen = this.length(layer);
    checkAppend(this.shape, layer, k, v, t, oldLen);
    if (t === 0) return;
    const newLen = oldLen + t;
    const target = this.#targetBits(layer, L, newLen);
    // --- mutation starts here; nothing below can throw for validated input ---
    let dirty = oldLen;
    let src = 0;
    const { sink, window } = this.config;
    if (L.sinkCount < sink) {
      L.sink ??= this.#pair(sink, SINK_WINDOW_BITS);
      const m = Math.min(sink - L.sinkCount, t);
      this.#quantize(k, v, 0, m, SINK_WINDOW_BITS, L.sink, L.sinkCount);
      L.sinkCount += m;
      src = m;
    }
    if (src < t) {
      if (window > 0) dirty = Math.min(dirty, this.#storeWindowed(L, k, v, src, t - src));
      else this.#storeDirect(L, k, v, src, t - src);
    }
    while (L.bits > target) {
      this.#shrink(layer, L, newLen);
      dirty = Math.min(dirty, L.sinkCount);
    }
    L.bytes = this.#walkBytes(L);
    this.#refresh(L, dirty, newLen);
    const total = this.#totalBytes();
    if (total > this.#peak) this.#peak = total;
  }

  #quantize(
    k: Float32Array,
    v: Float32Array,
    src: number,
    n: number,
    bits: number,
    dst: KVBuffers,
    at: number,
  ) {
    quantizeTokens(k, src, n, this.gpt, this.groupSize, bits, dst.k, at);
    quantizeTokens(v, src, n, this.gpt, this.groupSize, bits, dst.v, at);
  }

  /** W > 0: fill the window, flushing full windows into the body. Returns the first changed row. */
  #storeWindowed(L: LayerState, k: Float32Array, v: Float32Array, src: number, n: number): number {
    const W = this.config.window;
    let dirty = Infinity;
    for (let done = 0; done < n;) {
      const win = L.win ??= this.#pair(W, SINK_WINDOW_BITS);
      const m = Math.min(n - done, W - L.winCount);
      this.#quantize(k, v, src + done, m, SINK_WINDOW_BITS, win, L.winCount);
      L.winCount += m;
      done += m;
      if (L.winCount === W) {
        dirty = Math.min(dirty, L.sinkCount + L.bodyTokens);
        L.chunks.push({ k: this.#flush(win.k, L.bits), v: this.#flush(win.v, L.bits), tokens: W });
        L.bodyTokens += W;
        L.winCount = 0;
        for (const q of [win.k, win.v]) {
          q.codes.fill(0);
          q.scales.fill(0);
          q.zeros.fill(0);
        }
      }
    }
    return dirty;
  }

  /** A full window's 16-bit buffers, shrunk by ERS to `bits`, as a new body chunk. */
  #flush(win: QuantBuffers, bits: number): QuantBuffers {
    const n = this.config.window * this.gpt;
    const scales = new Uint16Array(n);
    const codes = ersCodes(win, SINK_WINDOW_BITS, bits, n, this.groupSize, n, scales);
    return { codes, scales, zeros: win.zeros.slice(0, n) };
  }

  /** W = 0: quantize straight into 128-token body chunks at the current width. */
  #storeDirect(L: LayerState, k: Float32Array, v: Float32Array, src: number, n: number): void {
    const C = this.#chunkCap;
    for (let done = 0; done < n;) {
      let c = L.chunks[L.chunks.length - 1];
      if (!c || c.tokens === C) {
        c = { ...this.#pair(C, L.bits), tokens: 0 };
        L.chunks.push(c);
      }
      const m = Math.min(n - done, C - c.tokens);
      this.#quantize(k, v, src + done, m, L.bits, c, c.tokens);
      c.tokens += m;
      L.bodyTokens += m;
      done += m;
    }
  }

  /** One ERS step of the whole body, reallocated at the new width. */
  #shrink(layer: number, L: LayerState, step: number): void {
    const from = L.bits;
    const to = (from / 2) as QuantBits;
    const cap = this.#chunkCap * this.gpt;
    for (const c of L.chunks) {
      for (const q of [c.k, c.v]) {
        q.codes = ersCodes(q, from, to, c.tokens * this.gpt, this.groupSize, cap, q.scales);
      }
    }
    L.bits = to;
    this.#events.push({ step, layer, from, to });
  }

  /** Re-dequantizes rows [from, to) of the working copy from storage. */
  #refresh(L: LayerState, from: number, to: number): void {
    L.kf.ensure(to, from);
    L.vf.ensure(to, from);
    const G = this.groupSize, gpt = this.gpt;
    const deq = (q: KVBuffers, bits: number, tok: number, n: number, row: number) => {
      dequantizeTokens(q.k, bits, G, gpt, tok, n, L.kf.data, row);
      dequantizeTokens(q.v, bits, G, gpt, tok, n, L.vf.data, row);
    };
    let i = from;
    const sEnd = L.sinkCount, bEnd = sEnd + L.bodyTokens;
    if (i < sEnd) {
      deq(L.sink!, SINK_WINDOW_BITS, i, sEnd - i, i);
      i = sEnd;
    }
    while (i < bEnd) {
      const rel = i - sEnd;
      const ci = Math.floor(rel / this.#chunkCap);
      const off = rel - ci * this.#chunkCap;
      const c = L.chunks[ci];
      const n = Math.min(c.tokens - off, bEnd - i);
      deq(c, L.bits, off, n, i);
      i += n;
    }
    if (i < to) deq(L.win!, SINK_WINDOW_BITS, i - bEnd, to - i, i);
  }

  /**
   * Re-dequantizes the whole working copy of `layer` from storage (appends only refresh what changed; this
   * is the full refresh a backend would do after restoring storage, and what the benchmark times).
   *
   * @example
   * ```ts
   * // cache.rebuildView(0); // cache.view(0) is unchanged, bit for bit
   * ```
   */
  rebuildView(layer: number): void {
    this.#refresh(this.#layer(layer), 0, this.length(layer));
  }

  #walkBytes(L: LayerState): number {
    let b = 0;
    for (const r of [L.sink, L.win, ...L.chunks]) if (r) b += quantBytes(r.k) + quantBytes(r.v);
    return b;
  }

  #totalBytes(): number {
    let b = 0;
    for (const L of this.#layers) b += L.bytes;
    return b;
  }

  /**
   * The stored tokens dequantized, chronological [length, nKv, D]; valid until the next append.
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
   * Accounting: bytes (all storage), peak at rest, scratch, per-layer widths and budgets, shrink events.
   *
   * @example
   * ```ts
   * // cache.stats().layers[0].bits // 16, then 8, 4, 2 as the layer shrinks
   * ```
   */
  stats(): CacheStats {
    let scratch = 0;
    for (const L of this.#layers) scratch += L.kf.bytes + L.vf.bytes;
    return {
      method: this.config.method,
      tokens: this.#layers.length ? this.length(0) : 0,
      bytes: this.#totalBytes(),
      peakBytes: this.#peak,
      scratchBytes: scratch,
      layers: this.#layers.map((L, l) => ({
        bits: L.bits,
        tokens: this.length(l),
        bytes: L.bytes,
        budget: this.config.budgets?.[l] ?? null,
      })),
      events: this.#events.map((e) => ({ ...e })),
    };
  }

  /**
   * The raw storage of `layer` (module table): the cache's own arrays, not copies.
   *
   * @example
   * ```ts
   * // const ex = cache.exportLayer(0); ex.body[0].k.codes // Uint32Array [C, nKv, D/G, wpg]
   * ```
   */
  exportLayer(layer: number): GroupedLayerExport {
    const L = this.#layer(layer);
    return {
      layer,
      numKvHeads: this.shape.numKvHeads,
      headDim: this.shape.headDim,
      groupSize: this.groupSize,
      groupsPerToken: this.gpt,
      bits: L.bits,
      sinkBits: SINK_WINDOW_BITS,
      windowBits: SINK_WINDOW_BITS,
      sinkCapacity: this.config.sink,
      windowCapacity: this.config.window,
      chunkTokens: this.#chunkCap,
      sinkTokens: L.sinkCount,
      bodyTokens: L.bodyTokens,
      windowTokens: L.winCount,
      sink: L.sink,
      body: [...L.chunks],
      window: L.win,
    };
  }
}
