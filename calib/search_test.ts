import assert from "node:assert/strict";
import { ALPHA_GRID, lambdaFor, LayerAlphaSearch, pickAlpha, smoothQK } from "./search.ts";
import { collectMaxKeys } from "./maxkeys.ts";
import { makeToyModel } from "./toy_model.ts";
import { attentionOutput, projectQKV, queryRows } from "./layer_attention.ts";
import { stretchedPositions } from "./corpus.ts";
import { fakeQuantize } from "../src/quant/quantizer.ts";
import { InputError, QuantConfigError } from "../src/errors.ts";
import { mulberry32 } from "../src/sampling.ts";

Deno.test("search: grid, λ clamp, tie rule", () => {
  assert.equal(ALPHA_GRID.length, 20);
  assert.equal(ALPHA_GRID[0], 1);
  assert.equal(ALPHA_GRID[19], 0.05);
  assert.ok(ALPHA_GRID.every((a, i) => i === 0 || a < ALPHA_GRID[i - 1]));
  assert.deepEqual(Array.from(lambdaFor(new Float32Array([4, 0, 1e12, 1e-12]), 0.5)), [
    2,
    Math.fround(1e-4),
    1e4,
    Math.fround(1e-4),
  ]);
  // Ties keep the larger α, whatever the grid order.
  assert.equal(pickAlpha([1, 0.5, 0.25], [3, 2, 2]), 1);
  assert.equal(pickAlpha([0.25, 0.5, 1], [2, 2, 3]), 1);
  assert.equal(pickAlpha([1, 0.5], [2, 2]), 0);
  assert.equal(pickAlpha([1, 0.5, 0.25], [3, 2, 1]), 2);
  assert.throws(() => pickAlpha([1], [1, 2]), InputError);
  assert.deepEqual(queryRows(10, 4), [1, 5, 9]);
  assert.deepEqual(queryRows(3), [0, 1, 2]);
});

Deno.test("search: each query head uses its KV head's λ; q·k is unchanged", () => {
  const D = 4, T = 1, nH = 4, nKv = 2;
  const rand = mulberry32(5);
  const q = Float32Array.from({ length: T * nH * D }, () => rand() - 0.5);
  const k = Float32Array.from({ length: T * nKv * D }, () => rand() - 0.5);
  const lambda = new Float32Array([2, 4, 8, 16]); // KV head 0: pairs (0,2)→2, (1,3)→4; KV head 1: 8, 16
  const s = smoothQK(q, k, lambda, T, nH, nKv, D);
  const want = [2, 4, 2, 4, 2, 4, 2, 4, 8, 16, 8, 16, 8, 16, 8, 16];
  for (let i = 0; i < q.length; i++) assert.equal(s.q[i], Math.fround(q[i] * want[i]));
  for (let h = 0; h < nH; h++) {
    const kv = Math.floor(h / 2);
    let a = 0, b = 0;
    for (let c = 0; c < D; c++) {
      a += q[h * D + c] * k[kv * D + c];
      b += s.q[h * D + c] * s.k[kv * D + c];
    }
    assert.ok(Math.abs(a - b) <= 1e-6, `head ${h}: ${a} vs ${b}`);
  }
});

Deno.test("search: the chosen α minimizes the summed loss over the grid (toy model with key outliers)", () => {
  const model = makeToyModel({ seed: 11, outlierGain: 10 });
  const rand = mulberry32(2);
  const windows = [0, 1].map(() =>
    Array.from({ length: 24 }, () => Math.floor(rand() * model.config.vocabSize))
  );
  const mk = collectMaxKeys(model, windows, { stretch: 4 });
  const positions = stretchedPositions(24, 4);
  const inputs: Float32Array[][] = windows.map(() => []);
  collectMaxKeys(model, windows, { stretch: 4, onLayerInput: (w, l, h) => (inputs[w][l] = h.slice()) });
  for (let l = 0; l < model.config.numLayers; l++) {
    const search = new LayerAlphaSearch(model, l, mk[l], { kBits: 2, vBits: 4 });
    for (const w of inputs) search.addWindow(w[l], positions);
    const r = search.result();
    assert.equal(r.windows, 2);
    assert.equal(r.grid.length, 20);
    const min = Math.min(...r.losses);
    assert.equal(r.loss, min);
    assert.equal(r.alpha, Math.max(...r.grid.filter((_, i) => r.losses[i] === min)));
    assert.deepEqual(r.lambda, lambdaFor(mk[l], r.alpha));
    // With strong key outliers, smoothing beats plain 2-bit keys.
    assert.ok(r.loss < r.lossNoSmoothing, `layer ${l}: ${r.loss} vs ${r.lossNoSmoothing}`);

    // Independent recomputation of one grid entry's loss.
    const i = 7, G = model.config.headDim;
    let want = 0;
    for (const w of inputs) {
      const { q, k, v } = projectQKV(model, l, w[l], 24, positions);
      const teacher = attentionOutput(model, l, q, k, v, 24);
      const s = smoothQK(q, k, lambdaFor(mk[l], r.grid[i]), 24, 4, 2, G);
      const student = attentionOutput(model, l, s.q, fakeQuantize(s.k, G, 2), fakeQuantize(v, G, 4), 24);
      want += teacher.reduce((acc, x, j) => acc + (x - student[j]) ** 2, 0) / teacher.length;
    }
    assert.ok(Math.abs(want - r.losses[i]) <= 1e-12 * Math.max(1, want), `${want} vs ${r.losses[i]}`);
  }
});

Deno.test("search: query stride, bad options", () => {
  const model = makeToyModel({ seed: 1 });
  const mk = collectMaxKeys(model, [[1, 2, 3, 4, 5, 6, 7, 8]], { stretch: 2 });
  const h = new Float32Array(8 * model.config.hiddenSize).map((_, i) => Math.sin(i));
  const s = new LayerAlphaSearch(model, 0, mk[0], { grid: [1, 0.5], queryStride: 3 });
  s.addWindow(h, stretchedPositions(8, 2));
  assert.deepEqual(s.result().grid, [1, 0.5]);
  assert.throws(() => new LayerAlphaSearch(model, 0, mk[0]).result(), InputError);
  assert.throws(() => new LayerAlphaSearch(model, 0, mk[0], { kBits: 3 }), QuantConfigError);
  assert.throws(() => new LayerAlphaSearch(model, 0, mk[0], { grid: [0] }), InputError);
  assert.throws(() => new LayerAlphaSearch(model, 0, mk[0], { queryStride: 0 }), InputError);
  assert.throws(() => new LayerAlphaSearch(model, 0, new Float32Array(3)), InputError);
});
