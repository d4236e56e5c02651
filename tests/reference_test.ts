/**
 * The CPU engine against an independent implementation (transformers, fp32 on CPU): tiny-lm and two
 * random-weight models covering Qwen2 biases + tied embeddings and Llama-3 rope scaling.
 *
 * Tolerances (stated, measured values in docs/accuracy.md): last-position logits max |diff| ≤ 2e-4,
 * post-RoPE K/V max |diff| ≤ 1e-4; greedy continuations identical.
 */
import assert from "node:assert/strict";
import { loadModel } from "../src/model/load.ts";
import { loadTokenizer } from "../src/model/tokenizer.ts";
import { createCpuEngine } from "../cpu/engine.ts";
import { CpuForward } from "../cpu/forward.ts";
import { createCache, kvShapeOf } from "../src/kv/factory.ts";
import { argmax } from "../src/sampling.ts";
import { requireFixture, SHARED_RANDOM, TINY_LM } from "./support/paths.ts";

interface RefCase {
  name: string;
  text?: string;
  ids: number[];
  last_logits: number[];
  greedy64?: number[];
  greedy32?: number[];
  layer0_k?: number[][][];
  layer0_v?: number[][][];
  layer5_k?: number[][][];
  layer5_v?: number[][][];
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function greedy(
  dir: string,
  ids: number[],
  n: number,
): Promise<{ first: Float32Array; out: number[] }> {
  const engine = createCpuEngine(await loadModel(dir), { method: "exact" });
  let logits = await engine.prefill(ids);
  const first = logits;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = argmax(logits);
    out.push(id);
    if (i + 1 < n) logits = await engine.decode(id);
  }
  return { first, out };
}

const LOGIT_TOL = 2e-4;
const KV_TOL = 1e-4;

Deno.test("tiny-lm: tokenizer reproduces the reference token ids", async () => {
  const ref = JSON.parse(await Deno.readTextFile(`${TINY_LM}/reference.json`)) as { cases: RefCase[] };
  const tok = await loadTokenizer(`${TINY_LM}/tokenizer.json`);
  for (const c of ref.cases) assert.deepEqual(tok.encode(c.text!), c.ids, c.name);
});

Deno.test("tiny-lm: logits, greedy-64 and post-RoPE K/V match the reference", async () => {
  const ref = JSON.parse(await Deno.readTextFile(`${TINY_LM}/reference.json`)) as { cases: RefCase[] };
  for (const c of ref.cases) {
    const { first, out } = await greedy(TINY_LM, c.ids, 64);
    const d = maxAbsDiff(first, c.last_logits);
    console.log(`tiny-lm ${c.name}: last-logit max |diff| = ${d.toExponential(3)}`);
    assert.ok(d <= LOGIT_TOL, `${c.name}: logits differ by ${d}`);
    assert.deepEqual(out, c.greedy64, `${c.name}: greedy continuation`);
  }
  const short = ref.cases.find((c) => c.layer0_k)!;
  const model = await loadModel(TINY_LM);
  const kv = new Map<number, { k: Float32Array; v: Float32Array }>();
  new CpuForward(model).forward(
    short.ids,
    short.ids.map((_, i) => i),
    createCache({ method: "exact" }, kvShapeOf(model.config)),
    {
      logits: "none",
      hooks: { onKV: (l, k, v) => kv.set(l, { k: k.slice(), v: v.slice() }) },
    },
  );
  const nKv = model.config.numKvHeads, D = model.config.headDim, T = short.ids.length;
  for (
    const [layer, kk, vv] of [[0, short.layer0_k!, short.layer0_v!], [
      5,
      short.layer5_k!,
      short.layer5_v!,
    ]] as const
  ) {
    // reference layout [nKv][T][D]; ours [T][nKv][D]
    const ours = kv.get(layer)!;
    let dk = 0, dv = 0;
    for (let h = 0; h < nKv; h++) {
      for (let t = 0; t < T; t++) {
        for (let d = 0; d < D; d++) {
          dk = Math.max(dk, Math.abs(ours.k[(t * nKv + h) * D + d] - kk[h][t][d]));
          dv = Math.max(dv, Math.abs(ours.v[(t * nKv + h) * D + d] - vv[h][t][d]));
        }
      }
    }
    console.log(
      `tiny-lm layer ${layer}: key max |diff| ${dk.toExponential(3)}, value ${dv.toExponential(3)}`,
    );
    assert.ok(dk <= KV_TOL && dv <= KV_TOL, `layer ${layer}: K diff ${dk}, V diff ${dv}`);
  }
});

for (const name of ["qwen2-random", "llama3-rope-random"]) {
  const dir = `${SHARED_RANDOM}/${name}`;
  Deno.test({
    name: `${name}: logits and greedy-32 match the reference`,
    ignore: requireFixture(dir),
    fn: async () => {
      const ref = JSON.parse(await Deno.readTextFile(`${dir}/reference.json`)) as { cases: RefCase[] };
      for (const c of ref.cases) {
        const { first, out } = await greedy(dir, c.ids, 32);
        const d = maxAbsDiff(first, c.last_logits);
        console.log(`${name} ${c.name}: last-logit max |diff| = ${d.toExponential(3)}`);
        assert.ok(d <= LOGIT_TOL, `${c.name}: logits differ by ${d}`);
        assert.deepEqual(out, c.greedy32, `${c.name}: greedy continuation`);
      }
    },
  });
}
