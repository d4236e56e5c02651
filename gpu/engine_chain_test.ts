/**
 * GpuEngine.decodeGreedyMany with chunks in flight (all of them without onToken/stop ids, one with them):
 * the tokens equal one unchained chunk's, a stop id inside a chunk rolls back the chunk already submitted
 * after it (the context then continues exactly as without the stop), and onToken sees every token in order.
 * Ignored (printed) without a WebGPU adapter.
 */
import assert from "node:assert/strict";
import { gpuAvailability } from "../tests/conformance_support.ts";
import { loadModel } from "../src/model/load.ts";
import { argmax } from "../src/sampling.ts";
import { createGpuEngine } from "./engine.ts";

const { ctx, reason } = await gpuAvailability();
if (ctx === null) console.warn(`SKIPPED: greedy chain cases: ${reason}`);
const MODEL = new URL("../models/tiny-lm", import.meta.url).pathname;
const PROMPT = [5, 17, 300, 42, 9, 1000, 77, 12];
const N = 20;

Deno.test({
  name:
    "engine[webgpu] pipelined greedy chunks: same tokens as one chunk; a stop id rolls back the next chunk",
  ignore: ctx === null,
  fn: async () => {
    const model = await loadModel(MODEL);
    const one = await createGpuEngine(model, { method: "exact" }, {
      context: ctx!,
      maxLen: 64,
      greedyChunk: 64,
    });
    const piped = await createGpuEngine(model, { method: "exact" }, {
      context: ctx!,
      maxLen: 64,
      greedyChunk: 3,
    });
    try {
      const first = argmax(await one.prefill(PROMPT));
      const ref = await one.decodeGreedyMany(first, N);
      assert.equal(ref.length, N);
      assert.equal(argmax(await piped.prefill(PROMPT)), first);
      assert.deepEqual(await piped.decodeGreedyMany(first, N), ref, "all 7 chunks in flight");
      assert.equal(piped.position, PROMPT.length + N);
      piped.reset();
      await piped.prefill(PROMPT);
      const seen: [number, number][] = [];
      const got = await piped.decodeGreedyMany(first, N, { onToken: (t, i) => seen.push([t, i]) });
      assert.deepEqual(got, ref);
      assert.deepEqual(seen, ref.map((t, i) => [t, i]));
      assert.equal(piped.position, PROMPT.length + N);

      // stop inside chunk 3 of 7 (tokens 9..11): chunk 4 was already submitted and must be rolled back
      const k = ref.indexOf(ref[10]);
      piped.reset();
      await piped.prefill(PROMPT);
      const stopped = await piped.decodeGreedyMany(first, N, { stopIds: [ref[10]] });
      assert.deepEqual(stopped, ref.slice(0, k + 1));
      assert.equal(piped.position, PROMPT.length + k + 1);
      assert.equal(piped.cacheStats().tokens, PROMPT.length + k + 1);
      // the context goes on as if the chain had never run past the stop
      const rest = await piped.decodeGreedyMany(ref[k], N - k - 1);
      assert.deepEqual(rest, ref.slice(k + 1));
    } finally {
      one.dispose();
      piped.dispose();
    }
  },
});
