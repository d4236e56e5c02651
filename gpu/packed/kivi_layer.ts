/**
 * A GPU-side KIVI cache layer that owns its buffers (layout table in gpu/packed/kivi_layout.ts). It moves
 * tokens exactly like `KiviCache` (src/kv/kivi.ts) for a batch of sequences appended in lockstep, so its
 * stores hold the SAME key-block, value, residual and FIFO bits as the CPU cache (tests/conformance_kivi_test.ts
 * compares them after every append):
 *
 * | step of `append(t tokens)` | CPU (KiviCache) | GPU (this class, one pass) |
 * | --- | --- | --- |
 * | capacity | grows | TensorShapeError beyond `maxLen`, before any dispatch |
 * | key flush | `#quantizeKeyBlock` per full residual | `KiviKernels.encodeKeyFlush`: ⌊(c_k + t)/R⌋ blocks at once |
 * | key residual | bf16 fill, `fill(0)` after a flush | `encodeStage` in place (rows [c_k, c_k + t), or all R rows after a flush) |
 * | value quantize | `#quantizeValues` of the evicted FIFO rows, then input rows | `encodeValueQuant` over the FIFO-then-input stream |
 * | value FIFO | `copyWithin` + new rows + `fill(0)` | `encodeStage` from the current FIFO into the other one; they swap |
 *
 * Attention: {@link GpuKiviLayer.attentionConfig} / {@link GpuKiviLayer.attentionInputs} feed the fused
 * decode attention of attention.ts, which reads the per-channel key codes (kc<b>), per-token value codes
 * (q<b>) and the bf16 residual / FIFO directly, as three segments: [0, vQ) keys + values · [vQ, kQ) keys +
 * FIFO · [kQ, N) key residual + FIFO (empty ones get no splits). The config never changes for a layer.
 *
 * @example
 * ```ts
 * const layer = await GpuKiviLayer.create(gpu, { batch: 1, numKvHeads: 2, headDim: 64, bits: 4, group: 32,
 *   residual: 64, maxLen: 512 });
 * await layer.append({ x: qkv, k: 8 * 64, v: 10 * 64, tokStride: 12 * 64, batchStride: 0 }, 1);
 * const att = await FusedAttention.create(gpu, layer.attentionConfig(8));
 * ```
 * @module
 */
import type { PackedGpu } from "./util.ts";
import type { UniformArena } from "./uniform_arena.ts";
import type { StoreLayout } from "./layout.ts";
import { unpackTokenTensor } from "./layout.ts";
import {
  kiviAppendPlan,
  type KiviLayerShape,
  type KiviLayouts,
  kiviLayouts,
  unpackBf16Tensor,
  unpackChannelTensor,
} from "./kivi_layout.ts";
import { type KiviInput, KiviKernels } from "./kivi_quantize.ts";
import type { AppendSource } from "./grouped_layer.ts";
import {
  type AttentionTuning,
  DEFAULT_ATTENTION_TUNING,
  type FusedAttentionConfig,
  type SegmentRefs,
} from "./attention.ts";
import type { KiviLayerExport } from "../../src/kv/kivi.ts";
import { BODY_CHUNK_TOKENS, groupsPerToken } from "../../src/kv/accounting.ts";
import { allocTokens } from "../../src/kv/qstore.ts";
import { groupSizeFor } from "../../src/quant/format.ts";
import { NonFiniteError, TensorShapeError } from "../../src/errors.ts";

/** Parameters of one layer (kivi_layout.ts). */
export type GpuKiviLayerSpec = KiviLayerShape;

/** A store buffer and its layout. */
export interface KiviStore {
  buffer: GPUBuffer;
  layout: StoreLayout;
}

/** Per-sequence token counts. */
export interface KiviLayerCounts {
  tokens: number;
  keyQuant: number;
  keyResidual: number;
  valueQuant: number;
  valueFifo: number;
}

/**
 * The GPU-side KIVI layer (module doc).
 *
 * @example
 * ```ts
 * const layer = await GpuKiviLayer.create(gpu, spec);
 * await layer.append(src, 5);
 * ```
 */
export class GpuKiviLayer {
  readonly spec: Readonly<GpuKiviLayerSpec>;
  readonly gpu: PackedGpu;
  readonly layouts: KiviLayouts;
  readonly status: GPUBuffer;
  readonly #kernels: KiviKernels;
  readonly #keys: KiviStore;
  readonly #values: KiviStore;
  readonly #kres: KiviStore;
  readonly #fifo: [KiviStore, KiviStore];
  readonly #dummy: GPUBuffer;
  #cur = 0;
  #len = 0;
  #kRes = 0;
  #kBlocks = 0;
  #vFifo = 0;
  #vQuant = 0;

  private constructor(gpu: PackedGpu, spec: GpuKiviLayerSpec, layouts: KiviLayouts, kernels: KiviKernels) {
    this.gpu = gpu;
    this.spec = Object.freeze({ ...spec });
    this.layouts = layouts;
    this.#kernels = kernels;
    const mk = (name: string, layout: StoreLayout): KiviStore => ({
      buffer: gpu.storage(`kivi${spec.bits} ${name}`, layout.words * 4),
      layout,
    });
    this.#keys = mk("keys", layouts.keys);
    this.#values = mk("values", layouts.values);
    this.#kres = mk("key residual", layouts.keyResidual);
    this.#fifo = [mk("value fifo 0", layouts.valueFifo), mk("value fifo 1", layouts.valueFifo)];
    this.#dummy = gpu.storage("kivi unread source", 16);
    this.status = gpu.storage("kivi status", 16);
  }

  /**
   * Validates the spec (kiviLayouts: QuantConfigError / TensorShapeError), allocates the stores and compiles
   * the append kernels.
   *
   * @example
   * ```ts
   * const layer = await GpuKiviLayer.create(gpu, { batch: 2, numKvHeads: 2, headDim: 128, bits: 2, group: 128,
   *   residual: 128, maxLen: 1024 });
   * ```
   */
  static async create(gpu: PackedGpu, spec: GpuKiviLayerSpec): Promise<GpuKiviLayer> {
    const layouts = kiviLayouts(spec);
    const kernels = await KiviKernels.create(gpu, {
      numKvHeads: spec.numKvHeads,
      headDim: spec.headDim,
      bits: spec.bits,
      group: spec.group,
      residual: spec.residual,
    });
    return new GpuKiviLayer(gpu, spec, layouts, kernels);
  }

  /**
   * Tokens per sequence.
   *
   * @example
   * ```ts
   * layer.tokens;
   * ```
   */
  get tokens(): number {
    return this.#len;
  }

  /**
   * Per-sequence counts (kQ, c_k, vQ, c_v).
   *
   * @example
   * ```ts
   * layer.counts(); // { tokens: 300, keyQuant: 256, keyResidual: 44, valueQuant: 172, valueFifo: 128 }
   * ```
   */
  counts(): KiviLayerCounts {
    return {
      tokens: this.#len,
      keyQuant: this.#kBlocks * this.spec.residual,
      keyResidual: this.#kRes,
      valueQuant: this.#vQuant,
      valueFifo: this.#vFifo,
    };
  }

  /**
   * The stores (the value FIFO is the current one of the pair).
   *
   * @example
   * ```ts
   * const { keys } = layer.stores(); // keys.layout.k!.format === "kc4"
   * ```
   */
  stores(): { keys: KiviStore; values: KiviStore; keyResidual: KiviStore; valueFifo: KiviStore } {
    return {
      keys: this.#keys,
      values: this.#values,
      keyResidual: this.#kres,
      valueFifo: this.#fifo[this.#cur],
    };
  }

  /**
   * GPU bytes held (both FIFO buffers included).
   *
   * @example
   * ```ts
   * layer.bytes();
   * ```
   */
  bytes(): number {
    return this.#keys.buffer.size + this.#values.buffer.size + this.#kres.buffer.size +
      this.#fifo[0].buffer.size + this.#fifo[1].buffer.size;
  }

  /**
   * Throws the TensorShapeError appending `t` tokens would raise (beyond `maxLen`); changes nothing.
   *
   * @example
   * ```ts
   * layer.checkCapacity(1);
   * ```
   */
  checkCapacity(t: number): void {
    if (!Number.isSafeInteger(t) || t < 0) throw new TensorShapeError(`KIVI append: token count ${t}`);
    if (this.#len + t > this.spec.maxLen) {
      throw new TensorShapeError(
        `KIVI GPU layer: ${this.#len} + ${t} tokens exceed its capacity maxLen ${this.spec.maxLen}`,
      );
    }
  }

  /**
   * Records the dispatches of appending `t` tokens into `pass` (the host state advances now) and returns the
   * fresh uniforms to destroy once the pass is submitted (none when `arena` is given: its owner flushes it
   * before the submit). TensorShapeError (nothing changed) beyond `maxLen`.
   * Bad input is flagged in {@link GpuKiviLayer.status} ({@link GpuKiviLayer.checkStatus}).
   *
   * @example
   * ```ts
   * const temps = layer.recordAppend(pass, { x: qkv, k: nH * D, v: (nH + nKv) * D, tokStride: QKV, batchStride: 0 }, 1);
   * ```
   */
  recordAppend(pass: GPUComputePassEncoder, src: AppendSource, t: number, arena?: UniformArena): GPUBuffer[] {
    this.checkCapacity(t);
    if (t === 0) return [];
    const { batch, residual: R } = this.spec;
    const L = this.layouts;
    const plan = kiviAppendPlan({ keyResidual: this.#kRes, valueFifo: this.#vFifo }, t, R);
    const kin: KiviInput = { off: src.k, tokStride: src.tokStride, batchStride: src.batchStride };
    const vin: KiviInput = { off: src.v, tokStride: src.tokStride, batchStride: src.batchStride };
    const kk = this.#kernels;
    const out: (GPUBuffer | null)[] = [];
    // keys: flush the completed blocks (old residual rows + input), then restage the residual in place
    out.push(kk.encodeKeyFlush(pass, {
      x: src.x,
      source: this.#kres.buffer,
      dest: this.#keys.buffer,
      status: this.status,
    }, {
      batch,
      input: kin,
      c: this.#kRes,
      units: plan.keyBlocks,
      first: this.#kBlocks,
      source: L.keyResidual.k!,
      dest: L.keys.k!,
    }, arena));
    const flushed = plan.keyBlocks > 0;
    out.push(kk.encodeStage(pass, {
      x: src.x,
      source: this.#dummy, // never read: every staged row is an input token or 0
      dest: this.#kres.buffer,
      status: this.status,
    }, {
      batch,
      input: kin,
      c: this.#kRes,
      r0: flushed ? 0 : this.#kRes,
      nRows: flushed ? R : t,
      pOff: flushed ? plan.keyBlocks * R : 0,
      total: this.#kRes + t,
      source: L.keyResidual.k!,
      dest: L.keyResidual.k!,
    }, arena));
    // values: quantize the evicted stream head, then write the new FIFO into the other buffer
    const cur = this.#fifo[this.#cur], next = this.#fifo[1 - this.#cur];
    out.push(kk.encodeValueQuant(pass, {
      x: src.x,
      source: cur.buffer,
      dest: this.#values.buffer,
      status: this.status,
    }, {
      batch,
      input: vin,
      c: this.#vFifo,
      units: plan.valueEvict,
      first: this.#vQuant,
      source: L.valueFifo.v!,
      dest: L.values.v!,
    }, arena));
    out.push(kk.encodeStage(pass, {
      x: src.x,
      source: cur.buffer,
      dest: next.buffer,
      status: this.status,
    }, {
      batch,
      input: vin,
      c: this.#vFifo,
      r0: 0,
      nRows: R,
      pOff: plan.valueEvict,
      total: this.#vFifo + t,
      source: L.valueFifo.v!,
      dest: L.valueFifo.v!,
    }, arena));
    this.#cur = 1 - this.#cur;
    this.#kBlocks += plan.keyBlocks;
    this.#kRes = plan.keyResidualAfter;
    this.#vQuant += plan.valueEvict;
    this.#vFifo = plan.valueFifoAfter;
    this.#len += t;
    return out.filter((b): b is GPUBuffer => b !== null);
  }

  /**
   * Appends `t` tokens to every sequence: one pass, submitted and awaited.
   *
   * @example
   * ```ts
   * await layer.append({ x, k: 0, v: t * 128, tokStride: 128, batchStride: 0 }, t);
   * ```
   */
  async append(src: AppendSource, t: number): Promise<void> {
    this.checkCapacity(t);
    if (t === 0) return;
    const enc = this.gpu.device.createCommandEncoder({ label: "kivi append" });
    const pass = enc.beginComputePass({ label: "kivi append" });
    const temps = this.recordAppend(pass, src, t);
    pass.end();
    this.gpu.device.queue.submit([enc.finish()]);
    await this.gpu.device.queue.onSubmittedWorkDone();
    for (const b of temps) b.destroy();
    this.gpu.ctx.check();
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
        "KIVI GPU layer: a K/V value appended since the last check is NaN, ±Inf or |x| >= 2^64",
      );
    }
  }

  /**
   * Empties the layer: counts to 0 and every store zeroed (the residual / FIFO invariants need zero rows).
   *
   * @example
   * ```ts
   * layer.reset();
   * ```
   */
  reset(): void {
    this.#len =
      this.#kRes =
      this.#kBlocks =
      this.#vFifo =
      this.#vQuant =
        0;
    this.#cur = 0;
    const enc = this.gpu.device.createCommandEncoder({ label: "kivi reset" });
    for (const s of [this.#keys, this.#values, this.#kres, ...this.#fifo]) enc.clearBuffer(s.buffer);
    this.gpu.device.queue.submit([enc.finish()]);
  }

  /**
   * The stores of sequence `b` read back in the CPU's `KiviCache.exportLayer` form (new arrays; value chunks
   * of 128 tokens, zero-padded like the CPU's).
   *
   * @example
   * ```ts
   * const ex = await layer.exportLayer(0); // compare with cpu.exportLayer(0)
   * ```
   */
  async exportLayer(b: number, layer = 0): Promise<KiviLayerExport> {
    const { batch, numKvHeads, headDim, bits, group, residual: R } = this.spec;
    if (!Number.isSafeInteger(b) || b < 0 || b >= batch) {
      throw new TensorShapeError(`KIVI GPU layer: sequence ${b} is outside [0, ${batch})`);
    }
    const st = this.stores();
    const read = async (s: KiviStore) =>
      new Uint32Array(await this.gpu.read(s.buffer, 0, s.layout.words * 4));
    const [keys, values, kres, fifo] = await Promise.all([
      read(st.keys),
      read(st.values),
      read(st.keyResidual),
      read(st.valueFifo),
    ]);
    const L = this.layouts;
    const G = groupSizeFor(headDim);
    const gpt = groupsPerToken({ numLayers: 1, numKvHeads, headDim });
    const C = BODY_CHUNK_TOKENS;
    const valueChunks: KiviLayerExport["valueChunks"] = [];
    for (let at = 0; at < this.#vQuant; at += C) {
      const n = Math.min(C, this.#vQuant - at);
      const q = allocTokens(C, gpt, G, bits);
      const got = unpackTokenTensor(L.values, L.values.v!, b, at, n, values);
      q.codes.set(got.codes);
      q.scales.set(got.scales);
      q.zeros.set(got.zeros);
      valueChunks.push({ q, tokens: n });
    }
    const started = this.#len > 0;
    return {
      layer,
      numKvHeads,
      headDim,
      bits,
      group,
      residual: R,
      valueGroupSize: G,
      tokens: this.#len,
      keyResidual: started ? unpackBf16Tensor(L.keyResidual, L.keyResidual.k!, b, R, kres) : null,
      keyResidualTokens: this.#kRes,
      keyBlocks: unpackChannelTensor(L.keys, L.keys.k!, b, this.#kBlocks, R, keys),
      keyQuantTokens: this.#kBlocks * R,
      valueFifo: started ? unpackBf16Tensor(L.valueFifo, L.valueFifo.v!, b, R, fifo) : null,
      valueFifoTokens: this.#vFifo,
      valueChunks,
      valueQuantTokens: this.#vQuant,
      valueChunkTokens: C,
    };
  }

  /**
   * The FusedAttention config (the same for the layer's whole life).
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
    const L = this.layouts;
    return {
      numHeads,
      numKvHeads: this.spec.numKvHeads,
      headDim: this.spec.headDim,
      maxBatch: this.spec.batch,
      tuning,
      stores: [
        { k: L.keys.k!.format, v: null, channelGroup: this.spec.group },
        { k: null, v: L.values.v!.format },
        { k: "bf16", v: null },
        { k: null, v: "bf16" },
      ],
      segments: [
        { k: { store: 0, tensor: "k" }, v: { store: 1, tensor: "v" } },
        { k: { store: 0, tensor: "k" }, v: { store: 3, tensor: "v" } },
        { k: { store: 2, tensor: "k" }, v: { store: 3, tensor: "v" } },
      ],
    };
  }

  /**
   * Buffers, segment references and counts for `FusedAttention.prepare` (current state).
   *
   * @example
   * ```ts
   * const { stores, refs, counts } = layer.attentionInputs();
   * ```
   */
  attentionInputs(): { stores: GPUBuffer[]; refs: SegmentRefs[]; counts: number[][] } {
    const L = this.layouts;
    const kQ = this.#kBlocks * this.spec.residual, vQ = this.#vQuant, N = this.#len;
    const st = this.stores();
    const refs: SegmentRefs[] = [
      { k: { t: L.keys.k!, tok0: 0 }, v: { t: L.values.v!, tok0: 0 } },
      { k: { t: L.keys.k!, tok0: vQ }, v: { t: L.valueFifo.v!, tok0: 0 } },
      { k: { t: L.keyResidual.k!, tok0: 0 }, v: { t: L.valueFifo.v!, tok0: kQ - vQ } },
    ];
    const B = this.spec.batch;
    const counts = [vQ, kQ - vQ, N - kQ].map((n) => new Array(B).fill(n));
    return {
      stores: [st.keys.buffer, st.values.buffer, st.keyResidual.buffer, st.valueFifo.buffer],
      refs,
      counts,
    };
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
    for (const s of [this.#keys, this.#values, this.#kres, ...this.#fifo]) s.buffer.destroy();
    this.#dummy.destroy();
    this.status.destroy();
  }
}
