/**
 * Reading and normalizing a Hugging Face `config.json` into a {@link ModelConfig}. Only Llama and Qwen2
 * decoder-only models with full attention, SiLU MLPs and default / linear / llama3 RoPE are accepted.
 *
 * @example
 * ```ts
 * import { readConfig } from "./config.ts";
 * const config = await readConfig("models/tiny-lm");
 * console.log(config.architecture, config.numLayers, config.headDim, config.ropeScaling);
 * ```
 * @module
 */
import { join } from "node:path";
import { ConfigError, UnsupportedArchitectureError } from "../errors.ts";
import type { ModelConfig, RopeScaling } from "./types.ts";

export type { ModelConfig, RopeScaling } from "./types.ts";

/** The `architectures[0]` values this engine runs. */
export const SUPPORTED_ARCHITECTURES: readonly ModelConfig["architecture"][] = [
  "LlamaForCausalLM",
  "Qwen2ForCausalLM",
];

const MODEL_TYPES: Record<string, ModelConfig["architecture"]> = {
  llama: "LlamaForCausalLM",
  qwen2: "Qwen2ForCausalLM",
};

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  if (v === undefined) return "undefined (missing)";
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function posInt(obj: Json, field: string, file: string, where = ""): number {
  const v = obj[field];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
    throw new ConfigError(`${file}: "${where}${field}" must be a positive integer, got ${show(v)}`);
  }
  return v;
}

function posFloat(obj: Json, field: string, file: string, where = ""): number {
  const v = obj[field];
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new ConfigError(`${file}: "${where}${field}" must be a positive number, got ${show(v)}`);
  }
  return v;
}

function optional(obj: Json, field: string): boolean {
  return obj[field] === undefined || obj[field] === null;
}

function tokenId(v: unknown, field: string, file: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new ConfigError(`${file}: "${field}" must be a non-negative integer token id, got ${show(v)}`);
  }
  return v;
}

function boolField(obj: Json, field: string, file: string, dflt: boolean): boolean {
  const v = obj[field];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean") {
    throw new ConfigError(`${file}: "${field}" must be true or false, got ${show(v)}`);
  }
  return v;
}

function architectureOf(json: Json, file: string): ModelConfig["architecture"] {
  const archs = json.architectures;
  let name: string | undefined;
  if (Array.isArray(archs) && typeof archs[0] === "string") name = archs[0];
  else if (typeof json.model_type === "string") {
    name = MODEL_TYPES[json.model_type];
    if (!name) {
      throw new UnsupportedArchitectureError(
        `${file}: unsupported model_type ${show(json.model_type)} (no architectures given); ` +
          `supported: ${SUPPORTED_ARCHITECTURES.join(", ")} (model_type ${
            Object.keys(MODEL_TYPES).join(", ")
          })`,
      );
    }
  }
  if (name === undefined) {
    throw new UnsupportedArchitectureError(
      `${file}: no "architectures" or "model_type" given; supported: ${SUPPORTED_ARCHITECTURES.join(", ")}`,
    );
  }
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(name)) {
    throw new UnsupportedArchitectureError(
      `${file}: unsupported architecture ${show(name)}; supported: ${SUPPORTED_ARCHITECTURES.join(", ")}`,
    );
  }
  return name as ModelConfig["architecture"];
}

/** RoPE theta and scaling from `rope_parameters` (newer form) or `rope_theta` + `rope_scaling` (older). */
function parseRope(json: Json, file: string): { ropeTheta: number; ropeScaling: RopeScaling } {
  const params = json.rope_parameters;
  if (!optional(json, "rope_parameters") && !isObject(params)) {
    throw new ConfigError(`${file}: "rope_parameters" must be an object, got ${show(params)}`);
  }
  let ropeTheta = 10000;
  if (isObject(params) && !optional(params, "rope_theta")) {
    ropeTheta = posFloat(params, "rope_theta", file, "rope_parameters.");
  } else if (!optional(json, "rope_theta")) ropeTheta = posFloat(json, "rope_theta", file);

  let scaling: Json | null = null;
  let where = "";
  if (isObject(params)) {
    scaling = params;
    where = "rope_parameters.";
  } else if (!optional(json, "rope_scaling")) {
    if (!isObject(json.rope_scaling)) {
      throw new ConfigError(
        `${file}: "rope_scaling" must be an object or null, got ${show(json.rope_scaling)}`,
      );
    }
    scaling = json.rope_scaling;
    where = "rope_scaling.";
  }
  if (scaling === null) return { ropeTheta, ropeScaling: { type: "default" } };

  const prf = scaling.partial_rotary_factor;
  if (prf !== undefined && prf !== null && prf !== 1) {
    throw new UnsupportedArchitectureError(
      `${file}: ${where}partial_rotary_factor ${show(prf)} is not supported (only 1: RoPE on the whole head)`,
    );
  }
  const type = scaling.rope_type ?? scaling.type ?? "default";
  if (typeof type !== "string") {
    throw new ConfigError(`${file}: "${where}rope_type" must be a string, got ${show(type)}`);
  }
  switch (type) {
    case "default":
      return { ropeTheta, ropeScaling: { type: "default" } };
    case "linear":
      return { ropeTheta, ropeScaling: { type: "linear", factor: posFloat(scaling, "factor", file, where) } };
    case "llama3": {
      const ropeScaling: RopeScaling = {
        type: "llama3",
        factor: posFloat(scaling, "factor", file, where),
        lowFreqFactor: posFloat(scaling, "low_freq_factor", file, where),
        highFreqFactor: posFloat(scaling, "high_freq_factor", file, where),
        originalMaxPositionEmbeddings: posInt(scaling, "original_max_position_embeddings", file, where),
      };
      if (ropeScaling.highFreqFactor <= ropeScaling.lowFreqFactor) {
        throw new ConfigError(
          `${file}: "${where}high_freq_factor" (${ropeScaling.highFreqFactor}) must exceed ` +
            `"low_freq_factor" (${ropeScaling.lowFreqFactor})`,
        );
      }
      return { ropeTheta, ropeScaling };
    }
    default:
      throw new UnsupportedArchitectureError(
        `${file}: unsupported RoPE scaling type ${
          show(type)
        } (${where}rope_type); supported: default, linear, llama3`,
      );
  }
}

/**
 * Normalizes a parsed `config.json`. `file` is only used in error messages.
 * Throws {@link ConfigError} for missing or invalid fields (naming field, value and file) and
 * {@link UnsupportedArchitectureError} for architectures or features this engine does not implement.
 *
 * @example
 * ```ts
 * import { parseConfig } from "./config.ts";
 * const c = parseConfig({
 *   architectures: ["LlamaForCausalLM"], vocab_size: 32, hidden_size: 16, intermediate_size: 32,
 *   num_hidden_layers: 2, num_attention_heads: 4, rms_norm_eps: 1e-5, max_position_embeddings: 128,
 * }, "config.json");
 * console.log(c.headDim, c.numKvHeads, c.ropeTheta); // 4 4 10000
 * ```
 */
export function parseConfig(json: unknown, file: string): ModelConfig {
  if (!isObject(json)) throw new ConfigError(`${file}: config must be a JSON object, got ${show(json)}`);
  const architecture = architectureOf(json, file);
  const isQwen2 = architecture === "Qwen2ForCausalLM";

  const act = json.hidden_act ?? "silu";
  if (act !== "silu") {
    throw new UnsupportedArchitectureError(`${file}: hidden_act ${show(act)} is not supported (only "silu")`);
  }
  if (json.mlp_bias === true) {
    throw new UnsupportedArchitectureError(
      `${file}: mlp_bias true is not supported (MLP projections without bias)`,
    );
  }
  if (isQwen2 && json.use_sliding_window === true) {
    throw new UnsupportedArchitectureError(
      `${file}: use_sliding_window true is not supported (sliding-window attention); only full attention`,
    );
  }
  if (Array.isArray(json.layer_types)) {
    const other = json.layer_types.find((t) => t !== "full_attention");
    if (other !== undefined) {
      throw new UnsupportedArchitectureError(
        `${file}: layer_types contains ${show(other)}; only "full_attention" is supported`,
      );
    }
  }

  const vocabSize = posInt(json, "vocab_size", file);
  const hiddenSize = posInt(json, "hidden_size", file);
  const intermediateSize = posInt(json, "intermediate_size", file);
  const numLayers = posInt(json, "num_hidden_layers", file);
  const numHeads = posInt(json, "num_attention_heads", file);
  const numKvHeads = optional(json, "num_key_value_heads")
    ? numHeads
    : posInt(json, "num_key_value_heads", file);
  if (numHeads % numKvHeads !== 0) {
    throw new ConfigError(
      `${file}: "num_attention_heads" (${numHeads}) must be divisible by "num_key_value_heads" (${numKvHeads})`,
    );
  }
  let headDim: number;
  if (!optional(json, "head_dim")) headDim = posInt(json, "head_dim", file);
  else {
    headDim = hiddenSize / numHeads;
    if (!Number.isInteger(headDim)) {
      throw new ConfigError(
        `${file}: no "head_dim" and "hidden_size" (${hiddenSize}) is not divisible by ` +
          `"num_attention_heads" (${numHeads})`,
      );
    }
  }
  if (headDim % 2 !== 0) throw new ConfigError(`${file}: head dimension ${headDim} must be even for RoPE`);
  const rmsNormEps = posFloat(json, "rms_norm_eps", file);
  const maxPositionEmbeddings = posInt(json, "max_position_embeddings", file);
  const { ropeTheta, ropeScaling } = parseRope(json, file);
  const tieWordEmbeddings = boolField(json, "tie_word_embeddings", file, false);
  const attentionBias = isQwen2 ? true : boolField(json, "attention_bias", file, false);

  const bosTokenId = optional(json, "bos_token_id") ? null : tokenId(json.bos_token_id, "bos_token_id", file);
  const eos = json.eos_token_id;
  let eosTokenIds: number[];
  if (eos === undefined || eos === null) eosTokenIds = [];
  else if (Array.isArray(eos)) eosTokenIds = eos.map((v) => tokenId(v, "eos_token_id", file));
  else eosTokenIds = [tokenId(eos, "eos_token_id", file)];

  return {
    architecture,
    vocabSize,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings,
    tieWordEmbeddings,
    attentionBias,
    bosTokenId,
    eosTokenIds,
  };
}

/**
 * Reads `dir/config.json` and normalizes it with {@link parseConfig}. A missing or unreadable file or
 * malformed JSON is a {@link ConfigError} naming the path.
 *
 * @example
 * ```ts
 * import { readConfig } from "./config.ts";
 * const c = await readConfig("models/tiny-lm");
 * console.log(c.numLayers); // 6
 * ```
 */
export async function readConfig(dir: string): Promise<ModelConfig> {
  const path = join(dir, "config.json");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigError(`config.json not found: ${path}`, { cause: e });
    }
    throw new ConfigError(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path}: malformed JSON (${e instanceof Error ? e.message : String(e)})`, {
      cause: e,
    });
  }
  return parseConfig(json, path);
}
