/**
 * Exact branch-and-bound solver for PM-KVQ's block-wise bit allocation (spec §3.2): a multiple-choice
 * knapsack. Layer i has choices j with cost s_ij ≥ 0 (a sensitivity) and weight w_ij (bytes); pick one
 * choice per layer minimising Σ cost subject to Σ weight ≤ budget.
 *
 * The objective is defined exactly, so that every solver here (and any test oracle) returns the same
 * answer bit for bit:
 *  1. total cost = the f64 sum of the chosen costs, added in layer order 0..L-1 starting from 0;
 *     compared with exact equality;
 *  2. among equal total costs, the smaller total weight wins;
 *  3. among those, the lexicographically smallest choice vector (original choice indices) wins.
 *
 * How the search stays exact with that definition:
 *  - Dominance: a choice is dropped only if another choice of its layer has weight < and cost ≤, or
 *    weight = and cost ≤ and a smaller index. Rounded addition is monotone, so swapping in the dominating
 *    choice never makes the key worse (this is why "equal weight, cheaper, larger index" is NOT dropped:
 *    rounding can absorb the cost difference, and then the index decides). Choices that cannot fit even
 *    with every other layer at its lightest choice are dropped too.
 *  - Bound: the LP relaxation of the MCKP (per layer the lower convex hull of (weight, cost), increments
 *    taken greedily by cost-per-byte slope, the last one fractionally), precomputed per search depth as
 *    prefix sums so a bound costs one binary search. The spare bytes given to the LP are first rounded down
 *    to a multiple of the gcd of the remaining layers' weight steps (no combination can use more).
 *  - Rounding: the bound is lowered by a rigorous margin (for its own rounding and for the gap between a
 *    solution's real sum and its f64 layer-order sum). "Exact mode": when every cost lies on a common
 *    dyadic grid q and every sum stays below 2^53·q (e.g. integer costs, or costs from {@link snapCosts}),
 *    all sums are exact, and the bound is then rounded UP to the grid, so ties are recognised as ties.
 *  - Pruning: a node is cut when its bound is strictly above the incumbent cost; or, when no completion can
 *    be cheaper, if its minimal weight (in exact mode also an LP bound on the weight any completion needs
 *    to reach the incumbent's cost) is above the incumbent's, or equal and no completion can be
 *    lexicographically smaller. Anything else is explored; leaves are compared by the exact key.
 *  - Symmetry (exact mode only): layers with identical rows of costs and weights are interchangeable, and
 *    the lexicographically smallest optimum gives them non-decreasing choice indices in layer order; only
 *    such assignments are searched.
 *
 * Cost: milliseconds for 80 layers × 4 choices with real-valued sensitivities. The one hard case is
 * massive ties in the REAL sum among non-dyadic costs (e.g. the same 0.3/0.1 sensitivities on many
 * layers): the f64 order among those solutions is rounding noise, exactness forces enumerating them, and
 * `maxNodes` ends the search with an error. Snap such costs with {@link snapCosts} first.
 *
 * @example
 * ```ts
 * import { solveAllocation } from "./bnb.ts";
 * const r = solveAllocation({
 *   costs: [[9, 1], [5, 2]],      // layer 0: 2-bit costs 9, 4-bit costs 1; layer 1: 5 and 2
 *   weights: [[2, 4], [2, 4]],    // bytes
 *   budget: 6,
 *   labels: [[2, 4], [2, 4]],
 * });
 * console.log(r.choice, r.labels, r.cost); // [1, 0] [4, 2] 6
 * ```
 * @module
 */

import { BudgetError, InputError, PmkvqError } from "../errors.ts";

/** A multiple-choice knapsack instance: one row per layer, one column per choice. */
export interface AllocationProblem {
  /** costs[i][j] ≥ 0, finite: the sensitivity of layer i at choice j. */
  readonly costs: readonly (readonly number[])[];
  /** weights[i][j]: non-negative safe integer, bytes of layer i at choice j. Rows may differ between layers. */
  readonly weights: readonly (readonly number[])[];
  /** Total bytes allowed: a non-negative safe integer. */
  readonly budget: number;
  /** Optional labels (e.g. bit-widths) with the same shape, for reporting only. */
  readonly labels?: readonly (readonly number[])[];
}

/** The optimum under the documented tie-breaking. */
export interface AllocationResult {
  /** Original choice index per layer. */
  choice: number[];
  /** f64 sum of the chosen costs in layer order 0..L-1. */
  cost: number;
  /** Sum of the chosen weights (bytes), ≤ budget. */
  weight: number;
  /** Search nodes visited (1 for the root). */
  nodes: number;
  /** Always true: the solver throws rather than return an unproven answer. */
  optimal: true;
  /** labels[i][choice[i]] per layer, present when the problem has labels. */
  labels?: number[];
}

/** Options of {@link solveAllocation}. */
export interface SolveOptions {
  /** Safety valve: throw (code "SEARCH_LIMIT") once more nodes than this were visited. Default 5,000,000. */
  maxNodes?: number;
}

/** Default of {@link SolveOptions.maxNodes}. */
export const DEFAULT_MAX_NODES = 5_000_000;

/** A validated, copied problem (plain mutable arrays, nothing shared with the caller). */
export interface CheckedProblem {
  costs: number[][];
  weights: number[][];
  budget: number;
  labels?: number[][];
}

function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" && Object.is(v, -0)) return "-0";
  try {
    return String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

/**
 * Validate and copy an allocation problem; throws {@link InputError} for a malformed problem (naming the
 * layer, choice and value) and {@link BudgetError} for a bad or infeasible budget (giving the exact
 * minimum feasible budget). Shared by every allocation solver so they fail identically.
 *
 * @example
 * ```ts
 * import { checkAllocationProblem } from "./bnb.ts";
 * const p = checkAllocationProblem({ costs: [[1, 0]], weights: [[2, 4]], budget: 4 });
 * console.log(p.costs.length); // 1
 * ```
 */
export function checkAllocationProblem(problem: AllocationProblem): CheckedProblem {
  if (typeof problem !== "object" || problem === null) {
    throw new InputError(`allocation problem must be an object, got ${show(problem)}`);
  }
  const { costs, weights, budget, labels } = problem;
  if (!Array.isArray(costs)) {
    throw new InputError(`allocation problem: costs must be an array, got ${show(costs)}`);
  }
  if (!Array.isArray(weights)) {
    throw new InputError(`allocation problem: weights must be an array, got ${show(weights)}`);
  }
  const L = costs.length;
  if (L === 0) throw new InputError("allocation problem has zero layers");
  if (weights.length !== L) {
    throw new InputError(`allocation problem: ${L} layers of costs but ${weights.length} layers of weights`);
  }
  if (labels !== undefined && (!Array.isArray(labels) || labels.length !== L)) {
    throw new InputError(
      `allocation problem: labels must be an array of ${L} layers, got ${
        Array.isArray(labels) ? `${labels.length} layers` : show(labels)
      }`,
    );
  }
  const outC: number[][] = [];
  const outW: number[][] = [];
  const outL: number[][] | undefined = labels === undefined ? undefined : [];
  for (let i = 0; i < L; i++) {
    const ci = costs[i], wi = weights[i];
    if (!Array.isArray(ci)) throw new InputError(`layer ${i}: costs must be an array, got ${show(ci)}`);
    if (!Array.isArray(wi)) throw new InputError(`layer ${i}: weights must be an array, got ${show(wi)}`);
    if (ci.length === 0) throw new InputError(`layer ${i} has zero choices`);
    if (wi.length !== ci.length) {
      throw new InputError(`layer ${i}: ${ci.length} costs but ${wi.length} weights (ragged arrays)`);
    }
    const rowC: number[] = [], rowW: number[] = [];
    for (let j = 0; j < ci.length; j++) {
      const c = ci[j], w = wi[j];
      if (typeof c !== "number" || !Number.isFinite(c) || c < 0) {
        throw new InputError(`layer ${i} choice ${j}: cost ${show(c)} is not a finite non-negative number`);
      }
      if (typeof w !== "number" || !Number.isSafeInteger(w) || w < 0) {
        throw new InputError(
          `layer ${i} choice ${j}: weight ${show(w)} is not a non-negative safe integer (bytes)`,
        );
      }
      rowC.push(c === 0 ? 0 : c); // normalise -0
      rowW.push(w);
    }
    outC.push(rowC);
    outW.push(rowW);
    if (labels !== undefined && outL !== undefined) {
      const li = labels[i];
      if (!Array.isArray(li) || li.length !== ci.length) {
        throw new InputError(
          `layer ${i}: labels must have ${ci.length} entries, got ${
            Array.isArray(li) ? li.length : show(li)
          }`,
        );
      }
      for (let j = 0; j < li.length; j++) {
        if (typeof li[j] !== "number" || !Number.isFinite(li[j])) {
          throw new InputError(`layer ${i} choice ${j}: label ${show(li[j])} is not a finite number`);
        }
      }
      outL.push([...li]);
    }
  }
  let maxSum = 0;
  for (const row of outC) maxSum += Math.max(...row);
  if (!Number.isFinite(maxSum)) {
    throw new InputError("allocation problem: the sum of the per-layer largest costs overflows f64");
  }
  if (typeof budget !== "number" || !Number.isSafeInteger(budget) || budget < 0) {
    throw new BudgetError(`budget ${show(budget)} is not a non-negative safe integer number of bytes`);
  }
  let need = 0;
  for (const row of outW) need += Math.min(...row); // exact while ≤ 2^53; BigInt below otherwise
  if (need > budget) {
    const exactNeed = outW.reduce((s, row) => s + BigInt(Math.min(...row)), 0n);
    throw new BudgetError(
      `budget ${budget} bytes is infeasible: the minimum feasible budget is ${exactNeed} bytes ` +
        `(every layer at its smallest choice), ${exactNeed - BigInt(budget)} bytes short`,
    );
  }
  return outL === undefined
    ? { costs: outC, weights: outW, budget }
    : { costs: outC, weights: outW, budget, labels: outL };
}

/**
 * The exact objective value: f64 sum of costs[i][choice[i]] added in layer order 0..L-1.
 *
 * @example
 * ```ts
 * import { layerOrderCost } from "./bnb.ts";
 * console.log(layerOrderCost([[1, 0.5], [2, 0.25]], [1, 0])); // 2.5
 * ```
 */
export function layerOrderCost(costs: readonly (readonly number[])[], choice: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < costs.length; i++) s += costs[i][choice[i]];
  return s;
}

/**
 * Round every cost to the nearest multiple of q = 2^(⌈log2 S⌉ − 44), S = Σ_i max_j cost: a power-of-two
 * grid on which every sum of one cost per layer is exact in f64 and coarse enough for the solver's rounding
 * margin (each cost moves by at most q/2 < 2^-44·S). Optional pre-processing for callers: on snapped costs the f64 objective equals the real
 * sum, so real ties are true ties and {@link solveAllocation} prunes them fast. Without it, many solutions
 * with EQUAL real cost but non-dyadic costs (e.g. identical sensitivities 0.3/0.1 on many layers) differ
 * only by rounding noise, and exactness forces the search to enumerate them (it may hit `maxNodes`).
 * Invalid costs are returned unchanged (the solver reports them).
 *
 * @example
 * ```ts
 * import { snapCosts, solveAllocation } from "./bnb.ts";
 * const costs = snapCosts(Array.from({ length: 40 }, () => [0.3, 0.1]));
 * const r = solveAllocation({ costs, weights: costs.map(() => [2, 4]), budget: 120 });
 * console.log(r.choice.lastIndexOf(0), r.nodes < 100); // 19 true  (upgrades go to the last 20 layers)
 * ```
 */
export function snapCosts(costs: readonly (readonly number[])[]): number[][] {
  let s = 0;
  for (const row of costs) {
    let m = 0;
    for (const c of row) if (c > m) m = c;
    s += m;
  }
  const out = costs.map((row) => row.slice());
  if (!(s > 0) || !Number.isFinite(s)) return out;
  const q = 2 ** Math.max(-1074, Math.ceil(Math.log2(s)) - 44);
  return out.map((row) => row.map((c) => (Number.isFinite(c) && c >= 0 ? Math.round(c / q) * q : c)));
}

/**
 * True when (costA, weightA, choiceA) beats (costB, weightB, choiceB) under the documented order:
 * smaller cost, then smaller weight, then lexicographically smaller choice vector.
 *
 * @example
 * ```ts
 * import { betterKey } from "./bnb.ts";
 * console.log(betterKey(1, 5, [0, 1], 1, 5, [1, 0])); // true
 * ```
 */
export function betterKey(
  costA: number,
  weightA: number,
  choiceA: readonly number[],
  costB: number,
  weightB: number,
  choiceB: readonly number[],
): boolean {
  if (costA !== costB) return costA < costB;
  if (weightA !== weightB) return weightA < weightB;
  for (let i = 0; i < choiceA.length; i++) {
    if (choiceA[i] !== choiceB[i]) return choiceA[i] < choiceB[i];
  }
  return false;
}

/** A lower convex hull from its leftmost point: increments (dx > 0, dy < 0) in increasing-slope order. */
interface Hull {
  x0: number;
  y0: number;
  dx: number[];
  dy: number[];
  slope: number[];
}

/** Lower hull of points with strictly increasing x and strictly decreasing y, built on the computed slopes. */
function lowerHull(xs: number[], ys: number[]): Hull {
  const hx: number[] = [], hy: number[] = [];
  const slope = (k: number, x: number, y: number) => (y - hy[k]) / (x - hx[k]);
  for (let k = 0; k < xs.length; k++) {
    while (hx.length >= 2) {
      const t = hx.length - 1;
      if (slope(t, xs[k], ys[k]) <= slope(t - 1, hx[t], hy[t])) {
        hx.pop();
        hy.pop();
      } else break;
    }
    hx.push(xs[k]);
    hy.push(ys[k]);
  }
  const h: Hull = { x0: hx[0], y0: hy[0], dx: [], dy: [], slope: [] };
  for (let k = 1; k < hx.length; k++) {
    h.dx.push(hx[k] - hx[k - 1]);
    h.dy.push(hy[k] - hy[k - 1]);
    h.slope.push((hy[k] - hy[k - 1]) / (hx[k] - hx[k - 1]));
  }
  return h;
}

/** One layer after preprocessing: kept choices sorted by weight, then cost, then original index. */
interface Layer {
  orig: number[];
  w: number[];
  c: number[];
  /** Hull of (weight, cost): the cost LP. */
  byWeight: Hull;
  /** Hull of (cost, weight): the weight LP under a cost cap (tie-breaking bound). */
  byCost: Hull;
  minOrig: number;
  spread: number;
}

function preprocessLayer(costs: number[], weights: number[], slack: number): Layer {
  const idx: number[] = [];
  for (let j = 0; j < costs.length; j++) if (weights[j] <= slack) idx.push(j);
  idx.sort((a, b) => weights[a] - weights[b] || costs[a] - costs[b] || a - b);
  // Dominance sweep over groups of equal weight (see the module doc for the exact rule).
  const kept: number[] = [];
  let bestLighter = Infinity;
  for (let g = 0; g < idx.length;) {
    let h = g;
    while (h < idx.length && weights[idx[h]] === weights[idx[g]]) h++;
    const group = idx.slice(g, h).sort((a, b) => a - b);
    let runMin = Infinity;
    for (const j of group) {
      if (costs[j] < runMin && costs[j] < bestLighter) kept.push(j);
      runMin = Math.min(runMin, costs[j]);
    }
    bestLighter = Math.min(bestLighter, runMin);
    g = h;
  }
  kept.sort((a, b) => weights[a] - weights[b] || costs[a] - costs[b] || a - b);
  const w = kept.map((j) => weights[j]), c = kept.map((j) => costs[j]);
  // Cheapest point of each weight: weights strictly increase, costs strictly decrease.
  const pw: number[] = [], pc: number[] = [];
  for (let k = 0; k < w.length; k++) {
    if (k === 0 || w[k] !== w[k - 1]) {
      pw.push(w[k]);
      pc.push(c[k]);
    }
  }
  return {
    orig: kept,
    w,
    c,
    byWeight: lowerHull(pw, pc),
    byCost: lowerHull(pc.slice().reverse(), pw.slice().reverse()),
    minOrig: Math.min(...kept),
    spread: Math.max(...c) - Math.min(...c),
  };
}

/**
 * LP tables for the layers at search positions d..L-1: every layer at its hull's leftmost point (baseX,
 * baseY), then all their increments in slope order as prefix sums.
 */
interface Table {
  baseX: number;
  /** gcd of every (weight − lightest weight) of the kept choices at positions ≥ d (0 if none). */
  gcdX: number;
  baseY: number;
  cumX: Float64Array;
  cumY: Float64Array;
  slope: Float64Array;
}

function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

function buildTables(hulls: Hull[], gcds: number[] = hulls.map(() => 0)): Table[] {
  const L = hulls.length;
  const all: { pos: number; k: number; s: number }[] = [];
  for (let pos = 0; pos < L; pos++) {
    for (let k = 0; k < hulls[pos].dx.length; k++) all.push({ pos, k, s: hulls[pos].slope[k] });
  }
  all.sort((a, b) => a.s - b.s || a.pos - b.pos || a.k - b.k);
  const n = all.length;
  const pos = new Int32Array(n), dx = new Float64Array(n), dy = new Float64Array(n), sl = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const e = all[k], h = hulls[e.pos];
    pos[k] = e.pos;
    dx[k] = h.dx[e.k];
    dy[k] = h.dy[e.k];
    sl[k] = e.s;
  }
  const countFrom = new Int32Array(L + 1); // increments at positions ≥ d
  for (let d = L - 1; d >= 0; d--) countFrom[d] = countFrom[d + 1] + hulls[d].dx.length;
  // One slab for all depths; depth d keeps the increments of positions ≥ d, in slope order.
  let total = 0;
  for (let d = 0; d <= L; d++) total += 3 * countFrom[d] + 2;
  const slab = new Float64Array(total);
  const tables: Table[] = new Array(L + 1);
  let baseX = 0, baseY = 0, gcdX = 0, off = 0;
  for (let d = L; d >= 0; d--) {
    if (d < L) {
      baseX += hulls[d].x0;
      baseY += hulls[d].y0;
      gcdX = gcd(gcdX, gcds[d]);
    }
    const m = countFrom[d];
    const cumX = slab.subarray(off, off + m + 1), cumY = slab.subarray(off + m + 1, off + 2 * m + 2);
    const slope = slab.subarray(off + 2 * m + 2, off + 3 * m + 2);
    off += 3 * m + 2;
    for (let k = 0, t = 0; k < n; k++) {
      if (pos[k] < d) continue;
      cumX[t + 1] = cumX[t] + dx[k];
      cumY[t + 1] = cumY[t] + dy[k];
      slope[t++] = sl[k];
    }
    tables[d] = { baseX, baseY, gcdX, cumX, cumY, slope };
  }
  return tables;
}

/** LP change of y (≤ 0) when `cap` more x may be spent above the leftmost points: greedy, last step fractional. */
function lpGain(t: Table, cap: number): number {
  const cx = t.cumX;
  let lo = 0, hi = cx.length - 1; // largest k with cx[k] <= cap
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (cx[mid] <= cap) lo = mid;
    else hi = mid - 1;
  }
  let g = t.cumY[lo];
  if (lo < t.slope.length) g += t.slope[lo] * (cap - cx[lo]);
  return g;
}

/** Largest power of two q ≤ 1 dividing every cost (1 when all costs are integers), from the f64 bits. */
function costGrid(costs: number[][]): number {
  const view = new DataView(new ArrayBuffer(8));
  const ctz = (x: number) => 31 - Math.clz32(x & -x);
  let minExp = 0;
  for (const row of costs) {
    for (const c of row) {
      if (c === 0) continue;
      view.setFloat64(0, c);
      const hi = view.getUint32(0), lo = view.getUint32(4);
      const biased = (hi >>> 20) & 0x7ff;
      const mantHi = (hi & 0xfffff) | (biased === 0 ? 0 : 0x100000); // implicit leading 1
      const tz = lo !== 0 ? ctz(lo) : 32 + ctz(mantHi);
      const lowest = (biased === 0 ? -1074 : biased - 1075) + tz; // exponent of the lowest set bit
      if (lowest < minExp) minExp = lowest;
    }
  }
  return 2 ** minExp;
}

function searchLimit(maxNodes: number, L: number): never {
  throw new PmkvqError(
    "SEARCH_LIMIT",
    `bit allocation: branch and bound visited more than ${maxNodes} nodes on ${L} layers without proving ` +
      `optimality; raise options.maxNodes (no answer is returned rather than an unproven one)`,
  );
}

/**
 * Solve the allocation exactly by branch and bound (see the module documentation for the objective's
 * exact definition, the tie-breaking and why the pruning preserves it).
 *
 * Throws {@link InputError} for a malformed problem or option, {@link BudgetError} for a bad or infeasible
 * budget (the message gives the exact minimum feasible budget), and a `PmkvqError` with code
 * `"SEARCH_LIMIT"` when `maxNodes` is exceeded.
 *
 * @example
 * ```ts
 * import { solveAllocation } from "./bnb.ts";
 * const bits = [2, 4, 8, 16];
 * const r = solveAllocation({
 *   costs: [[8, 2, 0.5, 0], [4, 1, 0.25, 0], [16, 4, 1, 0]],
 *   weights: [bits.map((b) => b * 100), bits.map((b) => b * 100), bits.map((b) => b * 100)],
 *   budget: 1600,
 *   labels: [bits, bits, bits],
 * });
 * console.log(r.labels, r.cost, r.weight); // [4, 4, 8] 4 1600
 * ```
 */
export function solveAllocation(problem: AllocationProblem, options: SolveOptions = {}): AllocationResult {
  const maxNodes = options.maxNodes ?? DEFAULT_MAX_NODES;
  if (typeof maxNodes !== "number" || !Number.isSafeInteger(maxNodes) || maxNodes < 1) {
    throw new InputError(`options.maxNodes must be a positive safe integer, got ${show(maxNodes)}`);
  }
  const p = checkAllocationProblem(problem);
  const { costs, weights, budget } = p;
  const L = costs.length;

  // ---- preprocessing: drop dominated / unaffordable choices, order layers by cost spread ----
  let sumMinW = 0, sumMaxW = 0, nChoices = 0, sMax = 0;
  const minW = weights.map((r) => Math.min(...r));
  for (let i = 0; i < L; i++) {
    sumMinW += minW[i]; // ≤ budget: exact
    sumMaxW += Math.max(...weights[i]);
    nChoices += costs[i].length;
    sMax += Math.max(...costs[i]);
  }
  const raw = costs.map((row, i) => ({
    i,
    ly: preprocessLayer(row, weights[i], budget - (sumMinW - minW[i])),
  }));
  raw.sort((a, b) => b.ly.spread - a.ly.spread || a.i - b.i);
  const perm = raw.map((r) => r.i); // search position -> original layer
  const posOf = new Array<number>(L);
  for (let pos = 0; pos < L; pos++) posOf[perm[pos]] = pos;
  const layers = raw.map((r) => r.ly);
  // Extra bytes above the lightest choices come in multiples of the gcd of the weight steps: the LP may only
  // use that many (this closes the LP gap of a budget that no combination of choices fills exactly).
  const costLP = buildTables(
    layers.map((ly) => ly.byWeight),
    layers.map((ly) => ly.w.reduce((g, w) => gcd(g, w - ly.w[0]), 0)),
  );

  // Exact mode: every cost on the grid q and every sum below 2^53·q, so all sums (in any order) are exact.
  const q = costGrid(costs);
  const exact = sMax < q * 2 ** 53;
  // Symmetry breaking (exact mode only): layers with identical rows of costs and weights are
  // interchangeable; swapping two of them keeps the exact cost and the weight, so the optimum (being
  // lexicographically smallest) has non-decreasing choices along each class in layer order. twin[i] is the
  // previous layer of i's class (searched just before it: equal rows have equal spread) or -1.
  const twin = new Array<number>(L).fill(-1);
  if (exact) {
    const last = new Map<string, number>();
    for (let i = 0; i < L; i++) {
      const key = `${costs[i].join(",")}|${weights[i].join(",")}`;
      const prev = last.get(key);
      if (prev !== undefined) twin[i] = prev;
      last.set(key, i);
    }
  }
  // Rounding margin on a computed LP bound. Exact mode: only the fractional LP step and the hull's slope
  // comparisons round, each within a few 2^-53·S. Otherwise the f64 layer-order sum of a solution may also
  // sit below its real sum by up to (L-1)·2^-53·S, and the bound's prefix sums round: several times that.
  const eps = (exact ? 2 ** -49 : (4 * (nChoices + L) + 64) * 2 ** -52) * sMax * (1 + 1e-6);
  /** A cost that every completion's f64 total provably reaches, from a computed LP bound. */
  const reach = (lb: number): number => exact ? q * Math.ceil((lb - eps) / q) : lb - eps;
  // The weight LP under a cost cap needs exact cost arithmetic; weights must sum exactly too.
  const weightLP = exact && sumMaxW < 2 ** 53 ? buildTables(layers.map((ly) => ly.byCost)) : null;
  const epsW = 2 ** -49 * (sumMaxW + 1);

  // ---- incumbent: LP-greedy rounding, then best single-layer improvements ----
  const cur = new Array<number>(L).fill(-1); // original choice per original layer while searching
  const fixed = new Uint8Array(L);
  const inc = new Array<number>(L);
  let incCost: number, incW: number;
  {
    const pick = layers.map(() => 0); // hull point per position (0 = lightest)
    let cap = budget - costLP[0].baseX;
    const order: { pos: number; k: number; s: number }[] = [];
    for (let pos = 0; pos < L; pos++) {
      const h = layers[pos].byWeight;
      for (let k = 0; k < h.dx.length; k++) order.push({ pos, k, s: h.slope[k] });
    }
    order.sort((a, b) => a.s - b.s || a.pos - b.pos || a.k - b.k);
    const blocked = new Uint8Array(L);
    for (const e of order) {
      if (blocked[e.pos] || pick[e.pos] !== e.k) continue;
      const dw = layers[e.pos].byWeight.dx[e.k];
      if (dw <= cap) {
        cap -= dw;
        pick[e.pos] = e.k + 1;
      } else blocked[e.pos] = 1;
    }
    // kept index per position: the first kept choice of a hull point's weight is that hull point
    const sel = layers.map((ly, pos) => {
      let w = ly.byWeight.x0;
      for (let k = 0; k < pick[pos]; k++) w += ly.byWeight.dx[k];
      return ly.w.indexOf(w);
    });
    let used = 0;
    for (let pos = 0; pos < L; pos++) used += layers[pos].w[sel[pos]];
    for (let round = 0; round < 4 * L; round++) {
      let bestGain = 0, bestPos = -1, bestK = -1;
      for (let pos = 0; pos < L; pos++) {
        const ly = layers[pos];
        for (let k = 0; k < ly.w.length; k++) {
          const gain = ly.c[sel[pos]] - ly.c[k];
          if (gain > bestGain && used - ly.w[sel[pos]] + ly.w[k] <= budget) {
            bestGain = gain;
            bestPos = pos;
            bestK = k;
          }
        }
      }
      if (bestPos < 0) break;
      used += layers[bestPos].w[bestK] - layers[bestPos].w[sel[bestPos]];
      sel[bestPos] = bestK;
    }
    for (let pos = 0; pos < L; pos++) inc[perm[pos]] = layers[pos].orig[sel[pos]];
    incCost = layerOrderCost(costs, inc);
    incW = used;
  }

  /** Can no completion of the current partial assignment be lexicographically smaller than the incumbent? */
  const lexBlocked = (): boolean => {
    for (let i = 0; i < L; i++) {
      // A free layer can at best repeat the incumbent's choice when that is its smallest index.
      const v = fixed[i] ? cur[i] : layers[posOf[i]].minOrig;
      if (v !== inc[i]) return v > inc[i];
    }
    return true; // equal to the incumbent: no improvement
  };

  // ---- depth-first search, children best-bound first ----
  let nodes = 0;
  const scratchLB = layers.map((ly) => new Float64Array(ly.w.length));
  const scratchOrd = layers.map((ly) => ly.w.map((_, k) => k));

  const dfs = (d: number, used: number, partCost: number): void => {
    if (++nodes > maxNodes) searchLimit(maxNodes, L);
    if (d === L) {
      const total = layerOrderCost(costs, cur);
      if (betterKey(total, used, cur, incCost, incW, inc)) {
        incCost = total;
        incW = used;
        for (let i = 0; i < L; i++) inc[i] = cur[i];
      }
      return;
    }
    const ly = layers[d];
    const next = costLP[d + 1];
    const lb = scratchLB[d];
    const ord = scratchOrd[d];
    const n = ly.w.length;
    for (let k = 0; k < n; k++) {
      const cap = budget - used - ly.w[k] - next.baseX;
      const usable = next.gcdX > 1 ? cap - (cap % next.gcdX) : cap;
      lb[k] = cap < 0 ? Infinity : partCost + ly.c[k] + next.baseY + lpGain(next, usable);
      ord[k] = k;
    }
    ord.sort((a, b) => lb[a] - lb[b] || a - b); // kept order is weight-then-cost: ties go lighter first
    const layer = perm[d];
    const floorChoice = twin[layer] < 0 ? -1 : cur[twin[layer]];
    fixed[layer] = 1;
    for (let t = 0; t < n; t++) {
      const k = ord[t];
      if (lb[k] === Infinity) break;
      if (ly.orig[k] < floorChoice) continue; // symmetry: see `twin`
      const low = reach(lb[k]);
      if (low > incCost) break; // sorted: every later child is cut too
      cur[layer] = ly.orig[k];
      if (low === incCost) {
        // No completion is cheaper than the incumbent: it must tie on cost and beat it on weight or order.
        const w = used + ly.w[k];
        let minWeight = w + next.baseX;
        if (minWeight <= incW && weightLP !== null) {
          const t2 = weightLP[d + 1];
          const cap = incCost - (partCost + ly.c[k]) - t2.baseX; // exact in exact mode
          minWeight = cap < 0
            ? Infinity
            : Math.max(minWeight, w + Math.ceil(t2.baseY + lpGain(t2, cap) - epsW));
        }
        if (minWeight > incW || (minWeight === incW && lexBlocked())) continue;
      }
      dfs(d + 1, used + ly.w[k], partCost + ly.c[k]);
    }
    fixed[layer] = 0;
    cur[layer] = -1;
  };
  dfs(0, 0, 0);

  const result: AllocationResult = { choice: inc.slice(), cost: incCost, weight: incW, nodes, optimal: true };
  if (p.labels !== undefined) {
    const lab = p.labels;
    result.labels = inc.map((j, i) => lab[i][j]);
  }
  return result;
}
