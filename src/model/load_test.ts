import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, SafetensorsError, TensorShapeError, UnsupportedArchitectureError } from "../errors.ts";
import { loadModel } from "./load.ts";
import { INDEX_FILE } from "./safetensors.ts";
import { f32Bytes, type TensorToWrite, writeSafetensors } from "./safetensors_write.ts";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const TINY = join(REPO, "models/tiny-lm");
const RANDOM = join(REPO, "../shared/models/random");
const HAVE_RANDOM = existsSync(join(RANDOM, "qwen2-random")) &&
  existsSync(join(RANDOM, "llama3-rope-random"));
const RANDOM_NOTE = HAVE_RANDOM ? "" : ` [IGNORED: ${RANDOM} is absent]`;
if (!HAVE_RANDOM) console.warn(`load_test: ignoring the random-model tests because ${RANDOM} is absent`);

// Synthetic model: vocab 16, hidden 8, intermediate 12, 2 layers, 2 heads / 1 KV head of 4.
const V = 16, H = 8, I = 12, L = 2, NH = 2, NKV = 1, HD = 4;

interface Synth {
  arch?: "llama" | "qwen2";
  tie?: boolean;
  attentionBias?: boolean;
  dtype?: "F32" | "BF16";
  /** Split the tensors over this many shards with an index (0: a single model.safetensors). */
  shards?: number;
  omit?: string[];
  reshape?: Record<string, number[]>;
  extra?: TensorToWrite[];
  config?: Record<string, unknown>;
}

function synthConfig(o: Synth): Record<string, unknown> {
  return {
    architectures: [o.arch === "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"],
    vocab_size: V,
    hidden_size: H,
    intermediate_size: I,
    num_hidden_layers: L,
    num_attention_heads: NH,
    num_key_value_heads: NKV,
    head_dim: HD,
    rms_norm_eps: 1e-6,
    max_position_embeddings: 64,
    hidden_act: "silu",
    tie_word_embeddings: o.tie ?? false,
    attention_bias: o.attentionBias ?? false,
    eos_token_id: [1, 2],
    ...o.config,
  };
}

/** Value j of tensor number t: small, exactly representable in bf16 and f32. */
const valueOf = (t: number, j: number) => ((t * 7 + j * 3) % 17 - 8) / 8;

function synthTensors(o: Synth): TensorToWrite[] {
  const shapes: [string, number[]][] = [["model.embed_tokens.weight", [V, H]], ["model.norm.weight", [H]]];
  if (!o.tie) shapes.push(["lm_head.weight", [V, H]]);
  const bias = o.arch === "qwen2" || o.attentionBias;
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    shapes.push(
      [`${p}input_layernorm.weight`, [H]],
      [`${p}post_attention_layernorm.weight`, [H]],
      [`${p}self_attn.q_proj.weight`, [NH * HD, H]],
      [`${p}self_attn.k_proj.weight`, [NKV * HD, H]],
      [`${p}self_attn.v_proj.weight`, [NKV * HD, H]],
      [`${p}self_attn.o_proj.weight`, [H, NH * HD]],
      [`${p}mlp.gate_proj.weight`, [I, H]],
      [`${p}mlp.up_proj.weight`, [I, H]],
      [`${p}mlp.down_proj.weight`, [H, I]],
    );
    if (bias) {
      shapes.push(
        [`${p}self_attn.q_proj.bias`, [NH * HD]],
        [`${p}self_attn.k_proj.bias`, [NKV * HD]],
        [`${p}self_attn.v_proj.bias`, [NKV * HD]],
      );
    }
  }
  const out: TensorToWrite[] = [];
  shapes.forEach(([name, shape0], t) => {
    if (o.omit?.includes(name)) return;
    const shape = o.reshape?.[name] ?? shape0;
    const numel = shape.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: numel }, (_, j) => valueOf(t, j));
    let data = f32Bytes(values);
    if (o.dtype === "BF16") {
      const f = new Uint16Array(new Uint32Array(data.buffer).map((x) => x >>> 16)); // exact: values fit bf16
      data = new Uint8Array(f.buffer);
    }
    out.push({ name, dtype: o.dtype ?? "F32", shape, data });
  });
  return [...out, ...(o.extra ?? [])];
}

async function writeModel(dir: string, o: Synth = {}): Promise<void> {
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(synthConfig(o)));
  const tensors = synthTensors(o);
  const n = o.shards ?? 0;
  if (n === 0) {
    await Deno.writeFile(join(dir, "model.safetensors"), writeSafetensors(tensors, { format: "pt" }));
    return;
  }
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < n; s++) {
    const file = `model-0000${s + 1}-of-0000${n}.safetensors`;
    const mine = tensors.filter((_, k) => k % n === s);
    for (const t of mine) weightMap[t.name] = file;
    await Deno.writeFile(join(dir, file), writeSafetensors(mine, { format: "pt" }));
  }
  await Deno.writeTextFile(join(dir, INDEX_FILE), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}

async function withModel(o: Synth, f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "pmkvq-load-" });
  try {
    await writeModel(dir, o);
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejectsWith(p: Promise<unknown>, cls: new (...a: any[]) => Error, ...parts: string[]) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    for (const s of parts) {
      assert.ok(e.message.includes(s), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(s)}`);
    }
    return true;
  });
}

Deno.test("load: tiny-lm (sharded bf16 Llama) loads with the right shapes", async () => {
  const progress: string[] = [];
  const m = await loadModel(TINY, { onProgress: (s) => progress.push(s) });
  const c = m.config;
  assert.equal(c.architecture, "LlamaForCausalLM");
  assert.equal(m.weights.layers.length, 6);
  assert.equal(m.weights.embed.length, 4096 * 384);
  assert.equal(m.weights.lmHead.length, 4096 * 384);
  assert.notEqual(m.weights.lmHead, m.weights.embed);
  assert.equal(m.weights.finalNorm.length, 384);
  for (const l of m.weights.layers) {
    assert.equal(l.q.length, 4 * 128 * 384);
    assert.equal(l.k.length, 2 * 128 * 384);
    assert.equal(l.v.length, 2 * 128 * 384);
    assert.equal(l.o.length, 384 * 4 * 128);
    assert.equal(l.gate.length, 1024 * 384);
    assert.equal(l.up.length, 1024 * 384);
    assert.equal(l.down.length, 384 * 1024);
    assert.equal(l.inputNorm.length, 384);
    assert.equal(l.postNorm.length, 384);
    assert.equal(l.qBias, null);
  }
  assert.ok(m.weights.embed.every(Number.isFinite));
  assert.match(m.fingerprint, /^[0-9a-f]{64}$/);
  assert.equal(m.tokenizerPath, join(TINY, "tokenizer.json"));
  assert.equal(m.dir, TINY);
  assert.ok(progress.some((s) => s.includes("model-00002-of-00002.safetensors")), progress.join("\n"));
});

Deno.test("load: synthetic values decode exactly from f32 and bf16; extra tensors are ignored", async () => {
  const invFreq = {
    name: "model.layers.0.self_attn.rotary_emb.inv_freq",
    dtype: "F32",
    shape: [2],
    data: f32Bytes([1, 0.5]),
  };
  for (const dtype of ["F32", "BF16"] as const) {
    await withModel({ dtype, extra: [invFreq] }, async (dir) => {
      const m = await loadModel(dir);
      assert.equal(m.tokenizerPath, null);
      assert.deepEqual(m.config.eosTokenIds, [1, 2]);
      // Tensor numbers follow synthTensors' order: 0 embed, 1 norm, 2 lm_head, 3.. layer 0.
      assert.deepEqual(Array.from(m.weights.embed.subarray(0, 3)), [0, 1, 2].map((j) => valueOf(0, j)));
      assert.deepEqual(Array.from(m.weights.finalNorm), Array.from({ length: H }, (_, j) => valueOf(1, j)));
      assert.equal(m.weights.layers[0].q[5], valueOf(5, 5));
      assert.equal(m.weights.layers[1].down.length, H * I);
    });
  }
});

Deno.test("load: fingerprint is stable, layout-independent, and changes with one tensor byte or the config", async () => {
  let single = "";
  await withModel({}, async (dir) => {
    single = (await loadModel(dir)).fingerprint;
    assert.equal((await loadModel(dir)).fingerprint, single);
    const path = join(dir, "model.safetensors");
    const bytes = await Deno.readFile(path);
    bytes[bytes.length - 3] ^= 0x01; // a byte of the last tensor's data
    await Deno.writeFile(path, bytes);
    const changed = (await loadModel(dir)).fingerprint;
    assert.notEqual(changed, single);
  });
  await withModel({ shards: 3 }, async (dir) => assert.equal((await loadModel(dir)).fingerprint, single));
  await withModel(
    { config: { rms_norm_eps: 1e-5 } },
    async (dir) => assert.notEqual((await loadModel(dir)).fingerprint, single),
  );
  await withModel(
    { dtype: "BF16" },
    async (dir) => assert.notEqual((await loadModel(dir)).fingerprint, single),
  );
});

Deno.test("load: tied and untied embeddings", async () => {
  await withModel({ tie: true }, async (dir) => {
    const m = await loadModel(dir);
    assert.equal(m.weights.lmHead, m.weights.embed);
  });
  await withModel({ tie: false, omit: ["lm_head.weight"] }, async (dir) => {
    await rejectsWith(loadModel(dir), TensorShapeError, `"lm_head.weight"`, join(dir, "model.safetensors"));
  });
});

Deno.test("load: missing tensors and wrong shapes are TensorShapeErrors naming tensor, files and shapes", async () => {
  await withModel({ shards: 2, omit: ["model.layers.1.mlp.up_proj.weight"] }, async (dir) => {
    await rejectsWith(
      loadModel(dir),
      TensorShapeError,
      `"model.layers.1.mlp.up_proj.weight"`,
      "model-00001-of-00002.safetensors",
      "model-00002-of-00002.safetensors",
    );
  });
  await withModel({ reshape: { "model.layers.0.self_attn.k_proj.weight": [8, 8] } }, async (dir) => {
    await rejectsWith(
      loadModel(dir),
      TensorShapeError,
      `"model.layers.0.self_attn.k_proj.weight"`,
      "[8, 8]",
      "[4, 8]",
    );
  });
  await withModel({ reshape: { "model.norm.weight": [1, 8] } }, async (dir) => {
    await rejectsWith(loadModel(dir), TensorShapeError, `"model.norm.weight"`, "[1, 8]", "[8]");
  });
});

Deno.test("load: biases for Qwen2 and Llama attention_bias", async () => {
  await withModel({ arch: "qwen2", tie: true }, async (dir) => {
    const m = await loadModel(dir);
    assert.equal(m.config.attentionBias, true);
    assert.equal(m.weights.layers[1].qBias!.length, NH * HD);
    assert.equal(m.weights.layers[1].kBias!.length, NKV * HD);
    assert.equal(m.weights.layers[1].vBias!.length, NKV * HD);
  });
  await withModel({ arch: "qwen2", omit: ["model.layers.0.self_attn.v_proj.bias"] }, async (dir) => {
    await rejectsWith(loadModel(dir), TensorShapeError, `"model.layers.0.self_attn.v_proj.bias"`);
  });
  const oBias = (v: number) => ({
    name: "model.layers.0.self_attn.o_proj.bias",
    dtype: "F32",
    shape: [H],
    data: f32Bytes(new Array(H).fill(v)),
  });
  await withModel({ attentionBias: true, extra: [oBias(0)] }, async (dir) => {
    assert.equal((await loadModel(dir)).weights.layers[0].qBias!.length, NH * HD);
  });
  await withModel({ attentionBias: true, extra: [oBias(0.5)] }, async (dir) => {
    await rejectsWith(loadModel(dir), UnsupportedArchitectureError, "o_proj.bias");
  });
});

Deno.test("load: sharded model with a missing shard or a tensor missing from its shard", async () => {
  await withModel({ shards: 2 }, async (dir) => {
    await Deno.remove(join(dir, "model-00002-of-00002.safetensors"));
    await rejectsWith(loadModel(dir), SafetensorsError, "model-00002-of-00002.safetensors", "not found");
  });
  await withModel({ shards: 2 }, async (dir) => {
    const index = JSON.parse(await Deno.readTextFile(join(dir, INDEX_FILE)));
    index.weight_map["model.norm.weight"] = index.weight_map["model.norm.weight"].includes("00001")
      ? "model-00002-of-00002.safetensors"
      : "model-00001-of-00002.safetensors";
    await Deno.writeTextFile(join(dir, INDEX_FILE), JSON.stringify(index));
    await rejectsWith(
      loadModel(dir),
      SafetensorsError,
      `"model.norm.weight"`,
      index.weight_map["model.norm.weight"],
    );
  });
  await withModel({}, async (dir) => {
    await Deno.remove(join(dir, "config.json"));
    await rejectsWith(loadModel(dir), ConfigError, join(dir, "config.json"));
  });
});

Deno.test({
  name: `load: random Qwen2 has biases and tied embeddings${RANDOM_NOTE}`,
  ignore: !HAVE_RANDOM,
  fn: async () => {
    const m = await loadModel(join(RANDOM, "qwen2-random"));
    assert.equal(m.config.architecture, "Qwen2ForCausalLM");
    assert.equal(m.config.tieWordEmbeddings, true);
    assert.equal(m.weights.lmHead, m.weights.embed);
    assert.equal(m.config.ropeTheta, 1e6);
    assert.equal(m.config.rmsNormEps, 1e-6);
    assert.equal(m.weights.layers.length, 2);
    for (const l of m.weights.layers) {
      assert.equal(l.qBias!.length, 4 * 64);
      assert.equal(l.kBias!.length, 2 * 64);
      assert.equal(l.vBias!.length, 2 * 64);
      assert.ok(l.qBias!.some((x) => Math.abs(x) > 0.1), "biases are drawn large");
    }
  },
});

Deno.test({
  name: `load: random Llama with llama3 rope scaling${RANDOM_NOTE}`,
  ignore: !HAVE_RANDOM,
  fn: async () => {
    const m = await loadModel(join(RANDOM, "llama3-rope-random"));
    assert.equal(m.config.architecture, "LlamaForCausalLM");
    assert.deepEqual(m.config.ropeScaling, {
      type: "llama3",
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    });
    assert.equal(m.config.ropeTheta, 5e5);
    assert.equal(m.config.headDim, 64);
    assert.equal(m.config.numKvHeads, 1);
    assert.equal(m.weights.layers[0].k.length, 64 * 256);
    assert.notEqual(m.weights.lmHead, m.weights.embed);
  },
});
