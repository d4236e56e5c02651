/**
 * Fused MixKVQ decode attention (WGSL and bindings in mixkvq_attention.wgsl.ts): one new query token of a
 * batch-1 sequence attends to the quantized blocks and the bf16 residual of a MixKVQ layer (read in place,
 * mixkvq_layout.ts) plus its own exact K/V.
 *
 * | buffer | type | shape |
 * | --- | --- | --- |
 * | qkv | f32 | query heads at `q + h·D`, new K head at `k + kvh·D`, new V head at `v + kvh·D` |
 * | resid, arena, desc | u32 | the layer's stores (mixkvq_layout.ts) |
 * | part | f32 | {@link MixKvqAttention.partFloats} floats (scratch) |
 * | out | f32 | head h at `out + h·D` |
 *
 * @example
 * ```ts
 * const att = await MixKvqAttention.create(gpu, geo, 4);
 * const part = gpu.storage("part", 4 * att.partFloats());
 * const temps = att.encode(pass, { qkv, resid, arena, desc, part, out }, { nBlocks: 2, resCount: 7, q: 0, k: 512, v: 768, out: 0 });
 * ```
 * @module
 */
import type { MixKvqGeometry } from "./mixkvq_layout.ts";
import {
  MA_THREADS,
  mixkvqPartialWgsl,
  mixkvqPartialWorkgroupBytes,
  mixkvqReduceWgsl,
} from "./mixkvq_attention.wgsl.ts";
import { f32u, type PackedGpu, packUniform, type Pipeline } from "./util.ts";
import { QuantConfigError, TensorShapeError } from "../../src/errors.ts";

/** Buffers of one attention call. */
export interface MixKvqAttentionBuffers {
  qkv: GPUBuffer;
  resid: GPUBuffer;
  arena: GPUBuffer;
  desc: GPUBuffer;
  part: GPUBuffer;
  out: GPUBuffer;
}

/** Runtime parameters: stored blocks, residual tokens, f32 offsets in qkv / out. */
export interface MixKvqAttentionParams {
  nBlocks: number;
  resCount: number;
  q: number;
  k: number;
  v: number;
  out: number;
}

/**
 * The two pipelines of one (geometry, query heads).
 *
 * @example
 * ```ts
 * const att = await MixKvqAttention.create(gpu, geo, 4);
 * ```
 */
export class MixKvqAttention {
  readonly gpu: PackedGpu;
  readonly geo: MixKvqGeometry;
  readonly numHeads: number;
  readonly #partial: Pipeline;
  readonly #reduce: Pipeline;

  private constructor(gpu: PackedGpu, geo: MixKvqGeometry, numHeads: number, p: Pipeline, r: Pipeline) {
    this.gpu = gpu;
    this.geo = geo;
    this.numHeads = numHeads;
    this.#partial = p;
    this.#reduce = r;
  }

  /**
   * Compiles the kernels. QuantConfigError naming numHeads when it is not a positive multiple of
   * numKvHeads, or when the partial kernel's workgroup memory exceeds the adapter's limit.
   *
   * @example
   * ```ts
   * const att = await MixKvqAttention.create(gpu, geo, 4);
   * ```
   */
  static async create(gpu: PackedGpu, geo: MixKvqGeometry, numHeads: number): Promise<MixKvqAttention> {
    if (!Number.isSafeInteger(numHeads) || numHeads < 1 || numHeads % geo.numKvHeads !== 0) {
      throw new QuantConfigError(
        `MixKVQ attention: numHeads ${numHeads} must be a positive multiple of numKvHeads ${geo.numKvHeads}`,
      );
    }
    const wgBytes = mixkvqPartialWorkgroupBytes(geo, numHeads);
    const lim = gpu.ctx.limits.maxComputeWorkgroupStorageSize;
    if (wgBytes > lim) {
      throw new QuantConfigError(
        `MixKVQ attention: residual ${geo.R} with ${
          numHeads / geo.numKvHeads
        } query heads per KV head needs ` +
          `${wgBytes} bytes of workgroup memory; the adapter allows ${lim}`,
      );
    }
    const [p, r] = await Promise.all([
      gpu.pipeline("mixkvq attention partial", mixkvqPartialWgsl(geo, numHeads)),
      gpu.pipeline("mixkvq attention reduce", mixkvqReduceWgsl(geo, numHeads)),
    ]);
    return new MixKvqAttention(gpu, geo, numHeads, p, r);
  }

  /**
   * f32 floats of the `part` scratch: nH·(maxBlocks + 1)·(D + 2).
   *
   * @example
   * ```ts
   * const part = gpu.storage("part", 4 * att.partFloats());
   * ```
   */
  partFloats(): number {
    return this.numHeads * (this.geo.maxBlocks + 1) * (this.geo.headDim + 2);
  }

  /**
   * Records the partial and reduce dispatches; returns the two uniforms (destroy after submission).
   * TensorShapeError when nBlocks exceeds the layout's maxBlocks or resCount ∉ [0, R).
   *
   * @example
   * ```ts
   * const temps = att.encode(pass, bufs, { nBlocks, resCount, q: 0, k: nH * D, v: (nH + nKv) * D, out: 0 });
   * ```
   */
  encode(pass: GPUComputePassEncoder, b: MixKvqAttentionBuffers, p: MixKvqAttentionParams): GPUBuffer[] {
    const g = this.geo;
    if (p.nBlocks > g.maxBlocks || p.nBlocks < 0 || p.resCount < 0 || p.resCount >= g.R) {
      throw new TensorShapeError(
        `MixKVQ attention: ${p.nBlocks} blocks (max ${g.maxBlocks}) and ${p.resCount} residual tokens (R ${g.R})`,
      );
    }
    const scale = f32u(1 / Math.sqrt(g.headDim));
    const u1 = this.gpu.uniform(
      "mixkvq partial params",
      packUniform([p.nBlocks, p.resCount, p.q, 0, scale, 0, 0, 0]),
    );
    const u2 = this.gpu.uniform(
      "mixkvq reduce params",
      packUniform([p.nBlocks + 1, p.k, p.v, p.out, p.q, scale, 0, 0]),
    );
    const dev = this.gpu.device;
    const bg1 = dev.createBindGroup({
      label: "mixkvq attention partial",
      layout: this.#partial.layout,
      entries: [u1, b.qkv, b.resid, b.arena, b.desc, b.part].map((buffer, binding) => ({
        binding,
        resource: { buffer },
      })),
    });
    const bg2 = dev.createBindGroup({
      label: "mixkvq attention reduce",
      layout: this.#reduce.layout,
      entries: [u2, b.qkv, b.part, b.out].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    pass.setPipeline(this.#partial.pipeline);
    pass.setBindGroup(0, bg1);
    pass.dispatchWorkgroups(p.nBlocks + 1, g.numKvHeads);
    pass.setPipeline(this.#reduce.pipeline);
    pass.setBindGroup(0, bg2);
    pass.dispatchWorkgroups(this.numHeads);
    return [u1, u2];
  }
}

/** Invocations per attention workgroup (for docs and benches). */
export const MIXKVQ_ATTENTION_THREADS = MA_THREADS;
