/**
 * Loading a Hugging Face model directory (config.json + safetensors, sharded or not) into f32
 * {@link ModelWeights}, with every tensor's shape checked against the config and a fingerprint that
 * identifies the exact model.
 *
 * @example
 * ```ts
 * import { loadModel } from "./load.ts";
 * const model = await loadModel("models/tiny-lm", { onProgress: (m) => console.error(m) });
 * console.log(model.config.numLayers, model.weights.layers[0].q.length, model.fingerprint);
 * ```
 * @module
 */
import { join } from "node:path";
import { SafetensorsError, TensorShapeError, UnsupportedArchitectureError } from "../errors.ts";
import { readConfig } from "./config.ts";
import { decodeToF32 } from "./dtype.ts";
import { loadSafetensorsIndex, readSafetensorsFile, type SafetensorsIndex } from "./safetensors.ts";
import type { LayerWeights, LoadedModel, ModelConfig, ModelWeights } from "./types.ts";

/** Options of {@link loadModel}. */
export interface LoadOptions {
  /** Called with a human-readable line at each step (config, each shard, fingerprint). */
  onProgress?: (msg: string) => void;
}

/** A tensor the model needs: its Hugging Face name and the shape the config implies. */
interface TensorSpec {
  name: string;
  shape: number[];
  required: boolean;
}

const layerPrefix = (i: number) => `model.layers.${i}.`;

/** The tensors `config` needs, with their expected shapes ([out, in] for linear weights). */
function tensorSpecs(c: ModelConfig): TensorSpec[] {
  const H = c.hiddenSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const specs: TensorSpec[] = [
    { name: "model.embed_tokens.weight", shape: [c.vocabSize, H], required: true },
    { name: "model.norm.weight", shape: [H], required: true },
  ];
  if (!c.tieWordEmbeddings) specs.push({ name: "lm_head.weight", shape: [c.vocabSize, H], required: true });
  for (let i = 0; i < c.numLayers; i++) {
    const p = layerPrefix(i);
    specs.push(
      { name: `${p}input_layernorm.weight`, shape: [H], required: true },
      { name: `${p}post_attention_layernorm.weight`, shape: [H], required: true },
      { name: `${p}self_attn.q_proj.weight`, shape: [qDim, H], required: true },
      { name: `${p}self_attn.k_proj.weight`, shape: [kvDim, H], required: true },
      { name: `${p}self_attn.v_proj.weight`, shape: [kvDim, H], required: true },
      { name: `${p}self_attn.o_proj.weight`, shape: [H, qDim], required: true },
      { name: `${p}mlp.gate_proj.weight`, shape: [c.intermediateSize, H], required: true },
      { name: `${p}mlp.up_proj.weight`, shape: [c.intermediateSize, H], required: true },
      { name: `${p}mlp.down_proj.weight`, shape: [H, c.intermediateSize], required: true },
    );
    if (c.attentionBias) {
      specs.push(
        { name: `${p}self_attn.q_proj.bias`, shape: [qDim], required: true },
        { name: `${p}self_attn.k_proj.bias`, shape: [kvDim], required: true },
        { name: `${p}self_attn.v_proj.bias`, shape: [kvDim], required: true },
        // Llama with attention_bias also has an o_proj bias; LayerWeights has no slot, so it must be zero.
        { name: `${p}self_attn.o_proj.bias`, shape: [H], required: false },
      );
    }
  }
  return specs;
}

const showShape = (s: number[]) => `[${s.join(", ")}]`;

/** Checks presence and shape of every needed tensor from the headers alone, before reading any data. */
function checkTensors(specs: TensorSpec[], index: SafetensorsIndex): void {
  const searched = index.shards.map((s) => join(index.dir, s)).join(", ");
  for (const s of specs) {
    const loc = index.tensors.get(s.name);
    if (!loc) {
      if (!s.required) continue;
      throw new TensorShapeError(`required tensor "${s.name}" not found (searched: ${searched})`);
    }
    if (loc.shape.length !== s.shape.length || loc.shape.some((d, i) => d !== s.shape[i])) {
      throw new TensorShapeError(
        `tensor "${s.name}" in ${join(index.dir, loc.file)} has shape ${showShape(loc.shape)}, ` +
          `expected ${showShape(s.shape)} from config.json`,
      );
    }
  }
}

function toHex(buf: ArrayBuffer): string {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** JSON with object keys sorted at every level, so equal values always serialize identically. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (typeof v === "object" && v !== null) {
    const o = v as Record<string, unknown>;
    return `{${
      Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) =>
        `${JSON.stringify(k)}:${canonicalJson(o[k])}`
      )
        .join(",")
    }}`;
  }
  return JSON.stringify(v);
}

/** One tensor's contribution to the fingerprint. */
interface TensorDigest {
  name: string;
  dtype: string;
  shape: number[];
  sha256: string;
}

/**
 * SHA-256 of the canonical JSON `{"config", "format", "tensors": [{dtype, name, sha256, shape}...]}` with
 * tensors sorted by name and `sha256` the hex digest of each tensor's raw bytes (hashing per tensor lets a
 * shard be freed as soon as it is converted).
 */
async function fingerprintOf(config: ModelConfig, digests: TensorDigest[]): Promise<string> {
  const tensors = digests.slice().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const text = canonicalJson({ format: "pmkvq-fingerprint-v1", config, tensors });
  return toHex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

async function fileExists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/**
 * Loads a Llama or Qwen2 model from a Hugging Face directory: `config.json`, `model.safetensors` or
 * `model.safetensors.index.json` + shards, and optionally `tokenizer.json`. Weights are converted to f32
 * shard by shard; tied embeddings share one array (`lmHead === embed`). Extra tensors (e.g. rotary
 * `inv_freq`) are ignored but fingerprinted.
 *
 * Throws ConfigError / UnsupportedArchitectureError (config), SafetensorsError (files) and
 * TensorShapeError (a missing tensor, naming the files searched, or a shape that disagrees with the config).
 *
 * @example
 * ```ts
 * import { loadModel } from "./load.ts";
 * const { config, weights, fingerprint, tokenizerPath } = await loadModel("models/tiny-lm");
 * console.log(config.architecture, weights.embed.length, fingerprint.slice(0, 12), tokenizerPath);
 * ```
 */
export async function loadModel(dir: string, options: LoadOptions = {}): Promise<LoadedModel> {
  const progress = options.onProgress ?? (() => {});
  progress(`reading ${join(dir, "config.json")}`);
  const config = await readConfig(dir);
  const index = await loadSafetensorsIndex(dir);
  const specs = tensorSpecs(config);
  checkTensors(specs, index);
  const wanted = new Set(specs.map((s) => s.name));

  const f32 = new Map<string, Float32Array>();
  const digests: TensorDigest[] = [];
  for (const [i, shard] of index.shards.entries()) {
    const path = join(dir, shard);
    progress(`reading ${path} (${i + 1}/${index.shards.length})`);
    // Scoped so the shard's bytes can be collected once its tensors are converted and hashed.
    const file = await readSafetensorsFile(path);
    for (const t of file.tensors.values()) {
      const loc = index.tensors.get(t.name);
      if (!loc || loc.file !== shard || loc.dtype !== t.dtype || loc.shape.join() !== t.shape.join()) {
        throw new SafetensorsError(`${path}: tensor "${t.name}" changed while the model was loading`);
      }
      const digest = toHex(await crypto.subtle.digest("SHA-256", t.data as Uint8Array<ArrayBuffer>));
      digests.push({ name: t.name, dtype: t.dtype, shape: t.shape, sha256: digest });
      if (wanted.has(t.name)) f32.set(t.name, decodeToF32(t.data, t.dtype));
    }
  }
  if (digests.length !== index.tensors.size) {
    throw new SafetensorsError(`${dir}: shard contents changed while the model was loading`);
  }

  const get = (name: string): Float32Array => {
    const a = f32.get(name);
    if (!a) throw new TensorShapeError(`required tensor "${name}" not found in ${dir}`);
    return a;
  };
  const bias = (name: string) => (config.attentionBias ? get(name) : null);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const p = layerPrefix(i);
    const oBias = f32.get(`${p}self_attn.o_proj.bias`);
    if (oBias && oBias.some((x) => x !== 0)) {
      throw new UnsupportedArchitectureError(
        `${dir}: tensor "${p}self_attn.o_proj.bias" is non-zero; an o_proj bias is not supported`,
      );
    }
    layers.push({
      inputNorm: get(`${p}input_layernorm.weight`),
      q: get(`${p}self_attn.q_proj.weight`),
      k: get(`${p}self_attn.k_proj.weight`),
      v: get(`${p}self_attn.v_proj.weight`),
      qBias: bias(`${p}self_attn.q_proj.bias`),
      kBias: bias(`${p}self_attn.k_proj.bias`),
      vBias: bias(`${p}self_attn.v_proj.bias`),
      o: get(`${p}self_attn.o_proj.weight`),
      postNorm: get(`${p}post_attention_layernorm.weight`),
      gate: get(`${p}mlp.gate_proj.weight`),
      up: get(`${p}mlp.up_proj.weight`),
      down: get(`${p}mlp.down_proj.weight`),
    });
  }
  const embed = get("model.embed_tokens.weight");
  const weights: ModelWeights = {
    embed,
    layers,
    finalNorm: get("model.norm.weight"),
    lmHead: config.tieWordEmbeddings ? embed : get("lm_head.weight"),
  };

  progress("computing fingerprint");
  const fingerprint = await fingerprintOf(config, digests);
  const tok = join(dir, "tokenizer.json");
  return { dir, config, weights, fingerprint, tokenizerPath: (await fileExists(tok)) ? tok : null };
}
