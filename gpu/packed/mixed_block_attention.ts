/**
 * Decode attention over a segmented packed cache whose **body** is one 2/4-bit per-token segment — PM-KVQ's
 * [sink @16 | body @b | window @16], or a static int-b layout — with the body on {@link BlockAttention}
 * (int8 query, 8-bit weights, block schedule; docs/gpu-packed.md §3b) and every other segment on
 * {@link FusedAttention} (its own tuning; 16-bit sink and window keep the exact query). Both write their
 * splits into ONE `part` buffer — the fused splits first, then the blocks — and the block reduce merges them
 * with the new token. Same buffers and result layout as FusedAttention.
 *
 * | split range | written by |
 * | --- | --- |
 * | 0 … F − 1 | FusedAttention partial kernel (the non-body segments' plan, F = plan.total) |
 * | F … F + blocks − 1 | BlockAttention score / value kernels |
 *
 * @example
 * ```ts
 * const img = groupedImage(batchExports); // layout.ts: segments sink, body, window
 * const att = await MixedBlockAttention.create(gpu, { ...configForImage(img, heads), body: 1, maxTokens: 32768 });
 * const d = att.prepare({ qkv, part, out, stores }, {
 *   batch: 8, q: { off: 0, rowStride: 48 * 128 }, newKV: { k: 32 * 128, v: 40 * 128 },
 *   refs: refsForImage(img), counts: img.segments.map((s) => s.counts),
 * });
 * await gpu.submit((pass) => att.encode(pass, d));
 * ```
 * @module
 */
import {
  type AttentionTuning,
  DEFAULT_ATTENTION_TUNING,
  FusedAttention,
  type FusedAttentionConfig,
  type FusedAttentionDispatch,
  type FusedAttentionParams,
} from "./attention.ts";
import { BlockAttention, type BlockAttentionDispatch, type BlockAttentionTuning } from "./block_attention.ts";
import { type BlockKFormat, blockRowsInRegisters, type BlockVFormat } from "./block_attention.wgsl.ts";
import type { PackedGpu } from "./util.ts";
import type { UniformArena } from "./uniform_arena.ts";
import { QuantConfigError, TensorShapeError } from "../../src/errors.ts";

/**
 * The default fused tuning for the non-body segments: DEFAULT_ATTENTION_TUNING with 64-token chunks (wg 64,
 * tpt 1), since those segments are short (PM-KVQ's sink and window: 128 tokens). H100, PM-KVQ 1@16 + body@2 +
 * 127@16 at the Llama-3-8B shape: the fused partial kernel 14.3 µs instead of 17.9, the whole call 152.7 µs
 * instead of 156.0 (body@4: 187.8 instead of 191.2; docs/measurements/h100-block-attention-2026-12-06b.md).
 */
export const SHORT_SEGMENT_TUNING: AttentionTuning = { ...DEFAULT_ATTENTION_TUNING, wg: 64, tpt: 1 };

/** A fused-attention config plus the body segment and the block schedule. */
export interface MixedBlockAttentionOptions extends Omit<FusedAttentionConfig, "tuning"> {
  /** Index of the body segment (2/4/8-bit K and 2/4-bit V of one store, per-token groups). */
  body: number;
  /** Most body tokens per sequence (sizes BlockAttention's scratch). */
  maxTokens: number;
  /** Tuning of the fused kernel for the other segments (default {@link SHORT_SEGMENT_TUNING}). */
  fused?: AttentionTuning;
  /**
   * Schedule of the block kernels (fields not given: defaultBlockTuning of the body's formats, the subgroup
   * defaults where they run; a 4-bit V body keeps the tree reduce: {@link mixedBlockTuning}).
   */
  block?: BlockAttentionTuning;
}

/**
 * The block schedule MixedBlockAttention gives BlockAttention: `given`, except that a body merged with fused
 * splits keeps, unless `given` names the knob, the tree reduce at 4-bit V (`rsub: false`) and at 2-bit V the
 * per-lane weights vec4s and full lane sums (`wshfl: false, vsum1: false`, so uq 8) and 512-token blocks scored one
 * quad per invocation, 8 blocks per score workgroup (`block: 512, tq: 1, nblk: 8`, the nblk only where
 * `rowsInRegisters` says the score kernel keeps its K rows in registers: static int2's 1024-token
 * default made PM-KVQ body@2 slower on the H100, 119.2 → 122.9 µs in one call,
 * docs/measurements/h100-block-attention-2026-12-06n.md, while int2 went 98.6 → 96.0). On the H100, `rsub`
 * made PM-KVQ body@4 slower (163.8 → 166.9 µs in one call, docs/measurements/h100-block-attention-2026-12-06h.md)
 * while it made body@2 (124.3 → 123.3) and static int4 (143.5 → 141.4) faster; `wshfl` + uq 16 + `vsum1` made
 * static int2 faster (105.1 → 103.0 µs) and PM-KVQ body@2 slower (123.5 → 134.5), all of it in the reduce stage
 * (7.4 → 19.6 µs; docs/measurements/h100-block-attention-2026-12-06k.md §5). The reduce is the same WGSL over the
 * same split count in both cases, so the cause is not in the reduce itself; it was not found. The reduce keeps 32
 * dims per workgroup at 2-bit V (`rdims: 32`): the 64 that static int2 takes made body@2 slower (119.7 → 125.4 µs,
 * docs/measurements/h100-block-attention-2026-12-07d.md call 5).
 *
 * @example
 * ```ts
 * mixedBlockTuning("q4", true, {}); // { rsub: false }
 * mixedBlockTuning("q2", true, {}); // { wshfl: false, vsum1: false, block: 512, tq: 1, rdims: 32, nblk: 8 }
 * mixedBlockTuning("q2", false, {}); // {}
 * ```
 */
export function mixedBlockTuning(
  v: BlockVFormat,
  hasOthers: boolean,
  given: BlockAttentionTuning | undefined,
  rowsInRegisters: (t: BlockAttentionTuning) => boolean = () => true,
): BlockAttentionTuning | undefined {
  if (v === "q4" && hasOthers && given?.rsub === undefined) return { ...given, rsub: false };
  if (v === "q2" && hasOthers) {
    const t: BlockAttentionTuning = {
      ...(given?.wshfl === undefined ? { wshfl: false } : {}),
      ...(given?.vsum1 === undefined ? { vsum1: false } : {}),
      ...(given?.block === undefined ? { block: 512 } : {}),
      ...(given?.tq === undefined ? { tq: 1 } : {}),
      // the reduce's 32 dims per workgroup: with the fused splits beside the body's, 64 is slower (H100, PM-KVQ
      // body@2: 125.4 µs against 119.7, h100-block-attention-2026-12-07d.md call 5)
      ...(given?.rdims === undefined ? { rdims: 32 } : {}),
      // the score epilogue of {q2, q2}'s 32-lane default (stx, sepi, sexp2, sbias) was no faster here (PM-KVQ
      // body@2: 119.2 / 120.6 µs against 118.9, h100-block-attention-2026-12-07f.md call 1): off unless given
      ...Object.fromEntries(
        (["stx", "sepi", "sexp2", "sbias"] as const).flatMap((k) =>
          given?.[k] === undefined ? [[k, false]] : []
        ),
      ),
      ...given,
    };
    // nblk 8 only where the score kernel keeps its K rows in registers (else the format's fallback stands)
    let fits = false;
    try {
      fits = rowsInRegisters(t);
    } catch (e) {
      // a schedule the format cannot take: BlockAttention.create names it
      if (!(e instanceof QuantConfigError || e instanceof TensorShapeError)) throw e;
    }
    return given?.nblk === undefined && fits ? { ...t, nblk: 8 } : t;
  }
  return given;
}

/** A prepared call: the fused and block dispatches and the shared split count. */
export interface MixedBlockAttentionDispatch {
  fused: FusedAttentionDispatch | null;
  block: BlockAttentionDispatch;
  /** Splits in `part`: the fused plan's, then the blocks. */
  splits: number;
  /** Fresh uniform buffers to destroy after the submit (empty with an arena). */
  uniforms: GPUBuffer[];
}

const BODY_K = ["q2", "q4", "q8"];
const BODY_V = ["q2", "q4"];

/**
 * FusedAttention for the non-body segments + BlockAttention for the body, one reduce (module doc).
 *
 * @example
 * ```ts
 * const att = await MixedBlockAttention.create(gpu, { ...cfg, body: 1, maxTokens: 4096 });
 * ```
 */
export class MixedBlockAttention {
  readonly options: MixedBlockAttentionOptions;
  readonly fused: FusedAttention | null;
  readonly block: BlockAttention;

  private constructor(
    options: MixedBlockAttentionOptions,
    fused: FusedAttention | null,
    block: BlockAttention,
  ) {
    this.options = options;
    this.fused = fused;
    this.block = block;
  }

  /**
   * Compiles both kernels' pipelines. QuantConfigError when the body segment's formats are not 2/4/8-bit K
   * and 2/4-bit V of one store; the wrapped kernels' errors otherwise.
   *
   * @example
   * ```ts
   * const att = await MixedBlockAttention.create(gpu, { ...cfg, body: 1, maxTokens: 4096 });
   * ```
   */
  static async create(gpu: PackedGpu, o: MixedBlockAttentionOptions): Promise<MixedBlockAttention> {
    const seg = o.segments[o.body];
    if (!seg) {
      throw new TensorShapeError(`mixed block attention: body ${o.body} of ${o.segments.length} segments`);
    }
    const fk = o.stores[seg.k.store]?.[seg.k.tensor], fv = o.stores[seg.v.store]?.[seg.v.tensor];
    if (!fk || !fv || !BODY_K.includes(fk) || !BODY_V.includes(fv) || seg.k.store !== seg.v.store) {
      throw new QuantConfigError(
        `mixed block attention: body segment ${o.body} is ${fk}/${fv} in stores ${seg.k.store}/${seg.v.store}; ` +
          `it needs K ${BODY_K.join("/")} and V ${BODY_V.join("/")} in one store`,
      );
    }
    const others = o.segments.filter((_, i) => i !== o.body);
    const [fused, block] = await Promise.all([
      others.length > 0
        ? FusedAttention.create(gpu, {
          numHeads: o.numHeads,
          numKvHeads: o.numKvHeads,
          headDim: o.headDim,
          maxBatch: o.maxBatch,
          stores: o.stores,
          segments: others,
          tuning: o.fused ?? SHORT_SEGMENT_TUNING,
        })
        : Promise.resolve(null),
      BlockAttention.create(gpu, {
        numHeads: o.numHeads,
        numKvHeads: o.numKvHeads,
        headDim: o.headDim,
        maxBatch: o.maxBatch,
        maxTokens: o.maxTokens,
        k: fk as BlockKFormat,
        v: fv as BlockVFormat,
        tuning: mixedBlockTuning(
          fv as BlockVFormat,
          others.length > 0,
          o.block,
          (tuning) =>
            blockRowsInRegisters({
              numHeads: o.numHeads,
              numKvHeads: o.numKvHeads,
              headDim: o.headDim,
              maxBatch: o.maxBatch,
              k: fk as BlockKFormat,
              v: fv as BlockVFormat,
              tuning,
            }),
        ),
      }),
    ]);
    return new MixedBlockAttention(o, fused, block);
  }

  /**
   * Splits a call with these counts writes into `part` (the fused plan's plus the body's: BlockAttention.splits).
   *
   * @example
   * ```ts
   * gpu.storage("part", 4 * att.partialFloats(8, att.splits(8, counts)));
   * ```
   */
  splits(batch: number, counts: number[][], splits?: FusedAttentionParams["splits"]): number {
    const o = this.options;
    const others = counts.filter((_, i) => i !== o.body).map((c) => c.slice(0, batch));
    const f = this.fused ? this.fused.plan(batch, others, splits).total : 0;
    return f + this.block.splits(counts[o.body].slice(0, batch));
  }

  /**
   * Floats the `part` buffer needs for `batch` sequences and `splits` splits.
   *
   * @example
   * ```ts
   * att.partialFloats(8, 130);
   * ```
   */
  partialFloats(batch: number, splits: number): number {
    return this.block.partialFloats(batch, splits);
  }

  /**
   * Binds both kernels (params as FusedAttention's, over ALL segments of the config).
   *
   * @example
   * ```ts
   * const d = att.prepare({ qkv, part, out, stores }, params);
   * ```
   */
  prepare(
    bufs: { qkv: GPUBuffer; part: GPUBuffer; out: GPUBuffer; stores: GPUBuffer[] },
    params: Omit<FusedAttentionParams, "part">,
    arena?: UniformArena,
  ): MixedBlockAttentionDispatch {
    const o = this.options;
    if (params.refs.length !== o.segments.length || params.counts.length !== o.segments.length) {
      throw new TensorShapeError(
        `mixed block attention: ${o.segments.length} segments, got ${params.refs.length} refs / ${params.counts.length} counts`,
      );
    }
    const total = this.splits(params.batch, params.counts, params.splits);
    const notBody = <T>(_: T, i: number) => i !== o.body;
    const fused = this.fused
      ? this.fused.prepare(bufs, {
        ...params,
        refs: params.refs.filter(notBody),
        counts: params.counts.filter(notBody),
        part: { splits: total },
      }, arena)
      : null;
    const first = fused ? fused.plan.total : 0;
    const body = o.segments[o.body];
    const block = this.block.prepare({ ...bufs, store: bufs.stores[body.k.store] }, {
      batch: params.batch,
      q: params.q,
      newKV: params.newKV,
      ref: params.refs[o.body],
      counts: params.counts[o.body].slice(0, params.batch),
      part: { splits: total, first },
    }, arena);
    return { fused, block, splits: total, uniforms: [...(fused?.uniforms ?? []), ...block.uniforms] };
  }

  /**
   * Records the fused partials, the block kernels and the block reduce over all splits.
   *
   * @example
   * ```ts
   * att.encode(pass, d);
   * ```
   */
  encode(pass: GPUComputePassEncoder, d: MixedBlockAttentionDispatch): void {
    if (this.fused && d.fused) this.fused.encodePartial(pass, d.fused);
    this.block.encode(pass, d.block);
  }

  /**
   * Frees the block kernels' scratch.
   *
   * @example
   * ```ts
   * att.destroy();
   * ```
   */
  destroy(): void {
    this.block.destroy();
  }
}
