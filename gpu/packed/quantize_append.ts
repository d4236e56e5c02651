/**
 * `quantize_append` kernel wrapper (WGSL and buffer table in quantize_append.wgsl.ts): quantizes t new tokens
 * of K and/or V for a batch into a store, byte-identical to `quantizeGroup` (src/quant/quantizer.ts).
 *
 * Buffers of {@link QuantizeAppendKernel.prepare}:
 * | name | type | shape |
 * | --- | --- | --- |
 * | x | f32 storage | any; element (b, i, h, d) at `src.k|v + b·batchStride + i·tokStride + h·D + d` |
 * | store | u32 storage | a store of gpu/packed/layout.ts whose tensors have format q<bits> |
 * | status | u32 storage [≥ 4 bytes] | 0 = no bad input; see {@link decodeQuantStatus} |
 *
 * @example
 * ```ts
 * const qa = await QuantizeAppendKernel.create(gpu, { numKvHeads: 8, headDim: 128, bits: 16, maxBatch: 8 });
 * const d = qa.prepare({ x: qkv, store: window, status }, {
 *   batch: 8, tokens: 1, src: { k: 32 * 128, v: 40 * 128, tokStride: 48 * 128, batchStride: 48 * 128 },
 *   dst: { k: winLayout.k!, v: winLayout.v! }, pos: new Array(8).fill(windowTokens),
 * });
 * await gpu.submit((pass) => qa.encode(pass, d));
 * ```
 * @module
 */
import { QA_THREADS, type QuantizeAppendShape, quantizeAppendWgsl } from "./quantize_append.wgsl.ts";
import { grid2d, type PackedGpu, packUniform, type Pipeline } from "./util.ts";
import { bindUniform, type UniformArena } from "./uniform_arena.ts";
import type { TensorLayout } from "./layout.ts";
import { formatFor, groupSizeFor } from "../../src/quant/format.ts";
import { NonFiniteError, TensorShapeError } from "../../src/errors.ts";

export type { QuantizeAppendShape } from "./quantize_append.wgsl.ts";

/** Runtime parameters of one quantize_append dispatch. */
export interface QuantizeAppendParams {
  batch: number;
  /** New tokens per sequence, t. */
  tokens: number;
  /** f32 element offsets of K and V (omit v to quantize K only) and strides. */
  src: { k: number; v?: number; tokStride: number; batchStride: number };
  /** Destination tensors (layouts of the store bound as `store`). */
  dst: { k: TensorLayout; v?: TensorLayout };
  /** First destination token of each sequence (length ≥ batch). */
  pos: readonly number[];
}

/** A prepared dispatch: bind group with its dynamic uniform offset, and the fresh uniform (null with an arena). */
export interface QuantizeAppendDispatch {
  bindGroup: GPUBindGroup;
  offsets: number[];
  /** Fresh uniform buffer to destroy after the submit (null when staged in an arena). */
  uniform: GPUBuffer | null;
  grid: [number, number];
  params: QuantizeAppendParams;
}

/** A decoded status word. */
export interface QuantStatus {
  tensor: "k" | "v";
  batch: number;
  token: number;
  head: number;
  /** Group within head_dim, and index within the group. */
  group: number;
  index: number;
}

/**
 * Decodes the status word of a quantize_append dispatch (0 → null).
 *
 * @example
 * ```ts
 * import { decodeQuantStatus } from "./quantize_append.ts";
 * decodeQuantStatus(0, 1, 1, 2, 1); // null
 * decodeQuantStatus(0xffffffff - (3 * 128 + 5), 1, 1, 2, 1); // { tensor: "v", batch: 0, token: 0, head: 1, group: 0, index: 5 }
 * ```
 */
export function decodeQuantStatus(
  word: number,
  batch: number,
  tokens: number,
  numKvHeads: number,
  groupsPerHead: number,
): QuantStatus | null {
  if (word === 0) return null;
  const code = 0xffffffff - word;
  const index = code % 128;
  let g = Math.floor(code / 128);
  const perT = batch * tokens * numKvHeads * groupsPerHead;
  const tensor = g >= perT ? "v" : "k";
  g %= perT;
  const group = g % groupsPerHead;
  g = Math.floor(g / groupsPerHead);
  const head = g % numKvHeads;
  g = Math.floor(g / numKvHeads);
  return { tensor, batch: Math.floor(g / tokens), token: g % tokens, head, group, index };
}

/**
 * The compiled quantize_append pipeline of one shape.
 *
 * @example
 * ```ts
 * const qa = await QuantizeAppendKernel.create(gpu, { numKvHeads: 8, headDim: 128, bits: 16, maxBatch: 8 });
 * ```
 */
export class QuantizeAppendKernel {
  readonly shape: QuantizeAppendShape;
  readonly gpu: PackedGpu;
  readonly #pipe: Pipeline;

  private constructor(gpu: PackedGpu, shape: QuantizeAppendShape, pipe: Pipeline) {
    this.gpu = gpu;
    this.shape = shape;
    this.#pipe = pipe;
  }

  /**
   * Compiles (or reuses) the pipeline for `shape`.
   *
   * @example
   * ```ts
   * const qa = await QuantizeAppendKernel.create(gpu, { numKvHeads: 2, headDim: 128, bits: 4, maxBatch: 1 });
   * ```
   */
  static async create(gpu: PackedGpu, shape: QuantizeAppendShape): Promise<QuantizeAppendKernel> {
    const pipe = await gpu.pipeline(`quantize_append b${shape.bits}`, quantizeAppendWgsl(shape), {
      dynamicUniform: true,
    });
    return new QuantizeAppendKernel(gpu, shape, pipe);
  }

  #uniform(params: QuantizeAppendParams): { data: Uint32Array<ArrayBuffer>; grid: [number, number] } {
    const s = this.shape;
    const G = groupSizeFor(s.headDim);
    if (params.batch > s.maxBatch || params.pos.length < params.batch) {
      throw new TensorShapeError(
        `quantize_append: batch ${params.batch} exceeds maxBatch ${s.maxBatch} or pos table`,
      );
    }
    for (const t of [params.dst.k, params.dst.v]) {
      if (t && (t.format !== `q${s.bits}` || t.groupSize !== G)) {
        throw new TensorShapeError(
          `quantize_append b${s.bits}: destination tensor is ${t.format} (G ${t.groupSize})`,
        );
      }
      if (t) {
        for (let b = 0; b < params.batch; b++) {
          if (params.pos[b] + params.tokens > t.cap) {
            throw new TensorShapeError(
              `quantize_append: sequence ${b} tokens [${params.pos[b]}, ${
                params.pos[b] + params.tokens
              }) exceed capacity ${t.cap}`,
            );
          }
        }
      }
    }
    const nT = params.dst.v && params.src.v !== undefined ? 2 : 1;
    const nGroups = nT * params.batch * params.tokens * s.numKvHeads * (s.headDim / G);
    if (nGroups * 128 >= 0xffffffff) {
      throw new TensorShapeError(`quantize_append: ${nGroups} groups in one dispatch`);
    }
    const grid = grid2d(nGroups);
    const k = params.dst.k, v = params.dst.v ?? params.dst.k;
    const pos = new Array(Math.max(4, Math.ceil(s.maxBatch / 4) * 4)).fill(0);
    params.pos.slice(0, params.batch).forEach((x, i) => (pos[i] = x));
    const data = packUniform([
      params.src.k,
      params.src.v ?? 0,
      params.src.tokStride,
      params.src.batchStride,
      params.batch,
      params.tokens,
      nGroups,
      grid[0],
      k.codesOff,
      k.szOff,
      k.cap,
      0,
      v.codesOff,
      v.szOff,
      v.cap,
      0,
      ...pos,
    ]);
    return { data, grid };
  }

  /**
   * Binds buffers and writes the uniform of `params`: staged in `arena` (cached bind group; the arena's
   * owner flushes before the submit) or, without one, a fresh uniform buffer (`d.uniform`).
   *
   * @example
   * ```ts
   * const d = qa.prepare({ x, store, status }, { batch: 1, tokens: 4, src: { k: 0, v: 256 * 4, tokStride: 256, batchStride: 0 }, dst: { k: L.k!, v: L.v! }, pos: [0] });
   * ```
   */
  prepare(
    bufs: { x: GPUBuffer; store: GPUBuffer; status: GPUBuffer },
    params: QuantizeAppendParams,
    arena?: UniformArena,
  ): QuantizeAppendDispatch {
    const { data, grid } = this.#uniform(params);
    const b = bindUniform(
      this.gpu,
      this.#pipe,
      "quantize_append",
      data,
      [bufs.x, bufs.store, bufs.status],
      arena,
    );
    return { bindGroup: b.bindGroup, offsets: b.offsets, uniform: b.uniform, grid, params };
  }

  /**
   * Records the dispatch into `pass`.
   *
   * @example
   * ```ts
   * qa.encode(pass, d);
   * ```
   */
  encode(pass: GPUComputePassEncoder, d: QuantizeAppendDispatch): void {
    pass.setPipeline(this.#pipe.pipeline);
    pass.setBindGroup(0, d.bindGroup, d.offsets);
    pass.dispatchWorkgroups(d.grid[0], d.grid[1]);
  }

  /**
   * Reads `status` and throws NonFiniteError naming tensor, sequence, token, head and index if a bad input
   * was flagged (then clears it). Costs a readback: call it after a step, not per dispatch.
   *
   * @example
   * ```ts
   * await qa.checkStatus(status, d.params);
   * ```
   */
  async checkStatus(status: GPUBuffer, params: QuantizeAppendParams): Promise<void> {
    const word = new Uint32Array(await this.gpu.read(status, 0, 4))[0];
    const G = groupSizeFor(this.shape.headDim);
    const st = decodeQuantStatus(
      word,
      params.batch,
      params.tokens,
      this.shape.numKvHeads,
      this.shape.headDim / G,
    );
    if (st) {
      this.gpu.device.queue.writeBuffer(status, 0, new Uint32Array([0]));
      throw new NonFiniteError(
        `quantize_append: ${st.tensor} of sequence ${st.batch}, token ${st.token}, head ${st.head}, channel ` +
          `${st.group * G + st.index} is NaN, ±Inf or |x| >= 2^64`,
      );
    }
  }
}

/** Threads per quantize_append workgroup (re-exported for docs/bench accounting). */
export const QUANTIZE_APPEND_THREADS = QA_THREADS;

/**
 * Bytes a quantize_append dispatch moves: f32 input read + codes and sz written.
 *
 * @example
 * ```ts
 * import { quantizeAppendBytes } from "./quantize_append.ts";
 * quantizeAppendBytes(1, 128, 1, 128, 4); // 512 + 68
 * ```
 */
export function quantizeAppendBytes(
  tokens: number,
  numKvHeads: number,
  tensors: number,
  headDim: number,
  bits: number,
): number {
  const G = groupSizeFor(headDim);
  const groups = tokens * numKvHeads * tensors * (headDim / G);
  const wpg = formatFor(bits).wordsPerGroup(G);
  return groups * (G * 4 + wpg * 4 + 4);
}
