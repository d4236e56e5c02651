import assert from "node:assert/strict";
import { type KvGradients, kvGradients, kvLoss } from "./grad.ts";
import { CpuForward } from "./forward.ts";
import { createCache, kvShapeOf } from "../src/kv/factory.ts";
import { randomModel, type RandomModelSpec } from "../src/profile/testing_model.ts";
import { mulberry32 } from "../src/sampling.ts";
import { loadModel } from "../src/model/load.ts";
import { InputError } from "../src/errors.ts";
import type { LoadedModel } from "../src/model/types.ts";
import { TINY_LM } from "../tests/support/paths.ts";

/** Mean next-token cross-entropy from the inference forward's f32 logits ("all"). */
function inferenceLoss(model: LoadedModel, ids: number[], positions: number[]): number {
  const fwd = new CpuForward(model);
  const logits = fwd.forward(ids, positions, createCache({ method: "exact" }, kvShapeOf(model.config)), {
    logits: "all",
  });
  const V = model.config.vocabSize;
  let loss = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    let mx = -Infinity;
    for (const x of row) mx = Math.max(mx, x);
    let sum = 0;
    for (const x of row) sum += Math.exp(x - mx);
    loss += mx + Math.log(sum) - row[ids[t + 1]];
  }
  return loss / (ids.length - 1);
}

interface FdStats {
  checked: number;
  /** Elements compared relatively (gradient above the floor). */
  relative: number;
  maxRel: number;
  maxAbs: number;
}

/**
 * Fourth-order central differences at `perTensor` random elements (tokens 0..T−2) of every layer's K and V. Elements whose
 * gradient is below `floor` in magnitude are compared absolutely (|g − fd| < 1e-10), others relatively (< 1e-5).
 */
function fdCheck(
  model: LoadedModel,
  ids: number[],
  positions: number[],
  g: KvGradients,
  perTensor: number,
  seed: number,
  eps = 1e-3,
): FdStats {
  const rand = mulberry32(seed);
  const { numKvHeads, headDim, numLayers } = model.config;
  const live = (ids.length - 1) * numKvHeads * headDim;
  const stats: FdStats = { checked: 0, relative: 0, maxRel: 0, maxAbs: 0 };
  const floor = 1e-7; // below it, f64 rounding of the loss (~1e-16·L/eps) dominates the difference quotient
  for (let layer = 0; layer < numLayers; layer++) {
    for (const kind of ["k", "v"] as const) {
      const grad = (kind === "k" ? g.dk : g.dv)[layer];
      for (let n = 0; n < perTensor; n++) {
        const index = Math.floor(rand() * live);
        const f = (delta: number) =>
          kvLoss(model, ids, positions, { perturb: { layer, kind, index, delta } });
        // Fourth-order central difference: truncation O(eps⁴), so eps can be large enough that the f64
        // rounding of the loss (~1e-16·L/eps) stays far below the tolerance.
        const fd = (8 * (f(eps) - f(-eps)) - (f(2 * eps) - f(-2 * eps))) / (12 * eps);
        const a = grad[index];
        const abs = Math.abs(a - fd);
        const big = Math.max(Math.abs(a), Math.abs(fd));
        stats.checked++;
        stats.maxAbs = Math.max(stats.maxAbs, abs);
        if (big < floor) {
          assert.ok(abs < 1e-10, `layer ${layer} ${kind}[${index}]: grad ${a} vs fd ${fd}`);
        } else {
          const rel = abs / big;
          stats.relative++;
          stats.maxRel = Math.max(stats.maxRel, rel);
          assert.ok(
            rel < 1e-5,
            `layer ${layer} ${kind}[${index}]: grad ${a} vs fd ${fd} (relative error ${rel})`,
          );
        }
      }
    }
  }
  return stats;
}

function randomIds(n: number, vocab: number, seed: number): number[] {
  const rand = mulberry32(seed);
  return Array.from({ length: n }, () => Math.floor(rand() * vocab));
}

const variants: { name: string; spec: RandomModelSpec; stretch: number }[] = [
  { name: "Qwen2-style q/k/v biases, default RoPE, s = 1", spec: { seed: 1 }, stretch: 1 },
  {
    name: "Llama-3 rope scaling, biases, s = 4",
    spec: {
      seed: 2,
      architecture: "LlamaForCausalLM",
      ropeScaling: {
        type: "llama3",
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 100,
      },
    },
    stretch: 4,
  },
  {
    name: "linear rope scaling, no biases, tied embeddings, 3 layers, s = 4",
    spec: {
      seed: 3,
      attentionBias: false,
      tieWordEmbeddings: true,
      numLayers: 3,
      ropeScaling: { type: "linear", factor: 2 },
    },
    stretch: 4,
  },
  {
    name: "multi-query (1 kv head), 8 q heads, s = 2",
    spec: { seed: 4, numHeads: 8, numKvHeads: 1 },
    stretch: 2,
  },
];

for (const { name, spec, stretch } of variants) {
  Deno.test(`grad: dL/dK, dL/dV match central differences (${name})`, () => {
    const model = randomModel(spec);
    const T = 11;
    const ids = randomIds(T, model.config.vocabSize, 100 + (spec.seed ?? 0));
    const positions = ids.map((_, i) => i * stretch);
    const g = kvGradients(model, ids, positions);
    const stats = fdCheck(model, ids, positions, g, 24, spec.seed ?? 0);
    assert.ok(stats.checked === 24 * 2 * model.config.numLayers);
    assert.ok(
      stats.relative >= 0.75 * stats.checked,
      `only ${stats.relative} of ${stats.checked} above the floor`,
    );
    console.log(
      `  ${stats.checked} elements, ${stats.relative} compared relatively: max rel ${
        stats.maxRel.toExponential(2)
      }, max abs ${stats.maxAbs.toExponential(2)}`,
    );
    // The loss equals the inference forward's cross-entropy.
    assert.ok(Math.abs(g.loss - inferenceLoss(model, ids, positions)) < 1e-5);
    assert.ok(Math.abs(g.loss - kvLoss(model, ids, positions)) < 1e-14);
  });
}

Deno.test("grad: the last token's K/V get exactly zero gradient; earlier ones do not", () => {
  const model = randomModel({ seed: 5 });
  const ids = randomIds(9, 50, 7);
  const g = kvGradients(model, ids, ids.map((_, i) => i));
  const row = model.config.numKvHeads * model.config.headDim;
  for (let l = 0; l < model.config.numLayers; l++) {
    for (const d of [g.dk[l], g.dv[l]]) {
      assert.equal(d.length, ids.length * row);
      assert.ok(d.subarray(8 * row).every((x) => x === 0));
      assert.ok(d.subarray(0, 8 * row).some((x) => x !== 0));
    }
  }
  // The K/V returned are those the inference forward caches (post-RoPE keys, v_proj output).
  const seen: Float32Array[][] = [];
  new CpuForward(model).forward(
    ids,
    ids.map((_, i) => i),
    createCache({ method: "exact" }, kvShapeOf(model.config)),
    {
      logits: "none",
      hooks: { onKV: (_l, k, v) => seen.push([k.slice(), v.slice()]) },
    },
  );
  for (let l = 0; l < model.config.numLayers; l++) {
    for (let i = 0; i < g.k[l].length; i++) {
      assert.ok(Math.abs(g.k[l][i] - seen[l][0][i]) < 1e-5 && Math.abs(g.v[l][i] - seen[l][1][i]) < 1e-5);
    }
  }
});

Deno.test("grad: bad input is refused", () => {
  const model = randomModel({ seed: 6 });
  assert.throws(
    () => kvGradients(model, [1], [0]),
    (e: Error) => e instanceof InputError && /at least 2/.test(e.message),
  );
  assert.throws(() => kvGradients(model, [1, 2], [0]), InputError);
  assert.throws(
    () => kvGradients(model, [1, 50], [0, 1]),
    (e: Error) => e instanceof InputError && /50/.test(e.message),
  );
  assert.throws(
    () => kvLoss(model, [1, 2], [0, 1], { perturb: { layer: 2, kind: "k", index: 0, delta: 1 } }),
    InputError,
  );
});

Deno.test("grad: tiny-lm loss equals the inference forward's; spot finite differences", async () => {
  const model = await loadModel(TINY_LM);
  const ids = randomIds(24, model.config.vocabSize, 11);
  const positions = ids.map((_, i) => 4 * i);
  const g = kvGradients(model, ids, positions);
  const ref = inferenceLoss(model, ids, positions);
  assert.ok(Math.abs(g.loss - ref) < 1e-5, `loss ${g.loss} vs inference ${ref}`);
  // A few elements in the first and last layer, where the gradient is not tiny.
  const row = model.config.numKvHeads * model.config.headDim;
  for (const [layer, kind] of [[0, "k"], [5, "k"], [0, "v"], [5, "v"]] as const) {
    const grad = (kind === "k" ? g.dk : g.dv)[layer];
    let index = 0;
    for (let i = 0; i < 23 * row; i++) if (Math.abs(grad[i]) > Math.abs(grad[index])) index = i;
    const f = (delta: number) => kvLoss(model, ids, positions, { perturb: { layer, kind, index, delta } });
    const eps = 1e-3;
    const fd = (8 * (f(eps) - f(-eps)) - (f(2 * eps) - f(-2 * eps))) / (12 * eps);
    const rel = Math.abs(fd - grad[index]) / Math.abs(grad[index]);
    assert.ok(
      rel < 1e-5,
      `tiny-lm layer ${layer} ${kind}[${index}]: grad ${grad[index]} vs fd ${fd} (rel ${rel})`,
    );
  }
});
