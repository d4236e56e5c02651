/**
 * End-to-end WebGPU decode throughput of a model (default tiny-lm), for the GPU report.
 *
 *   deno run -A bench/gpu_decode.ts [--model DIR] [--prompt 1000] [--new 512] [--chunk 256] [--greedy-chunk 64]
 *                                    [--modes logits,greedy,chain] [--profile] [--json out.json]
 *                                    [--kv exact|int8|int4|int2|pmkvq] [--kv-bits 16|8|4|2] [--kv-budget BYTES]
 *
 * `--kv` takes `deno task run`'s cache flags (planned length = prompt + new); packed caches (int*, pmkvq)
 * prefill the prompt in one chunk (--chunk is raised to the prompt length).
 *
 * The prompt is the recitation example's prompt + true continuation, cycled to --prompt tokens. Each mode
 * runs on a fresh context: prefill the prompt, then --new greedy tokens through
 * | mode | API | readback per token |
 * |---|---|---|
 * | logits | `decode(id)` + host argmax | the logits (vocab·4 bytes), one submit per token |
 * | greedy | `decodeGreedy(id)` | 8 bytes, one submit per token |
 * | chain | `decodeGreedyMany(id, n)` | 8 bytes per token, one submit and one readback per greedy-chunk tokens |
 * Reported: prefill tokens/s, decode tokens/s (tokens after the first / decode seconds), and whether all
 * modes produced the same tokens. `--profile` adds, for one decode step at the prompt's length, the host time
 * to record it (JS), the host time of pass end + finish + submit (the WebGPU implementation's validation and
 * translation) and the GPU time of the recorded pass (timestamp queries), averaged over greedy-chunk steps.
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
import { StepBuffer } from "../gpu/step.ts";
import { PassTimer } from "../gpu/timer.ts";
import { cacheSpecFromFlags } from "../src/cli/kv_flags.ts";

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
    profile: { type: "boolean", default: false },
    kv: { type: "string", default: "exact" },
    "kv-bits": { type: "string" },
    "kv-budget": { type: "string" },
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
const rec = JSON.parse(
  await Deno.readTextFile(new URL("../models/tiny-lm/recitation-examples.json", import.meta.url)),
);
const source: number[] = [...rec[0].prompt_ids, ...rec[0].truth_ids];
const prompt = Array.from(
  { length: promptLen },
  (_, i) => source[i % source.length] % model.config.vocabSize,
);
const spec = await cacheSpecFromFlags(
  { kv: values.kv, "kv-bits": values["kv-bits"], "kv-budget": values["kv-budget"] },
  model,
  promptLen + newTokens,
);
const packed = spec.method !== "exact";
const ctx = await acquireGpu();
console.log(
  `device: ${ctx.description}; model ${values.model}; prompt ${promptLen}, new ${newTokens}; kv ${values.kv}`,
);

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

const engine = await createGpuEngine(model, spec, {
  context: ctx,
  maxLen: Math.min(
    model.config.maxPositionEmbeddings,
    packed ? promptLen + newTokens : promptLen + Math.max(newTokens, Number(values["greedy-chunk"])) + 1,
  ),
  prefillChunk: packed ? Math.max(promptLen, Number(values.chunk)) : Number(values.chunk),
  greedyChunk: Number(values["greedy-chunk"]),
});
// Warm-up: compiles and first-use costs are not part of the measurement (a packed cache also runs its
// window flush and shrink kernels once here, at the full prompt length).
if (packed) {
  await engine.prefill(prompt);
  await engine.decodeGreedyMany(1, Math.min(newTokens - 1, 130));
  engine.reset();
} else {
  await engine.prefill(prompt.slice(0, Math.min(8, promptLen)));
  await engine.decodeGreedyMany(1, 2);
  await engine.decode(1);
}
const results: ModeResult[] = [];
for (const mode of values.modes.split(",")) {
  const r = await runMode(engine, mode);
  results.push(r);
  console.log(
    `${mode.padEnd(7)} prefill ${r.prefillTokensPerSecond.toFixed(1)} tok/s (${
      r.prefillSeconds.toFixed(2)
    } s); ` +
      `decode ${r.decodeTokensPerSecond.toFixed(1)} tok/s (${r.decodeSeconds.toFixed(2)} s for ${
        newTokens - 1
      })`,
  );
}
/**
 * Host and GPU time of `n` decode steps at the prompt's length recorded into one pass: JS recording, the
 * WebGPU implementation's pass end + finish + submit (where it validates and translates the commands), and
 * the pass's GPU time. The exact cache is not advanced (each step rewrites the same positions); another
 * cache appends for real (its steps are committed and settled), after one untimed warm-up batch, with n
 * capped at the cache's chain limit.
 */
async function profileSteps(
  nWanted: number,
): Promise<{ steps: number; encodeMs: number; submitMs: number; gpuMs: number; method: string }> {
  engine.reset();
  await engine.prefill(prompt);
  const cache = engine.forward.cache;
  const n = Math.max(1, Math.min(nWanted, cache.maxChainSteps?.() ?? nWanted));
  const steps = new StepBuffer(engine.registry, n);
  const timer = new PassTimer(ctx);
  let encodeMs = 0;
  const batch = async (): Promise<number> => {
    const P = cache.length; // the exact cache is never committed here: the prompt's length
    for (let i = 0; i < n; i++) {
      const f = cache.stepFields(1, P + i);
      steps.set(i, { T: 1, P: P + i, pos0: P + i, idBase: 0, idOut: 1, ...f });
    }
    steps.flush();
    if (packed) cache.checkSteps?.(Array(n).fill(1));
    const record = (pass: GPUComputePassEncoder) => {
      const t = performance.now();
      for (let i = 0; i < n; i++) {
        pass.setBindGroup(1, steps.bindGroup, [steps.offset(i)]);
        engine.forward.encodeStep(pass, 1, P + i, true);
      }
      cache.flush?.(); // staged uniforms (packed caches), before the timer submits
      encodeMs = performance.now() - t;
    };
    const s = await timer.time(record, steps.bindGroup);
    if (packed) {
      for (let i = 0; i < n; i++) cache.commit(1);
      await cache.settle?.();
    }
    return s;
  };
  await batch(); // warm-up
  const gpuSeconds = await batch();
  const submitMs = timer.lastSubmitMs;
  timer.destroy();
  steps.destroy();
  engine.reset();
  return {
    steps: n,
    encodeMs: encodeMs / n,
    submitMs: submitMs / n,
    gpuMs: (gpuSeconds * 1000) / n,
    method: timer.method,
  };
}

let profile: Awaited<ReturnType<typeof profileSteps>> | null = null;
if (values.profile) {
  profile = await profileSteps(Number(values["greedy-chunk"]));
  console.log(
    `profile at context ${promptLen} (${profile.steps} steps in one pass): recording ${
      profile.encodeMs.toFixed(3)
    } ms/step (host JS), end+finish+submit ${profile.submitMs.toFixed(3)} ms/step (host, WebGPU), ` +
      `GPU ${profile.gpuMs.toFixed(3)} ms/step (${profile.method})`,
  );
}
const same = results.every((r) => r.tokens.join() === results[0].tokens.join());
console.log(`all modes produced the same tokens: ${same}`);
if (values.json) {
  await Deno.writeTextFile(
    values.json,
    JSON.stringify(
      {
        device: ctx.description,
        kv: values.kv,
        kvBits: values["kv-bits"] ?? null,
        stats: engine.cacheStats(),
        promptLen,
        newTokens,
        same,
        profile,
        results: results.map(({ tokens: _, ...r }) => r),
      },
      null,
      2,
    ),
  );
}
engine.dispose();
ctx.destroy();
