/**
 * The exact (f32) KV cache on the GPU: capacity preallocated at creation, no per-step allocation.
 *
 * Buffers (per layer; `bytes` = their allocated size, reported by {@link GpuCache.stats}):
 * | buffer | shape | type |
 * |---|---|---|
 * | K cache, layer l | [nKv, capacity, D] (head-major) | f32 |
 * | V cache, layer l | [nKv, capacity, D] | f32 |
 * | decode partials (shared by all layers; reported as `scratchBytes`) | [nH, maxSplits, D] + [nH, maxSplits, 2] | f32 |
 *
 * Kernels: kernels/kv_append (append), kernels/attention (prefill; decode = split partials + combine).
 *
 * @example
 * ```ts
 * const cache = await createExactGpuCache({ reg, shape, capacity: 4096, io: { qkv, out } });
 * console.log(cache.stats().bytes); // 6 layers · 2 · 2 heads · 4096 · 128 · 4 B = 50,331,648
 * ```
 * @module
 */
import type { CacheSpec, CacheStats } from "../../src/kv/cache.ts";
import type { CacheStepFields, GpuCache, GpuCacheEnv } from "./types.ts";
import { storageBuffer } from "../buffers.ts";
import { type AttentionBindings, AttentionKernels, decodeSplit } from "../kernels/attention.ts";
import { KvAppendKernel } from "../kernels/kv_append.ts";

/** Splits of the decode attention (rows of the partial buffers per head). */
export const MAX_SPLITS = 512;

/**
 * Creates the exact f32 cache (compiles its kernels through the registry, allocates every buffer).
 *
 * @example
 * ```ts
 * const cache = await createExactGpuCache(env);
 * ```
 */
export async function createExactGpuCache(env: GpuCacheEnv): Promise<ExactGpuCache> {
  const s = env.shape;
  const attShape = {
    numHeads: s.numHeads,
    numKvHeads: s.numKvHeads,
    headDim: s.headDim,
    capacity: env.capacity,
    maxSplits: MAX_SPLITS,
  };
  const [att, app] = await Promise.all([
    AttentionKernels.create(env.reg, attShape),
    KvAppendKernel.create(env.reg, attShape),
  ]);
  return new ExactGpuCache(env, att, app);
}

/**
 * See the module doc.
 *
 * @example
 * ```ts
 * const cache: ExactGpuCache = await createExactGpuCache(env);
 * ```
 */
export class ExactGpuCache implements GpuCache {
  readonly spec: CacheSpec = { method: "exact", dtype: "f32" };
  readonly capacity: number;
  readonly #env: GpuCacheEnv;
  readonly #att: AttentionKernels;
  readonly #app: KvAppendKernel;
  /** per layer: [nKv, capacity, D] f32 */ readonly #k: GPUBuffer[] = [];
  /** per layer: [nKv, capacity, D] f32 */ readonly #v: GPUBuffer[] = [];
  /** [nH, MAX_SPLITS, D] f32 */ readonly #partAcc: GPUBuffer;
  /** [nH, MAX_SPLITS, 2] f32 */ readonly #partStats: GPUBuffer;
  readonly #attBind: AttentionBindings[] = [];
  readonly #appBind: GPUBindGroup[] = [];
  #length = 0;

  constructor(env: GpuCacheEnv, att: AttentionKernels, app: KvAppendKernel) {
    this.#env = env;
    this.#att = att;
    this.#app = app;
    this.capacity = env.capacity;
    const { numLayers, numHeads, numKvHeads, headDim } = env.shape;
    const ctx = env.reg.ctx;
    const bytes = 4 * numKvHeads * env.capacity * headDim;
    this.#partAcc = storageBuffer(
      ctx,
      `decode partial acc [${numHeads}, ${MAX_SPLITS}, ${headDim}] f32`,
      4 * numHeads * MAX_SPLITS * headDim,
    );
    this.#partStats = storageBuffer(
      ctx,
      `decode partial stats [${numHeads}, ${MAX_SPLITS}, 2] f32`,
      4 * numHeads * MAX_SPLITS * 2,
    );
    for (let l = 0; l < numLayers; l++) {
      const shape = `[${numKvHeads}, ${env.capacity}, ${headDim}] f32`;
      const k = storageBuffer(ctx, `layer ${l} K cache ${shape}`, bytes);
      const v = storageBuffer(ctx, `layer ${l} V cache ${shape}`, bytes);
      this.#k.push(k);
      this.#v.push(v);
      this.#attBind.push(
        att.bind({
          qkv: env.io.qkv,
          cacheK: k,
          cacheV: v,
          out: env.io.out,
          partAcc: this.#partAcc,
          partStats: this.#partStats,
        }),
      );
      this.#appBind.push(app.bind(env.io.qkv, k, v));
    }
  }

  get length(): number {
    return this.#length;
  }

  /** The K and V buffers of `layer` ([nKv, capacity, D] f32 each), for tests and tools. */
  layerBuffers(layer: number): { k: GPUBuffer; v: GPUBuffer } {
    return { k: this.#k[layer], v: this.#v[layer] };
  }

  stepFields(T: number, P: number): CacheStepFields {
    return decodeSplit(P + T, MAX_SPLITS);
  }

  encodeAttention(pass: GPUComputePassEncoder, layer: number, T: number, P: number): void {
    if (T === 1) this.#att.encodeDecode(pass, this.#attBind[layer], this.stepFields(T, P).nSplits);
    else this.#att.encodePrefill(pass, this.#attBind[layer], T);
  }

  encodeAppend(pass: GPUComputePassEncoder, layer: number, T: number, _P: number): void {
    this.#app.encode(pass, this.#appBind[layer], T);
  }

  commit(T: number): void {
    this.#length += T;
  }

  truncate(length: number): void {
    this.#length = Math.min(this.#length, Math.max(0, length));
  }

  stats(): CacheStats {
    const perLayer = this.#k[0] ? this.#k[0].size + this.#v[0].size : 0;
    const bytes = perLayer * this.#k.length;
    return {
      method: "exact-f32",
      tokens: this.#length,
      bytes,
      peakBytes: bytes,
      scratchBytes: this.#partAcc.size + this.#partStats.size,
      layers: this.#k.map(() => ({ bits: 32, tokens: this.#length, bytes: perLayer, budget: null })),
      events: [],
    };
  }

  reset(): void {
    this.#length = 0;
  }

  destroy(): void {
    for (const b of [...this.#k, ...this.#v, this.#partAcc, this.#partStats]) b.destroy();
  }
}
