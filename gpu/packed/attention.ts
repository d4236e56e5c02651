/**
 * Fused decode attention over packed caches (WGSL, algorithm and buffer tables in attention.wgsl.ts):
 * a partial kernel (one workgroup per split × KV head × sequence) and a reduce kernel (one per query head ×
 * sequence). {@link FusedAttention.prepare} turns store layouts, per-sequence segment token counts and a
 * split plan into the two kernels' bind groups.
 *
 * Buffers of {@link FusedAttention.prepare}:
 * | name | type | shape |
 * | --- | --- | --- |
 * | qkv | f32 storage | query head h of sequence b at `q.off + b·q.rowStride + h·D`; new K/V head g at `newKV.k|v + b·q.rowStride + g·D` |
 * | part | f32 storage | ≥ {@link FusedAttention.partialFloats} floats: acc [B, nH, S, D] then (max, Σp) [B, nH, S, 2] |
 * | out | f32 storage | [B, nH, D] |
 * | stores[i] | u32 storage | store i of the config (layout.ts) |
 *
 * @example
 * ```ts
 * const img = groupedImage(batchExports);                    // layout.ts
 * const att = await FusedAttention.create(gpu, configForImage(img, { numHeads: 32, numKvHeads: 8, headDim: 128 }));
 * const d = att.prepare({ qkv, part, out, stores }, {
 *   batch: 8, q: { off: 0, rowStride: 48 * 128 }, newKV: { k: 32 * 128, v: 40 * 128 },
 *   refs: refsForImage(img), counts: img.segments.map((s) => s.counts),
 * });
 * await gpu.submit((pass) => att.encode(pass, d));
 * ```
 * @module
 */
import {
  attentionPartialWgsl,
  attentionPaths,
  attentionReduceWgsl,
  attentionSharedBytes,
  type AttentionTuning,
  DEFAULT_ATTENTION_TUNING,
  type FusedAttentionConfig,
} from "./attention.wgsl.ts";
import { f32u, type PackedGpu, packUniform, type Pipeline } from "./util.ts";
import { bindUniform, type UniformArena, type UniformBinding } from "./uniform_arena.ts";
import type { PackedCacheImage, TensorLayout } from "./layout.ts";
import { GpuError, TensorShapeError } from "../../src/errors.ts";

export type { AttentionTuning, FusedAttentionConfig } from "./attention.wgsl.ts";
export { DEFAULT_ATTENTION_TUNING, INT8_QUERY_ATTENTION_TUNING, integerKFormat } from "./attention.wgsl.ts";

/** Where segment s reads K and V at run time. */
export interface SegmentRefs {
  k: { t: TensorLayout; tok0: number };
  v: { t: TensorLayout; tok0: number };
}

/** Runtime parameters of one decode attention call. */
export interface FusedAttentionParams {
  batch: number;
  /** f32 offset of sequence 0's query head 0, and the per-sequence stride (also of newKV). */
  q: { off: number; rowStride: number };
  /** The new token's exact K/V (f32 offsets of head 0 of sequence 0), or null to attend to the cache only. */
  newKV: { k: number; v: number } | null;
  /** Per segment: tensor layouts and token offsets. */
  refs: SegmentRefs[];
  /** counts[s][b]: tokens of segment s in sequence b. */
  counts: number[][];
  /** Split plan: target splits per (sequence, KV head) (default: ≈ 1024 workgroups in all), or a fixed split length. */
  splits?: { target?: number; splitLen?: number };
  /**
   * Share `part` with other kernels: it holds `splits` ≥ plan.total splits per (sequence, head); this call's
   * splits are 0 … plan.total − 1 (default: exactly the plan's).
   */
  part?: { splits: number };
}

/** Splits of each segment. */
export interface SplitPlan {
  splitLen: number;
  first: number[];
  count: number[];
  total: number;
}

/** A prepared call: two bind groups, their dynamic uniform offsets and the fresh uniforms (none with an arena). */
export interface FusedAttentionDispatch {
  partial: UniformBinding;
  reduce: UniformBinding;
  /** Fresh uniform buffers to destroy after the submit (empty when prepared with an arena). */
  uniforms: GPUBuffer[];
  plan: SplitPlan;
  batch: number;
}

/**
 * The compile-time config of an image (layout.ts `groupedImage` / `kiviImage`).
 *
 * @example
 * ```ts
 * const cfg = configForImage(img, { numHeads: 8, numKvHeads: 2, headDim: 128 }, { wg: 128, tpt: 2 });
 * ```
 */
export function configForImage(
  img: PackedCacheImage,
  heads: { numHeads: number; numKvHeads: number; headDim: number; maxBatch?: number },
  tuning: AttentionTuning = DEFAULT_ATTENTION_TUNING,
): FusedAttentionConfig {
  return {
    numHeads: heads.numHeads,
    numKvHeads: heads.numKvHeads,
    headDim: heads.headDim,
    maxBatch: heads.maxBatch ?? img.stores[0]?.layout.batch ?? 1,
    stores: img.stores.map((s) => ({
      k: s.layout.k?.format ?? null,
      v: s.layout.v?.format ?? null,
      channelGroup: s.layout.k?.format.startsWith("kc") ? s.layout.k.groupSize : undefined,
    })),
    segments: img.segments.map((s) => ({
      k: { store: s.k.store, tensor: s.k.tensor },
      v: { store: s.v.store, tensor: s.v.tensor },
    })),
    tuning,
  };
}

/**
 * The runtime segment references of an image.
 *
 * @example
 * ```ts
 * const refs = refsForImage(img);
 * ```
 */
export function refsForImage(img: PackedCacheImage): SegmentRefs[] {
  const t = (r: { store: number; tensor: "k" | "v"; tok0: number }) => {
    const L = img.stores[r.store].layout[r.tensor];
    if (!L) throw new TensorShapeError(`store ${img.stores[r.store].name} has no ${r.tensor} tensor`);
    return { t: L, tok0: r.tok0 };
  };
  return img.segments.map((s) => ({ k: t(s.k), v: t(s.v) }));
}

/**
 * Split plan: one split length for all segments (a multiple of the chunk), each segment cut into
 * ⌈max_b count / splitLen⌉ splits; `first` are the global split indices.
 *
 * @example
 * ```ts
 * import { planSplits } from "./attention.ts";
 * planSplits([[1], [32640], [127]], 16, 256); // { splitLen: 2048, first: [0, 1, 17], count: [1, 16, 1], total: 18 }
 * ```
 */
export function planSplits(counts: number[][], target: number, chunk: number, splitLen?: number): SplitPlan {
  const maxes = counts.map((c) => Math.max(0, ...c));
  const total = maxes.reduce((a, b) => a + b, 0);
  const len = splitLen ?? Math.max(chunk, Math.ceil(Math.ceil(total / Math.max(1, target)) / chunk) * chunk);
  const first: number[] = [], count: number[] = [];
  let at = 0;
  for (const m of maxes) {
    first.push(at);
    const n = Math.ceil(m / len);
    count.push(n);
    at += n;
  }
  return { splitLen: len, first, count, total: at };
}

/**
 * The two compiled kernels of one config.
 *
 * @example
 * ```ts
 * const att = await FusedAttention.create(gpu, configForImage(img, { numHeads: 32, numKvHeads: 8, headDim: 128 }));
 * ```
 */
export class FusedAttention {
  readonly config: FusedAttentionConfig;
  readonly gpu: PackedGpu;
  /** The partial kernel, or with `tuning.perPath` one per segment code path (all share one bind group). */
  readonly #partials: Pipeline[];
  readonly #reduce: Pipeline;

  private constructor(gpu: PackedGpu, config: FusedAttentionConfig, partials: Pipeline[], reduce: Pipeline) {
    this.gpu = gpu;
    this.config = config;
    this.#partials = partials;
    this.#reduce = reduce;
  }

  /**
   * Compiles (or reuses) both pipelines. GpuError when the workgroup memory or the storage-buffer count
   * exceeds the device limit. `tuning.wordView` is dropped (same arithmetic) on a device with fewer than
   * 2 + 2·stores storage buffers per stage; {@link FusedAttention.config} holds the tuning in use.
   *
   * @example
   * ```ts
   * const att = await FusedAttention.create(gpu, cfg);
   * ```
   */
  static async create(gpu: PackedGpu, config: FusedAttentionConfig): Promise<FusedAttention> {
    const shared = attentionSharedBytes(config);
    const lim = gpu.ctx.limits.maxComputeWorkgroupStorageSize;
    if (shared > lim) {
      throw new GpuError(
        `fused attention needs ${shared} bytes of workgroup memory; ${gpu.ctx.description} allows ${lim}`,
      );
    }
    // Deno's GPU type lacks the (standard) wgslLanguageFeatures set
    const lf = (navigator.gpu as GPU & { wgslLanguageFeatures?: ReadonlySet<string> }).wgslLanguageFeatures;
    if ((config.tuning.kdot || config.tuning.vdot) && !lf?.has("packed_4x8_integer_dot_product")) {
      throw new GpuError(
        `fused attention tunings kdot / vdot need the WGSL language feature packed_4x8_integer_dot_product, which this ` +
          `runtime lacks (it has: ${[...(lf ?? [])].join(", ") || "none"})`,
      );
    }
    config = fitStorageBuffers(
      config,
      gpu.device.limits.maxStorageBuffersPerShaderStage,
      gpu.ctx.description,
    );
    const tag = `${
      config.stores.map((s) => `${s.k ?? "-"}/${s.v ?? "-"}`).join(",")
    } wg${config.tuning.wg} tpt${config.tuning.tpt} kch${config.tuning.kch ?? 1}${
      config.tuning.kdot ? " kdot" : ""
    }${config.tuning.vdot ? " vdot" : ""}`;
    const paths = config.tuning.perPath ? attentionPaths(config) : 1;
    const codes = paths > 1
      ? [...Array(paths).keys()].map((i) => attentionPartialWgsl(config, i))
      : [attentionPartialWgsl(config)];
    const [reduce, ...partials] = await Promise.all([
      gpu.pipeline("attention reduce", attentionReduceWgsl(config), { dynamicUniform: true }),
      ...codes.map((code, i) =>
        gpu.pipeline(`attention partial ${tag}${paths > 1 ? ` path ${i}` : ""}`, code, {
          dynamicUniform: true,
        })
      ),
    ]);
    return new FusedAttention(gpu, config, partials, reduce);
  }

  /**
   * Tokens per chunk of the partial kernel.
   *
   * @example
   * ```ts
   * att.chunk; // 256 with the default tuning (wg 128 × tpt 2 × kch 1)
   * ```
   */
  get chunk(): number {
    return this.config.tuning.wg * this.config.tuning.tpt * (this.config.tuning.kch ?? 1);
  }

  /**
   * Floats the `part` buffer needs for `batch` sequences and `totalSplits` splits.
   *
   * @example
   * ```ts
   * gpu.storage("part", 4 * att.partialFloats(8, 64));
   * ```
   */
  partialFloats(batch: number, totalSplits: number): number {
    return batch * this.config.numHeads * Math.max(1, totalSplits) * (this.config.headDim + 2);
  }

  /**
   * The split plan `prepare` would use.
   *
   * @example
   * ```ts
   * const plan = att.plan(8, counts);
   * ```
   */
  plan(batch: number, counts: number[][], splits?: { target?: number; splitLen?: number }): SplitPlan {
    const target = splits?.target ?? Math.max(1, Math.ceil(1024 / (batch * this.config.numKvHeads)));
    return planSplits(counts, target, this.chunk, splits?.splitLen);
  }

  /**
   * Binds buffers and writes the uniforms of `params`: staged in `arena` (cached bind groups, nothing
   * created; the arena's owner flushes before the submit) or, without one, into fresh uniform buffers
   * (`d.uniforms`, to destroy after the submit).
   *
   * @example
   * ```ts
   * const d = att.prepare({ qkv, part, out, stores }, params);
   * ```
   */
  prepare(
    bufs: { qkv: GPUBuffer; part: GPUBuffer; out: GPUBuffer; stores: GPUBuffer[] },
    params: FusedAttentionParams,
    arena?: UniformArena,
  ): FusedAttentionDispatch {
    const c = this.config;
    const nSeg = c.segments.length;
    if (params.batch > c.maxBatch) {
      throw new TensorShapeError(`fused attention: batch ${params.batch} > maxBatch ${c.maxBatch}`);
    }
    if (params.refs.length !== nSeg || params.counts.length !== nSeg) {
      throw new TensorShapeError(
        `fused attention: ${nSeg} segments, got ${params.refs.length} refs / ${params.counts.length} counts`,
      );
    }
    if (bufs.stores.length !== c.stores.length) {
      throw new TensorShapeError(
        `fused attention: ${c.stores.length} stores, got ${bufs.stores.length} buffers`,
      );
    }
    params.refs.forEach((r, s) => {
      const seg = c.segments[s];
      const fk = c.stores[seg.k.store][seg.k.tensor], fv = c.stores[seg.v.store][seg.v.tensor];
      if (r.k.t.format !== fk || r.v.t.format !== fv) {
        throw new TensorShapeError(
          `fused attention segment ${s}: refs are ${r.k.t.format}/${r.v.t.format}, config ${fk}/${fv}`,
        );
      }
      for (let b = 0; b < params.batch; b++) {
        const n = params.counts[s][b] ?? 0;
        if (r.k.tok0 + n > r.k.t.cap || r.v.tok0 + n > r.v.t.cap) {
          throw new TensorShapeError(
            `fused attention segment ${s}, sequence ${b}: ${n} tokens exceed a capacity`,
          );
        }
      }
    });
    const plan = this.plan(params.batch, params.counts.map((cs) => cs.slice(0, params.batch)), params.splits);
    const S = params.part?.splits ?? plan.total;
    if (!(Number.isInteger(S) && S >= plan.total)) {
      throw new TensorShapeError(`fused attention: part splits ${S} < the plan's ${plan.total}`);
    }
    const D = c.headDim, nH = c.numHeads;
    const statsOff = params.batch * nH * S * D;
    if (bufs.part.size < 4 * this.partialFloats(params.batch, S)) {
      throw new TensorShapeError(
        `fused attention: part buffer has ${bufs.part.size} bytes, needs ${
          4 * this.partialFloats(params.batch, S)
        }`,
      );
    }
    const scale = 1 / Math.sqrt(D);
    const cnt: number[] = new Array(Math.max(1, Math.ceil((c.maxBatch * nSeg) / 4)) * 4).fill(0);
    for (let b = 0; b < params.batch; b++) {
      for (let s = 0; s < nSeg; s++) cnt[b * nSeg + s] = params.counts[s][b] ?? 0;
    }
    const pu = packUniform([
      params.q.off,
      params.q.rowStride,
      S,
      statsOff,
      f32u(scale),
      0,
      0,
      0,
      ...plan.first.flatMap((f, s) => [f, plan.count[s], plan.splitLen, 0]),
      ...params.refs.flatMap((r) => [r.k.t.codesOff, r.k.t.szOff, r.k.t.cap, r.k.tok0]),
      ...params.refs.flatMap((r) => [r.v.t.codesOff, r.v.t.szOff, r.v.t.cap, r.v.tok0]),
      ...cnt,
    ]);
    const ru = reduceUniform(params, S, statsOff, scale);
    const partial = bindUniform(
      this.gpu,
      this.#partials[0],
      "attention partial",
      pu,
      [bufs.qkv, bufs.part, ...bufs.stores, ...(c.tuning.wordView ? bufs.stores : [])],
      arena,
    );
    const reduce = bindUniform(this.gpu, this.#reduce, "attention reduce", ru, [
      bufs.qkv,
      bufs.part,
      bufs.out,
    ], arena);
    const uniforms = [partial.uniform, reduce.uniform].filter((u): u is GPUBuffer => u !== null);
    return { partial, reduce, uniforms, plan, batch: params.batch };
  }

  /**
   * Records the partial kernel only (for timing the KV stream alone).
   *
   * @example
   * ```ts
   * att.encodePartial(pass, d);
   * ```
   */
  encodePartial(pass: GPUComputePassEncoder, d: FusedAttentionDispatch): void {
    if (d.plan.total === 0) return;
    for (const p of this.#partials) {
      pass.setPipeline(p.pipeline);
      pass.setBindGroup(0, d.partial.bindGroup, d.partial.offsets);
      pass.dispatchWorkgroups(d.plan.total, this.config.numKvHeads, d.batch);
    }
  }

  /**
   * Records both kernels (partial, then reduce).
   *
   * @example
   * ```ts
   * att.encode(pass, d);
   * ```
   */
  encode(pass: GPUComputePassEncoder, d: FusedAttentionDispatch): void {
    this.encodePartial(pass, d);
    pass.setPipeline(this.#reduce.pipeline);
    pass.setBindGroup(0, d.reduce.bindGroup, d.reduce.offsets);
    pass.dispatchWorkgroups(this.config.numHeads, d.batch);
  }
}

/**
 * The reduce kernels' uniform (attention.wgsl.ts `attentionReduceWgsl`, block_attention.wgsl.ts
 * `blockReduceWgsl`): `io = (qOff, rowStride, splits, statsOff)`, `nw = (kOff, vOff, hasNew, 0)`, `sc.x = scale`.
 *
 * @example
 * ```ts
 * reduceUniform({ q: { off: 0, rowStride: 6144 }, newKV: null }, 64, 1 << 20, 1 / Math.sqrt(128));
 * ```
 */
export function reduceUniform(
  params: { q: { off: number; rowStride: number }; newKV: { k: number; v: number } | null },
  splits: number,
  statsOff: number,
  scale: number,
): Uint32Array<ArrayBuffer> {
  return packUniform([
    params.q.off,
    params.q.rowStride,
    splits,
    statsOff,
    params.newKV?.k ?? 0,
    params.newKV?.v ?? 0,
    params.newKV ? 1 : 0,
    0,
    f32u(scale),
    0,
    0,
    0,
  ]);
}

/**
 * `config` as it can run with `maxStorage` storage buffers per shader stage: `tuning.wordView` (every store
 * bound twice, same arithmetic) is dropped when 2 + 2·stores do not fit; GpuError naming the count when even
 * 2 + stores do not.
 *
 * @example
 * ```ts
 * fitStorageBuffers(kiviConfig, 8, "adapter").tuning.wordView; // false: 4 stores need 10 with the word view
 * ```
 */
export function fitStorageBuffers(
  config: FusedAttentionConfig,
  maxStorage: number,
  device: string,
): FusedAttentionConfig {
  const n = config.stores.length;
  if (2 + n > maxStorage) {
    throw new GpuError(
      `fused attention needs ${
        2 + n
      } storage buffers per stage (${n} stores); ${device} allows ${maxStorage}`,
    );
  }
  if (config.tuning.wordView && 2 + 2 * n > maxStorage) {
    return { ...config, tuning: { ...config.tuning, wordView: false } };
  }
  return config;
}

/**
 * Splits per KV head the engine's packed caches aim for in one decode attention (≈ 1,024 workgroups in all).
 *
 * @example
 * ```ts
 * decodeSplitTarget(8); // 128
 * ```
 */
export function decodeSplitTarget(numKvHeads: number): number {
  return Math.max(1, Math.ceil(1024 / numKvHeads));
}
