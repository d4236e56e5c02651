/**
 * Tests of the branch-and-bound bit allocator against independent oracles: brute force (small instances,
 * any costs, the exact f64 objective) and the weight-axis DP (larger instances, exact-sum costs).
 * Every random instance is seeded; a failure message carries the instance as JSON.
 */

import assert from "node:assert/strict";
import { BudgetError, InputError, PmkvqError } from "../errors.ts";
import {
  type AllocationProblem,
  betterKey,
  checkAllocationProblem,
  layerOrderCost,
  snapCosts,
  solveAllocation,
} from "./bnb.ts";
import { solveAllocationDp } from "./dp.ts";
import { solveAllocationExhaustive } from "./exhaustive.ts";

// ---------- seeded generators ----------

function mulberry32(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rnd = () => number;
const int = (r: Rnd, n: number) => Math.floor(r() * n);
const pickOf = <T>(r: Rnd, xs: readonly T[]): T => xs[int(r, xs.length)];
const BITS = [2, 4, 8, 16] as const;

type CostKind = "real" | "int4" | "int2" | "dyadic" | "absorb" | "zero";
type WeightKind = "random" | "zeros" | "bits-equal" | "bits-width" | "big";

function genCost(r: Rnd, kind: CostKind, layerScale: number, j: number): number {
  switch (kind) {
    case "real":
      return layerScale * 4 ** -j * (0.25 + r()) + (r() < 0.1 ? 0 : r() * 0.01);
    case "int4":
      return int(r, 4);
    case "int2":
      return int(r, 2);
    case "dyadic":
      return int(r, 64) / 16;
    case "absorb":
      return pickOf(r, [0, 1, 0.5, 0.1, 2 ** 53, 2 ** 54, 3 * 2 ** 52, 1e-300, 2 ** -1074, 1 / 3]);
    case "zero":
      return r() < 0.8 ? 0 : 1;
  }
}

/** Random small instance; budget relative to the lightest/heaviest totals (may be infeasible when asked). */
function genSmall(
  r: Rnd,
  costKind: CostKind,
  weightKind: WeightKind,
  maxLeaves: number,
  infeasible = false,
  full = false, // exactly 12 layers x 4 choices
  twins = false, // most layers copy one of two template layers (identical rows: symmetric ties)
) {
  const L = full ? 12 : 1 + int(r, 12);
  const nc = Array.from({ length: L }, () => (full ? 4 : 1 + int(r, 4)));
  if (weightKind === "bits-equal") {
    nc.fill(Math.max(1, Math.min(nc[0], Math.floor(maxLeaves ** (1 / L) + 1e-9))));
  }
  let space = nc.reduce((a, b) => a * b, 1);
  while (space > maxLeaves) {
    const i = int(r, L);
    if (nc[i] > 1) {
      space = (space / nc[i]) * (nc[i] - 1);
      nc[i]--;
    }
  }
  const costs: number[][] = [], weights: number[][] = [];
  for (let i = 0; i < L; i++) {
    const scale = Math.exp(3 * r());
    const widthMul = 1 + int(r, 3);
    const bits = [...BITS].sort(() => r() - 0.5).slice(0, nc[i]);
    costs.push(Array.from({ length: nc[i] }, (_, j) => genCost(r, costKind, scale, j)));
    weights.push(Array.from({ length: nc[i] }, (_, j) => {
      switch (weightKind) {
        case "random":
          return int(r, 10);
        case "zeros":
          return r() < 0.5 ? 0 : int(r, 3);
        case "bits-equal":
          return bits[j] * 3 + 1;
        case "bits-width":
          return widthMul * (bits[j] * 3 + 1);
        case "big":
          return 2 ** 40 + int(r, 8) * 2 ** 30 + int(r, 2);
      }
    }));
  }
  if (weightKind === "bits-equal") {
    // the PM-KVQ case: the same candidate bit-widths (hence weights) for every layer
    for (let i = 1; i < L; i++) weights[i] = weights[0].slice();
  }
  if (twins) {
    for (let i = 2; i < L; i++) {
      const t = int(r, 3);
      if (t < 2 && nc[t] === nc[i]) {
        costs[i] = costs[t].slice();
        weights[i] = weights[t].slice();
      }
    }
  }
  // sprinkle duplicates / equal-weight variants so dominance and its tie rule are exercised
  if (r() < 0.3) {
    const i = int(r, L);
    if (nc[i] >= 2) {
      const a = int(r, nc[i]), b = int(r, nc[i]);
      weights[i][b] = weights[i][a];
      if (r() < 0.5) costs[i][b] = costs[i][a];
    }
  }
  const minW = weights.reduce((s, w) => s + Math.min(...w), 0);
  const maxW = weights.reduce((s, w) => s + Math.max(...w), 0);
  const mode = int(r, 6);
  const budget = infeasible
    ? minW - 1 - int(r, 3)
    : mode === 0
    ? minW
    : mode === 1
    ? maxW + int(r, 5)
    : mode === 2
    ? minW + int(r, 3)
    : minW + Math.floor(r() * (maxW - minW + 1));
  return { costs, weights, budget };
}

const show = (p: AllocationProblem) => JSON.stringify(p);

function assertSameAsExhaustive(p: AllocationProblem): void {
  const a = solveAllocation(p);
  const b = solveAllocationExhaustive(p);
  const msg = `instance ${show(p)}\nbnb ${JSON.stringify(a)}\nexhaustive ${JSON.stringify(b)}`;
  assert.equal(a.optimal, true);
  assert.ok(Object.is(a.cost, b.cost), msg);
  assert.equal(a.weight, b.weight, msg);
  assert.deepEqual(a.choice, b.choice, msg);
  assert.equal(a.cost, layerOrderCost(p.costs, a.choice), msg);
  assert.ok(a.weight <= p.budget, msg);
}

// ---------- (a) brute force, small instances ----------

const SMALL_CASES: [CostKind, WeightKind, number, boolean][] = [
  ["real", "random", 450, false],
  ["real", "bits-width", 250, false],
  ["real", "bits-equal", 250, false],
  ["int4", "random", 350, false],
  ["int2", "random", 250, false],
  ["int4", "bits-equal", 250, false],
  ["int2", "bits-equal", 200, false],
  ["dyadic", "bits-width", 200, false],
  ["absorb", "random", 250, false],
  ["absorb", "bits-equal", 100, false],
  ["zero", "zeros", 150, false],
  ["int4", "big", 100, false],
  ["real", "zeros", 100, false],
  ["int4", "bits-equal", 150, true],
  ["int2", "random", 150, true],
  ["dyadic", "bits-width", 100, true],
  ["real", "random", 100, true],
];

/** Some choice has another of its layer with weight ≤ and cost ≤ (so dominance pruning applies). */
const hasDominated = (p: AllocationProblem) =>
  p.costs.some((row, i) =>
    row.some((c, j) => row.some((c2, k) => k !== j && c2 <= c && p.weights[i][k] <= p.weights[i][j]))
  );

Deno.test("bnb equals exhaustive search on 3,400 seeded small instances (all cost/weight kinds)", () => {
  const seen = { total: 0, tieHeavy: 0, equalWeights: 0, dominated: 0, tight: 0, loose: 0, twins: 0 };
  for (const [ci, [ck, wk, count, twins]] of SMALL_CASES.entries()) {
    const r = mulberry32(1000 + ci);
    for (let t = 0; t < count; t++) {
      const p = genSmall(r, ck, wk, 1 << 13, false, false, twins);
      assertSameAsExhaustive(p);
      const minW = p.weights.reduce((s, w) => s + Math.min(...w), 0);
      const maxW = p.weights.reduce((s, w) => s + Math.max(...w), 0);
      seen.total++;
      if (ck.startsWith("int") || ck === "zero") seen.tieHeavy++;
      if (wk === "bits-equal") seen.equalWeights++;
      if (hasDominated(p)) seen.dominated++;
      if (p.budget <= minW + 2 && maxW > minW + 2) seen.tight++;
      if (p.budget >= maxW) seen.loose++;
      if (twins) seen.twins++;
    }
  }
  assert.equal(seen.total, 3400);
  assert.ok(seen.tieHeavy >= 1500 && seen.equalWeights >= 900 && seen.twins >= 500, JSON.stringify(seen));
  assert.ok(seen.dominated >= 1000 && seen.tight >= 500 && seen.loose >= 500, JSON.stringify(seen));
});

Deno.test("bnb equals exhaustive search on full-size 12 x 4 instances (tie-heavy and real)", () => {
  const r = mulberry32(77);
  const kinds: [CostKind, WeightKind][] = [["int2", "bits-equal"], ["real", "random"], [
    "int4",
    "bits-width",
  ]];
  for (const [ck, wk] of kinds) {
    const p = genSmall(r, ck, wk, 1 << 24, false, true);
    assert.ok(p.costs.length === 12 && p.costs.every((c) => c.length === 4));
    const minW = p.weights.reduce((s, w) => s + Math.min(...w), 0);
    const maxW = p.weights.reduce((s, w) => s + Math.max(...w), 0);
    assertSameAsExhaustive({ ...p, budget: minW + Math.floor((maxW - minW) / 3) });
  }
});

Deno.test("infeasible budgets: bnb, DP and exhaustive all throw the same BudgetError (130+ instances)", () => {
  const r = mulberry32(4242);
  let n = 0;
  for (let t = 0; t < 150; t++) {
    const p = genSmall(
      r,
      pickOf(r, ["real", "int4"] as const),
      pickOf(r, ["random", "bits-equal", "big"] as const),
      4096,
      true,
    );
    const minW = p.weights.reduce((s, w) => s + Math.min(...w), 0);
    if (p.budget < 0) continue; // a negative budget is a different error, tested below
    n++;
    const msgs = [solveAllocation, solveAllocationDp, solveAllocationExhaustive].map((f) => {
      try {
        f(p);
      } catch (e) {
        assert.ok(e instanceof BudgetError, String(e));
        return e.message;
      }
      assert.fail(`no error for ${show(p)}`);
    });
    assert.equal(msgs[0], msgs[1]);
    assert.equal(msgs[0], msgs[2]);
    assert.ok(msgs[0].includes(`minimum feasible budget is ${minW} bytes`), msgs[0]);
    assert.ok(msgs[0].includes(`budget ${p.budget} bytes`), msgs[0]);
  }
  assert.ok(n >= 130, `only ${n} infeasible instances`);
});

Deno.test("the DP oracle itself equals exhaustive search on 300 exact-cost instances", () => {
  const r = mulberry32(99);
  for (let t = 0; t < 300; t++) {
    const p = genSmall(
      r,
      pickOf(r, ["int4", "int2", "dyadic", "zero"] as const),
      pickOf(r, ["random", "bits-width", "zeros"] as const),
      4096,
    );
    const a = solveAllocationDp(p), b = solveAllocationExhaustive(p);
    assert.deepEqual([a.choice, a.cost, a.weight], [b.choice, b.cost, b.weight], show(p));
  }
});

// ---------- (b) DP, larger instances ----------

function genLarge(
  r: Rnd,
  costKind: "sens" | "int4" | "int2" | "eq",
  weightKind: "equal" | "width" | "units",
) {
  const L = 20 + int(r, 61);
  const nc = 2 + int(r, 3);
  const unit = pickOf(r, [1, 3 * 2 ** 20, 7 * 4096]); // bytes; the DP divides by the gcd
  const bitsets = [BITS.slice(0, nc), BITS.slice(4 - nc)];
  const costs: number[][] = [], weights: number[][] = [];
  const shared = pickOf(r, bitsets);
  for (let i = 0; i < L; i++) {
    const bits = weightKind === "equal" ? shared : pickOf(r, bitsets);
    const width = weightKind === "width" ? 1 + int(r, 2) : 1;
    const a = Math.exp(4 * r()) * (1 + i / L);
    costs.push(bits.map((b) => {
      if (costKind === "int4") return int(r, 4);
      if (costKind === "int2") return int(r, 2);
      if (costKind === "eq") return [12, 6, 3, 1][BITS.indexOf(b as 2)];
      return Math.round(a * 2 ** (20 - b) * (0.5 + r())) / 2 ** 24; // dyadic: every sum is exact
    }));
    weights.push(bits.map((b) => unit * width * (weightKind === "units" ? 1 + int(r, 16) : 2 * b + 1)));
  }
  const minW = weights.reduce((s, w) => s + Math.min(...w), 0);
  const maxW = weights.reduce((s, w) => s + Math.max(...w), 0);
  const u = r();
  const budget = u < 0.05 ? minW : u < 0.1 ? maxW : minW + Math.floor(r() * (maxW - minW));
  return { costs, weights, budget };
}

Deno.test("bnb equals the DP on 240 seeded larger instances (20-80 layers x 2-4 choices)", () => {
  const r = mulberry32(2024);
  const kinds = [
    ["sens", "equal", 60],
    ["sens", "width", 50],
    ["sens", "units", 40],
    ["int4", "equal", 30],
    ["int2", "width", 30],
    ["eq", "equal", 15],
    ["int4", "units", 15],
  ] as const;
  let n = 0, maxNodes = 0;
  for (const [ck, wk, count] of kinds) {
    for (let t = 0; t < count; t++) {
      const p = genLarge(r, ck, wk);
      const a = solveAllocation(p), b = solveAllocationDp(p);
      const msg = `instance ${show(p)}\nbnb ${JSON.stringify(a)}\ndp ${JSON.stringify(b)}`;
      assert.equal(a.cost, b.cost, msg);
      assert.equal(a.weight, b.weight, msg);
      assert.deepEqual(a.choice, b.choice, msg);
      maxNodes = Math.max(maxNodes, a.nodes);
      n++;
    }
  }
  assert.equal(n, 240);
  assert.ok(maxNodes < 200_000, `max nodes ${maxNodes}`);
});

// ---------- (c) the PM-KVQ closed form ----------

Deno.test("2 choices, equal weights: the k layers with the largest positive reduction get the high bits", () => {
  const r = mulberry32(31337);
  for (let t = 0; t < 200; t++) {
    const L = 8 + int(r, 73);
    const [lo, hi] = pickOf(r, [[2, 4], [4, 8]]);
    const wLow = lo * 1024 * 2 + 64, wHigh = hi * 1024 * 2 + 64;
    const used = new Set<number>();
    const red: number[] = [], costs: number[][] = [];
    for (let i = 0; i < L; i++) {
      let d: number;
      const u = r();
      if (u < 0.1) d = 0;
      else if (u < 0.2) d = -int(r, 1 << 10) / 2 ** 12;
      else {
        do d = (1 + int(r, 1 << 20)) / 2 ** 18; while (used.has(d));
        used.add(d);
      }
      const sHigh = int(r, 1 << 20) / 2 ** 20 + Math.max(0, -d);
      red.push(d);
      costs.push([sHigh + d, sHigh]); // [low bits, high bits]
    }
    const budget = L * wLow + int(r, L * (wHigh - wLow) + 5000);
    const k = Math.floor((budget - L * wLow) / (wHigh - wLow));
    const positive = red.map((d, i) => ({ d, i })).filter((x) => x.d > 0).sort((a, b) => b.d - a.d);
    const expected = new Array<number>(L).fill(0);
    for (const { i } of positive.slice(0, k)) expected[i] = 1;
    const swap = r() < 0.5; // also list the high bit-width first: indices must follow the input
    const p = {
      costs: swap ? costs.map(([a, b]) => [b, a]) : costs,
      weights: costs.map(() => (swap ? [wHigh, wLow] : [wLow, wHigh])),
      budget,
      labels: costs.map(() => (swap ? [hi, lo] : [lo, hi])),
    };
    const res = solveAllocation(p);
    assert.deepEqual(res.choice, swap ? expected.map((x) => 1 - x) : expected, `instance ${show(p)}`);
    assert.deepEqual(res.labels, expected.map((x) => (x ? hi : lo)));
  }
});

// ---------- (d) bad inputs and infeasibility ----------

Deno.test("malformed problems throw InputError naming layer, choice and value", () => {
  const ok = { costs: [[1, 0], [2, 1], [3, 0]], weights: [[1, 2], [1, 2], [1, 2]], budget: 5 };
  const cases: [unknown, RegExp][] = [
    [null, /must be an object/],
    [{ ...ok, costs: "x" }, /costs must be an array, got "x"/],
    [{ ...ok, weights: undefined }, /weights must be an array/],
    [{ costs: [], weights: [], budget: 1 }, /zero layers/],
    [{ ...ok, weights: [[1, 2], [1, 2]] }, /3 layers of costs but 2 layers of weights/],
    [{ ...ok, costs: [[1, 0], [], [3, 0]], weights: [[1, 2], [], [1, 2]] }, /layer 1 has zero choices/],
    [{ ...ok, costs: [[1, 0], [2, 1, 0], [3, 0]] }, /layer 1: 3 costs but 2 weights \(ragged/],
    [{ ...ok, costs: [[1, 0], 7, [3, 0]] }, /layer 1: costs must be an array, got 7/],
    [{ ...ok, costs: [[1, 0], [2, NaN], [3, 0]] }, /layer 1 choice 1: cost NaN /],
    [{ ...ok, costs: [[1, 0], [2, 1], [-0.5, 0]] }, /layer 2 choice 0: cost -0.5 /],
    [{ ...ok, costs: [[Infinity, 0], [2, 1], [3, 0]] }, /layer 0 choice 0: cost Infinity /],
    [{ ...ok, costs: [[1, "0"], [2, 1], [3, 0]] }, /layer 0 choice 1: cost "0" /],
    [
      { ...ok, weights: [[1, 2], [1, 2.5], [1, 2]] },
      /layer 1 choice 1: weight 2.5 is not a non-negative safe integer/,
    ],
    [{ ...ok, weights: [[1, 2], [1, 2], [-1, 2]] }, /layer 2 choice 0: weight -1 /],
    [{ ...ok, weights: [[1, 2 ** 53], [1, 2], [1, 2]] }, /layer 0 choice 1: weight 9007199254740992 /],
    [{ ...ok, weights: [[1, 2], [NaN, 2], [1, 2]] }, /layer 1 choice 0: weight NaN /],
    [{ ...ok, labels: [[2, 4], [2, 4]] }, /labels must be an array of 3 layers, got 2 layers/],
    [{ ...ok, labels: [[2, 4], [2], [2, 4]] }, /layer 1: labels must have 2 entries, got 1/],
    [{ ...ok, labels: [[2, 4], [2, 4], [2, NaN]] }, /layer 2 choice 1: label NaN/],
    [{ ...ok, costs: [[1e308, 0], [1e308, 0], [0, 0]] }, /overflows f64/],
  ];
  for (const [p, re] of cases) {
    for (const f of [solveAllocation, solveAllocationDp, solveAllocationExhaustive]) {
      assert.throws(() => f(p as AllocationProblem), (e: unknown) => {
        assert.ok(e instanceof InputError, `${JSON.stringify(p)} -> ${e}`);
        assert.equal(e.code, "INPUT");
        assert.match(e.message, re);
        return true;
      });
    }
  }
  for (const maxNodes of [0, -1, 1.5, NaN, Infinity]) {
    assert.throws(() => solveAllocation(ok, { maxNodes }), InputError);
  }
});

Deno.test("bad and infeasible budgets throw BudgetError with the exact minimum feasible budget", () => {
  const base = { costs: [[1, 0], [2, 1]], weights: [[100, 300], [250, 251]] };
  for (const budget of [-1, 1.5, NaN, Infinity, 2 ** 53, "350" as unknown as number]) {
    assert.throws(() => solveAllocation({ ...base, budget }), (e: unknown) => {
      assert.ok(e instanceof BudgetError);
      assert.match(e.message, /budget .* is not a non-negative safe integer number of bytes/);
      return true;
    });
  }
  assert.throws(() => solveAllocation({ ...base, budget: 349 }), (e: unknown) => {
    assert.ok(e instanceof BudgetError && e.code === "BUDGET");
    assert.equal(
      e.message,
      "budget 349 bytes is infeasible: the minimum feasible budget is 350 bytes " +
        "(every layer at its smallest choice), 1 bytes short",
    );
    return true;
  });
  assert.equal(solveAllocation({ ...base, budget: 350 }).weight, 350);
  // the minimum can exceed 2^53: it is computed exactly
  const big = { costs: [[0], [0], [0]], weights: [[2 ** 53 - 1], [2 ** 53 - 1], [5]], budget: 2 ** 53 - 1 };
  assert.throws(() => solveAllocation(big), /minimum feasible budget is 18014398509481987 bytes/);
  // zero budget, zero weights: feasible
  assert.deepEqual(solveAllocation({ costs: [[3, 1]], weights: [[0, 0]], budget: 0 }).choice, [1]);
});

// ---------- (e) determinism, bookkeeping, safety valve ----------

function realistic(seed: number, L = 80) {
  const r = mulberry32(seed);
  const costs: number[][] = [], weights: number[][] = [];
  for (let i = 0; i < L; i++) {
    const a = Math.exp(2 * r()) * (1 + (2 * i) / L);
    costs.push(BITS.map((b) => a * 2 ** -b * (0.8 + 0.4 * r())));
    weights.push(BITS.map((b) => b * 8_388_608 + 2_097_152));
  }
  const minW = weights.reduce((s, w) => s + w[0], 0);
  return { costs, weights, budget: Math.round(minW * 2.2), labels: costs.map(() => [...BITS]) };
}

Deno.test("determinism: same answer twice, on clones and frozen inputs; inputs untouched", () => {
  const p = realistic(5);
  const before = JSON.stringify(p);
  const a = solveAllocation(p), b = solveAllocation(p), c = solveAllocation(structuredClone(p));
  const deepFreeze = <T>(x: T): T => {
    if (typeof x === "object" && x !== null) {
      for (const v of Object.values(x)) deepFreeze(v);
      Object.freeze(x);
    }
    return x;
  };
  const d = solveAllocation(deepFreeze(structuredClone(p)));
  assert.deepEqual(a, b);
  assert.deepEqual(a, c);
  assert.deepEqual(a, d);
  assert.equal(JSON.stringify(p), before);
  assert.ok(a.nodes < 10_000, `nodes ${a.nodes}`);
  assert.equal(a.labels!.length, 80);
});

Deno.test("choice indices follow the input order when choices are permuted within layers", () => {
  for (let seed = 1; seed <= 20; seed++) {
    const p = realistic(seed, 40);
    const r = mulberry32(seed * 7);
    const perms = p.costs.map((row) => row.map((_, j) => j).sort(() => r() - 0.5));
    const q = {
      costs: p.costs.map((row, i) => perms[i].map((j) => row[j])),
      weights: p.weights.map((row, i) => perms[i].map((j) => row[j])),
      budget: p.budget,
    };
    const a = solveAllocation(p), b = solveAllocation(q);
    assert.deepEqual(b.choice.map((j, i) => perms[i][j]), a.choice);
    assert.equal(b.weight, a.weight);
  }
});

Deno.test("maxNodes: exceeding it throws SEARCH_LIMIT, never a partial answer", () => {
  const p = realistic(9, 40);
  assert.throws(() => solveAllocation(p, { maxNodes: 5 }), (e: unknown) => {
    assert.ok(e instanceof PmkvqError && e.code === "SEARCH_LIMIT", String(e));
    assert.match(e.message, /more than 5 nodes on 40 layers/);
    return true;
  });
  const one = { costs: [[1, 0]], weights: [[1, 2]], budget: 2 };
  assert.deepEqual(solveAllocation(one, { maxNodes: 2 }).choice, [1]); // root + one leaf
});

Deno.test("snapCosts: identical non-dyadic sensitivities become exact ties and solve in linear nodes", () => {
  const raw = Array.from({ length: 24 }, () => [0.3, 0.1]);
  const weights = raw.map(() => [2, 4]);
  // On the raw costs the f64 order among the C(24,12) equal-real-cost solutions is rounding noise:
  // exactness forces enumeration, and the safety valve fires.
  assert.throws(
    () => solveAllocation({ costs: raw, weights, budget: 72 }, { maxNodes: 20_000 }),
    /SEARCH_LIMIT|nodes/,
  );
  const costs = snapCosts(raw);
  for (let i = 0; i < 24; i++) {
    for (let j = 0; j < 2; j++) assert.ok(Math.abs(costs[i][j] - raw[i][j]) < 1e-12);
  }
  const res = solveAllocation({ costs, weights, budget: 72 });
  assert.deepEqual(res.choice, [...new Array(12).fill(0), ...new Array(12).fill(1)]); // lexicographically smallest
  assert.ok(res.nodes <= 30, `nodes ${res.nodes}`);
  assert.deepEqual(snapCosts([[0, 0]]), [[0, 0]]);
});

Deno.test("helpers: betterKey order, layerOrderCost, checkAllocationProblem copies", () => {
  assert.ok(betterKey(1, 9, [1], 2, 0, [0]));
  assert.ok(betterKey(1, 1, [1], 1, 2, [0]));
  assert.ok(betterKey(1, 1, [0, 2], 1, 1, [1, 0]));
  assert.ok(!betterKey(1, 1, [0, 2], 1, 1, [0, 2]));
  // layer order matters in f64: (2^53 + 1) + 1 rounds twice, 1 + 1 + 2^53 does not
  assert.equal(layerOrderCost([[2 ** 53], [1], [1]], [0, 0, 0]), 2 ** 53);
  assert.equal(layerOrderCost([[1], [1], [2 ** 53]], [0, 0, 0]), 2 ** 53 + 2);
  const p = { costs: [[1, -0]], weights: [[1, 2]], budget: 3 };
  const c = checkAllocationProblem(p);
  assert.notEqual(c.costs, p.costs);
  assert.ok(Object.is(c.costs[0][1], 0));
});
