import assert from "node:assert/strict";
import { createCache } from "./factory.ts";
import { ExactCache } from "./exact.ts";
import { GroupedCache } from "./grouped.ts";
import { KiviCache } from "./kivi.ts";
import { planToCacheSpec, uniformPlan } from "./plan.ts";
import { QuantConfigError } from "../errors.ts";
import { loadModel } from "../model/load.ts";
import { CpuEngine } from "../../cpu/engine.ts";
import { TINY_LM } from "../../tests/support/paths.ts";

const SHAPE = { numLayers: 2, numKvHeads: 2, headDim: 128 };

Deno.test("factory: every method, defaults, and refused configurations", () => {
  assert.ok(createCache({ method: "exact" }, SHAPE) instanceof ExactCache);
  const s = createCache({ method: "static", bits: 8 }, SHAPE);
  assert.ok(s instanceof GroupedCache);
  assert.deepEqual([s.config.sink, s.config.window, s.config.budgets, s.stats().method], [
    0,
    0,
    null,
    "static-int8",
  ]);
  const k = createCache({ method: "kivi", bits: 4 }, SHAPE);
  assert.ok(k instanceof KiviCache);
  assert.deepEqual([k.group, k.residual], [128, 128]);
  const p = createCache(
    { method: "pmkvq", finalBits: [4, 2], budgets: [1e6, 1e6], maxLen: 100 },
    SHAPE,
  ) as GroupedCache;
  assert.deepEqual([p.config.sink, p.config.window, p.config.initBits, p.stats().layers[1].bits], [
    1,
    128,
    16,
    16,
  ]);
  const bad = [
    { method: "pmkvq", finalBits: [4], budgets: [1, 1], maxLen: 1 },
    { method: "pmkvq", finalBits: [4, 4], budgets: [1], maxLen: 1 },
    { method: "pmkvq", finalBits: [4, 16], budgets: [1, 1], maxLen: 1, initBits: 8 },
    { method: "pmkvq", finalBits: [4, 3], budgets: [1, 1], maxLen: 1 },
    { method: "pmkvq", finalBits: [4, 4], budgets: [1, -1], maxLen: 1 },
    { method: "static", bits: 4, window: -1 },
  ];
  for (const spec of bad) {
    assert.throws(() => createCache(spec as never, SHAPE), QuantConfigError, JSON.stringify(spec));
  }
  assert.throws(
    () => createCache({ method: "static", bits: 4 }, { ...SHAPE, headDim: 192 }),
    QuantConfigError,
  );
});

Deno.test("factory: tiny-lm decodes through a progressive cache; budgets hold; shrinks reach the final width", async () => {
  const model = await loadModel(TINY_LM);
  const shape = { numLayers: 6, numKvHeads: 2, headDim: 128 };
  // Budgets for 64 tokens at 2 bits with sink 1, window 8: 16 -> 8 at 9 tokens, 8 -> 4 at 17, 4 -> 2 at 33.
  const plan = uniformPlan(shape, model.fingerprint, 64, 2, { sink: 1, window: 8 });
  const engine = new CpuEngine(model, planToCacheSpec(plan));
  const ids = Array.from({ length: 6 }, (_, i) => (i * 37 + 11) % model.config.vocabSize);
  let logits = await engine.prefill(ids);
  for (let i = 0; i < 58; i++) logits = await engine.decode((i * 13 + 5) % 4096);
  assert.ok(logits.every(Number.isFinite));
  const st = engine.cacheStats();
  assert.equal(st.tokens, 64);
  for (const L of st.layers) {
    assert.equal(L.bits, 2);
    assert.ok(L.bytes <= L.budget!);
  }
  const steps = (from: number) => [...new Set(st.events.filter((e) => e.from === from).map((e) => e.step))];
  assert.deepEqual([steps(16), steps(8), steps(4)], [[9], [17], [33]]);
  assert.equal(st.events.length, 6 * 3);
  const ref = await new CpuEngine(model, { method: "exact" }).prefill(ids);
  const first = await new CpuEngine(model, planToCacheSpec(plan)).prefill(ids);
  assert.deepEqual(first, ref, "prefill attends with exact K/V whatever the cache");
});
