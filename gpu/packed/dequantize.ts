/**
 * `dequantize` kernel wrapper (WGSL and buffer table in dequantize.wgsl.ts): x̂ = q·S − z of tokens of a
 * store into a token-major f32 buffer [B, outCap, nKv, D], bit-identical to `dequantizeGroup`.
 *
 * Buffers of {@link DequantizeKernel.prepare}:
 * | name | type | shape |
 * | --- | --- | --- |
 * | src | u32 storage | store with a q<bits> tensor |
 * | out | f32 storage | [B, outCap, nKv, D] |
 *
 * @example
 * ```ts
 * const dq = await DequantizeKernel.create(gpu, { numKvHeads: 8, headDim: 128, bits: 4 });
 * const d = dq.prepare({ src: body, out }, { batch: 1, tokens: 256, src: { t: L.k!, tok0: 0 }, out: { base: 0, cap: 256, tok0: 0 } });
 * await gpu.submit((pass) => dq.encode(pass, d));
 * ```
 * @module
 */
import { DEQ_THREADS, type DequantizeShape, dequantizeWgsl } from "./dequantize.wgsl.ts";
import { grid2d, type PackedGpu, packUniform, type Pipeline } from "./util.ts";
import type { TensorAt } from "./ers.ts";
import { formatFor, groupSizeFor } from "../../src/quant/format.ts";
import { TensorShapeError } from "../../src/errors.ts";

export type { DequantizeShape } from "./dequantize.wgsl.ts";

/** Runtime parameters of a dequantize dispatch. */
export interface DequantizeParams {
  batch: number;
  tokens: number;
  src: TensorAt;
  /** f32 element offset of the output, its token capacity per sequence, and the first output row. */
  out: { base: number; cap: number; tok0: number };
}

/** A prepared dispatch. */
export interface DequantizeDispatch {
  bindGroup: GPUBindGroup;
  uniform: GPUBuffer;
  grid: [number, number];
  params: DequantizeParams;
}

/**
 * The compiled dequantize pipeline of one shape.
 *
 * @example
 * ```ts
 * const dq = await DequantizeKernel.create(gpu, { numKvHeads: 8, headDim: 128, bits: 4 });
 * ```
 */
export class DequantizeKernel {
  readonly shape: DequantizeShape;
  readonly gpu: PackedGpu;
  readonly #pipe: Pipeline;

  private constructor(gpu: PackedGpu, shape: DequantizeShape, pipe: Pipeline) {
    this.gpu = gpu;
    this.shape = shape;
    this.#pipe = pipe;
  }

  /**
   * Compiles (or reuses) the pipeline.
   *
   * @example
   * ```ts
   * const dq = await DequantizeKernel.create(gpu, { numKvHeads: 2, headDim: 128, bits: 2 });
   * ```
   */
  static async create(gpu: PackedGpu, shape: DequantizeShape): Promise<DequantizeKernel> {
    const pipe = await gpu.pipeline(`dequantize b${shape.bits}`, dequantizeWgsl(shape));
    return new DequantizeKernel(gpu, shape, pipe);
  }

  /**
   * Binds buffers with a fresh uniform for `params`.
   *
   * @example
   * ```ts
   * const d = dq.prepare({ src, out }, { batch: 2, tokens: 10, src: { t: L.v!, tok0: 0 }, out: { base: 0, cap: 10, tok0: 0 } });
   * ```
   */
  prepare(bufs: { src: GPUBuffer; out: GPUBuffer }, params: DequantizeParams): DequantizeDispatch {
    const s = this.shape;
    if (params.src.t.format !== `q${s.bits}`) {
      throw new TensorShapeError(`dequantize b${s.bits}: tensor is ${params.src.t.format}`);
    }
    if (
      params.src.tok0 + params.tokens > params.src.t.cap || params.out.tok0 + params.tokens > params.out.cap
    ) {
      throw new TensorShapeError("dequantize: token range exceeds a capacity");
    }
    const G = groupSizeFor(s.headDim);
    const n = params.batch * s.numKvHeads * params.tokens * (s.headDim / G) *
      formatFor(s.bits).wordsPerGroup(G);
    const grid = grid2d(Math.ceil(n / DEQ_THREADS));
    const uniform = this.gpu.uniform(
      "dequantize params",
      packUniform([
        params.batch,
        params.tokens,
        n,
        grid[0],
        params.src.t.codesOff,
        params.src.t.szOff,
        params.src.t.cap,
        params.src.tok0,
        params.out.base,
        params.out.cap,
        params.out.tok0,
        0,
      ]),
    );
    const bindGroup = this.gpu.device.createBindGroup({
      label: "dequantize",
      layout: this.#pipe.layout,
      entries: [
        { binding: 0, resource: { buffer: uniform } },
        { binding: 1, resource: { buffer: bufs.src } },
        { binding: 2, resource: { buffer: bufs.out } },
      ],
    });
    return { bindGroup, uniform, grid, params };
  }

  /**
   * Records the dispatch.
   *
   * @example
   * ```ts
   * dq.encode(pass, d);
   * ```
   */
  encode(pass: GPUComputePassEncoder, d: DequantizeDispatch): void {
    pass.setPipeline(this.#pipe.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(d.grid[0], d.grid[1]);
  }
}
