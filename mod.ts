/**
 * # pmkvq
 *
 * PM-KVQ — Progressive Mixed-precision KV-cache Quantization for long chain-of-thought LLMs
 * (arXiv 2505.18610) — in TypeScript for Deno, with a bit-exact CPU backend and a WebGPU backend.
 *
 * - {@link loadModel}: Hugging Face Llama / Qwen2 directories (sharded safetensors, bf16/f16/f32).
 * - {@link createCpuEngine}: the reference backend (the living spec of every kernel).
 * - {@link createCache}: exact, static int8/int4/int2, KIVI and PM-KVQ caches behind one {@link KVCache}.
 * - {@link generate}: prefill + decode loop with greedy or seeded sampling.
 *
 * @example
 * ```ts
 * import { loadModel, createCpuEngine, generate, loadTokenizer } from "./mod.ts";
 * const model = await loadModel("models/tiny-lm");
 * const tok = await loadTokenizer(model.tokenizerPath!);
 * const engine = createCpuEngine(model, { method: "exact" });
 * const out = await generate(engine, tok.encode("Call me Ishmael."), { maxNewTokens: 32 });
 * console.log(tok.decode(out.ids));
 * ```
 * @module
 */
export * from "./src/errors.ts";
export type { BackendName, Engine, PrefillOptions } from "./src/engine.ts";
export type { CacheSpec, CacheStats, KVCache, KVShape, LayerStats, LayerView, ShrinkEvent } from "./src/kv/cache.ts";
export type { LayerWeights, LoadedModel, ModelConfig, ModelWeights, RopeScaling } from "./src/model/types.ts";
export { loadModel } from "./src/model/load.ts";
export { loadTokenizer, TextTokenizer } from "./src/model/tokenizer.ts";
export { createCache, kvShapeOf } from "./src/kv/factory.ts";
export { createCpuEngine, CpuEngine } from "./cpu/engine.ts";
export { generate, type GenerateOptions, type GenerateResult } from "./src/generate.ts";
export { argmax, makeSampler, type SamplingOptions } from "./src/sampling.ts";
