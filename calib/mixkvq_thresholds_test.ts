import assert from "node:assert/strict";
import { buildMixKvqSearch, DEFAULT_TAU_GRID, MixKvqThresholdSearch } from "./mixkvq_thresholds.ts";
import { loadCorpusSegments, tokenWindows } from "./corpus.ts";
import { MixKvqCache } from "../src/kv/mixkvq.ts";
import { CpuForward } from "../cpu/forward.ts";
import { loadModel } from "../src/model/load.ts";
import { loadTokenizer } from "../src/model/tokenizer.ts";
import { InputError } from "../src/errors.ts";
import { mulberry32 } from "../src/sampling.ts";
import { TINY_LM } from "../tests/support/paths.ts";

Deno.test("mixkvq thresholds: tabulated errors and bits equal a brute force through the real cache", () => {
  const nH = 4, nKv = 2, D = 8, R = 8, g = 4, T = 3 * R + 3;
  const rnd = mulberry32(11);
  const q = new Float32Array(T * nH * D).map((_, i) => (rnd() - 0.5) * (1 + (i % D)));
  const k = new Float32Array(T * nKv * D).map((_, i) => (rnd() - 0.5) * Math.exp(Math.sin(i % (nKv * D))));
  const grid = [0.3, 0.7, 1, 1.3, 2];
  const search = new MixKvqThresholdSearch({
    numHeads: nH,
    numKvHeads: nKv,
    headDim: D,
    residual: R,
    keyGroup: g,
    grid,
  });
  search.addSequence(q, k, T);
  const row = nKv * D;
  for (const cand of search.evaluate()) {
    const cache = new MixKvqCache(
      { method: "mixkvq", residual: R, keyGroup: g, tau16: cand.tau16, tau4: cand.tau4 },
      { numLayers: 1, numKvHeads: nKv, headDim: D },
    );
    cache.observeQuery(0, q, T);
    cache.append(0, k, new Float32Array(T * row), T);
    assert.equal(cache.stats().avgBits!.k, cand.avgKeyBits, `${cand.tau16}/${cand.tau4}`);
    const kt = cache.view(0).k;
    let err = 0, pairs = 0;
    for (let b0 = 0; b0 + R <= T; b0 += R) {
      for (let i = b0 + R; i < T; i++) {
        for (let h = 0; h < nH; h++) {
          const kvh = Math.floor(h / (nH / nKv));
          for (let j = b0; j < b0 + R; j++) {
            let e = 0;
            for (let d = 0; d < D; d++) {
              e += q[(i * nH + h) * D + d] * (kt[j * row + kvh * D + d] - k[j * row + kvh * D + d]);
            }
            err += (e * e) / D;
            pairs++;
          }
        }
      }
    }
    const want = err / pairs;
    assert.ok(
      Math.abs(cand.error - want) <= 1e-9 * want,
      `${cand.tau16}/${cand.tau4}: ${cand.error} vs ${want}`,
    );
  }
  assert.equal(search.pairs.length, 21); // 6 τ values (grid + ∞), τ16 ≥ τ4
  const r = search.result(3);
  assert.ok(r.avgKeyBits <= 3);
  for (const c of search.evaluate()) if (c.avgKeyBits <= 3) assert.ok(r.error <= c.error);
  assert.ok(r.errorAllBf16 <= r.error && r.error <= r.errorAll2Bit);
  assert.throws(
    () => search.result(1.9),
    (e: Error) => e instanceof InputError && /least is 2/.test(e.message),
  );
});

Deno.test("mixkvq thresholds: bad input is a typed error", () => {
  const s = new MixKvqThresholdSearch({ numHeads: 2, numKvHeads: 1, headDim: 8, residual: 8 });
  assert.throws(() => s.result(3), InputError); // nothing added
  s.addSequence(new Float32Array(8 * 16).fill(1), new Float32Array(8 * 8).map(Math.sin), 8); // 1 block, no later query
  assert.throws(() => s.result(3), (e: Error) => e instanceof InputError && /later query/.test(e.message));
  assert.throws(
    () => new MixKvqThresholdSearch({ numHeads: 2, numKvHeads: 1, headDim: 8, grid: [NaN] }),
    InputError,
  );
  assert.equal(DEFAULT_TAU_GRID.length, 50);
  assert.equal(DEFAULT_TAU_GRID[38], 2);
  assert.deepEqual(DEFAULT_TAU_GRID.slice(0, 3), [0.1, 0.15, 0.2]);
  assert.deepEqual(DEFAULT_TAU_GRID.slice(-4), [4, 5, 6, 8]);
});

Deno.test("mixkvq thresholds: tiny-lm search meets the bit targets, and the cache reproduces the bits", async () => {
  // Small on purpose (the CPU forward pass is the cost): R = 32, one window of 3·R tokens → 3 blocks per
  // layer-head, the first 2 of which have later queries.
  const model = await loadModel(TINY_LM);
  const c = model.config;
  const tok = await loadTokenizer(`${TINY_LM}/tokenizer.json`);
  const R = 32;
  const windows = tokenWindows((await loadCorpusSegments()).slice(0, 2), tok, {
    count: 1,
    length: 3 * R,
    seed: 2,
  });
  const ids = windows[0];
  const grid = [0.5, 0.8, 1.0, 1.2, 1.5, 2.0];
  const search = buildMixKvqSearch(model, windows, { grid, residual: R });
  const results = [2.3, 2.7, 3.0].map((t) => search.result(t));
  for (const r of results) {
    assert.ok(r.avgKeyBits <= r.targetBits, JSON.stringify(r));
    assert.ok(r.error <= r.errorAll2Bit && r.errorAllBf16 < r.error, JSON.stringify(r));
    assert.equal(r.blocks, 3 * c.numLayers * c.numKvHeads);
    assert.equal(r.errorBlocks, 2 * c.numLayers * c.numKvHeads);
  }
  assert.ok(results[0].error >= results[1].error && results[1].error >= results[2].error);
  assert.ok(results[2].error < results[2].errorAll2Bit);
  // The cache, run by the CPU forward pass (observeQuery) on the same window, lands on the same bits.
  const best = results[1];
  const cache = new MixKvqCache({ method: "mixkvq", residual: R, tau16: best.tau16, tau4: best.tau4 }, {
    numLayers: c.numLayers,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
  });
  new CpuForward(model).forward(ids, ids.map((_, i) => i), cache, { logits: "none" });
  assert.equal(cache.stats().tokens, 3 * R);
  assert.equal(cache.stats().avgBits!.k, best.avgKeyBits);
});
