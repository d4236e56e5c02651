/**
 * The sharp long-generation test: tiny-lm recites its training text. With an exact cache, greedy decoding
 * of the two passages in recitation-examples.json must reproduce the true 1,536-token continuation
 * (the independent fp32 implementation does).
 */
import assert from "node:assert/strict";
import { loadModel } from "../src/model/load.ts";
import { createCpuEngine } from "../cpu/engine.ts";
import { generate } from "../src/generate.ts";
import { TINY_LM } from "./support/paths.ts";

interface Example {
  prompt_ids: number[];
  truth_ids: number[];
}

Deno.test("tiny-lm recites 1,536 tokens exactly with the exact f32 cache (CPU)", async () => {
  const examples = JSON.parse(await Deno.readTextFile(`${TINY_LM}/recitation-examples.json`)) as Example[];
  const model = await loadModel(TINY_LM);
  for (const [i, ex] of examples.entries()) {
    const engine = createCpuEngine(model, { method: "exact" });
    const r = await generate(engine, ex.prompt_ids, { maxNewTokens: ex.truth_ids.length });
    let prefix = 0;
    while (prefix < r.ids.length && r.ids[prefix] === ex.truth_ids[prefix]) prefix++;
    console.log(
      `passage ${i}: prefix match ${prefix}/${ex.truth_ids.length}, ${
        r.decodeTokensPerSecond.toFixed(1)
      } tokens/s`,
    );
    assert.equal(prefix, ex.truth_ids.length, `passage ${i} diverged at token ${prefix}`);
  }
});
