/**
 * The CPU forward pass of a Llama/Qwen2 decoder: embedding, per layer RMSNorm → q/k/v (+bias) → RoPE →
 * attention over the KV cache → o_proj → residual → RMSNorm → SwiGLU MLP → residual; final RMSNorm → LM head.
 * Positions are explicit so calibration can stretch them (positional interpolation).
 * @module
 */
import type { LoadedModel, ModelConfig } from "../src/model/types.ts";
import type { KVCache } from "../src/kv/cache.ts";
import { applyRope, ropeInvFreq, ropeTable } from "../src/model/rope.ts";
import { addInPlace, matmul, rmsnorm, swiglu } from "./ops.ts";
import { attention } from "./attention.ts";
import { InputError, NonFiniteError } from "../src/errors.ts";

/** Observers of intermediate tensors (used by calibration and profiling). Arrays are views: copy to keep. */
export interface ForwardHooks {
  /** Post-RoPE keys and values of the new tokens of `layer`: [T, numKvHeads, headDim] each. */
  onKV?(layer: number, k: Float32Array, v: Float32Array, T: number): void;
  /** Post-RoPE queries of `layer`: [T, numHeads, headDim]. */
  onQuery?(layer: number, q: Float32Array, T: number): void;
  /** Hidden states entering `layer`: [T, hidden]. */
  onLayerInput?(layer: number, h: Float32Array, T: number): void;
}

/** What logits to compute. */
export type LogitsMode = "last" | "all" | "none";

/** Options of {@link CpuForward.forward}. */
export interface ForwardOptions {
  /** Which logits to return (default `"last"`). */
  logits?: LogitsMode;
  /** Observers of keys/values, queries and layer inputs. */
  hooks?: ForwardHooks;
  /** Called after each layer: (layers done, total layers). */
  onProgress?: (done: number, total: number) => void;
}

/**
 * A loaded model ready to run on the CPU. Stateless apart from the cache it is given.
 *
 * @example
 * ```ts
 * import { CpuForward } from "./forward.ts";
 * import { loadModel } from "../src/model/load.ts";
 * import { createCache, kvShapeOf } from "../src/kv/factory.ts";
 * const model = await loadModel("models/tiny-lm");
 * const fwd = new CpuForward(model);
 * const cache = createCache({ method: "exact" }, kvShapeOf(model.config));
 * const all = fwd.forward([85, 296, 270], [0, 1, 2], cache, { logits: "all" }); // [3, vocab_size]
 * ```
 */
export class CpuForward {
  /** The model's configuration. */
  readonly config: ModelConfig;
  /** The model whose weights it runs. */
  readonly model: LoadedModel;
  /** RoPE inverse frequencies, [headDim / 2] f32 (from the config's theta and scaling). */
  readonly invFreq: Float32Array;

  /** Prepares `model` for the CPU (computes the RoPE frequencies; weights are used in place). */
  constructor(model: LoadedModel) {
    this.model = model;
    this.config = model.config;
    this.invFreq = ropeInvFreq(model.config);
  }

  /**
   * Runs `ids` at `positions` (same length T) after the tokens already in `cache`.
   * Returns logits [vocab] ("last"), [T, vocab] ("all") or an empty array ("none").
   *
   * @example
   * ```ts
   * const fwd = new CpuForward(model);
   * const cache = createCache({ method: "exact" }, kvShapeOf(model.config));
   * const logits = fwd.forward([85, 296], [0, 1], cache, { logits: "last" });
   * ```
   */
  forward(
    ids: ArrayLike<number>,
    positions: ArrayLike<number>,
    cache: KVCache,
    options: ForwardOptions = {},
  ): Float32Array {
    const c = this.config;
    const w = this.model.weights;
    const T = ids.length;
    if (T === 0) throw new InputError("forward needs at least one token (got an empty sequence)");
    if (positions.length !== T) {
      throw new InputError(`positions has ${positions.length} entries for ${T} tokens`);
    }
    const H = c.hiddenSize, nH = c.numHeads, nKv = c.numKvHeads, D = c.headDim, I = c.intermediateSize;
    for (let t = 0; t < T; t++) {
      const id = ids[t];
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) {
        throw new InputError(`token id ${id} at index ${t} is outside the vocabulary [0, ${c.vocabSize})`);
      }
    }
    // Activations, all row-major per token.
    const h = new Float32Array(T * H); // [T, hidden] residual stream
    const xn = new Float32Array(T * H); // [T, hidden] normed
    const q = new Float32Array(T * nH * D); // [T, nH, D]
    const k = new Float32Array(T * nKv * D); // [T, nKv, D]
    const v = new Float32Array(T * nKv * D); // [T, nKv, D]
    const att = new Float32Array(T * nH * D); // [T, nH, D]
    const o = new Float32Array(T * H); // [T, hidden]
    const gate = new Float32Array(T * I); // [T, intermediate]
    const up = new Float32Array(T * I); // [T, intermediate]
    // Refuse a step that would outgrow any layer's budget before any layer stores anything.
    cache.checkCapacity?.(T);
    const past0 = cache.length(0);
    const scores = new Float64Array(2 * (past0 + T));
    for (let t = 0; t < T; t++) h.set(w.embed.subarray(ids[t] * H, (ids[t] + 1) * H), t * H);
    const { cos, sin } = ropeTable(this.invFreq, positions);

    for (let l = 0; l < c.numLayers; l++) {
      const L = w.layers[l];
      options.hooks?.onLayerInput?.(l, h, T);
      rmsnorm(xn, h, T, H, L.inputNorm, c.rmsNormEps);
      matmul(q, xn, T, H, L.q, nH * D, L.qBias);
      matmul(k, xn, T, H, L.k, nKv * D, L.kBias);
      matmul(v, xn, T, H, L.v, nKv * D, L.vBias);
      applyRope(q, T, nH, D, cos, sin);
      applyRope(k, T, nKv, D, cos, sin);
      options.hooks?.onQuery?.(l, q, T);
      options.hooks?.onKV?.(l, k, v, T);
      cache.observeQuery?.(l, q, T);
      const past = cache.view(l);
      attention(
        att,
        q,
        past,
        k,
        v,
        T,
        nH,
        nKv,
        D,
        past.length + T <= scores.length ? scores : new Float64Array(past.length + T),
      );
      cache.append(l, k, v, T);
      matmul(o, att, T, nH * D, L.o, H, null);
      addInPlace(h, o, T * H);
      rmsnorm(xn, h, T, H, L.postNorm, c.rmsNormEps);
      matmul(gate, xn, T, H, L.gate, I, null);
      matmul(up, xn, T, H, L.up, I, null);
      swiglu(gate, up, T * I);
      matmul(o, gate, T, I, L.down, H, null);
      addInPlace(h, o, T * H);
      options.onProgress?.(l + 1, c.numLayers);
    }
    const mode = options.logits ?? "last";
    if (mode === "none") return new Float32Array(0);
    const first = mode === "last" ? T - 1 : 0;
    const n = T - first;
    const hs = h.subarray(first * H);
    rmsnorm(xn, hs, n, H, w.finalNorm, c.rmsNormEps);
    const logits = new Float32Array(n * c.vocabSize); // [n, vocab]
    matmul(logits, xn, n, H, w.lmHead, c.vocabSize, null);
    for (let i = 0; i < logits.length; i++) {
      if (!Number.isFinite(logits[i])) {
        throw new NonFiniteError(
          `logit ${i % c.vocabSize} of position ${first + Math.floor(i / c.vocabSize)} is ${logits[i]}`,
        );
      }
    }
    return logits;
  }
}
