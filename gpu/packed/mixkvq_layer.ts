/**
 * One MixKVQ cache layer on the GPU (batch 1) that owns its buffers (layout: mixkvq_layout.ts) and moves
 * tokens exactly like `MixKvqCache` (src/kv/mixkvq.ts), so after every append its residual and block bytes
 * equal the CPU cache's `exportLayer` for the same K/V and queries:
 *
 * | step of `append(t tokens)` | CPU (`MixKvqCache`) | GPU (this class) |
 * | --- | --- | --- |
 * | split into chunks that fill the residual | `m = min(t − done, R − resCount)` | the same loop on the host |
 * | store a chunk | bf16 RNE into `resK` / `resV` rows | `mixkvq residual` kernel (+ NaN/Inf/\|x\| ≥ 2^64 flag) |
 * | query statistics | `accumulateQueryStats` of the pending magnitudes, f32 | the same function on the host (`observeQuery` takes host queries) |
 * | residual full → key statistics | min / max per channel inside `normalizedSalience` | `mixkvq key stats` kernel, read back (2·nKv·D floats) |
 * | tier choice | `normalizedSalience` (f64) + `tierOf` | the same functions on the host (mixkvq_tiers.ts), map uploaded |
 * | key channels | bf16 copy / `quantizeGroup` per g tokens | `mixkvq key quant` kernel |
 * | values | `quantizeTokens` per token at valueBits | `mixkvq value quant` kernel |
 * | clear residual and query sums | `fill(0)` | `clearBuffer(resid)`, host `fill(0)` |
 *
 * Host vs GPU: the selection (tiers) stays on the host because the CPU decides it in f64 (WGSL has no f64;
 * see mixkvq_tiers.ts), from statistics the host has after one readback per block of R tokens. The query
 * sums stay on the host because the CPU reduces each token's |q| over the GQA group in f64 before rounding
 * to f32: on a GPU that is exact only for groups of ≤ 2 heads. A caller gives `observeQuery` the post-RoPE
 * queries as a host array, as the CPU backend does. An engine that records whole steps uses
 * {@link GpuMixKvqLayer.recordToken} (residual append in its pass, no flush), then after the submission
 * {@link GpuMixKvqLayer.addQueries} (q read back from a log) and {@link GpuMixKvqLayer.finishBlock} (tier
 * choice and quantization) — see gpu/cache/mixkvq.ts.
 *
 * Buffers owned:
 * | buffer | type | shape |
 * | --- | --- | --- |
 * | `resid` | u32 | [2, R, nKv·D/2] (bf16 K then V residual) |
 * | `arena` | u32 | ⌊maxLen/R⌋ blocks of at most `blockWordsMax` words |
 * | `desc` | u32 | [⌊maxLen/R⌋, 12] block regions |
 * | `stats` | f32 | [2, nKv·D] key min / max, then the status word |
 * | `status` | u32 | [4] bad-input flag (mixkvq_quantize.wgsl.ts) |
 *
 * A bad input (NaN, ±Inf, |x| ≥ 2^64) raises NonFiniteError naming the token, head and channel like the CPU,
 * but after the GPU has stored the chunk: the layer is then unusable (GpuError) until `reset()`.
 *
 * @example
 * ```ts
 * const layer = await GpuMixKvqLayer.create(gpu, { method: "mixkvq", residual: 64 }, { numKvHeads: 2, headDim: 128, maxLen: 1024 });
 * layer.observeQuery(q, 5);                          // host f32 [5, nH, D]
 * await layer.append({ x: kv, k: 0, v: 5 * 256, tokStride: 256 }, 5);
 * const ex = await layer.readExport();               // same bytes as MixKvqCache.exportLayer(0)
 * ```
 * @module
 */
import type { PackedGpu } from "./util.ts";
import type { CacheSpec } from "../../src/kv/cache.ts";
import {
  type MixKvqConfig,
  mixkvqLayerBytes,
  type MixKvqLayerExport,
  resolveMixKvqSpec,
  type TierCounts,
} from "../../src/kv/mixkvq.ts";
import { accumulateQueryStats, queryMagnitudes } from "../../src/kv/mixkvq_select.ts";
import {
  blockDescriptor,
  blockRegion,
  DESC_WORDS,
  type MixKvqBlockRegion,
  type MixKvqGeometry,
  mixkvqGeometry,
  tierMapWords,
  unpackBlock,
} from "./mixkvq_layout.ts";
import { MixKvqQuantKernels, type MixKvqSource } from "./mixkvq_quantize.ts";
import { queryMean, tiersFromStats } from "./mixkvq_tiers.ts";
import type { MixKvqAttention, MixKvqAttentionParams } from "./mixkvq_attention.ts";
import { GpuError, NonFiniteError, QuantConfigError, TensorShapeError } from "../../src/errors.ts";

export type { MixKvqSource } from "./mixkvq_quantize.ts";

/** Geometry of the model side of a layer. */
export interface GpuMixKvqShape {
  numKvHeads: number;
  headDim: number;
  /** Longest sequence the layer must hold. */
  maxLen: number;
}

/** One stored block: where it is and its tier counts. */
export interface GpuMixBlock {
  region: MixKvqBlockRegion;
  tiers: TierCounts;
}

/**
 * See the module doc.
 *
 * @example
 * ```ts
 * const layer = await GpuMixKvqLayer.create(gpu, { method: "mixkvq" }, { numKvHeads: 2, headDim: 128, maxLen: 4096 });
 * ```
 */
export class GpuMixKvqLayer {
  readonly gpu: PackedGpu;
  readonly config: Readonly<MixKvqConfig>;
  readonly geo: MixKvqGeometry;
  readonly kernels: MixKvqQuantKernels;
  readonly resid: GPUBuffer;
  readonly arena: GPUBuffer;
  readonly desc: GPUBuffer;
  readonly stats: GPUBuffer;
  readonly status: GPUBuffer;
  #numHeads: number | null;
  #blocks: GpuMixBlock[] = [];
  #resCount = 0;
  #qsum: Float32Array;
  #qTokens = 0;
  #pending: { t: number; mags: Float32Array } | null = null;
  #touched = false;
  #broken = false;

  private constructor(
    gpu: PackedGpu,
    config: MixKvqConfig,
    geo: MixKvqGeometry,
    kernels: MixKvqQuantKernels,
  ) {
    this.gpu = gpu;
    this.config = Object.freeze(config);
    this.geo = geo;
    this.kernels = kernels;
    this.#numHeads = config.numHeads;
    this.#qsum = new Float32Array(geo.row);
    this.resid = gpu.storage("mixkvq residual", 8 * geo.residWords);
    this.arena = gpu.storage("mixkvq blocks", 4 * Math.max(4, geo.maxBlocks * geo.blockWordsMax));
    this.desc = gpu.storage("mixkvq block table", 4 * DESC_WORDS * Math.max(1, geo.maxBlocks));
    this.stats = gpu.storage("mixkvq key stats", 8 * geo.row + 4);
    this.status = gpu.storage("mixkvq status", 16);
  }

  /**
   * Validates `spec` with the CPU's `resolveMixKvqSpec` (QuantConfigError naming the field) and the GPU
   * layout's limits (mixkvqGeometry: even R, nKv·D % 4), allocates the buffers and compiles the kernels.
   *
   * @example
   * ```ts
   * const layer = await GpuMixKvqLayer.create(gpu, { method: "mixkvq", keyGroup: 32 }, { numKvHeads: 2, headDim: 128, maxLen: 512 });
   * ```
   */
  static async create(
    gpu: PackedGpu,
    spec: CacheSpec & { method: "mixkvq" },
    shape: GpuMixKvqShape,
  ): Promise<GpuMixKvqLayer> {
    const config = resolveMixKvqSpec(spec);
    if (config.numHeads !== null && config.numHeads % shape.numKvHeads !== 0) {
      throw new QuantConfigError(
        `MixKVQ numHeads ${config.numHeads} is not a multiple of numKvHeads ${shape.numKvHeads}`,
      );
    }
    const geo = mixkvqGeometry({
      numKvHeads: shape.numKvHeads,
      headDim: shape.headDim,
      residual: config.residual,
      keyGroup: config.keyGroup,
      valueBits: config.valueBits,
      maxLen: shape.maxLen,
    });
    if (geo.row > 65536) {
      throw new QuantConfigError(`MixKVQ slots are u16: numKvHeads·headDim = ${geo.row} exceeds 65536`);
    }
    const kernels = await MixKvqQuantKernels.create(gpu, geo);
    return new GpuMixKvqLayer(gpu, config, geo, kernels);
  }

  /** Tokens stored: blocks·R + residual tokens. */
  get length(): number {
    return this.#blocks.length * this.geo.R + this.#resCount;
  }

  /** Quantized blocks (host view of `desc`). */
  get blocks(): readonly GpuMixBlock[] {
    return this.#blocks;
  }

  /** Tokens in the residual. */
  get residualTokens(): number {
    return this.#resCount;
  }

  #checkUsable(): void {
    if (this.#broken) {
      throw new GpuError("GPU MixKVQ layer got a bad input (NaN/Inf) after storing part of it; reset() it");
    }
  }

  /**
   * Records the post-RoPE queries [t, numHeads, D] (host f32) of the next `append` of t tokens, exactly as
   * `MixKvqCache.observeQuery` (numHeads from the spec or inferred on first use). TensorShapeError /
   * NonFiniteError (token, head, channel) with the layer unchanged.
   *
   * @example
   * ```ts
   * layer.observeQuery(new Float32Array(4 * 128), 1);
   * ```
   */
  observeQuery(q: Float32Array, t: number): void {
    if (!Number.isSafeInteger(t) || t < 0) {
      throw new TensorShapeError(`query token count ${t} must be a non-negative integer`);
    }
    this.#pending = { t, mags: this.#magnitudes(q, t) };
  }

  /** `queryMagnitudes` of host queries [t, numHeads, D] (numHeads inferred on first use, as the CPU). */
  #magnitudes(q: Float32Array, t: number): Float32Array {
    const { numKvHeads: nKv, headDim: D } = this.geo;
    let nH = this.#numHeads;
    if (nH === null) {
      nH = t > 0 ? q.length / (t * D) : nKv;
      if (!Number.isSafeInteger(nH) || nH < 1 || nH % nKv !== 0) {
        throw new TensorShapeError(
          `${q.length} query floats for ${t} tokens of head_dim ${D} is not [t, numHeads, ${D}] with numHeads ` +
            `a multiple of ${nKv} (set numHeads in the spec)`,
        );
      }
    }
    const mags = queryMagnitudes(q, t, nH, nKv, D);
    if (t > 0) this.#numHeads = nH;
    return mags;
  }

  /** Residual rows left before a block is due: R − residualTokens (0 after {@link recordToken} filled it). */
  get room(): number {
    return this.geo.R - this.#resCount;
  }

  /** Residual tokens whose queries are in the query sums. */
  get queryTokens(): number {
    return this.#qTokens;
  }

  /** True when recorded tokens filled the residual and {@link finishBlock} must run before more tokens. */
  get blockDue(): boolean {
    return this.#resCount === this.geo.R;
  }

  /**
   * Records, into the caller's compute pass, the append of ONE token (K/V at row 0 of `src`) into the
   * residual, plus the key statistics when it fills the residual. Nothing is submitted or awaited: the
   * caller submits, then (when {@link blockDue}) calls {@link finishBlock}, which chooses the tiers and
   * quantizes the block. This is how an engine records whole steps (gpu/cache/mixkvq.ts). Host state
   * advances now. The token's queries are folded later with {@link addQueries}. Returns the uniforms to
   * destroy once the pass is submitted. TensorShapeError when a block is due, the layer is full, or an
   * `observeQuery` is pending (that belongs to {@link append}); GpuError when the layer is unusable.
   *
   * @example
   * ```ts
   * const temps = layer.recordToken(pass, { x: qkv, k: nH * D, v: (nH + nKv) * D, tokStride: 0 });
   * ```
   */
  recordToken(pass: GPUComputePassEncoder, src: MixKvqSource): GPUBuffer[] {
    this.#checkUsable();
    const maxLen = this.geo.maxBlocks * this.geo.R + this.geo.R - 1;
    if (this.blockDue || this.length + 1 > maxLen || this.#pending) {
      throw new TensorShapeError(
        `cannot record a token: ${
          this.blockDue
            ? "a block is due (finishBlock first)"
            : this.#pending
            ? "observeQuery is pending for append"
            : `${this.length} tokens fill the layer's capacity ${maxLen}`
        }`,
      );
    }
    const temps = [
      this.kernels.encodeResidual(pass, { resid: this.resid, status: this.status }, src, {
        firstRow: this.#resCount,
        done: 0,
        m: 1,
        t: 1,
      }),
    ];
    this.#touched = true;
    this.#resCount++;
    if (this.blockDue) {
      temps.push(this.kernels.encodeKeyStats(pass, { resid: this.resid, stats: this.stats }));
    }
    return temps;
  }

  /**
   * Folds host queries [t, numHeads, D] of the next `t` residual tokens stored by {@link recordToken} into
   * the query sums, as `observeQuery` + `append` do on the CPU (tokens [queryTokens, queryTokens + t) of
   * the residual, in order, so the f32 sums are the CPU's). TensorShapeError when fewer than t residual
   * tokens lack queries; NonFiniteError (token, head, channel) with the layer unchanged.
   *
   * @example
   * ```ts
   * layer.addQueries(qHost, layer.residualTokens - layer.queryTokens);
   * ```
   */
  addQueries(q: Float32Array, t: number): void {
    this.#checkUsable();
    if (!Number.isSafeInteger(t) || t < 0 || this.#qTokens + t > this.#resCount) {
      throw new TensorShapeError(
        `queries of ${t} tokens, but only ${this.#resCount - this.#qTokens} residual tokens lack them`,
      );
    }
    const mags = this.#magnitudes(q, t);
    accumulateQueryStats(this.#qsum, mags, 0, t, this.geo.row);
    this.#qTokens += t;
  }

  /**
   * Completes the block {@link recordToken} filled: reads back the key statistics and the bad-input flag
   * (one readback), chooses the tiers on the host (f64, the CPU's functions) and submits the key/value
   * quantization and the residual clear; waits for the GPU. Fold the block's queries with
   * {@link addQueries} first. NonFiniteError for a NaN/Inf/|x| ≥ 2^64 among the recorded tokens (the layer
   * is then unusable until `reset()`); GpuError when no block is due.
   *
   * @example
   * ```ts
   * if (layer.blockDue) await layer.finishBlock();
   * ```
   */
  async finishBlock(): Promise<void> {
    this.#checkUsable();
    if (!this.blockDue) {
      throw new GpuError(`no MixKVQ block is due (${this.#resCount} of ${this.geo.R} tokens)`);
    }
    const { row, headDim: D } = this.geo;
    const dev = this.gpu.device;
    const enc = dev.createCommandEncoder({ label: "mixkvq block status" });
    enc.copyBufferToBuffer(this.status, 0, this.stats, 8 * row, 4);
    dev.queue.submit([enc.finish()]);
    const temps: GPUBuffer[] = [];
    try {
      const buf = await this.gpu.read(this.stats, 0, 8 * row + 4);
      const word = new Uint32Array(buf, 8 * row, 1)[0];
      if (word !== 0) {
        const e = 0xffffffff - word, c = e % row;
        throw new NonFiniteError(
          `GPU MixKVQ: ${Math.floor(e / row) === 0 ? "key" : "value"} of a token recorded into this block, ` +
            `head ${Math.floor(c / D)}, channel ${
              c % D
            } is NaN, ±Inf or |x| >= 2^64 (the layer must be reset)`,
        );
      }
      this.#flush(new Float32Array(buf, 0, 2 * row), temps);
    } catch (e) {
      this.#broken = true;
      throw e;
    } finally {
      await dev.queue.onSubmittedWorkDone();
      for (const b of temps) b.destroy();
    }
  }

  /**
   * Stores `t` tokens (K/V f32 in a GPU buffer, see {@link MixKvqSource}), quantizing every block the
   * residual completes; submits, and waits at each completed block (tier readback) and at the end (status).
   * TensorShapeError (bad t, pending queries for another t, beyond maxLen) with the layer unchanged;
   * NonFiniteError for a bad value (the layer is then unusable until `reset()`).
   *
   * @example
   * ```ts
   * await layer.append({ x: kv, k: 0, v: t * 256, tokStride: 256 }, t);
   * ```
   */
  async append(src: MixKvqSource, t: number): Promise<void> {
    this.#checkUsable();
    if (!Number.isSafeInteger(t) || t < 0) {
      throw new TensorShapeError(`token count ${t} must be a non-negative integer`);
    }
    const pending = this.#pending;
    if (pending && pending.t !== t) {
      throw new TensorShapeError(
        `observeQuery was given ${pending.t} tokens but append ${t}; nothing was stored`,
      );
    }
    const maxLen = this.geo.maxBlocks * this.geo.R + this.geo.R - 1;
    if (this.length + t > maxLen) {
      throw new TensorShapeError(
        `${this.length} + ${t} tokens exceed the layer's capacity ${maxLen} (maxLen rounded to blocks of ${this.geo.R})`,
      );
    }
    this.#pending = null;
    if (t === 0) return;
    this.#touched = true;
    const { R, row } = this.geo;
    const dev = this.gpu.device;
    const temps: GPUBuffer[] = [];
    let enc = dev.createCommandEncoder({ label: "mixkvq append" });
    let pass = enc.beginComputePass();
    try {
      for (let done = 0; done < t;) {
        const m = Math.min(t - done, R - this.#resCount);
        temps.push(this.kernels.encodeResidual(pass, { resid: this.resid, status: this.status }, src, {
          firstRow: this.#resCount,
          done,
          m,
          t,
        }));
        if (pending) {
          accumulateQueryStats(this.#qsum, pending.mags, done, m, row);
          this.#qTokens += m;
        }
        this.#resCount += m;
        done += m;
        if (this.#resCount === R) {
          temps.push(this.kernels.encodeKeyStats(pass, { resid: this.resid, stats: this.stats }));
          pass.end();
          enc.copyBufferToBuffer(this.status, 0, this.stats, 8 * row, 4);
          dev.queue.submit([enc.finish()]);
          const buf = await this.gpu.read(this.stats, 0, 8 * row + 4);
          this.#throwIfFlagged(new Uint32Array(buf, 8 * row, 1)[0], t);
          this.#flush(new Float32Array(buf, 0, 2 * row), temps);
          enc = dev.createCommandEncoder({ label: "mixkvq append" });
          pass = enc.beginComputePass();
        }
      }
      pass.end();
      dev.queue.submit([enc.finish()]);
      const word = new Uint32Array(await this.gpu.read(this.status, 0, 4))[0];
      this.#throwIfFlagged(word, t);
    } catch (e) {
      this.#broken = true;
      throw e;
    } finally {
      await dev.queue.onSubmittedWorkDone();
      for (const b of temps) b.destroy();
    }
  }

  #throwIfFlagged(word: number, t: number): void {
    if (word === 0) return;
    const { row, headDim: D } = this.geo;
    const e = 0xffffffff - word;
    const c = e % row, token = Math.floor(e / row) % t, tensor = Math.floor(e / (row * t));
    throw new NonFiniteError(
      `GPU MixKVQ: ${tensor === 0 ? "key" : "value"} of token ${token} of this append, head ` +
        `${Math.floor(c / D)}, channel ${c % D} is NaN, ±Inf or |x| >= 2^64 (the layer must be reset)`,
    );
  }

  /** Host selection from the read-back stats, map upload, key/value quantization, residual clear. */
  #flush(stats: Float32Array, temps: GPUBuffer[]): void {
    const { tau16, tau4 } = this.config;
    const geo = this.geo, dev = this.gpu.device;
    const tiers = tiersFromStats(
      stats,
      geo.numKvHeads,
      geo.headDim,
      queryMean(this.#qsum, this.#qTokens),
      tau16,
      tau4,
    );
    const base = this.#blocks.length ? this.#blocks[this.#blocks.length - 1].region.end : 0;
    const region = blockRegion(geo, base, tiers);
    const map = tierMapWords(tiers.bits, tiers.slot);
    dev.queue.writeBuffer(this.arena, 4 * region.bits, map.bits);
    dev.queue.writeBuffer(this.arena, 4 * region.slot, map.slot);
    dev.queue.writeBuffer(this.desc, 4 * DESC_WORDS * this.#blocks.length, blockDescriptor(region));
    const enc = dev.createCommandEncoder({ label: "mixkvq flush" });
    const pass = enc.beginComputePass();
    temps.push(this.kernels.encodeKeys(pass, { resid: this.resid, arena: this.arena }, region));
    temps.push(this.kernels.encodeValues(pass, { resid: this.resid, arena: this.arena }, region));
    pass.end();
    enc.clearBuffer(this.resid);
    dev.queue.submit([enc.finish()]);
    this.#blocks.push({ region, tiers: { n16: tiers.n16, n4: tiers.n4, n2: tiers.n2 } });
    this.#qsum.fill(0);
    this.#qTokens = 0;
    this.#resCount = 0;
  }

  /**
   * Reads the layer back in the CPU's `exportLayer` form (same field meanings and bytes; `querySum` is the
   * host's array). For tests and tools: it waits for the GPU.
   *
   * @example
   * ```ts
   * const ex = await layer.readExport();
   * ex.blocks[0].k.bits; // Uint8Array [nKv, D]
   * ```
   */
  async readExport(layer = 0): Promise<MixKvqLayerExport> {
    const geo = this.geo;
    const end = this.#blocks.length ? this.#blocks[this.#blocks.length - 1].region.end : 0;
    const arena = end ? new Uint32Array(await this.gpu.read(this.arena, 0, 4 * end)) : new Uint32Array(0);
    const res = new Uint16Array(await this.gpu.read(this.resid, 0, 8 * geo.residWords));
    const half = geo.R * geo.row;
    return {
      layer,
      numKvHeads: geo.numKvHeads,
      headDim: geo.headDim,
      residual: geo.R,
      keyGroup: geo.g,
      valueGroup: geo.G,
      valueBits: geo.valueBits,
      tau16: this.config.tau16,
      tau4: this.config.tau4,
      blocks: this.#blocks.map((b) => unpackBlock(geo, arena, b.region, b.tiers)),
      residualK: this.#touched ? res.slice(0, half) : null,
      residualV: this.#touched ? res.slice(half, 2 * half) : null,
      residualTokens: this.#resCount,
      querySum: this.#touched ? this.#qsum.slice() : null,
      queryTokens: this.#qTokens,
    };
  }

  /**
   * The attention parameters of the current contents (blocks, residual tokens) for f32 offsets `off` in
   * qkv / out.
   *
   * @example
   * ```ts
   * att.encode(pass, layer.attentionBuffers(qkv, part, out), layer.attentionParams({ q: 0, k: 512, v: 768, out: 0 }));
   * ```
   */
  attentionParams(off: { q: number; k: number; v: number; out: number }): MixKvqAttentionParams {
    return { nBlocks: this.#blocks.length, resCount: this.#resCount, ...off };
  }

  /**
   * The buffers of {@link MixKvqAttention.encode} for this layer.
   *
   * @example
   * ```ts
   * const bufs = layer.attentionBuffers(qkv, part, out);
   * ```
   */
  attentionBuffers(qkv: GPUBuffer, part: GPUBuffer, out: GPUBuffer) {
    return { qkv, part, out, resid: this.resid, arena: this.arena, desc: this.desc };
  }

  /**
   * Runs the fused decode attention once (record, submit, wait; temporaries destroyed).
   *
   * @example
   * ```ts
   * await layer.attend(att, { qkv, part, out }, { q: 0, k: nH * D, v: (nH + nKv) * D, out: 0 });
   * ```
   */
  async attend(
    att: MixKvqAttention,
    bufs: { qkv: GPUBuffer; part: GPUBuffer; out: GPUBuffer },
    off: { q: number; k: number; v: number; out: number },
  ): Promise<void> {
    this.#checkUsable();
    let temps: GPUBuffer[] = [];
    await this.gpu.submit((pass) => {
      temps = att.encode(
        pass,
        this.attentionBuffers(bufs.qkv, bufs.part, bufs.out),
        this.attentionParams(off),
      );
    });
    for (const b of temps) b.destroy();
  }

  /**
   * The CPU cache's byte count for this layer's contents (`mixkvqLayerBytes`: residual, query sums,
   * blocks).
   *
   * @example
   * ```ts
   * layer.cpuBytes() === cpuCache.stats().layers[0].bytes;
   * ```
   */
  cpuBytes(): number {
    const shape = { numLayers: 1, numKvHeads: this.geo.numKvHeads, headDim: this.geo.headDim };
    if (!this.#touched) return 0;
    return mixkvqLayerBytes(shape, this.config, this.length, this.#blocks.map((b) => b.tiers));
  }

  /**
   * Bytes of the GPU buffers this layer owns (worst-case arena included).
   *
   * @example
   * ```ts
   * layer.gpuBytes();
   * ```
   */
  gpuBytes(): number {
    return [this.resid, this.arena, this.desc, this.stats, this.status].reduce((s, b) => s + b.size, 0);
  }

  /**
   * Empties the layer (buffers kept, residual cleared) and clears a bad-input state.
   *
   * @example
   * ```ts
   * layer.reset();
   * ```
   */
  reset(): void {
    this.#blocks = [];
    this.#resCount = 0;
    this.#qsum.fill(0);
    this.#qTokens = 0;
    this.#pending = null;
    this.#touched = false;
    this.#broken = false;
    const enc = this.gpu.device.createCommandEncoder({ label: "mixkvq reset" });
    enc.clearBuffer(this.resid);
    enc.clearBuffer(this.status);
    this.gpu.device.queue.submit([enc.finish()]);
  }

  /**
   * Frees the buffers.
   *
   * @example
   * ```ts
   * layer.destroy();
   * ```
   */
  destroy(): void {
    for (const b of [this.resid, this.arena, this.desc, this.stats, this.status]) b.destroy();
  }
}
