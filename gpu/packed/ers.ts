/**
 * `ers` kernel wrapper (WGSL and buffer table in ers.wgsl.ts): Equivalent Right Shift of tokens of a store
 * into another store, byte-identical to `ersRows` (src/quant/ers.ts) applied once per halving.
 *
 * Buffers of {@link ErsKernel.prepare}:
 * | name | type | shape |
 * | --- | --- | --- |
 * | src | u32 storage | store with a q<bitsIn> tensor (read) |
 * | dst | u32 storage | a DIFFERENT store with a q<bitsOut> tensor (written) |
 *
 * Typical uses: a PM-KVQ shrink event (whole body 2n → n bits into a new, half-size body store) and a
 * window flush (16-bit window tokens → the body at its current width, at token `bodyTokens`).
 *
 * @example
 * ```ts
 * const ers = await ErsKernel.create(gpu, { numKvHeads: 8, headDim: 128, bitsIn: 16, bitsOut: 8 });
 * const d = ers.prepare({ src: body16, dst: body8 }, {
 *   batch: 8, tokens: 4096, src: { t: L16.k!, tok0: 0 }, dst: { t: L8.k!, tok0: 0 },
 * });
 * await gpu.submit((pass) => ers.encode(pass, d));
 * ```
 * @module
 */
import { ERS_THREADS, type ErsShape, ersWgsl } from "./ers.wgsl.ts";
import { grid2d, type PackedGpu, packUniform, type Pipeline } from "./util.ts";
import { bindUniform, type UniformArena } from "./uniform_arena.ts";
import type { TensorLayout } from "./layout.ts";
import { formatFor, groupSizeFor } from "../../src/quant/format.ts";
import { TensorShapeError } from "../../src/errors.ts";

export type { ErsShape } from "./ers.wgsl.ts";

/** A tensor of a store and a token offset. */
export interface TensorAt {
  t: TensorLayout;
  tok0: number;
}

/** Runtime parameters of a store-to-store op (ERS, dequantize). */
export interface StoreOpParams {
  batch: number;
  /** Tokens per (b, h). */
  tokens: number;
  src: TensorAt;
  dst: TensorAt;
}

/** A prepared dispatch. */
export interface StoreOpDispatch {
  bindGroup: GPUBindGroup;
  /** [binding 0's dynamic offset] */
  offsets: number[];
  /** Fresh uniform buffer to destroy after the submit (null when staged in an arena). */
  uniform: GPUBuffer | null;
  grid: [number, number];
  params: StoreOpParams;
}

function checkRange(what: string, at: TensorAt, batch: number, tokens: number, layoutBatch?: number): void {
  if (at.tok0 + tokens > at.t.cap) {
    throw new TensorShapeError(
      `${what}: tokens [${at.tok0}, ${at.tok0 + tokens}) exceed capacity ${at.t.cap}`,
    );
  }
  if (layoutBatch !== undefined && batch > layoutBatch) {
    throw new TensorShapeError(`${what}: batch ${batch} > ${layoutBatch}`);
  }
}

/**
 * The compiled ERS pipeline of one (shape, bitsIn → bitsOut).
 *
 * @example
 * ```ts
 * const ers = await ErsKernel.create(gpu, { numKvHeads: 8, headDim: 128, bitsIn: 8, bitsOut: 4 });
 * ```
 */
export class ErsKernel {
  readonly shape: ErsShape;
  readonly gpu: PackedGpu;
  readonly #pipe: Pipeline;

  private constructor(gpu: PackedGpu, shape: ErsShape, pipe: Pipeline) {
    this.gpu = gpu;
    this.shape = shape;
    this.#pipe = pipe;
  }

  /**
   * Compiles (or reuses) the pipeline.
   *
   * @example
   * ```ts
   * const ers = await ErsKernel.create(gpu, { numKvHeads: 2, headDim: 128, bitsIn: 4, bitsOut: 2 });
   * ```
   */
  static async create(gpu: PackedGpu, shape: ErsShape): Promise<ErsKernel> {
    const pipe = await gpu.pipeline(`ers ${shape.bitsIn}->${shape.bitsOut}`, ersWgsl(shape), {
      dynamicUniform: true,
    });
    return new ErsKernel(gpu, shape, pipe);
  }

  /**
   * Invocations of a dispatch over `batch`·nKv·`tokens` rows.
   *
   * @example
   * ```ts
   * ers.threads(8, 32768); // one invocation per output word
   * ```
   */
  threads(batch: number, tokens: number): number {
    const G = groupSizeFor(this.shape.headDim);
    return batch * this.shape.numKvHeads * tokens * (this.shape.headDim / G) *
      formatFor(this.shape.bitsOut).wordsPerGroup(G);
  }

  /**
   * Binds `src`/`dst` (different buffers) with a fresh uniform for `params`.
   *
   * @example
   * ```ts
   * const d = ers.prepare({ src: win, dst: body }, { batch: 1, tokens: 128, src: { t: W.k!, tok0: 0 }, dst: { t: Bd.k!, tok0: 256 } });
   * ```
   */
  prepare(
    bufs: { src: GPUBuffer; dst: GPUBuffer },
    params: StoreOpParams,
    arena?: UniformArena,
  ): StoreOpDispatch {
    if (bufs.src === bufs.dst) throw new TensorShapeError("ers: src and dst must be different buffers");
    if (params.src.t.format !== `q${this.shape.bitsIn}` || params.dst.t.format !== `q${this.shape.bitsOut}`) {
      throw new TensorShapeError(
        `ers ${this.shape.bitsIn}->${this.shape.bitsOut}: tensors are ${params.src.t.format} -> ${params.dst.t.format}`,
      );
    }
    checkRange("ers src", params.src, params.batch, params.tokens);
    checkRange("ers dst", params.dst, params.batch, params.tokens);
    const n = this.threads(params.batch, params.tokens);
    const grid = grid2d(Math.ceil(n / ERS_THREADS));
    const data = packUniform([
      params.batch,
      params.tokens,
      n,
      grid[0],
      params.src.t.codesOff,
      params.src.t.szOff,
      params.src.t.cap,
      params.src.tok0,
      params.dst.t.codesOff,
      params.dst.t.szOff,
      params.dst.t.cap,
      params.dst.tok0,
    ]);
    const b = bindUniform(this.gpu, this.#pipe, "ers", data, [bufs.src, bufs.dst], arena);
    return { bindGroup: b.bindGroup, offsets: b.offsets, uniform: b.uniform, grid, params };
  }

  /**
   * Records the dispatch.
   *
   * @example
   * ```ts
   * ers.encode(pass, d);
   * ```
   */
  encode(pass: GPUComputePassEncoder, d: StoreOpDispatch): void {
    pass.setPipeline(this.#pipe.pipeline);
    pass.setBindGroup(0, d.bindGroup, d.offsets);
    pass.dispatchWorkgroups(d.grid[0], d.grid[1]);
  }
}
