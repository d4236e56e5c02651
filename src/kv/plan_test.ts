import assert from "node:assert/strict";
import {
  canonicalPlanBody,
  checkPlanFits,
  createPlan,
  type KvPlan,
  parsePlan,
  planChecksum,
  planFromFinalBits,
  planFromTotalBudget,
  readPlan,
  uniformPlan,
  writePlan,
} from "./plan.ts";
import { layerBytesAt } from "./accounting.ts";
import { thrown } from "./testing.ts";
import { ArtifactError, BudgetError, InputError } from "../errors.ts";

const TINY = { numLayers: 6, numKvHeads: 2, headDim: 128 };
const FP = "a".repeat(64);

Deno.test("plan: uniform plan budgets = layerBytesAt(bits, maxLen); write/read round trip", async () => {
  const plan = uniformPlan(TINY, FP, 4096, 4, { createdAt: "2025-01-01T00:00:00.000Z" });
  assert.deepEqual(plan.finalBits, [4, 4, 4, 4, 4, 4]);
  assert.deepEqual(plan.budgets, Array(6).fill(1213456));
  assert.deepEqual([plan.sink, plan.window, plan.source, plan.format, plan.version], [
    1,
    128,
    "uniform",
    "pmkvq-plan",
    1,
  ]);
  assert.match(plan.checksum, /^[0-9a-f]{64}$/);
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/plan.json`;
    await writePlan(file, plan);
    assert.deepEqual(await readPlan(file, FP), plan);
    // Key order and whitespace do not matter: the checksum is over the canonical body.
    const shuffled = Object.fromEntries(Object.entries(plan).reverse());
    await Deno.writeTextFile(file, JSON.stringify(shuffled));
    assert.deepEqual(await readPlan(file, FP), plan);
    await assert.rejects(() => readPlan(`${dir}/missing.json`, FP), ArtifactError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("plan: wrong model, corrupted checksum, unknown version, malformed content -> ArtifactError naming the file", () => {
  const plan = uniformPlan(TINY, FP, 1024, 2);
  const text = JSON.stringify(plan);
  const other = thrown(() => parsePlan(text, "p.json", "b".repeat(64)), ArtifactError);
  assert.match(other.message, /plan p\.json was made for another model: fingerprint a+, this model b+/);
  const tampered = { ...plan, budgets: plan.budgets.map((b) => b + 1) };
  assert.match(
    thrown(() => parsePlan(JSON.stringify(tampered), "p.json", FP), ArtifactError).message,
    /p\.json is corrupted: checksum/,
  );
  const v2 = { ...plan, version: 2 };
  assert.match(
    thrown(() => parsePlan(JSON.stringify(v2), "p.json", FP), ArtifactError).message,
    /p\.json has unknown version 2/,
  );
  assert.match(
    thrown(() => parsePlan("{nope", "p.json", FP), ArtifactError).message,
    /p\.json is not valid JSON/,
  );
  assert.match(
    thrown(() => parsePlan("[1]", "p.json", FP), ArtifactError).message,
    /p\.json must hold a JSON object/,
  );
  assert.match(
    thrown(() => parsePlan('{"format":"x"}', "p.json", FP), ArtifactError).message,
    /not a PM-KVQ plan/,
  );
  const bad = { ...plan, finalBits: [4, 3], budgets: [1] };
  const m = thrown(() => parsePlan(JSON.stringify(bad), "p.json", FP), ArtifactError).message;
  assert.match(m, /p\.json is malformed: .*finalBits \[4,3\].*budgets has 1 entries but finalBits 2/);
  const { checksum: _c, ...noSum } = plan;
  assert.match(
    thrown(() => parsePlan(JSON.stringify(noSum), "p.json", FP), ArtifactError).message,
    /checksum is missing/,
  );
  assert.equal(planChecksum(plan), plan.checksum);
  assert.ok(canonicalPlanBody(plan).startsWith('{"budgets":['));
});

Deno.test("plan: planFromTotalBudget picks the widest width that fits; refuses bad or infeasible budgets", () => {
  const p = planFromTotalBudget(TINY, FP, 4096, 8_000_000);
  assert.deepEqual(p.finalBits, Array(6).fill(4));
  assert.deepEqual(p.budgets, Array(6).fill(1_333_333));
  assert.equal(p.source, "budget");
  const at = (b: number) => layerBytesAt(TINY, { bits: b, sink: 1, window: 128 }, 4096);
  assert.deepEqual(planFromTotalBudget(TINY, FP, 4096, 6 * at(16)).finalBits[0], 16);
  assert.deepEqual(planFromTotalBudget(TINY, FP, 4096, 6 * at(8) - 1).finalBits[0], 4);
  assert.deepEqual(planFromTotalBudget(TINY, FP, 4096, 6 * at(2)).finalBits[0], 2);
  const low = thrown(() => planFromTotalBudget(TINY, FP, 4096, 6 * at(2) - 6), BudgetError);
  assert.match(low.message, new RegExp(`minimum feasible total is ${6 * at(2)} bytes`));
  for (const bad of [0, -5, 1.5, NaN]) {
    assert.match(
      thrown(() => planFromTotalBudget(TINY, FP, 4096, bad), BudgetError).message,
      new RegExp(`budget ${bad} bytes`),
    );
  }
  assert.throws(() => uniformPlan(TINY, FP, 0, 4), InputError);
  const alloc = planFromFinalBits(TINY, FP, 2048, [2, 2, 4, 4, 8, 2]);
  assert.deepEqual(
    alloc.budgets,
    [2, 2, 4, 4, 8, 2].map((b) => layerBytesAt(TINY, { bits: b, sink: 1, window: 128 }, 2048)),
  );
  assert.throws(() => createPlan({ ...alloc, budgets: [1, 2] }), InputError);
});

Deno.test("plan: checkPlanFits refuses a run longer than the plan before generation", () => {
  const plan: Pick<KvPlan, "maxLen"> = { maxLen: 4096 };
  checkPlanFits(plan, 4096);
  const e = thrown(() => checkPlanFits(plan, 5000, { prompt: 904, newTokens: 4096 }), BudgetError);
  assert.equal(
    e.message,
    "plan holds 4096 tokens, this run needs 5000 = prompt 904 + new 4096: make a plan with a larger max-len",
  );
  assert.match(thrown(() => checkPlanFits(plan, 4097), BudgetError).message, /needs 4097 tokens/);
});
