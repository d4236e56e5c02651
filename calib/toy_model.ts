/**
 * A small random decoder built in memory (no files), for calibration tests: Llama-style, or Qwen2-style with
 * q/k/v biases. Some key channels get a large gain so that smoothing has outliers to move.
 *
 * @example
 * ```ts
 * import { makeToyModel } from "./toy_model.ts";
 * const model = makeToyModel({ seed: 1, biases: true });
 * model.config.numKvHeads; // 2
 * ```
 * @module
 */
import type { LayerWeights, LoadedModel, ModelConfig } from "../src/model/types.ts";
import { mulberry32 } from "../src/sampling.ts";

/** Shape and seed of a toy model. */
export interface ToyModelOptions {
  seed?: number;
  /** Qwen2-style q/k/v biases (default false). */
  biases?: boolean;
  numLayers?: number;
  hiddenSize?: number;
  numHeads?: number;
  numKvHeads?: number;
  headDim?: number;
  vocabSize?: number;
  intermediateSize?: number;
  /** Gain of the outlier key channels (rows 3 and headDim/2 + 3 of each KV head; default 8). */
  outlierGain?: number;
}

/**
 * Builds a random {@link LoadedModel} (normal weights of std 1/sqrt(fan-in), norms around 1). Its fingerprint
 * is `toy:<options>` and its `dir` is `memory:toy`.
 *
 * @example
 * ```ts
 * import { makeToyModel } from "./toy_model.ts";
 * import { CpuForward } from "../cpu/forward.ts";
 * import { createCache, kvShapeOf } from "../src/kv/factory.ts";
 * const m = makeToyModel();
 * new CpuForward(m).forward([1, 2, 3], [0, 1, 2], createCache({ method: "exact" }, kvShapeOf(m.config)));
 * ```
 */
export function makeToyModel(options: ToyModelOptions = {}): LoadedModel {
  const seed = options.seed ?? 0;
  const biases = options.biases ?? false;
  const nL = options.numLayers ?? 2, H = options.hiddenSize ?? 64, nH = options.numHeads ?? 4;
  const nKv = options.numKvHeads ?? 2, D = options.headDim ?? 16, V = options.vocabSize ?? 97;
  const I = options.intermediateSize ?? 96, gain = options.outlierGain ?? 8;
  const rand = mulberry32(seed * 7919 + 17);
  const normal = () => {
    const u = Math.max(rand(), 1e-12), v = rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const mat = (rows: number, cols: number, std = 1 / Math.sqrt(cols)) =>
    Float32Array.from({ length: rows * cols }, () => normal() * std);
  const vec = (n: number, mean: number, std: number) =>
    Float32Array.from({ length: n }, () => mean + normal() * std);
  const config: ModelConfig = {
    architecture: biases ? "Qwen2ForCausalLM" : "LlamaForCausalLM",
    vocabSize: V,
    hiddenSize: H,
    intermediateSize: I,
    numLayers: nL,
    numHeads: nH,
    numKvHeads: nKv,
    headDim: D,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    ropeScaling: { type: "default" },
    maxPositionEmbeddings: 1 << 20,
    tieWordEmbeddings: false,
    attentionBias: biases,
    bosTokenId: null,
    eosTokenIds: [],
  };
  const layers: LayerWeights[] = [];
  for (let l = 0; l < nL; l++) {
    const k = mat(nKv * D, H);
    const outlier = Math.min(3, D / 2 - 1);
    for (let h = 0; h < nKv; h++) {
      for (const c of [outlier, outlier + D / 2]) {
        const row = (h * D + c) * H;
        for (let i = 0; i < H; i++) k[row + i] *= gain;
      }
    }
    layers.push({
      inputNorm: vec(H, 1, 0.1),
      q: mat(nH * D, H),
      k,
      v: mat(nKv * D, H),
      qBias: biases ? vec(nH * D, 0, 0.5) : null,
      kBias: biases ? vec(nKv * D, 0, 0.5) : null,
      vBias: biases ? vec(nKv * D, 0, 0.5) : null,
      o: mat(H, nH * D),
      postNorm: vec(H, 1, 0.1),
      gate: mat(I, H),
      up: mat(I, H),
      down: mat(H, I),
    });
  }
  const embed = mat(V, H, 1);
  return {
    dir: "memory:toy",
    config,
    weights: { embed, layers, finalNorm: vec(H, 1, 0.1), lmHead: mat(V, H) },
    fingerprint: `toy:${JSON.stringify({ seed, biases, nL, H, nH, nKv, D, V, I, gain })}`,
    tokenizerPath: null,
  };
}
