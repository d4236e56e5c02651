/**
 * Wrappers of the KIVI append kernels (WGSL and bindings in kivi_quantize.wgsl.ts and kivi_stage.wgsl.ts;
 * token movement in kivi_layout.ts): key flush (per-channel), value quantize (per-token) and the bf16 stage
 * writer for the key residual / value FIFO. Each `encode*` records one dispatch into a compute pass and
 * returns its fresh uniform buffer (destroy it once the pass is submitted).
 *
 * | method | reads | writes |
 * | --- | --- | --- |
 * | {@link KiviKernels.encodeKeyFlush} | old key residual rows [0, c), input tokens | `keys` groups of blocks [first, first + blocks) |
 * | {@link KiviKernels.encodeValueQuant} | old FIFO rows [0, c), input tokens | `values` tokens [first, first + evict) |
 * | {@link KiviKernels.encodeStage} | old FIFO rows / input tokens | rows [r0, r0 + nRows) of a bf16 store |
 *
 * @example
 * ```ts
 * const kk = await KiviKernels.create(gpu, { numKvHeads: 2, headDim: 64, bits: 4, group: 32, residual: 64 });
 * const u = kk.encodeKeyFlush(pass, { x, source: residual, dest: keys, status }, {
 *   batch: 1, input: { off: 0, tokStride: 128, batchStride: 0 }, c: 0, units: 1, first: 0,
 *   source: L.keyResidual.k!, dest: L.keys.k!,
 * });
 * ```
 * @module
 */
import { kiviQuantizeWgsl } from "./kivi_quantize.wgsl.ts";
import { KIVI_STAGE_THREADS, kiviStageWgsl } from "./kivi_stage.wgsl.ts";
import { grid2d, type PackedGpu, packUniform, type Pipeline } from "./util.ts";
import { bindUniform, type UniformArena } from "./uniform_arena.ts";
import type { TensorLayout } from "./layout.ts";
import { groupSizeFor } from "../../src/quant/format.ts";
import { TensorShapeError } from "../../src/errors.ts";

/** Compile-time shape of a layer's KIVI kernels. */
export interface KiviKernelShape {
  numKvHeads: number;
  headDim: number;
  bits: 2 | 4;
  group: number;
  residual: number;
}

/** Where the new tokens are: element (b, i, h, d) at `off + b·batchStride + i·tokStride + h·D + d` (f32). */
export interface KiviInput {
  off: number;
  tokStride: number;
  batchStride: number;
}

/** Buffers of one dispatch. */
export interface KiviDispatchBuffers {
  x: GPUBuffer;
  /** The bf16 source store (old residual / FIFO; a dummy when never read). */
  source: GPUBuffer;
  dest: GPUBuffer;
  status: GPUBuffer;
}

/** Parameters of a quantize dispatch. */
export interface KiviQuantParams {
  batch: number;
  input: KiviInput;
  /** Stream rows read from the source store before the input tokens. */
  c: number;
  /** Key blocks (flush) or value tokens (quantize) to write. */
  units: number;
  /** First destination key block / value token. */
  first: number;
  source: TensorLayout;
  dest: TensorLayout;
}

/** Parameters of a stage dispatch (kivi_stage.wgsl.ts). */
export interface KiviStageParams {
  batch: number;
  input: KiviInput;
  c: number;
  r0: number;
  nRows: number;
  pOff: number;
  total: number;
  source: TensorLayout;
  dest: TensorLayout;
}

/**
 * The three compiled pipelines of one layer shape.
 *
 * @example
 * ```ts
 * const kk = await KiviKernels.create(gpu, { numKvHeads: 8, headDim: 128, bits: 2, group: 128, residual: 128 });
 * ```
 */
export class KiviKernels {
  readonly gpu: PackedGpu;
  readonly shape: KiviKernelShape;
  readonly #key: Pipeline;
  readonly #value: Pipeline;
  readonly #stage: Pipeline;

  private constructor(
    gpu: PackedGpu,
    shape: KiviKernelShape,
    key: Pipeline,
    value: Pipeline,
    stage: Pipeline,
  ) {
    this.gpu = gpu;
    this.shape = shape;
    this.#key = key;
    this.#value = value;
    this.#stage = stage;
  }

  /**
   * Compiles (or reuses) the pipelines of `shape`.
   *
   * @example
   * ```ts
   * const kk = await KiviKernels.create(gpu, { numKvHeads: 2, headDim: 64, bits: 4, group: 32, residual: 64 });
   * ```
   */
  static async create(gpu: PackedGpu, shape: KiviKernelShape): Promise<KiviKernels> {
    const [key, value, stage] = await Promise.all([
      gpu.pipeline(
        `kivi key flush b${shape.bits} g${shape.group}`,
        kiviQuantizeWgsl({ ...shape, kind: "key" }),
        { dynamicUniform: true },
      ),
      gpu.pipeline(`kivi value quantize b${shape.bits}`, kiviQuantizeWgsl({ ...shape, kind: "value" }), {
        dynamicUniform: true,
      }),
      gpu.pipeline("kivi stage", kiviStageWgsl(shape), { dynamicUniform: true }),
    ]);
    return new KiviKernels(gpu, shape, key, value, stage);
  }

  #record(
    pass: GPUComputePassEncoder,
    pipe: Pipeline,
    bufs: KiviDispatchBuffers,
    data: Uint32Array<ArrayBuffer>,
    grid: [number, number],
    label: string,
    arena?: UniformArena,
  ): GPUBuffer | null {
    const b = bindUniform(this.gpu, pipe, label, data, [bufs.x, bufs.source, bufs.dest, bufs.status], arena);
    pass.setPipeline(pipe.pipeline);
    pass.setBindGroup(0, b.bindGroup, b.offsets);
    pass.dispatchWorkgroups(grid[0], grid[1]);
    return b.uniform;
  }

  #quant(
    pass: GPUComputePassEncoder,
    kind: "key" | "value",
    bufs: KiviDispatchBuffers,
    q: KiviQuantParams,
    arena?: UniformArena,
  ): GPUBuffer | null {
    const s = this.shape;
    const perUnit = kind === "key" ? (s.residual / s.group) * s.headDim : s.headDim / groupSizeFor(s.headDim);
    const unitTokens = kind === "key" ? s.residual : 1;
    if ((q.first + q.units) * unitTokens > q.dest.cap) {
      throw new TensorShapeError(
        `KIVI ${kind} quantize: tokens [${q.first * unitTokens}, ${
          (q.first + q.units) * unitTokens
        }) exceed capacity ${q.dest.cap}`,
      );
    }
    const nGroups = q.batch * q.units * s.numKvHeads * perUnit;
    const grid = grid2d(nGroups);
    const data = packUniform([
      q.input.off,
      q.input.tokStride,
      q.input.batchStride,
      q.c,
      q.batch,
      nGroups,
      grid[0],
      q.units,
      q.source.codesOff,
      q.source.cap,
      0,
      0,
      q.dest.codesOff,
      q.dest.szOff,
      q.dest.cap,
      kind === "key" ? q.first * (s.residual / s.group) : q.first,
    ]);
    return this.#record(
      pass,
      kind === "key" ? this.#key : this.#value,
      bufs,
      data,
      grid,
      `kivi ${kind} quantize`,
      arena,
    );
  }

  /**
   * Records the per-channel quantization of `units` full key blocks of the stream into key blocks
   * [first, first + units) (no-op and null for 0 blocks).
   *
   * @example
   * ```ts
   * const u = kk.encodeKeyFlush(pass, bufs, params);
   * ```
   */
  encodeKeyFlush(
    pass: GPUComputePassEncoder,
    bufs: KiviDispatchBuffers,
    q: KiviQuantParams,
    arena?: UniformArena,
  ): GPUBuffer | null {
    return q.units > 0 ? this.#quant(pass, "key", bufs, q, arena) : null;
  }

  /**
   * Records the per-token quantization of the oldest `units` stream tokens into value tokens
   * [first, first + units) (no-op and null for 0 tokens).
   *
   * @example
   * ```ts
   * const u = kk.encodeValueQuant(pass, bufs, params);
   * ```
   */
  encodeValueQuant(
    pass: GPUComputePassEncoder,
    bufs: KiviDispatchBuffers,
    q: KiviQuantParams,
    arena?: UniformArena,
  ): GPUBuffer | null {
    return q.units > 0 ? this.#quant(pass, "value", bufs, q, arena) : null;
  }

  /**
   * Records a stage dispatch (kivi_stage.wgsl.ts; no-op and null for 0 rows).
   *
   * @example
   * ```ts
   * const u = kk.encodeStage(pass, bufs, { batch: 1, input, c: 0, r0: 5, nRows: 1, pOff: 0, total: 6, source: t, dest: t });
   * ```
   */
  encodeStage(
    pass: GPUComputePassEncoder,
    bufs: KiviDispatchBuffers,
    q: KiviStageParams,
    arena?: UniformArena,
  ): GPUBuffer | null {
    if (q.nRows === 0) return null;
    if (q.r0 + q.nRows > q.dest.cap) {
      throw new TensorShapeError(
        `KIVI stage: rows [${q.r0}, ${q.r0 + q.nRows}) exceed capacity ${q.dest.cap}`,
      );
    }
    const nWords = q.batch * q.nRows * this.shape.numKvHeads * (this.shape.headDim / 2);
    const grid = grid2d(Math.ceil(nWords / KIVI_STAGE_THREADS));
    const data = packUniform([
      q.input.off,
      q.input.tokStride,
      q.input.batchStride,
      q.c,
      q.r0,
      q.nRows,
      q.pOff,
      q.total,
      q.source.codesOff,
      q.source.cap,
      0,
      0,
      q.dest.codesOff,
      q.dest.cap,
      nWords,
      grid[0],
    ]);
    return this.#record(pass, this.#stage, bufs, data, grid, "kivi stage", arena);
  }
}
