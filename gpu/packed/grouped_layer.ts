/**
 * A GPU-side PM-KVQ (or static) cache layer that owns its buffers: the reference for plugging the packed
 * kernels into the WebGPU engine. It mirrors `GroupedCache` (src/kv/grouped.ts) token movement exactly, for a
 * batch of sequences appended in lockstep (same lengths, different content), so its stores hold the SAME
 * code, scale and zero bits as the CPU cache (tests/conformance_packed_test.ts checks this after every
 * append, across shrink events):
 *
 * | step of `append(t tokens)` | CPU (GroupedCache) | GPU (this class) |
 * | --- | --- | --- |
 * | width decision, BudgetError | `#targetBits` from `layerBytesAt` | the same function, on the host, before any dispatch |
 * | sink tokens | quantize at 16 bits | `quantize_append` b16 → store `sinkWindow` tokens [0, sink) |
 * | window tokens (W > 0) | quantize at 16 bits; a full window is ERS-shrunk into a new body chunk | `quantize_append` b16 → `sinkWindow` tokens [sink, sink + W); full window → `ers` 16 → bits into `body` at token `bodyTokens` |
 * | W = 0 | quantize at the layer width into 128-token chunks | `quantize_append` b<bits> → `body` |
 * | shrink (bytes > budget) | `ersRows` of every chunk, reallocated | `ers` bits → bits/2 of the whole body into a new, half-size store; the old one is destroyed |
 *
 * Buffers owned (head-major store layout of layout.ts):
 * | buffer | format | capacity (tokens per sequence) |
 * | --- | --- | --- |
 * | `sinkWindow` (when sink + W > 0) | q16 K and V | sink + W |
 * | `body` | q<bits> K and V | the most body tokens the budget admits at the current width, plus one chunk (W, or 128) above the final width; grows (same-width `ers` copy) if an append overshoots |
 * | `status` | u32 | bad-input flag of quantize_append |
 *
 * Bytes: the stores' sizes ({@link GpuGroupedLayer.bytes}); the body capacity is budget-derived, so at the
 * final width a budgeted layer holds at most its budget per sequence (+ 16-byte alignment); above it, one
 * chunk of headroom.
 * Attention: {@link GpuGroupedLayer.attentionConfig} / {@link GpuGroupedLayer.attentionInputs} feed
 * `FusedAttention` (segments [sink | body | window]); the config changes only when the body width changes.
 *
 * @example
 * ```ts
 * const layer = await GpuGroupedLayer.create(gpu, {
 *   batch: 8, numKvHeads: 8, headDim: 128, sink: 1, window: 128, initBits: 16, finalBits: 2,
 *   budget: 705552, maxLen: 4096,
 * });
 * await layer.append({ x: qkv, k: 32 * 128, v: 40 * 128, tokStride: 48 * 128, batchStride: 48 * 128 }, 1);
 * const att = await FusedAttention.create(gpu, layer.attentionConfig(32));
 * const d = att.prepare({ qkv, part, out, stores: layer.attentionInputs().stores }, { ...layer.attentionInputs(), batch: 8,
 *   q: { off: 0, rowStride: 48 * 128 }, newKV: null });
 * ```
 * @module
 */
import type { PackedGpu } from "./util.ts";
import { type StoreLayout, storeLayout, type TensorFormat, tokenFormat } from "./layout.ts";
import { QuantizeAppendKernel } from "./quantize_append.ts";
import { ErsKernel } from "./ers.ts";
import type { UniformArena } from "./uniform_arena.ts";
import {
  type AttentionTuning,
  DEFAULT_ATTENTION_TUNING,
  type FusedAttentionConfig,
  type SegmentRefs,
} from "./attention.ts";
import { layerBytesAt } from "../../src/kv/accounting.ts";
import { checkBits, type QuantBits } from "../../src/quant/format.ts";
import {
  BudgetError,
  GpuError,
  NonFiniteError,
  QuantConfigError,
  TensorShapeError,
} from "../../src/errors.ts";

/** Parameters of one layer. */
export interface GpuGroupedLayerSpec {
  /** Sequences appended in lockstep. */
  batch: number;
  numKvHeads: number;
  headDim: number;
  sink: number;
  window: number;
  initBits: number;
  finalBits: number;
  /** Byte budget of this layer PER SEQUENCE (the CPU cache's per-layer budget), or null (static). */
  budget: number | null;
  /** Longest planned sequence (capacity without a budget; error messages). */
  maxLen: number;
}

/** Where the new tokens' K and V are (f32; element (b, i, h, d) at `k|v + b·batchStride + i·tokStride + h·D + d`). */
export interface AppendSource {
  x: GPUBuffer;
  k: number;
  v: number;
  tokStride: number;
  batchStride: number;
}

/**
 * The source of a batch-1 engine's step: token i's K and V in row i of the fused activation `qkv`
 * [T, (nH + 2·nKv)·D] (q heads, then K heads, then V heads).
 *
 * @example
 * ```ts
 * layer.recordAppend(pass, qkvAppendSource(io.qkv, { numHeads: 32, numKvHeads: 8, headDim: 128 }), 1);
 * ```
 */
export function qkvAppendSource(
  qkv: GPUBuffer,
  s: { numHeads: number; numKvHeads: number; headDim: number },
): AppendSource {
  const { numHeads: nH, numKvHeads: nKv, headDim: D } = s;
  return { x: qkv, k: nH * D, v: (nH + nKv) * D, tokStride: (nH + 2 * nKv) * D, batchStride: 0 };
}

/** A width change of the layer. */
export interface GpuShrinkEvent {
  /** Tokens per sequence when it shrank. */
  step: number;
  from: number;
  to: number;
}

interface Store {
  buffer: GPUBuffer;
  layout: StoreLayout;
}

/**
 * The GPU-side layer (module doc).
 *
 * @example
 * ```ts
 * const layer = await GpuGroupedLayer.create(gpu, spec);
 * await layer.append(src, 1);
 * ```
 */
export class GpuGroupedLayer {
  readonly spec: Readonly<GpuGroupedLayerSpec>;
  readonly gpu: PackedGpu;
  readonly events: GpuShrinkEvent[] = [];
  readonly status: GPUBuffer;
  #bits: QuantBits;
  #sinkCount = 0;
  #winCount = 0;
  #bodyTokens = 0;
  #sw: Store | null;
  #body: Store;
  #qa = new Map<number, QuantizeAppendKernel>();
  #ers = new Map<string, ErsKernel>();

  private constructor(gpu: PackedGpu, spec: GpuGroupedLayerSpec) {
    this.gpu = gpu;
    this.spec = Object.freeze({ ...spec });
    this.#bits = checkBits(spec.initBits);
    if (checkBits(spec.finalBits) > this.#bits) {
      throw new QuantConfigError(`final width ${spec.finalBits} is wider than the initial ${spec.initBits}`);
    }
    const swCap = spec.sink + spec.window;
    this.#sw = swCap > 0 ? this.#alloc("sinkWindow", 16, swCap) : null;
    this.#body = this.#alloc("body", this.#bits, this.#bodyCapacity(this.#bits));
    this.status = gpu.storage("quantize status", 16);
  }

  /**
   * Creates the layer and compiles the 16-bit quantize kernel.
   *
   * @example
   * ```ts
   * const layer = await GpuGroupedLayer.create(gpu, { batch: 1, numKvHeads: 2, headDim: 128, sink: 1,
   *   window: 32, initBits: 16, finalBits: 2, budget: null, maxLen: 1024 });
   * ```
   */
  static async create(gpu: PackedGpu, spec: GpuGroupedLayerSpec): Promise<GpuGroupedLayer> {
    const layer = new GpuGroupedLayer(gpu, spec);
    await layer.#quant(16);
    return layer;
  }

  /**
   * Tokens per sequence.
   *
   * @example
   * ```ts
   * layer.tokens; // tokens per sequence
   * ```
   */
  get tokens(): number {
    return this.#sinkCount + this.#bodyTokens + this.#winCount;
  }

  /**
   * Current body width.
   *
   * @example
   * ```ts
   * layer.bits; // 16, then 8, 4, 2 as the layer shrinks
   * ```
   */
  get bits(): QuantBits {
    return this.#bits;
  }

  /**
   * GPU bytes held by the stores (codes + sz words, all sequences).
   *
   * @example
   * ```ts
   * layer.bytes(); // ≈ batch · budget at rest for a budgeted layer
   * ```
   */
  bytes(): number {
    return (this.#sw?.buffer.size ?? 0) + this.#body.buffer.size;
  }

  /**
   * The stores and their layouts (for inspection and tests).
   *
   * @example
   * ```ts
   * const { body } = layer.stores(); // body.layout.k!.format === "q2" after the last shrink
   * ```
   */
  stores(): { sinkWindow: Store | null; body: Store } {
    return { sinkWindow: this.#sw, body: this.#body };
  }

  /**
   * Region token counts (per sequence).
   *
   * @example
   * ```ts
   * layer.counts(); // { sink: 1, body: 640, window: 27 }
   * ```
   */
  counts(): { sink: number; body: number; window: number } {
    return { sink: this.#sinkCount, body: this.#bodyTokens, window: this.#winCount };
  }

  #alloc(name: string, bits: number, cap: number): Store {
    const f = tokenFormat(bits);
    const layout = storeLayout({
      batch: this.spec.batch,
      numKvHeads: this.spec.numKvHeads,
      headDim: this.spec.headDim,
      capacity: Math.max(1, cap),
      k: f,
      v: f,
    });
    return { buffer: this.gpu.storage(`pmkvq ${name} q${bits}`, layout.words * 4), layout };
  }

  /** Body tokens stored when a sequence holds `n` tokens (CPU policy). */
  #bodyAt(n: number): number {
    const { sink, window: W } = this.spec;
    if (n <= sink) return 0;
    return W > 0 ? Math.floor((n - sink) / W) * W : n - sink;
  }

  /** Body capacity at width `bits`: what the budget admits, plus one chunk of headroom above the final width. */
  #bodyCapacity(bits: number): number {
    const { budget, maxLen, window: W } = this.spec;
    const chunk = W > 0 ? W : 128;
    if (budget === null) return Math.max(chunk, this.#bodyAt(maxLen));
    const shape = { numLayers: 1, numKvHeads: this.spec.numKvHeads, headDim: this.spec.headDim };
    const layout = { bits, sink: this.spec.sink, window: W };
    let lo = 0, hi = maxLen; // largest n ≤ maxLen with layerBytesAt(n) ≤ budget (monotone in n)
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (layerBytesAt(shape, layout, mid) <= budget) lo = mid;
      else hi = mid - 1;
    }
    // headroom for the chunk that overshoots the budget just before a shrink; none at the final width,
    // where an overshoot is a BudgetError instead
    return this.#bodyAt(lo) + (bits > this.spec.finalBits ? chunk : 0);
  }

  /** Width after appending to `n` tokens (the CPU's #targetBits); BudgetError when none fits. */
  #targetBits(n: number): QuantBits {
    const { budget } = this.spec;
    if (budget === null) return this.#bits;
    const shape = { numLayers: 1, numKvHeads: this.spec.numKvHeads, headDim: this.spec.headDim };
    const layout = { bits: this.#bits as number, sink: this.spec.sink, window: this.spec.window };
    let bytes = layerBytesAt(shape, layout, n);
    while (bytes > budget && layout.bits > this.spec.finalBits) {
      layout.bits /= 2;
      bytes = layerBytesAt(shape, layout, n);
    }
    if (bytes > budget) {
      throw new BudgetError(
        `GPU layer: ${n} tokens need ${bytes} bytes at ${layout.bits} bits, budget ${budget} bytes, plan maxLen ` +
          `${this.spec.maxLen}: the sequence outgrew its plan`,
      );
    }
    return layout.bits as QuantBits;
  }

  async #quant(bits: number): Promise<QuantizeAppendKernel> {
    let k = this.#qa.get(bits);
    if (!k) {
      k = await QuantizeAppendKernel.create(this.gpu, {
        numKvHeads: this.spec.numKvHeads,
        headDim: this.spec.headDim,
        bits,
        maxBatch: this.spec.batch,
      });
      this.#qa.set(bits, k);
    }
    return k;
  }

  async #ersK(from: number, to: number): Promise<ErsKernel> {
    const key = `${from}-${to}`;
    let k = this.#ers.get(key);
    if (!k) {
      k = await ErsKernel.create(this.gpu, {
        numKvHeads: this.spec.numKvHeads,
        headDim: this.spec.headDim,
        bitsIn: from,
        bitsOut: to,
      });
      this.#ers.set(key, k);
    }
    return k;
  }

  /**
   * Appends `t` tokens to every sequence: records every dispatch into one pass, submits, waits, and destroys
   * the temporaries. Throws BudgetError (nothing changed) like the CPU cache. Bad input (NaN, ±Inf,
   * |x| ≥ 2^64) is flagged in {@link GpuGroupedLayer.status}; check it with {@link GpuGroupedLayer.checkStatus}.
   *
   * @example
   * ```ts
   * await layer.append({ x, k: 0, v: t * 256, tokStride: 256, batchStride: 0 }, t);
   * ```
   */
  async append(src: AppendSource, t: number): Promise<void> {
    if (!Number.isSafeInteger(t) || t < 0) throw new TensorShapeError(`append: token count ${t}`);
    if (t === 0) return;
    const target = this.#targetBits(this.tokens + t);
    // compile what this append needs before recording (nothing is mutated until the pass is recorded)
    await this.#quant(16);
    if (this.spec.window === 0) await this.#quant(this.#bits);
    for (let b = this.#bits as number; b > target; b /= 2) await this.#ersK(b, b / 2);
    if (this.spec.window > 0) await this.#ersK(16, this.#bits);
    for (let b = this.#bits as number; b >= target; b /= 2) await this.#ersK(b, b);
    const enc = this.gpu.device.createCommandEncoder({ label: "pmkvq append" });
    const pass = enc.beginComputePass({ label: "pmkvq append" });
    const temps = this.recordAppend(pass, src, t);
    pass.end();
    this.gpu.device.queue.submit([enc.finish()]);
    await this.gpu.device.queue.onSubmittedWorkDone();
    for (const b of temps) b.destroy();
    this.gpu.ctx.check();
  }

  /**
   * Compiles every kernel an append can need from the current width down to the final one (so that
   * {@link GpuGroupedLayer.recordAppend} can record synchronously).
   *
   * @example
   * ```ts
   * await layer.precompile();
   * ```
   */
  async precompile(): Promise<void> {
    await this.#quant(16);
    for (let b = this.#bits as number; b >= this.spec.finalBits; b /= 2) {
      if (this.spec.window === 0) await this.#quant(b);
      if (this.spec.window > 0) await this.#ersK(16, b);
      await this.#ersK(b, b);
      if (b > this.spec.finalBits) await this.#ersK(b, b / 2);
    }
  }

  /**
   * Records the dispatches of appending `t` tokens into `pass` (the host state advances now) and returns
   * the temporaries (fresh uniforms — none when `arena` is given, whose owner flushes it before the submit —
   * and replaced stores) to destroy once the pass is submitted. Throws BudgetError
   * (nothing changed) like the CPU cache, GpuError when a kernel was not compiled ({@link precompile}).
   *
   * @example
   * ```ts
   * const temps = layer.recordAppend(pass, src, 1);
   * ```
   */
  recordAppend(pass: GPUComputePassEncoder, src: AppendSource, t: number, arena?: UniformArena): GPUBuffer[] {
    if (!Number.isSafeInteger(t) || t < 0) throw new TensorShapeError(`append: token count ${t}`);
    if (t === 0) return [];
    const newLen = this.tokens + t;
    const target = this.#targetBits(newLen);
    const { sink, window: W, batch: B } = this.spec;
    const need = <T>(k: T | undefined, what: string): T => {
      if (!k) throw new GpuError(`GPU layer: kernel ${what} not compiled (call precompile() first)`);
      return k;
    };
    const q16 = need(this.#qa.get(16), "quantize b16");
    const qb = W === 0 ? need(this.#qa.get(this.#bits), `quantize b${this.#bits}`) : null;
    const kernels = {
      get: (key: string) => need(this.#ers.get(key), `ers ${key}`),
    };
    // every kernel this append uses must exist before anything is mutated
    for (let b = this.#bits as number; b > target; b /= 2) kernels.get(`${b}-${b / 2}`);
    if (W > 0) kernels.get(`16-${this.#bits}`);
    for (let b = this.#bits as number; b >= target; b /= 2) kernels.get(`${b}-${b}`);
    const temps: GPUBuffer[] = [];
    const quantize = (k: QuantizeAppendKernel, store: Store, from: number, n: number, pos: number) => {
      const d = k.prepare({ x: src.x, store: store.buffer, status: this.status }, {
        batch: B,
        tokens: n,
        src: {
          k: src.k + from * src.tokStride,
          v: src.v + from * src.tokStride,
          tokStride: src.tokStride,
          batchStride: src.batchStride,
        },
        dst: { k: store.layout.k!, v: store.layout.v! },
        pos: new Array(B).fill(pos),
      }, arena);
      if (d.uniform) temps.push(d.uniform);
      k.encode(pass, d);
    };
    const ers = (
      from: Store,
      fromBits: number,
      tok0: number,
      to: Store,
      toBits: number,
      dstTok: number,
      n: number,
    ) => {
      const k = kernels.get(`${fromBits}-${toBits}`);
      for (const tensor of ["k", "v"] as const) {
        const d = k.prepare({ src: from.buffer, dst: to.buffer }, {
          batch: B,
          tokens: n,
          src: { t: from.layout[tensor]!, tok0 },
          dst: { t: to.layout[tensor]!, tok0: dstTok },
        }, arena);
        if (d.uniform) temps.push(d.uniform);
        k.encode(pass, d);
      }
    };
    const ensureBody = (need: number) => {
      if (need <= this.#body.layout.k!.cap) return;
      const chunk = W > 0 ? W : 128;
      const cap = Math.ceil(Math.max(need, this.#body.layout.k!.cap * 1.5) / chunk) * chunk;
      const grown = this.#alloc("body", this.#bits, cap);
      if (this.#bodyTokens > 0) ers(this.#body, this.#bits, 0, grown, this.#bits, 0, this.#bodyTokens);
      temps.push(this.#body.buffer);
      this.#body = grown;
    };
    let done = 0;
    if (this.#sinkCount < sink) {
      const m = Math.min(sink - this.#sinkCount, t);
      quantize(q16, this.#sw!, 0, m, this.#sinkCount);
      this.#sinkCount += m;
      done = m;
    }
    while (done < t) {
      if (W > 0) {
        const m = Math.min(t - done, W - this.#winCount);
        quantize(q16, this.#sw!, done, m, sink + this.#winCount);
        this.#winCount += m;
        done += m;
        if (this.#winCount === W) {
          ensureBody(this.#bodyTokens + W);
          ers(this.#sw!, 16, sink, this.#body, this.#bits, this.#bodyTokens, W);
          this.#bodyTokens += W;
          this.#winCount = 0;
        }
      } else {
        const m = t - done;
        ensureBody(this.#bodyTokens + m);
        quantize(qb!, this.#body, done, m, this.#bodyTokens);
        this.#bodyTokens += m;
        done += m;
      }
    }
    while (this.#bits > target) {
      const to = (this.#bits / 2) as QuantBits;
      const next = this.#alloc("body", to, Math.max(this.#bodyCapacity(to), this.#bodyTokens));
      if (this.#bodyTokens > 0) ers(this.#body, this.#bits, 0, next, to, 0, this.#bodyTokens);
      temps.push(this.#body.buffer);
      this.#body = next;
      this.events.push({ step: newLen, from: this.#bits, to });
      this.#bits = to;
    }
    return temps;
  }

  /**
   * Throws the BudgetError appending `t` tokens would raise; changes nothing.
   *
   * @example
   * ```ts
   * layer.checkCapacity(1);
   * ```
   */
  checkCapacity(t: number): void {
    this.#targetBits(this.tokens + t);
  }

  /**
   * Empties the layer back to its initial width (stores reallocated; events cleared).
   *
   * @example
   * ```ts
   * layer.reset();
   * ```
   */
  reset(): void {
    this.#sinkCount = 0;
    this.#winCount = 0;
    this.#bodyTokens = 0;
    this.events.length = 0;
    const init = checkBits(this.spec.initBits);
    if (this.#bits !== init || this.#body.layout.k!.cap !== Math.max(1, this.#bodyCapacity(init))) {
      this.#body.buffer.destroy();
      this.#bits = init;
      this.#body = this.#alloc("body", init, this.#bodyCapacity(init));
    }
  }

  /**
   * Throws NonFiniteError if an append since the last check saw NaN, ±Inf or |x| ≥ 2^64 (then clears it).
   *
   * @example
   * ```ts
   * await layer.checkStatus();
   * ```
   */
  async checkStatus(): Promise<void> {
    const word = new Uint32Array(await this.gpu.read(this.status, 0, 4))[0];
    if (word !== 0) {
      this.gpu.device.queue.writeBuffer(this.status, 0, new Uint32Array([0]));
      throw new NonFiniteError(
        "GPU layer: a K/V value appended since the last check is NaN, ±Inf or |x| >= 2^64",
      );
    }
  }

  #segments(): { store: "sw" | "body"; tok0: number; count: number }[] {
    const segs: { store: "sw" | "body"; tok0: number; count: number }[] = [];
    if (this.spec.sink > 0) segs.push({ store: "sw", tok0: 0, count: this.#sinkCount });
    segs.push({ store: "body", tok0: 0, count: this.#bodyTokens });
    if (this.spec.window > 0) segs.push({ store: "sw", tok0: this.spec.sink, count: this.#winCount });
    return segs;
  }

  /**
   * The FusedAttention config of the current state (changes only with the body width).
   *
   * @example
   * ```ts
   * const att = await FusedAttention.create(gpu, layer.attentionConfig(32));
   * ```
   */
  attentionConfig(
    numHeads: number,
    tuning: AttentionTuning = DEFAULT_ATTENTION_TUNING,
  ): FusedAttentionConfig {
    const stores: { k: TensorFormat; v: TensorFormat }[] = [];
    if (this.#sw) stores.push({ k: "q16", v: "q16" });
    const bf = tokenFormat(this.#bits);
    stores.push({ k: bf, v: bf });
    const idx = (s: "sw" | "body") => (s === "sw" ? 0 : this.#sw ? 1 : 0);
    return {
      numHeads,
      numKvHeads: this.spec.numKvHeads,
      headDim: this.spec.headDim,
      maxBatch: this.spec.batch,
      tuning,
      stores,
      segments: this.#segments().map((s) => ({
        k: { store: idx(s.store), tensor: "k" },
        v: { store: idx(s.store), tensor: "v" },
      })),
    };
  }

  /**
   * Buffers, segment references and counts for `FusedAttention.prepare`.
   *
   * @example
   * ```ts
   * const { stores, refs, counts } = layer.attentionInputs();
   * ```
   */
  attentionInputs(): { stores: GPUBuffer[]; refs: SegmentRefs[]; counts: number[][] } {
    const stores = [...(this.#sw ? [this.#sw.buffer] : []), this.#body.buffer];
    const refs = this.#segments().map((s) => {
      const st = s.store === "sw" ? this.#sw! : this.#body;
      return { k: { t: st.layout.k!, tok0: s.tok0 }, v: { t: st.layout.v!, tok0: s.tok0 } };
    });
    const counts = this.#segments().map((s) => new Array(this.spec.batch).fill(s.count));
    return { stores, refs, counts };
  }

  /**
   * Frees the layer's buffers.
   *
   * @example
   * ```ts
   * layer.destroy();
   * ```
   */
  destroy(): void {
    this.#sw?.buffer.destroy();
    this.#body.buffer.destroy();
    this.status.destroy();
  }
}
