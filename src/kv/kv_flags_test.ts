// Tests of src/cli/kv_flags.ts (kept beside the cache code it configures).
import assert from "node:assert/strict";
import { cacheSpecFromFlags, type KvFlagValues } from "../cli/kv_flags.ts";
import type { LoadedModel } from "../model/types.ts";
import { uniformPlan, writePlan } from "./plan.ts";
import { layerBytesAt } from "./accounting.ts";
import { ArtifactError, BudgetError, InputError } from "../errors.ts";

const FP = "f".repeat(64);
const model = {
  dir: "",
  config: { numLayers: 6, numKvHeads: 2, headDim: 128 },
  fingerprint: FP,
  tokenizerPath: null,
} as unknown as LoadedModel;
const SHAPE = { numLayers: 6, numKvHeads: 2, headDim: 128 };
const spec = (v: KvFlagValues, len = 512) => cacheSpecFromFlags(v, model, len);

Deno.test("kv flags: methods and their defaults", async () => {
  assert.deepEqual(await spec({}), { method: "exact", dtype: "f32" });
  assert.deepEqual(await spec({ kv: "bf16" }), { method: "exact", dtype: "bf16" });
  assert.deepEqual(await spec({ kv: "int4" }), { method: "static", bits: 4, sink: 0, window: 0 });
  assert.deepEqual(await spec({ kv: "int2", sink: "1", window: "128" }), {
    method: "static",
    bits: 2,
    sink: 1,
    window: 128,
  });
  assert.deepEqual(await spec({ kv: "kivi2" }), { method: "kivi", bits: 2, group: 128, residual: 128 });
  // pmkvq without budget/bits/plan: uniform 4-bit at max-len = the run's length.
  const at = (b: number, n: number) => layerBytesAt(SHAPE, { bits: b, sink: 1, window: 128 }, n);
  assert.deepEqual(await spec({ kv: "pmkvq" }), {
    method: "pmkvq",
    finalBits: Array(6).fill(4),
    budgets: Array(6).fill(at(4, 512)),
    maxLen: 512,
    sink: 1,
    window: 128,
  });
  const b = await spec({ kv: "pmkvq", "kv-bits": "2", "max-len": "2048" });
  assert.deepEqual(b.method === "pmkvq" && [b.finalBits[0], b.budgets[0], b.maxLen], [2, at(2, 2048), 2048]);
  const t = await spec({ kv: "pmkvq", "kv-budget": String(6 * at(8, 512)) });
  assert.deepEqual(t.method === "pmkvq" && [t.finalBits[0], t.budgets[0]], [8, at(8, 512)]);
  const w = await spec({ kv: "pmkvq", sink: "0", window: "0" });
  assert.deepEqual(w.method === "pmkvq" && [w.sink, w.window], [0, 0]);
});

Deno.test("kv flags: bad values and combinations -> InputError naming the flag; budget problems -> BudgetError", async () => {
  const bad: [KvFlagValues, RegExp][] = [
    [{ kv: "int3" }, /--kv "int3" is not supported/],
    [{ kv: "exact", sink: "1" }, /--sink "1" does not apply to --kv exact/],
    [{ kv: "kivi4", window: "8" }, /--window "8" does not apply to --kv kivi4/],
    [{ kv: "int4", "kv-budget": "100" }, /--kv-budget "100" does not apply to --kv int4/],
    [{ kv: "int4", sink: "-1" }, /--sink "-1" must be an integer >= 0/],
    [{ kv: "int4", window: "x" }, /--window "x" must be an integer >= 0/],
    [{ kv: "pmkvq", "kv-bits": "3" }, /--kv-bits "3" must be 16, 8, 4 or 2/],
    [{ kv: "pmkvq", "kv-budget": "1.5" }, /--kv-budget "1.5" must be a positive integer/],
    [{ kv: "pmkvq", "kv-budget": "0" }, /--kv-budget "0"/],
    [{ kv: "pmkvq", "kv-budget": "1", "kv-bits": "4" }, /only one of --kv-budget, --kv-bits, --plan/],
    [{ kv: "pmkvq", "max-len": "0" }, /--max-len "0" must be an integer >= 1/],
    [{ "kv-bits": "4" }, /--kv-bits "4" does not apply to --kv exact/],
  ];
  for (const [v, re] of bad) {
    await assert.rejects(() => spec(v), (e: Error) => e instanceof InputError && re.test(e.message));
  }
  await assert.rejects(
    () => spec({ kv: "pmkvq", "kv-budget": "1000" }),
    (e: Error) => e instanceof BudgetError && /minimum feasible total/.test(e.message),
  );
  await assert.rejects(
    () => spec({ kv: "pmkvq", "max-len": "100" }, 612),
    (e: Error) => e instanceof BudgetError && /plan holds 100 tokens, this run needs 612/.test(e.message),
  );
});

Deno.test("kv flags: --plan reads and checks a plan file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/p.json`;
    await writePlan(file, uniformPlan(SHAPE, FP, 1024, 2));
    const s = await spec({ kv: "pmkvq", plan: file }, 1000);
    assert.deepEqual(s.method === "pmkvq" && [s.maxLen, s.finalBits[5]], [1024, 2]);
    await assert.rejects(() => spec({ kv: "pmkvq", plan: file }, 1025), BudgetError);
    await assert.rejects(
      () => spec({ kv: "pmkvq", plan: file, sink: "4" }),
      (e: Error) => e instanceof InputError && /--sink 4 contradicts the plan/.test(e.message),
    );
    await writePlan(file, uniformPlan({ ...SHAPE, numLayers: 2 }, FP, 1024, 2));
    await assert.rejects(
      () => spec({ kv: "pmkvq", plan: file }),
      (e: Error) => e instanceof ArtifactError && /has 2 layers, the model has 6/.test(e.message),
    );
    await writePlan(file, uniformPlan(SHAPE, "other", 1024, 2));
    await assert.rejects(() => spec({ kv: "pmkvq", plan: file }), ArtifactError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
