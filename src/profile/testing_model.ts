/**
 * A small random-weight model built in memory, for tests of the gradient pass and the profiler (no files).
 *
 * @example
 * ```ts
 * import { randomModel } from "./testing_model.ts";
 * const m = randomModel({ seed: 1, attentionBias: true });
 * m.config.numLayers; // 2
 * ```
 * @module
 */
import type { LayerWeights, LoadedModel, ModelConfig } from "../model/types.ts";
import { mulberry32 } from "../sampling.ts";

/** Overrides of the default test configuration (2 layers, hidden 32, 4 q / 2 kv heads, head_dim 8, vocab 50). */
export interface RandomModelSpec extends Partial<ModelConfig> {
  seed?: number;
  /** Standard deviation of the linear weights (default 0.35: attention far from uniform). */
  weightScale?: number;
}

/**
 * Builds a {@link LoadedModel} with seeded random weights (approximately normal, via a sum of uniforms).
 * The fingerprint is `"random-<seed>"`; `dir` is `"(memory)"`.
 *
 * @example
 * ```ts
 * import { randomModel } from "./testing_model.ts";
 * const m = randomModel({ seed: 3, ropeScaling: { type: "linear", factor: 2 } });
 * ```
 */
export function randomModel(spec: RandomModelSpec = {}): LoadedModel {
  const { seed = 0, weightScale = 0.35, ...over } = spec;
  const config: ModelConfig = {
    architecture: "Qwen2ForCausalLM",
    vocabSize: 50,
    hiddenSize: 32,
    intermediateSize: 48,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 8,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    ropeScaling: { type: "default" },
    maxPositionEmbeddings: 4096,
    tieWordEmbeddings: false,
    attentionBias: true,
    bosTokenId: null,
    eosTokenIds: [],
    ...over,
  };
  const rand = mulberry32(seed);
  const normal = () => (rand() + rand() + rand() + rand() - 2) * Math.sqrt(3);
  const mat = (n: number, sd = weightScale) => Float32Array.from({ length: n }, () => sd * normal());
  const norm = (n: number) => Float32Array.from({ length: n }, () => 1 + 0.2 * normal());
  const H = config.hiddenSize, q = config.numHeads * config.headDim, kv = config.numKvHeads * config.headDim;
  const I = config.intermediateSize;
  const bias = (n: number) => (config.attentionBias ? mat(n, 0.3) : null);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    layers.push({
      inputNorm: norm(H),
      q: mat(q * H),
      k: mat(kv * H),
      v: mat(kv * H),
      qBias: bias(q),
      kBias: bias(kv),
      vBias: bias(kv),
      o: mat(H * q, weightScale / 2),
      postNorm: norm(H),
      gate: mat(I * H),
      up: mat(I * H),
      down: mat(H * I, weightScale / 2),
    });
  }
  const embed = mat(config.vocabSize * H, 1);
  return {
    dir: "(memory)",
    config,
    weights: {
      embed,
      layers,
      finalNorm: norm(H),
      lmHead: config.tieWordEmbeddings ? embed : mat(config.vocabSize * H),
    },
    fingerprint: `random-${seed}`,
    tokenizerPath: null,
  };
}
