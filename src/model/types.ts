/**
 * Model description types shared by the loader, the backends and the CLI.
 * @module
 */

/** RoPE frequency scaling, as Hugging Face configs describe it. */
export type RopeScaling =
  | { type: "default" }
  | { type: "linear"; factor: number }
  | {
    type: "llama3";
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositionEmbeddings: number;
  };

/** The normalized configuration of a supported decoder-only model. */
export interface ModelConfig {
  /** `architectures[0]` of config.json. */
  architecture: "LlamaForCausalLM" | "Qwen2ForCausalLM";
  /** `vocab_size`: rows of the embedding and LM head. */
  vocabSize: number;
  /** `hidden_size`: width of the residual stream. */
  hiddenSize: number;
  /** `intermediate_size`: width of the MLP (gate/up outputs). */
  intermediateSize: number;
  /** `num_hidden_layers`: decoder layers. */
  numLayers: number;
  /** `num_attention_heads`: query heads. */
  numHeads: number;
  /** `num_key_value_heads` (default `numHeads`): key/value heads, a divisor of `numHeads` (GQA). */
  numKvHeads: number;
  /** Explicit `head_dim`, or hidden_size / num_attention_heads. */
  headDim: number;
  /** `rms_norm_eps`: epsilon of every RMSNorm. */
  rmsNormEps: number;
  /** `rope_theta` (default 10000): RoPE base frequency. */
  ropeTheta: number;
  /** `rope_scaling`, normalized (`{ type: "default" }` when absent). */
  ropeScaling: RopeScaling;
  /** `max_position_embeddings`: the model's context length in tokens. */
  maxPositionEmbeddings: number;
  /** `tie_word_embeddings` (default false): the LM head is the embedding matrix. */
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry biases (Qwen2 always; Llama when `attention_bias`). */
  attentionBias: boolean;
  /** `bos_token_id`, or null when the config has none. */
  bosTokenId: number | null;
  /** Generation stops at any of these. */
  eosTokenIds: number[];
}

/** One decoder layer's weights, f32, row-major [out, in] like PyTorch's nn.Linear. */
export interface LayerWeights {
  /** [hidden] */ inputNorm: Float32Array;
  /** [numHeads*headDim, hidden] */ q: Float32Array;
  /** [numKvHeads*headDim, hidden] */ k: Float32Array;
  /** [numKvHeads*headDim, hidden] */ v: Float32Array;
  /** [numHeads*headDim] or null */ qBias: Float32Array | null;
  /** [numKvHeads*headDim] or null */ kBias: Float32Array | null;
  /** [numKvHeads*headDim] or null */ vBias: Float32Array | null;
  /** [hidden, numHeads*headDim] */ o: Float32Array;
  /** [hidden] */ postNorm: Float32Array;
  /** [intermediate, hidden] */ gate: Float32Array;
  /** [intermediate, hidden] */ up: Float32Array;
  /** [hidden, intermediate] */ down: Float32Array;
}

/** All weights of a model, converted to f32. */
export interface ModelWeights {
  /** [vocab, hidden] */ embed: Float32Array;
  /** Decoder layers in order, `numLayers` entries. */
  layers: LayerWeights[];
  /** [hidden] */ finalNorm: Float32Array;
  /** [vocab, hidden]; the same array as `embed` when embeddings are tied. */
  lmHead: Float32Array;
}

/** A model loaded from a Hugging Face directory. */
export interface LoadedModel {
  /** The directory it came from. */
  dir: string;
  /** The normalized `config.json`. */
  config: ModelConfig;
  /** All weights, converted to f32. */
  weights: ModelWeights;
  /**
   * Hex SHA-256 over the normalized config and every tensor's name, dtype, shape and bytes: artifacts
   * (plans, sensitivities, calibrations) record it and are refused for any other model.
   */
  fingerprint: string;
  /** Path of tokenizer.json, or null when the directory has none. */
  tokenizerPath: string | null;
}
