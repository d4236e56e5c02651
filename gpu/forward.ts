/**
 * The GPU forward pass (mirrors cpu/forward.ts): records one step of T tokens into a compute pass.
 *
 * Per step (group 1 = the step's uniform slot):
 *   embed(ids → h); per layer: rmsnorm(h → xn) → matmul qkv (+bias) → rope(q, k) → cache attention → cache
 *   append → matmul o, residual-added into h → rmsnorm(h → xn) → matmul gate|up → swiglu (fused into the
 *   gate|up matmul when T = 1) → matmul down,
 *   residual-added into h; then rmsnorm of the LAST row (→ xnLast) → LM head matvec (→ logits) → optional
 *   argmax (→ ids[step.idOut]).
 * Decode (T = 1) uses the matrix-vector matmul and split decode attention; T > 1 the tiled matmul and
 * prefill attention. The residual adds are fused into the o/down matmul epilogues.
 *
 * Activation buffers (allocated once; Tmax = the prefill chunk):
 * | buffer | shape | type |
 * |---|---|---|
 * | ids | [idSlots] token ids (prefill: ids[0..T); greedy chain: ids[step.idBase] → step, argmax → ids[step.idOut], two regions: engine.decodeGreedyMany) | u32 |
 * | flags | [idSlots] non-finite logit count written next to each argmax | u32 |
 * | h | [Tmax, hidden] residual stream | f32 |
 * | xn | [Tmax, hidden] normed | f32 |
 * | qkv | [Tmax, (nH + 2·nKv)·D] | f32 |
 * | att | [Tmax, nH·D] | f32 |
 * | gu | [Tmax, 2·I] gate|up | f32 |
 * | act | [Tmax, I] | f32 |
 * | xnLast | [hidden] last row normed | f32 |
 * | logits | [vocab] | f32 |
 * | ropeCos, ropeSin | [capacity, D/2] from src/model/rope.ts `ropeTable` | f32 |
 *
 * @example
 * ```ts
 * const fwd = await GpuForward.create(reg, model, weights, { capacity: 4096, maxTokens: 256, idSlots: 258 }, cacheFactory);
 * const pass = encoder.beginComputePass();
 * pass.setBindGroup(1, steps.bindGroup, [steps.offset(0)]);
 * fwd.encodeStep(pass, T, P, false);
 * pass.end();
 * ```
 * @module
 */
import type { LoadedModel, ModelConfig } from "../src/model/types.ts";
import type { KernelRegistry } from "./registry.ts";
import type { GpuWeights } from "./weights.ts";
import type { GpuCache, GpuCacheEnv } from "./cache/types.ts";
import { storageBuffer, uploadBuffer } from "./buffers.ts";
import { ropeInvFreq, ropeTable } from "../src/model/rope.ts";
import { MatmulKernel } from "./kernels/matmul.ts";
import { RmsnormKernel } from "./kernels/rmsnorm.ts";
import { RopeKernel } from "./kernels/rope.ts";
import { SwigluKernel } from "./kernels/swiglu.ts";
import { EmbedKernel } from "./kernels/embed.ts";
import { ArgmaxKernel } from "./kernels/argmax.ts";
import { GpuError } from "../src/errors.ts";

/** Sizes fixed at creation. */
export interface ForwardSizes {
  /** Tokens of context (cache capacity, RoPE table rows). */
  capacity: number;
  /** Most tokens per step (the prefill chunk). */
  maxTokens: number;
  /** Entries of the ids/flags buffers. */
  idSlots: number;
}

interface LayerBinds {
  norm1: GPUBindGroup;
  qkv: GPUBindGroup;
  rope: GPUBindGroup;
  o: GPUBindGroup;
  norm2: GPUBindGroup;
  gateUp: GPUBindGroup;
  gateUpSwiglu: GPUBindGroup;
  swiglu: GPUBindGroup;
  down: GPUBindGroup;
}

interface Kernels {
  embed: EmbedKernel;
  norm: RmsnormKernel;
  normLast: RmsnormKernel;
  qkv: MatmulKernel;
  rope: RopeKernel;
  o: MatmulKernel;
  gateUp: MatmulKernel;
  gateUpSwiglu: MatmulKernel;
  swiglu: SwigluKernel;
  down: MatmulKernel;
  lmHead: MatmulKernel;
  argmax: ArgmaxKernel;
}

/** Activations of {@link GpuForward} (see the module doc for shapes). */
export interface Activations {
  /** u32 [idSlots] token ids: the step's input ids, and each argmax's output (ids[step.idOut]). */
  ids: GPUBuffer;
  /** u32 [idSlots] non-finite logit count written next to each argmax. */
  flags: GPUBuffer;
  /** f32 [Tmax, hidden] residual stream. */
  h: GPUBuffer;
  /** f32 [Tmax, hidden] RMS-normed `h` (input of the qkv and gate|up matmuls). */
  xn: GPUBuffer;
  /** f32 [Tmax, (numHeads + 2·numKvHeads)·headDim] q|k|v projections (q and k rotated in place by RoPE). */
  qkv: GPUBuffer;
  /** f32 [Tmax, numHeads·headDim] attention output (written by the cache, input of o_proj). */
  att: GPUBuffer;
  /** f32 [Tmax, 2·intermediate] gate|up projections (T > 1). */
  gu: GPUBuffer;
  /** f32 [Tmax, intermediate] SwiGLU output (input of the down matmul). */
  act: GPUBuffer;
  /** f32 [hidden] RMS-normed last row of `h`. */
  xnLast: GPUBuffer;
  /** f32 [vocab] logits of the step's last token. */
  logits: GPUBuffer;
  /** f32 [capacity, headDim / 2] RoPE cosines per position. */
  ropeCos: GPUBuffer;
  /** f32 [capacity, headDim / 2] RoPE sines per position. */
  ropeSin: GPUBuffer;
}

function checkSupported(c: ModelConfig): void {
  const bad: string[] = [];
  if (c.hiddenSize % 8 !== 0) bad.push(`hidden_size ${c.hiddenSize} is not a multiple of 8`);
  if (c.intermediateSize % 8 !== 0) {
    bad.push(`intermediate_size ${c.intermediateSize} is not a multiple of 8`);
  }
  if ((c.numHeads * c.headDim) % 8 !== 0) {
    bad.push(`num_heads·head_dim ${c.numHeads * c.headDim} is not a multiple of 8`);
  }
  if (c.headDim % 4 !== 0) bad.push(`head_dim ${c.headDim} is not a multiple of 4`);
  if (bad.length > 0) throw new GpuError(`the WebGPU kernels do not support this model: ${bad.join("; ")}`);
}

/**
 * Records forward steps of one model over one {@link GpuCache}. Made by {@link GpuForward.create}; one
 * `encodeStep` records the whole step (all layers, then the logits of the last token) into a compute pass.
 *
 * @example
 * ```ts
 * import { GpuForward } from "./forward.ts";
 * import { acquireGpu } from "./device.ts";
 * import { registryFor } from "./registry.ts";
 * import { uploadWeights } from "./weights.ts";
 * import { createExactGpuCache } from "./cache/exact.ts";
 * import { loadModel } from "../src/model/load.ts";
 * const model = await loadModel("models/tiny-lm");
 * const ctx = await acquireGpu();
 * const reg = registryFor(ctx);
 * const sizes = { capacity: 4096, maxTokens: 256, idSlots: 258 };
 * const fwd = await GpuForward.create(reg, model, uploadWeights(ctx, model), sizes, createExactGpuCache);
 * // per step, with the step's uniform slot bound as group 1 (see gpu/step.ts):
 * // fwd.encodeStep(pass, T, P, false);
 * fwd.destroy();
 * ```
 */
export class GpuForward {
  /** The model's configuration. */
  readonly config: ModelConfig;
  /** Capacity, tokens per step and id slots it was created with. */
  readonly sizes: ForwardSizes;
  /** The activation buffers (see {@link Activations}). */
  readonly act: Activations;
  /** The cache the steps attend over and append to (built by `create`'s `makeCache`). */
  readonly cache: GpuCache;
  readonly #k: Kernels;
  readonly #layers: LayerBinds[];
  readonly #embedBind: GPUBindGroup;
  readonly #normLastBind: GPUBindGroup;
  readonly #lmHeadBind: GPUBindGroup;
  readonly #argmaxBind: GPUBindGroup;

  private constructor(
    config: ModelConfig,
    sizes: ForwardSizes,
    act: Activations,
    cache: GpuCache,
    k: Kernels,
    weights: GpuWeights,
  ) {
    this.config = config;
    this.sizes = sizes;
    this.act = act;
    this.cache = cache;
    this.#k = k;
    this.#layers = weights.layers.map((L) => ({
      norm1: k.norm.bind(act.h, L.inputNorm, act.xn),
      qkv: k.qkv.bind({ x: act.xn, w: L.qkv.buffer, out: act.qkv, bias: L.qkvBias ?? undefined }),
      rope: k.rope.bind(act.qkv, act.ropeCos, act.ropeSin),
      o: k.o.bind({ x: act.att, w: L.o.buffer, out: act.h }),
      norm2: k.norm.bind(act.h, L.postNorm, act.xn),
      gateUp: k.gateUp.bind({ x: act.xn, w: L.gateUp.buffer, out: act.gu }),
      gateUpSwiglu: k.gateUpSwiglu.bind({ x: act.xn, w: L.gateUp.buffer, out: act.act }),
      swiglu: k.swiglu.bind(act.gu, act.act),
      down: k.down.bind({ x: act.act, w: L.down.buffer, out: act.h }),
    }));
    this.#embedBind = k.embed.bind(act.ids, weights.embed.buffer, act.h);
    this.#normLastBind = k.normLast.bind(act.h, weights.finalNorm, act.xnLast);
    this.#lmHeadBind = k.lmHead.bind({ x: act.xnLast, w: weights.lmHead.buffer, out: act.logits });
    this.#argmaxBind = k.argmax.bind(act.logits, act.ids, act.flags);
  }

  /**
   * Allocates the activations, builds the cache with `makeCache` and compiles every kernel.
   *
   * @example
   * ```ts
   * const fwd = await GpuForward.create(reg, model, weights, sizes, createExactGpuCache);
   * ```
   */
  static async create(
    reg: KernelRegistry,
    model: LoadedModel,
    weights: GpuWeights,
    sizes: ForwardSizes,
    makeCache: (env: GpuCacheEnv) => Promise<GpuCache>,
  ): Promise<GpuForward> {
    const c = model.config;
    checkSupported(c);
    const ctx = reg.ctx;
    const H = c.hiddenSize, D = c.headDim, nH = c.numHeads, nKv = c.numKvHeads, I = c.intermediateSize;
    const V = c.vocabSize, Tm = sizes.maxTokens, QKV = (nH + 2 * nKv) * D;
    const { cos, sin } = ropeTable(ropeInvFreq(c), Array.from({ length: sizes.capacity }, (_, i) => i));
    const f32 = (label: string, n: number) => storageBuffer(ctx, `${label} f32`, 4 * n);
    const act: Activations = {
      ids: storageBuffer(ctx, `ids [${sizes.idSlots}] u32`, 4 * sizes.idSlots),
      flags: storageBuffer(ctx, `flags [${sizes.idSlots}] u32`, 4 * sizes.idSlots),
      h: f32(`h [${Tm}, ${H}]`, Tm * H),
      xn: f32(`xn [${Tm}, ${H}]`, Tm * H),
      qkv: f32(`qkv [${Tm}, ${QKV}]`, Tm * QKV),
      att: f32(`att [${Tm}, ${nH * D}]`, Tm * nH * D),
      gu: f32(`gate|up [${Tm}, ${2 * I}]`, Tm * 2 * I),
      act: f32(`act [${Tm}, ${I}]`, Tm * I),
      xnLast: f32(`xnLast [${H}]`, H),
      logits: f32(`logits [${V}]`, V),
      ropeCos: uploadBuffer(
        ctx,
        `rope cos [${sizes.capacity}, ${D / 2}] f32`,
        cos as Float32Array<ArrayBuffer>,
      ),
      ropeSin: uploadBuffer(
        ctx,
        `rope sin [${sizes.capacity}, ${D / 2}] f32`,
        sin as Float32Array<ArrayBuffer>,
      ),
    };
    const L0 = weights.layers[0];
    const mm = (
      K: number,
      N: number,
      format: "bf16" | "f32",
      bias: boolean,
      residual: boolean,
      swiglu = false,
    ) => MatmulKernel.create(reg, { K, N, weights: format, bias, residual, swiglu });
    const [embed, norm, normLast, qkv, rope, o, gateUp, gateUpSwiglu, swiglu, down, lmHead, argmax, cache] =
      await Promise.all([
        EmbedKernel.create(reg, { hidden: H, weights: weights.embed.format }),
        RmsnormKernel.create(reg, { dim: H, eps: c.rmsNormEps, lastOnly: false }),
        RmsnormKernel.create(reg, { dim: H, eps: c.rmsNormEps, lastOnly: true }),
        mm(H, QKV, L0.qkv.format, L0.qkvBias !== null, false),
        RopeKernel.create(reg, { heads: nH + nKv, headDim: D, rowStride: QKV }),
        mm(nH * D, H, L0.o.format, false, true),
        mm(H, 2 * I, L0.gateUp.format, false, false),
        mm(H, I, L0.gateUp.format, false, false, true),
        SwigluKernel.create(reg, { intermediate: I }),
        mm(I, H, L0.down.format, false, true),
        mm(H, V, weights.lmHead.format, false, false),
        ArgmaxKernel.create(reg, { vocab: V }),
        makeCache({
          reg,
          shape: { numLayers: c.numLayers, numHeads: nH, numKvHeads: nKv, headDim: D },
          capacity: sizes.capacity,
          io: { qkv: act.qkv, out: act.att },
        }),
      ]);
    for (const L of weights.layers) {
      if (
        L.qkv.format !== L0.qkv.format || L.o.format !== L0.o.format ||
        L.gateUp.format !== L0.gateUp.format ||
        L.down.format !== L0.down.format
      ) {
        throw new GpuError(
          "the WebGPU engine needs every layer's weights in the same format (all bf16 or all f32)",
        );
      }
    }
    const k: Kernels = {
      embed,
      norm,
      normLast,
      qkv,
      rope,
      o,
      gateUp,
      gateUpSwiglu,
      swiglu,
      down,
      lmHead,
      argmax,
    };
    return new GpuForward(c, sizes, act, cache, k, weights);
  }

  /**
   * Records one step of `T` tokens after `P` cached ones (the step's uniform slot must already be bound as
   * group 1 and hold T, P, pos0 = P, idBase, idOut and the cache's split fields). With `argmax`, the step
   * ends by writing the chosen token to ids[step.idOut].
   *
   * @example
   * ```ts
   * fwd.encodeStep(pass, 1, position, true);
   * ```
   */
  encodeStep(pass: GPUComputePassEncoder, T: number, P: number, argmax: boolean): void {
    const k = this.#k;
    k.embed.encode(pass, this.#embedBind, T);
    for (let l = 0; l < this.#layers.length; l++) {
      const b = this.#layers[l];
      k.norm.encode(pass, b.norm1, T);
      k.qkv.encode(pass, b.qkv, T);
      k.rope.encode(pass, b.rope, T);
      this.cache.encodeAttention(pass, l, T, P);
      this.cache.encodeAppend(pass, l, T, P);
      k.o.encode(pass, b.o, T);
      k.norm.encode(pass, b.norm2, T);
      if (T === 1) {
        k.gateUpSwiglu.encode(pass, b.gateUpSwiglu, 1);
      } else {
        k.gateUp.encode(pass, b.gateUp, T);
        k.swiglu.encode(pass, b.swiglu, T);
      }
      k.down.encode(pass, b.down, T);
    }
    k.normLast.encode(pass, this.#normLastBind, 1);
    k.lmHead.encode(pass, this.#lmHeadBind, 1);
    if (argmax) k.argmax.encode(pass, this.#argmaxBind);
  }

  /** Frees the activations and the cache. */
  destroy(): void {
    for (const b of Object.values(this.act)) (b as GPUBuffer).destroy();
    this.cache.destroy();
  }
}
