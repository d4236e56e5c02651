/**
 * Wrappers of the MixKVQ quantizing kernels (WGSL and bindings in mixkvq_quantize.wgsl.ts, layout in
 * mixkvq_layout.ts). Every `encode*` records one dispatch into a compute pass and returns the uniform
 * buffer it created, which the caller destroys once the pass is submitted.
 *
 * | method | buffers | what |
 * | --- | --- | --- |
 * | {@link MixKvqQuantKernels.encodeResidual} | x (f32), resid, status | m tokens → bf16 residual rows, finite check |
 * | {@link MixKvqQuantKernels.encodeKeyStats} | resid, stats (f32 [2, row]) | per-channel min / max of the block's keys |
 * | {@link MixKvqQuantKernels.encodeKeys} | resid, arena | key channels at their tier into a block region |
 * | {@link MixKvqQuantKernels.encodeValues} | resid, arena | values per token at valueBits into a block region |
 *
 * @example
 * ```ts
 * const k = await MixKvqQuantKernels.create(gpu, geo);
 * const temps = [k.encodeKeys(pass, { resid, arena }, region), k.encodeValues(pass, { resid, arena }, region)];
 * ```
 * @module
 */
import type { MixKvqBlockRegion, MixKvqGeometry } from "./mixkvq_layout.ts";
import {
  mixkvqKeyQuantWgsl,
  mixkvqKeyStatsWgsl,
  mixkvqResidualWgsl,
  mixkvqValueQuantWgsl,
  MQ_THREADS,
} from "./mixkvq_quantize.wgsl.ts";
import { grid2d, type PackedGpu, packUniform, type Pipeline } from "./util.ts";
import { TensorShapeError } from "../../src/errors.ts";

/** Where the new tokens' K and V are: element (i, c) at `k|v + i·tokStride + c`, c = h·D + d (f32). */
export interface MixKvqSource {
  x: GPUBuffer;
  k: number;
  v: number;
  tokStride: number;
}

/**
 * The four compiled pipelines of one layout geometry.
 *
 * @example
 * ```ts
 * const kernels = await MixKvqQuantKernels.create(gpu, geo);
 * ```
 */
export class MixKvqQuantKernels {
  readonly gpu: PackedGpu;
  readonly geo: MixKvqGeometry;
  readonly #res: Pipeline;
  readonly #stats: Pipeline;
  readonly #keys: Pipeline;
  readonly #vals: Pipeline;

  private constructor(gpu: PackedGpu, geo: MixKvqGeometry, p: Pipeline[]) {
    this.gpu = gpu;
    this.geo = geo;
    [this.#res, this.#stats, this.#keys, this.#vals] = p;
  }

  /**
   * Compiles (or reuses) the pipelines of `geo`.
   *
   * @example
   * ```ts
   * const kernels = await MixKvqQuantKernels.create(gpu, mixkvqGeometry(shape));
   * ```
   */
  static async create(gpu: PackedGpu, geo: MixKvqGeometry): Promise<MixKvqQuantKernels> {
    const p = await Promise.all([
      gpu.pipeline("mixkvq residual", mixkvqResidualWgsl(geo)),
      gpu.pipeline("mixkvq key stats", mixkvqKeyStatsWgsl(geo)),
      gpu.pipeline("mixkvq key quant", mixkvqKeyQuantWgsl(geo)),
      gpu.pipeline("mixkvq value quant", mixkvqValueQuantWgsl(geo)),
    ]);
    return new MixKvqQuantKernels(gpu, geo, p);
  }

  #dispatch(
    pass: GPUComputePassEncoder,
    pipe: Pipeline,
    label: string,
    uniform: Uint32Array<ArrayBuffer>,
    bufs: GPUBuffer[],
    grid: [number, number],
  ): GPUBuffer {
    const u = this.gpu.uniform(`${label} params`, uniform);
    const bg = this.gpu.device.createBindGroup({
      label,
      layout: pipe.layout,
      entries: [u, ...bufs].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    pass.setPipeline(pipe.pipeline);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(grid[0], grid[1]);
    return u;
  }

  /**
   * Records tokens [done, done + m) of an append of `t` tokens into residual rows [firstRow, firstRow + m).
   * TensorShapeError when the rows exceed R.
   *
   * @example
   * ```ts
   * const u = kernels.encodeResidual(pass, { resid, status }, src, { firstRow: 3, done: 0, m: 5, t: 5 });
   * ```
   */
  encodeResidual(
    pass: GPUComputePassEncoder,
    bufs: { resid: GPUBuffer; status: GPUBuffer },
    src: MixKvqSource,
    at: { firstRow: number; done: number; m: number; t: number },
  ): GPUBuffer {
    const g = this.geo;
    if (at.firstRow + at.m > g.R || at.m < 1) {
      throw new TensorShapeError(
        `mixkvq residual: rows [${at.firstRow}, ${at.firstRow + at.m}) outside [0, ${g.R})`,
      );
    }
    const grid = grid2d(Math.ceil((at.m * g.row) / MQ_THREADS));
    const u = packUniform([src.k, src.v, src.tokStride, at.m, at.firstRow, at.done, at.t, grid[0]]);
    return this.#dispatch(pass, this.#res, "mixkvq residual", u, [src.x, bufs.resid, bufs.status], grid);
  }

  /**
   * Records the per-channel min / max of the (full) residual keys into `stats` ([2, row] f32).
   *
   * @example
   * ```ts
   * const u = kernels.encodeKeyStats(pass, { resid, stats });
   * ```
   */
  encodeKeyStats(pass: GPUComputePassEncoder, bufs: { resid: GPUBuffer; stats: GPUBuffer }): GPUBuffer {
    const row = this.geo.row;
    const u = packUniform([row, 0, 0, 0]);
    return this.#dispatch(pass, this.#stats, "mixkvq key stats", u, [bufs.resid, bufs.stats], [
      Math.ceil(row / MQ_THREADS),
      1,
    ]);
  }

  /**
   * Records the key quantization of the full residual into block region `r` (its `bits` / `slot` regions
   * must already hold the tier map).
   *
   * @example
   * ```ts
   * const u = kernels.encodeKeys(pass, { resid, arena }, region);
   * ```
   */
  encodeKeys(
    pass: GPUComputePassEncoder,
    bufs: { resid: GPUBuffer; arena: GPUBuffer },
    r: MixKvqBlockRegion,
  ): GPUBuffer {
    const grid = grid2d(this.geo.row * this.geo.gpc);
    const u = packUniform([r.bits, r.slot, r.bf16, r.q4Codes, r.q4Sz, r.q2Codes, r.q2Sz, grid[0]]);
    return this.#dispatch(pass, this.#keys, "mixkvq key quant", u, [bufs.resid, bufs.arena], grid);
  }

  /**
   * Records the value quantization of the full residual into block region `r`.
   *
   * @example
   * ```ts
   * const u = kernels.encodeValues(pass, { resid, arena }, region);
   * ```
   */
  encodeValues(
    pass: GPUComputePassEncoder,
    bufs: { resid: GPUBuffer; arena: GPUBuffer },
    r: MixKvqBlockRegion,
  ): GPUBuffer {
    const grid = grid2d((this.geo.R * this.geo.row) / this.geo.G);
    const u = packUniform([r.vCodes, r.vSz, grid[0], 0]);
    return this.#dispatch(pass, this.#vals, "mixkvq value quant", u, [bufs.resid, bufs.arena], grid);
  }
}
