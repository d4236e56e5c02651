/**
 * End-to-end WebGPU decode throughput of a model (default tiny-lm), for the GPU report.
 *
 *   deno run -A bench/gpu_decode.ts [--model DIR] [--prompt 1000] [--new 512] [--chunk 256] [--greedy-chunk 64]
 *                                    [--modes logits,greedy,chain] [--json out.json]
 *
 * The prompt is the recitation example's prompt + true continuation, cycled to --prompt tokens. Each mode
 * runs on a fresh context: prefill the prompt, then --new greedy tokens through
 * | mode | API | readback per token |
 * |---|---|---|
 * | logits | `decode(id)` + host argmax | the logits (vocab·4 bytes), one submit per token |
 * | greedy | `decodeGreedy(id)` | 8 bytes, one submit per token |
 * | chain | `decodeGreedyMany(id, n)` | 8 bytes per token, one submit and one readback per greedy-chunk tokens |
 * Reported: prefill tokens/s, decode tokens/s (tokens after the first / decode seconds), and whether all
 * modes produced the same tokens.
 *
 * @example
 * ```ts
 * // deno run -A bench/gpu_decode.ts --prompt 1000 --new 512 --json /tmp/decode.json
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { loadModel } from "../src/model/load.ts";
import { argmax } from "../src/sampling.ts";
import { createGpuEngine, type GpuEngine } from "../gpu/engine.ts";
import { acquireGpu } from "../gpu/device.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", default: new URL("../models/tiny-lm", import.meta.url).pathname },
    prompt: { type: "string", default: "256" },
    new: { type: "string", default: "128" },
    chunk: { type: "string", default: "256" },
    "greedy-chunk": { type: "string", default: "64" },
    modes: { type: "string", default: "logits,greedy,chain" },
    json: { type: "string" },
  },
});

/** One mode's measurements. */
interface ModeResult {
  mode: string;
  prefillSeconds: number;
  prefillTokensPerSecond: number;
  decodeSeconds: number;
  decodeTokensPerSecond: number;
  tokens: number[];
}

const promptLen = Number(values.prompt), newTokens = Number(values.new);
const model = await loadModel(values.model);
const rec = JSON.parse(await Deno.readTextFile(new URL("../models/tiny-lm/recitation-examples.json", import.meta.url)));
const source: number[] = [...rec[0].prompt_ids, ...rec[0].truth_ids];
const prompt = Array.from({ length: promptLen }, (_, i) => source[i % source.length] % model.config.vocabSize);
const ctx = await acquireGpu();
console.log(`device: ${ctx.description}; model ${values.model}; prompt ${promptLen}, new ${newTokens}`);

async function runMode(engine: GpuEngine, mode: string): Promise<ModeResult> {
  engine.reset();
  const t0 = performance.now();
  const first = argmax(await engine.prefill(prompt));
  const t1 = performance.now();
  const tokens = [first];
  if (mode === "chain") {
    tokens.push(...await engine.decodeGreedyMany(first, newTokens - 1));
  } else {
    while (tokens.length < newTokens) {
      const last = tokens[tokens.length - 1];
      tokens.push(mode === "logits" ? argmax(await engine.decode(last)) : await engine.decodeGreedy(last));
    }
  }
  const t2 = performance.now();
  const decodeSeconds = (t2 - t1) / 1000;
  return {
    mode,
    prefillSeconds: (t1 - t0) / 1000,
    prefillTokensPerSecond: promptLen / ((t1 - t0) / 1000),
    decodeSeconds,
    decodeTokensPerSecond: (newTokens - 1) / decodeSeconds,
    tokens,
  };
}

const engine = await createGpuEngine(model, { method: "exact" }, {
  context: ctx,
  maxLen: Math.min(model.config.maxPositionEmbeddings, promptLen + newTokens + 1),
  prefillChunk: Number(values.chunk),
  greedyChunk: Number(values["greedy-chunk"]),
});
// Warm-up: compiles and first-use costs are not part of the measurement.
await engine.prefill(prompt.slice(0, Math.min(8, promptLen)));
await engine.decodeGreedyMany(1, 2);
await engine.decode(1);
const results: ModeResult[] = [];
for (const mode of values.modes.split(",")) {
  const r = await runMode(engine, mode);
  results.push(r);
  console.log(
    `${mode.padEnd(7)} prefill ${r.prefillTokensPerSecond.toFixed(1)} tok/s (${r.prefillSeconds.toFixed(2)} s); ` +
      `decode ${r.decodeTokensPerSecond.toFixed(1)} tok/s (${r.decodeSeconds.toFixed(2)} s for ${newTokens - 1})`,
  );
}
const same = results.every((r) => r.tokens.join() === results[0].tokens.join());
console.log(`all modes produced the same tokens: ${same}`);
if (values.json) {
  await Deno.writeTextFile(
    values.json,
    JSON.stringify({ device: ctx.description, promptLen, newTokens, same, results: results.map(({ tokens: _, ...r }) => r) }, null, 2),
  );
}
engine.dispose();
ctx.destroy();
