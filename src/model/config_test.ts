import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, UnsupportedArchitectureError } from "../errors.ts";
import { parseConfig, readConfig, SUPPORTED_ARCHITECTURES } from "./config.ts";

const FILE = "some/dir/config.json";
const REPO = fileURLToPath(new URL("../../", import.meta.url));

function llama(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: 4096,
    hidden_size: 384,
    intermediate_size: 1024,
    num_hidden_layers: 6,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 128,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 4096,
    hidden_act: "silu",
    bos_token_id: 0,
    eos_token_id: 0,
    ...extra,
  };
}

function qwen2(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return llama({
    architectures: ["Qwen2ForCausalLM"],
    model_type: "qwen2",
    head_dim: undefined,
    hidden_size: 256,
    ...extra,
  });
}

function throwsWith(
  f: () => unknown,
  cls: typeof ConfigError | typeof UnsupportedArchitectureError,
  ...parts: string[]
) {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    for (const p of parts) {
      assert.ok(e.message.includes(p), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(p)}`);
    }
    return true;
  });
}

Deno.test("config: a Llama config normalizes with defaults", () => {
  const c = parseConfig(llama(), FILE);
  assert.deepEqual(c, {
    architecture: "LlamaForCausalLM",
    vocabSize: 4096,
    hiddenSize: 384,
    intermediateSize: 1024,
    numLayers: 6,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 128,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: { type: "default" },
    maxPositionEmbeddings: 4096,
    tieWordEmbeddings: false,
    attentionBias: false,
    bosTokenId: 0,
    eosTokenIds: [0],
  });
});

Deno.test("config: defaults for kv heads, head_dim, ids; explicit flags", () => {
  const c = parseConfig(
    llama({
      num_key_value_heads: undefined,
      head_dim: null,
      bos_token_id: null,
      eos_token_id: [2, 7],
      tie_word_embeddings: true,
      attention_bias: true,
    }),
    FILE,
  );
  assert.equal(c.numKvHeads, 4);
  assert.equal(c.headDim, 96);
  assert.equal(c.bosTokenId, null);
  assert.deepEqual(c.eosTokenIds, [2, 7]);
  assert.equal(c.tieWordEmbeddings, true);
  assert.equal(c.attentionBias, true);
  assert.deepEqual(parseConfig(llama({ eos_token_id: null }), FILE).eosTokenIds, []);
  assert.deepEqual(parseConfig(llama({ eos_token_id: undefined }), FILE).eosTokenIds, []);
});

Deno.test("config: architecture from architectures[0], else model_type; others rejected", () => {
  assert.equal(parseConfig(qwen2(), FILE).architecture, "Qwen2ForCausalLM");
  assert.equal(parseConfig(qwen2(), FILE).attentionBias, true, "Qwen2 always has q/k/v biases");
  assert.equal(parseConfig(qwen2({ attention_bias: false }), FILE).attentionBias, true);
  assert.equal(parseConfig(llama({ architectures: undefined }), FILE).architecture, "LlamaForCausalLM");
  assert.equal(parseConfig(qwen2({ architectures: [] }), FILE).architecture, "Qwen2ForCausalLM");
  throwsWith(
    () => parseConfig(llama({ architectures: ["MistralForCausalLM"] }), FILE),
    UnsupportedArchitectureError,
    FILE,
    "MistralForCausalLM",
    ...SUPPORTED_ARCHITECTURES,
  );
  throwsWith(
    () => parseConfig(llama({ architectures: undefined, model_type: "gpt2" }), FILE),
    UnsupportedArchitectureError,
    FILE,
    "gpt2",
    "LlamaForCausalLM",
  );
  throwsWith(
    () => parseConfig(llama({ architectures: undefined, model_type: undefined }), FILE),
    UnsupportedArchitectureError,
    FILE,
    "LlamaForCausalLM",
  );
});

Deno.test("config: unsupported features", () => {
  throwsWith(
    () => parseConfig(llama({ hidden_act: "gelu" }), FILE),
    UnsupportedArchitectureError,
    FILE,
    "gelu",
    "silu",
  );
  throwsWith(
    () => parseConfig(qwen2({ use_sliding_window: true, sliding_window: 4096 }), FILE),
    UnsupportedArchitectureError,
    FILE,
    "use_sliding_window",
  );
  throwsWith(
    () => parseConfig(qwen2({ layer_types: ["full_attention", "sliding_attention"] }), FILE),
    UnsupportedArchitectureError,
    FILE,
    "sliding_attention",
  );
  throwsWith(
    () => parseConfig(llama({ mlp_bias: true }), FILE),
    UnsupportedArchitectureError,
    FILE,
    "mlp_bias",
  );
  assert.equal(parseConfig(qwen2({ use_sliding_window: false, sliding_window: null }), FILE).numLayers, 6);
});

Deno.test("config: missing or invalid numeric fields name field, value and file", () => {
  throwsWith(
    () => parseConfig(llama({ hidden_size: undefined }), FILE),
    ConfigError,
    FILE,
    `"hidden_size"`,
    "undefined",
  );
  throwsWith(
    () => parseConfig(llama({ vocab_size: "4096" }), FILE),
    ConfigError,
    FILE,
    `"vocab_size"`,
    `"4096"`,
  );
  throwsWith(
    () => parseConfig(llama({ num_hidden_layers: 0 }), FILE),
    ConfigError,
    FILE,
    `"num_hidden_layers"`,
    "0",
  );
  throwsWith(
    () => parseConfig(llama({ intermediate_size: 10.5 }), FILE),
    ConfigError,
    FILE,
    `"intermediate_size"`,
    "10.5",
  );
  throwsWith(() => parseConfig(llama({ rms_norm_eps: -1 }), FILE), ConfigError, FILE, `"rms_norm_eps"`, "-1");
  throwsWith(
    () => parseConfig(llama({ max_position_embeddings: null }), FILE),
    ConfigError,
    FILE,
    `"max_position_embeddings"`,
    "null",
  );
  throwsWith(() => parseConfig(llama({ head_dim: 0 }), FILE), ConfigError, FILE, `"head_dim"`, "0");
  throwsWith(
    () => parseConfig(llama({ head_dim: undefined, hidden_size: 385 }), FILE),
    ConfigError,
    FILE,
    "385",
    "num_attention_heads",
  );
  throwsWith(
    () => parseConfig(llama({ num_key_value_heads: 3 }), FILE),
    ConfigError,
    FILE,
    "num_key_value_heads",
    "(3)",
    "(4)",
  );
  throwsWith(() => parseConfig(llama({ head_dim: 127 }), FILE), ConfigError, FILE, "127", "even");
  throwsWith(
    () => parseConfig(llama({ eos_token_id: [1, "x"] }), FILE),
    ConfigError,
    FILE,
    "eos_token_id",
    `"x"`,
  );
  throwsWith(() => parseConfig(llama({ bos_token_id: -1 }), FILE), ConfigError, FILE, "bos_token_id", "-1");
  throwsWith(
    () => parseConfig(llama({ tie_word_embeddings: "yes" }), FILE),
    ConfigError,
    FILE,
    "tie_word_embeddings",
    `"yes"`,
  );
  throwsWith(() => parseConfig([1], FILE), ConfigError, FILE, "JSON object");
});

Deno.test("config: rope theta in both forms", () => {
  assert.equal(parseConfig(llama({ rope_theta: 500000 }), FILE).ropeTheta, 500000);
  assert.equal(
    parseConfig(llama({ rope_parameters: { rope_theta: 1e6, rope_type: "default" } }), FILE).ropeTheta,
    1e6,
  );
  assert.equal(parseConfig(llama(), FILE).ropeTheta, 10000);
  throwsWith(() => parseConfig(llama({ rope_theta: "big" }), FILE), ConfigError, FILE, "rope_theta", `"big"`);
  throwsWith(
    () => parseConfig(llama({ rope_parameters: { rope_theta: 0 } }), FILE),
    ConfigError,
    FILE,
    "rope_parameters.rope_theta",
  );
});

Deno.test("config: rope scaling default / linear / llama3, old and new form", () => {
  const l3 = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
  const want = {
    type: "llama3",
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  };
  assert.deepEqual(
    parseConfig(llama({ rope_theta: 5e5, rope_scaling: { rope_type: "llama3", ...l3 } }), FILE).ropeScaling,
    want,
  );
  assert.deepEqual(parseConfig(llama({ rope_scaling: { type: "llama3", ...l3 } }), FILE).ropeScaling, want);
  const c = parseConfig(llama({ rope_parameters: { rope_type: "llama3", rope_theta: 5e5, ...l3 } }), FILE);
  assert.deepEqual(c.ropeScaling, want);
  assert.equal(c.ropeTheta, 5e5);
  assert.deepEqual(parseConfig(llama({ rope_scaling: { type: "linear", factor: 2 } }), FILE).ropeScaling, {
    type: "linear",
    factor: 2,
  });
  assert.deepEqual(parseConfig(llama({ rope_scaling: null }), FILE).ropeScaling, { type: "default" });
  assert.deepEqual(
    parseConfig(llama({ rope_parameters: { rope_type: "default", rope_theta: 1 } }), FILE).ropeScaling,
    { type: "default" },
  );
  for (const t of ["yarn", "dynamic", "longrope"]) {
    throwsWith(
      () => parseConfig(llama({ rope_scaling: { rope_type: t, factor: 2 } }), FILE),
      UnsupportedArchitectureError,
      FILE,
      t,
    );
    throwsWith(
      () => parseConfig(llama({ rope_parameters: { rope_type: t, factor: 2 } }), FILE),
      UnsupportedArchitectureError,
      FILE,
      t,
    );
  }
  throwsWith(
    () => parseConfig(llama({ rope_scaling: { type: "linear" } }), FILE),
    ConfigError,
    FILE,
    "rope_scaling.factor",
    "undefined",
  );
  throwsWith(
    () => parseConfig(llama({ rope_scaling: { rope_type: "llama3", ...l3, low_freq_factor: "1" } }), FILE),
    ConfigError,
    FILE,
    "low_freq_factor",
    `"1"`,
  );
  throwsWith(
    () =>
      parseConfig(
        llama({ rope_scaling: { rope_type: "llama3", ...l3, original_max_position_embeddings: 1.5 } }),
        FILE,
      ),
    ConfigError,
    FILE,
    "original_max_position_embeddings",
  );
  throwsWith(
    () => parseConfig(llama({ rope_scaling: { rope_type: "llama3", ...l3, high_freq_factor: 1 } }), FILE),
    ConfigError,
    FILE,
    "high_freq_factor",
  );
  throwsWith(() => parseConfig(llama({ rope_scaling: 3 }), FILE), ConfigError, FILE, "rope_scaling");
  throwsWith(
    () => parseConfig(llama({ rope_parameters: { rope_type: "default", partial_rotary_factor: 0.5 } }), FILE),
    UnsupportedArchitectureError,
    FILE,
    "partial_rotary_factor",
  );
});

Deno.test("config: readConfig reads tiny-lm and names missing or malformed files", async () => {
  const c = await readConfig(join(REPO, "models/tiny-lm"));
  assert.equal(c.numLayers, 6);
  assert.equal(c.numKvHeads, 2);
  assert.equal(c.headDim, 128);
  const dir = await Deno.makeTempDir({ prefix: "pmkvq-cfg-" });
  try {
    await assert.rejects(
      readConfig(dir),
      (e: unknown) => e instanceof ConfigError && e.message.includes(join(dir, "config.json")),
    );
    await Deno.writeTextFile(join(dir, "config.json"), "{ not json");
    await assert.rejects(
      readConfig(dir),
      (e: unknown) =>
        e instanceof ConfigError && e.message.includes(join(dir, "config.json")) &&
        e.message.includes("malformed JSON"),
    );
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(llama({ vocab_size: -5 })));
    await assert.rejects(
      readConfig(dir),
      (e: unknown) =>
        e instanceof ConfigError && e.message.includes(join(dir, "config.json")) && e.message.includes("-5"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
