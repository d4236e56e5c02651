/**
 * Block-integer decode attention over one per-token packed segment (2/4/8-bit K, 2/4-bit V): the query,
 * score and value kernels of block_attention.wgsl.ts, then the fused attention's reduce kernel. Same buffers
 * and result layout as {@link FusedAttention} (`part`, `out`), same numerics as its `kdot` + `vdot` tuning
 * (int8 query, 8-bit weights; docs/gpu-packed.md §2b, §2c), a different schedule: the cache is cut into
 * blocks of BT tokens, each scored by one workgroup and accumulated by another, with no state carried from
 * block to block.
 *
 * Buffers of {@link BlockAttention.prepare}:
 * | name | type | shape |
 * | --- | --- | --- |
 * | qkv | f32 storage | query head h of sequence b at `q.off + b·q.rowStride + h·D`; new K/V head g at `newKV.k|v + b·q.rowStride + g·D` |
 * | part | f32 storage | ≥ {@link BlockAttention.partialFloats} floats: acc [B, nH, S, D] then (max, Σp) [B, nH, S, 2], S = splits ({@link BlockAttention.splits}: the blocks, or ⌈blocks / QL⌉ with `vjoin`) |
 * | out | f32 storage | [B, nH, D] |
 * | store | u32 storage | the store holding the segment's K and V (layout.ts) |
 *
 * Scratch it owns (allocated once by {@link BlockAttention.create}, sized by `maxBatch` and `maxTokens`):
 * | buffer | shape |
 * | --- | --- |
 * | qrec | [maxBatch, nKv, REC] vec4<u32> — the int8 query records (none with `qsub`: the score kernel computes them) |
 * | wq | [maxBatch, nKv, S_max·BT/4, NV] vec4<u32> — 8-bit weights, a quad of tokens per u32 per head |
 * | bst | [maxBatch, nKv, S_max, 3·NV + 1] vec4<f32> — per block: Σp·z_V, max, Σp per head, then S_max/255 |
 *
 * @example
 * ```ts
 * const att = await BlockAttention.create(gpu, {
 *   numHeads: 32, numKvHeads: 8, headDim: 128, maxBatch: 8, maxTokens: 32768, k: "q4", v: "q4",
 * });
 * const d = att.prepare({ qkv, part, out, store }, {
 *   batch: 8, q: { off: 0, rowStride: 48 * 128 }, newKV: { k: 32 * 128, v: 40 * 128 },
 *   ref: { k: { t: layout.k!, tok0: 0 }, v: { t: layout.v!, tok0: 0 } }, counts: new Array(8).fill(32768),
 * });
 * await gpu.submit((pass) => att.encode(pass, d));
 * ```
 * @module
 */
import {
  type BlockAttentionConfig,
  type BlockAttentionTuning,
  blockQueryRecord,
  blockQueryWgsl,
  blockReduceDims,
  blockReduceWgsl,
  blockRowsInRegisters,
  blockScoreBlocks,
  blockScoreWgsl,
  blockSharedBytes,
  blockSplitBlocks,
  blockTokens,
  blockValueWgsl,
  defaultBlockTuning,
  subgroupBlockTuning,
} from "./block_attention.wgsl.ts";
import { firstRowWrites, valueStepQuads } from "./block_schedule.ts";
import { reduceUniform, type SegmentRefs } from "./attention.ts";
import { subgroupLanes } from "./subgroups.ts";
import { f32u, type PackedGpu, packUniform, type Pipeline } from "./util.ts";
import { bindUniform, type UniformArena, type UniformBinding } from "./uniform_arena.ts";
import { GpuError, TensorShapeError } from "../../src/errors.ts";

export type { BlockAttentionConfig, BlockAttentionTuning } from "./block_attention.wgsl.ts";
export { DEFAULT_BLOCK_TUNING, defaultBlockTuning, subgroupBlockTuning } from "./block_attention.wgsl.ts";

/** Compile-time shape plus the scratch capacity. */
export interface BlockAttentionOptions extends BlockAttentionConfig {
  /** Most cached tokens per sequence a call may attend to (sizes the scratch). */
  maxTokens: number;
}

/** Runtime parameters of one call. */
export interface BlockAttentionParams {
  batch: number;
  /** f32 offset of sequence 0's query head 0, and the per-sequence stride (also of newKV). */
  q: { off: number; rowStride: number };
  /** The new token's exact K/V (f32 offsets of head 0 of sequence 0), or null. */
  newKV: { k: number; v: number } | null;
  /** The segment's K and V tensors and token offsets. */
  ref: SegmentRefs;
  /** Tokens of the segment per sequence. */
  counts: number[];
  /**
   * Share `part` with other kernels: it holds `splits` splits per (sequence, head) and this call's split x
   * ({@link BlockAttention.splits}: block x, or blocks x·QL … with `vjoin`) is split `first + x` (default: just
   * this call's splits, first 0). The reduce then merges all `splits`.
   */
  part?: { splits: number; first: number };
}

/** A prepared call. */
export interface BlockAttentionDispatch {
  /** null with `qsub`. */
  query: UniformBinding | null;
  score: UniformBinding;
  value: UniformBinding;
  reduce: UniformBinding;
  /** Fresh uniform buffers to destroy after the submit (empty with an arena). */
  uniforms: GPUBuffer[];
  /** Blocks of the score kernel. */
  blocks: number;
  /** Splits the value kernel writes (= blocks, or ⌈blocks / QL⌉ with `vjoin`). */
  splits: number;
  batch: number;
}

interface Pipes {
  /** null with `qsub` (the score kernel computes the query). */
  query: Pipeline | null;
  score: Pipeline;
  value: Pipeline;
  reduce: Pipeline;
}
interface Scratch {
  /** null with `qsub`. */
  qrec: GPUBuffer | null;
  wq: GPUBuffer;
  bst: GPUBuffer;
}

/**
 * The tuning BlockAttention.create runs on a device whose subgroups pass the lane probe (`size` lanes): the given
 * fields over {@link subgroupBlockTuning}`(k, v, size)`, less the subgroup defaults the shape or the given
 * fields cannot take — `nblk` where the K rows do not stay in registers, `wshfl` (with its uq 16) without
 * `vshuf`, with `pipe` or more than 4 query heads per KV head, `vsum1` with more than D/4 query heads per KV
 * head, uq 16 where a value step would not divide the block's quads, `rdims` where it does not divide head_dim,
 * `sbar2` without `sred`, `vst4` where the first row of value lanes cannot write the split alone (no `vsum1`,
 * one row, `vcoal`, `vjoin` or `vpair`), `stx` without `sred` and `sbar2`, with `sbar1` or more than 4 query
 * heads per KV head. A field given explicitly is never dropped (an impossible one is the
 * kernels' typed error).
 *
 * @example
 * ```ts
 * subgroupTuningFor({ numHeads: 32, numKvHeads: 8, headDim: 128, maxBatch: 8, k: "q2", v: "q2" }, 32).block; // 1024
 * ```
 */
export function subgroupTuningFor(config: BlockAttentionConfig, size?: number): BlockAttentionTuning {
  const given = config.tuning ?? {}, D = config.headDim;
  const sg = subgroupBlockTuning(config.k, config.v, size);
  // the schedule as the fields stand now (format defaults, the subgroup defaults kept so far, the given fields)
  const now = () => ({ ...defaultBlockTuning(config.k, config.v), ...sg, ...given });
  // its nblk only where the K rows stay in registers (elsewhere the format's fallback to 1 stands) — judged
  // from the fields that place them: the others may be valid only beside a subgroup default (wshfl needs vshuf)
  const rows = Object.fromEntries(
    (["block", "tq", "tseq", "kstep"] as const).flatMap((k) => given[k] === undefined ? [] : [[k, given[k]]]),
  );
  if (given.nblk === undefined && !blockRowsInRegisters({ ...config, tuning: rows })) delete sg.nblk;
  // its wshfl (with uq 16) only where the shape and the given fields let it run, vsum1 only where the first
  // subgroup's lanes cover the heads' statistics
  const hpk = config.numHeads / config.numKvHeads, merged = now();
  if (sg.wshfl && (given.wshfl === false || !(merged.vshuf && !merged.pipe && hpk <= 4))) {
    delete sg.wshfl;
    delete sg.uq;
  }
  if (sg.vsum1 && given.vsum1 === undefined && hpk > D / 4) delete sg.vsum1;
  // its uq 16 only where a value step divides the block's quads (short heads give many rows of value lanes: at
  // D 32, 8 rows × 16 quads exceed a 256-token block's 64)
  if (sg.uq && given.uq === undefined && (now().block / 4) % valueStepQuads(now(), D) !== 0) delete sg.uq;
  // its rdims only where it divides head_dim (else the reduce's own fallback), sbar2 only beside sred, vst4
  // only where the first row writes the split (the kernels' own checks, on the fields as they end up)
  if (sg.rdims && given.rdims === undefined && D % sg.rdims !== 0) delete sg.rdims;
  if (sg.sbar2 && given.sbar2 === undefined && !now().sred) delete sg.sbar2;
  if (sg.vst4 && given.vst4 === undefined && !firstRowWrites(now(), D)) delete sg.vst4;
  // its stx only beside sred and sbar2, without sbar1, at ≤ 4 query heads per KV head
  if (sg.stx && given.stx === undefined) {
    const t = now();
    if (!(t.sred && t.sbar2 && !t.sbar1 && hpk <= 4)) delete sg.stx;
  }
  return { ...sg, ...given };
}

/**
 * The four pipelines and the scratch of one config.
 *
 * @example
 * ```ts
 * const att = await BlockAttention.create(gpu, { numHeads: 8, numKvHeads: 2, headDim: 64, maxBatch: 2,
 *   maxTokens: 4096, k: "q2", v: "q2" });
 * ```
 */
export class BlockAttention {
  readonly config: BlockAttentionOptions;
  readonly gpu: PackedGpu;
  readonly #pipes: Pipes;
  readonly #scratch: Scratch;

  private constructor(gpu: PackedGpu, config: BlockAttentionOptions, pipes: Pipes, scratch: Scratch) {
    this.gpu = gpu;
    this.config = config;
    this.#pipes = pipes;
    this.#scratch = scratch;
  }

  /**
   * Compiles (or reuses) the pipelines and allocates the scratch. Where the device's subgroups pass
   * {@link subgroupLanes}, the tuning's missing fields come from `subgroupBlockTuning(k, v, size)` first (its
   * `nblk` only where the K rows stay in registers, its `wshfl` + uq 16 only where the shape and the given fields
   * can take them, its `vsum1` only with ≤ D/4 heads per KV head; the merged tuning is `config.tuning`). GpuError
   * without the WGSL language feature `packed_4x8_integer_dot_product`, when workgroup memory exceeds the device
   * limit, or for a `vshuf` / `sred` / `qsub` / `rsub` / `wshfl` given where subgroups cannot run them;
   * QuantConfigError / TensorShapeError for
   * an unsupported shape or format.
   *
   * @example
   * ```ts
   * const att = await BlockAttention.create(gpu, opts);
   * ```
   */
  static async create(gpu: PackedGpu, config: BlockAttentionOptions): Promise<BlockAttention> {
    if (!(Number.isInteger(config.maxTokens) && config.maxTokens > 0)) {
      throw new TensorShapeError(`block attention: maxTokens ${config.maxTokens} must be a positive integer`);
    }
    if (!(Number.isInteger(config.maxBatch) && config.maxBatch > 0)) {
      throw new TensorShapeError(`block attention: maxBatch ${config.maxBatch} must be a positive integer`);
    }
    const lf = (navigator.gpu as GPU & { wgslLanguageFeatures?: ReadonlySet<string> }).wgslLanguageFeatures;
    if (!lf?.has("packed_4x8_integer_dot_product")) {
      throw new GpuError(
        `block attention needs the WGSL language feature packed_4x8_integer_dot_product, which this runtime ` +
          `lacks (it has: ${[...(lf ?? [])].join(", ") || "none"})`,
      );
    }
    // where the subgroup knobs can run (feature granted, lane mapping probed once per device), their defaults
    // for the formats apply under the given fields; a knob given explicitly where they cannot is a GpuError
    const given = config.tuning ?? {};
    const lanes = await subgroupLanes(gpu);
    const explicit = (["vshuf", "sred", "qsub", "rsub", "wshfl", "vpair"] as const).find((k) => given[k]);
    if (explicit && !lanes.ok) {
      throw new GpuError(`block attention: ${explicit} cannot run: ${lanes.reason}`);
    }
    if (lanes.ok) config = { ...config, tuning: subgroupTuningFor(config, lanes.size) };
    const shared = blockSharedBytes(config);
    const lim = gpu.ctx.limits.maxComputeWorkgroupStorageSize;
    const most = Math.max(shared.query, shared.score, shared.value);
    if (most > lim) {
      throw new GpuError(
        `block attention needs ${most} bytes of workgroup memory; ${gpu.ctx.description} allows ${lim}`,
      );
    }
    const tag = `${config.k}/${config.v} D${config.headDim} ${config.numHeads}/${config.numKvHeads}`;
    // with qsub the score kernel computes the int8 query itself: no query pipeline, no records
    const qsub = config.tuning?.qsub === true;
    const [query, score, value, reduce] = await Promise.all([
      qsub
        ? null
        : gpu.pipeline(`block attention query ${tag}`, blockQueryWgsl(config), { dynamicUniform: true }),
      gpu.pipeline(`block attention score ${tag}`, blockScoreWgsl(config), { dynamicUniform: true }),
      gpu.pipeline(`block attention value ${tag}`, blockValueWgsl(config), { dynamicUniform: true }),
      gpu.pipeline(`block attention reduce ${tag}`, blockReduceWgsl(config), { dynamicUniform: true }),
    ]);
    const { maxBatch: B, numKvHeads: nKv } = config;
    const BT = blockTokens(config);
    const NV = Math.ceil(config.numHeads / nKv / 4);
    const S = Math.ceil(config.maxTokens / BT);
    const scratch = {
      qrec: qsub ? null : gpu.storage("block attention qrec", 16 * B * nKv * blockQueryRecord(config)),
      wq: gpu.storage("block attention weights", 16 * B * nKv * S * (BT / 4) * NV),
      bst: gpu.storage("block attention block stats", 16 * B * nKv * S * (3 * NV + 1)),
    };
    return new BlockAttention(gpu, config, { query, score, value, reduce }, scratch);
  }

  /**
   * The int8 query records the last call's query kernel wrote ([maxBatch, nKv, REC] vec4<u32>, layout in
   * block_attention.wgsl.ts) — for tests and debugging; do not write to it. GpuError with `qsub` (no query
   * kernel, no records).
   *
   * @example
   * ```ts
   * const words = new Uint32Array(await gpu.read(att.queryRecords, 0, att.queryRecords.size));
   * ```
   */
  get queryRecords(): GPUBuffer {
    if (!this.#scratch.qrec) {
      throw new GpuError(
        "block attention: qsub computes the query in the score kernel; there are no records",
      );
    }
    return this.#scratch.qrec;
  }

  /**
   * Tokens per block of the score kernel (= split, except with `vjoin`: QL blocks per split).
   *
   * @example
   * ```ts
   * att.block; // 512 for {q2, q2} and {q4, q4} by default (1024 for {q2, q2} where subgroups have 32 lanes), else 256
   * ```
   */
  get block(): number {
    return blockTokens(this.config);
  }

  /**
   * Blocks of a call with these per-sequence token counts.
   *
   * @example
   * ```ts
   * att.blocks([4096, 100]); // 16 at block 256
   * ```
   */
  blocks(counts: readonly number[]): number {
    return Math.ceil(Math.max(0, ...counts) / this.block);
  }

  /**
   * Splits a call with these per-sequence token counts writes into `part`: its blocks, or ⌈blocks / QL⌉ with
   * `vjoin` (QL = wgv/(D/4) blocks per split, one per row of value lanes).
   *
   * @example
   * ```ts
   * att.splits([32768]); // 32 at block 1024; 32 at block 512 with vjoin and wgv 64
   * ```
   */
  splits(counts: readonly number[]): number {
    return Math.ceil(this.blocks(counts) / blockSplitBlocks(this.config));
  }

  /**
   * Floats the `part` buffer needs for `batch` sequences and `splits` splits (as FusedAttention's).
   *
   * @example
   * ```ts
   * gpu.storage("part", 4 * att.partialFloats(8, att.splits(counts)));
   * ```
   */
  partialFloats(batch: number, splits: number): number {
    return batch * this.config.numHeads * Math.max(1, splits) * (this.config.headDim + 2);
  }

  /**
   * Binds buffers and writes the uniforms (through `arena` when given, else fresh uniform buffers listed in
   * `d.uniforms`). TensorShapeError for formats that differ from the config, counts beyond a capacity or
   * `maxTokens`, or a `part` buffer too small.
   *
   * @example
   * ```ts
   * const d = att.prepare({ qkv, part, out, store }, params);
   * ```
   */
  prepare(
    bufs: { qkv: GPUBuffer; part: GPUBuffer; out: GPUBuffer; store: GPUBuffer },
    params: BlockAttentionParams,
    arena?: UniformArena,
  ): BlockAttentionDispatch {
    const c = this.config;
    const { batch, ref } = params;
    if (!(Number.isInteger(batch) && batch >= 1 && batch <= c.maxBatch)) {
      throw new TensorShapeError(`block attention: batch ${batch} not in 1..${c.maxBatch}`);
    }
    if (ref.k.t.format !== c.k || ref.v.t.format !== c.v) {
      throw new TensorShapeError(
        `block attention: refs are ${ref.k.t.format}/${ref.v.t.format}, config ${c.k}/${c.v}`,
      );
    }
    if (ref.k.t.groupsPerRow !== 1 || ref.v.t.groupsPerRow !== 1) {
      throw new TensorShapeError("block attention: K and V need one quantization group per token");
    }
    const counts = params.counts.slice(0, batch);
    if (counts.length !== batch) {
      throw new TensorShapeError(`block attention: ${params.counts.length} counts for batch ${batch}`);
    }
    counts.forEach((n, b) => {
      if (!(Number.isInteger(n) && n >= 0)) {
        throw new TensorShapeError(
          `block attention: count ${n} of sequence ${b} is not a non-negative integer`,
        );
      }
      if (n > c.maxTokens || ref.k.tok0 + n > ref.k.t.cap || ref.v.tok0 + n > ref.v.t.cap) {
        throw new TensorShapeError(
          `block attention: sequence ${b} has ${n} tokens; maxTokens ${c.maxTokens}, capacities ${
            ref.k.t.cap - ref.k.tok0
          }/${ref.v.t.cap - ref.v.tok0}`,
        );
      }
    });
    const S = this.blocks(counts), SP = this.splits(counts);
    const PS = params.part?.splits ?? SP, X0 = params.part?.first ?? 0;
    if (!(Number.isInteger(X0) && X0 >= 0 && Number.isInteger(PS) && X0 + SP <= PS)) {
      throw new TensorShapeError(
        `block attention: part splits ${PS} cannot hold ${SP} splits from split ${X0}`,
      );
    }
    const need = 4 * this.partialFloats(batch, PS);
    if (bufs.part.size < need) {
      throw new TensorShapeError(`block attention: part buffer has ${bufs.part.size} bytes, needs ${need}`);
    }
    const D = c.headDim, nH = c.numHeads;
    const statsOff = batch * nH * PS * D;
    const scale = 1 / Math.sqrt(D);
    const cnt = new Array(Math.max(1, Math.ceil(c.maxBatch / 4)) * 4).fill(0);
    counts.forEach((n, b) => (cnt[b] = n));
    const kr = [ref.k.t.codesOff, ref.k.t.szOff, ref.k.t.cap, ref.k.tok0];
    const vr = [ref.v.t.codesOff, ref.v.t.szOff, ref.v.t.cap, ref.v.tok0];
    const sc = this.#scratch;
    const query = this.#pipes.query && sc.qrec
      ? bindUniform(
        this.gpu,
        this.#pipes.query,
        "block attention query",
        packUniform([params.q.off, params.q.rowStride, 0, 0, f32u(scale), 0, 0, 0]),
        [bufs.qkv, sc.qrec],
        arena,
      )
      : null;
    // io = (blocks, query offset, row stride, 1/√D bits): the last three read only with qsub
    const score = bindUniform(
      this.gpu,
      this.#pipes.score,
      "block attention score",
      packUniform([S, params.q.off, params.q.rowStride, f32u(scale), ...kr, ...vr, ...cnt]),
      [sc.qrec ?? bufs.qkv, bufs.store, bufs.store, sc.wq, sc.bst],
      arena,
    );
    const value = bindUniform(
      this.gpu,
      this.#pipes.value,
      "block attention value",
      packUniform([S, X0, PS, statsOff, ...vr, ...cnt]),
      [
        bufs.store,
        sc.wq,
        sc.bst,
        bufs.part,
        ...(this.config.tuning?.wshfl || this.config.tuning?.vpair ? [sc.wq] : []),
        ...(this.config.tuning?.vst4 ? [bufs.part] : []),
      ],
      arena,
    );
    const reduce = bindUniform(
      this.gpu,
      this.#pipes.reduce,
      "block attention reduce",
      reduceUniform(params, PS, statsOff, scale),
      [bufs.qkv, bufs.part, bufs.out],
      arena,
    );
    const uniforms = [query, score, value, reduce].map((u) => u?.uniform ?? null).filter((
      u,
    ): u is GPUBuffer => u !== null);
    return { query, score, value, reduce, uniforms, blocks: S, splits: SP, batch };
  }

  /**
   * Records the query, score and value kernels (the partials), without the reduce; `stages` 1 or 2 stop
   * after the query or the score kernel (timing only; with `qsub` there is no query kernel, so stage 1 records
   * nothing).
   *
   * @example
   * ```ts
   * att.encodePartial(pass, d);
   * ```
   */
  encodePartial(pass: GPUComputePassEncoder, d: BlockAttentionDispatch, stages: 1 | 2 | 3 = 3): void {
    const nKv = this.config.numKvHeads;
    const set = (p: Pipeline, u: UniformBinding) => {
      pass.setPipeline(p.pipeline);
      pass.setBindGroup(0, u.bindGroup, u.offsets);
    };
    if (this.#pipes.query && d.query) {
      set(this.#pipes.query, d.query);
      pass.dispatchWorkgroups(nKv, d.batch);
    }
    if (d.blocks === 0 || stages < 2) return;
    set(this.#pipes.score, d.score);
    pass.dispatchWorkgroups(Math.ceil(d.blocks / blockScoreBlocks(this.config)), nKv, d.batch);
    if (stages < 3) return;
    set(this.#pipes.value, d.value);
    pass.dispatchWorkgroups(d.splits, nKv, d.batch);
  }

  /**
   * Records all four kernels.
   *
   * @example
   * ```ts
   * att.encode(pass, d);
   * ```
   */
  encode(pass: GPUComputePassEncoder, d: BlockAttentionDispatch): void {
    this.encodePartial(pass, d);
    pass.setPipeline(this.#pipes.reduce.pipeline);
    pass.setBindGroup(0, d.reduce.bindGroup, d.reduce.offsets);
    pass.dispatchWorkgroups(
      this.config.numHeads,
      d.batch,
      this.config.headDim / blockReduceDims(this.config),
    );
  }

  /**
   * Frees the scratch buffers (the pipelines stay cached in the PackedGpu).
   *
   * @example
   * ```ts
   * att.destroy();
   * ```
   */
  destroy(): void {
    for (const b of Object.values(this.#scratch)) b?.destroy();
  }
}
