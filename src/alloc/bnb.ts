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
 *    prefix sums so a bound costs one binary search. The bound is lowered by a rigorous margin for
 *    rounding (of the bound and of the layer-order f64 sum). When every cost lies on a common dyadic grid
 *    q and all sums stay below 2^53·q, sums are exact and the bound is rounded UP to the grid instead, so
 *    integer-cost ties are recognised.
 *  - Pruning: a node is cut when its bound is strictly above the incumbent cost; or when no completion can
 *    have a lower cost AND (its minimal weight is above the incumbent's, or equal and no completion can be
 *    lexicographically smaller). Anything else is explored; leaves are compared by the exact key.
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
  if (!Array.isArray(costs)) throw new InputError(`allocation problem: costs must be an array, got ${show(costs)}`);
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
        throw new InputError(`layer ${i} choice ${j}: weight ${show(w)} is not a non-negative safe integer (bytes)`);
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
          `layer ${i}: labels must have ${ci.length} entries, got ${Array.isArray(li) ? li.length : show(li)}`,
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
  let need = 0n;
  for (const row of outW) need += BigInt(Math.min(...row));
  if (need > BigInt(budget)) {
    throw new BudgetError(
      `budget ${budget} bytes is infeasible: the minimum feasible budget is ${need} bytes ` +
        `(every layer at its smallest choice), ${need - BigInt(budget)} bytes short`,
    );
  }
  return outL === undefined ? { costs: outC, weights: outW, budget } : { costs: outC, weights: outW, budget, labels: outL };
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

/** One layer after preprocessing: kept choices sorted by weight, then cost, then original index. */
interface Layer {
  orig: number[];
  w: number[];
  c: number[];
  /** Lower convex hull: first point (lightest, cheapest of the lightest), then increments. */
  hullW: number[];
  hullW0: number;
  hullC0: number;
  incW: number[];
  incC: number[];
  incSlope: number[];
  minOrig: number;
  spread: number;
}

function preprocessLayer(costs: number[], weights: number[], slack: number): Layer {
  const idx: number[] = [];
  for (let j = 0; j < costs.length; j++) if (weights[j] <= slack) idx.push(j);
  idx.sort((a, b) => weights[a] - weights[b] || costs[a] - costs[b] || a - b);
  // Dominance sweep over groups of equal weight (see module doc for the exact rule).
  const kept: number[] = [];
  let bestLighter = Infinity;
  for (let g = 0; g < idx.length;) {
    let h = g;
    while (h < idx.length && weights[idx[h]] === weights[idx[g]]) h++;
    const group = idx.slice(g, h).sort((a, b) => a - b);
    let runMin = Infinity, groupMin = Infinity;
    for (const j of group) {
      if (costs[j] < runMin && costs[j] < bestLighter) kept.push(j);
      runMin = Math.min(runMin, costs[j]);
      groupMin = Math.min(groupMin, costs[j]);
    }
    bestLighter = Math.min(bestLighter, groupMin);
    g = h;
  }
  kept.sort((a, b) => weights[a] - weights[b] || costs[a] - costs[b] || a - b);
  const w = kept.map((j) => weights[j]), c = kept.map((j) => costs[j]);
  // Lower convex hull (monotone chain) on the computed slopes, so increments are strictly ordered.
  const hw: number[] = [], hc: number[] = [];
  const slope = (k: number, x: number, y: number) => (y - hc[k]) / (x - hw[k]);
  for (let k = 0; k < w.length; k++) {
    if (hw.length > 0 && hw[hw.length - 1] === w[k]) continue; // same weight, costlier (sorted)
    while (hw.length >= 2) {
      const t = hw.length - 1;
      if (slope(t, w[k], c[k]) <= slope(t - 1, hw[t], hc[t])) {
        hw.pop();
        hc.pop();
      } else break;
    }
    hw.push(w[k]);
    hc.push(c[k]);
  }
  const incW: number[] = [], incC: number[] = [], incSlope: number[] = [];
  for (let k = 1; k < hw.length; k++) {
    incW.push(hw[k] - hw[k - 1]);
    incC.push(hc[k] - hc[k - 1]);
    incSlope.push((hc[k] - hc[k - 1]) / (hw[k] - hw[k - 1]));
  }
  return {
    orig: kept,
    w,
    c,
    hullW: hw,
    hullW0: hw[0],
    hullC0: hc[0],
    incW,
    incC,
    incSlope,
    minOrig: Math.min(...kept),
    spread: Math.max(...c) - Math.min(...c),
  };
}

/** LP bound tables for the layers at search positions d..L-1, as prefix sums over slope-sorted increments. */
interface DepthTable {
  baseC: number;
  baseW: number;
  cumW: Float64Array;
  cumC: Float64Array;
  slope: Float64Array;
}

function buildTables(layers: Layer[]): DepthTable[] {
  const L = layers.length;
  const all: { pos: number; k: number; s: number }[] = [];
  for (let pos = 0; pos < L; pos++) {
    const ly = layers[pos];
    for (let k = 0; k < ly.incW.length; k++) all.push({ pos, k, s: ly.incSlope[k] });
  }
  all.sort((a, b) => a.s - b.s || a.pos - b.pos || a.k - b.k);
  const tables: DepthTable[] = new Array(L + 1);
  let baseC = 0, baseW = 0;
  for (let d = L; d >= 0; d--) {
    if (d < L) {
      baseC += layers[d].hullC0;
      baseW += layers[d].hullW0;
    }
    const sel = all.filter((e) => e.pos >= d);
    const n = sel.length;
    const cumW = new Float64Array(n + 1), cumC = new Float64Array(n + 1), slope = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const ly = layers[sel[k].pos];
      cumW[k + 1] = cumW[k] + ly.incW[sel[k].k];
      cumC[k + 1] = cumC[k] + ly.incC[sel[k].k];
      slope[k] = sel[k].s;
    }
    tables[d] = { baseC, baseW, cumW, cumC, slope };
  }
  return tables;
}

/** LP gain (≤ 0) of the layers at positions ≥ d given `cap` spare bytes above their lightest choices. */
function lpGain(t: DepthTable, cap: number): number {
  const cw = t.cumW;
  let lo = 0, hi = cw.length - 1; // largest k with cw[k] <= cap
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (cw[mid] <= cap) lo = mid;
    else hi = mid - 1;
  }
  let g = t.cumC[lo];
  if (lo < t.slope.length) g += t.slope[lo] * (cap - cw[lo]);
  return g;
}

/** Largest power of two q dividing every cost (1 if all are integers), or 0 if none is usable. */
function costGrid(costs: number[][]): number {
  let q = 1;
  for (const row of costs) {
    for (const c of row) {
      let x = c, p = 1;
      while (!Number.isInteger(x)) {
        x *= 2;
        p /= 2;
      }
      if (p < q) q = p;
    }
  }
  return q;
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

  // ---- preprocessing ----
  let sumMinW = 0, nChoices = 0, sMax = 0;
  const minW = weights.map((r) => Math.min(...r));
  for (let i = 0; i < L; i++) {
    sumMinW += minW[i]; // ≤ budget: exact
    nChoices += costs[i].length;
    sMax += Math.max(...costs[i]);
  }
  const raw = costs.map((row, i) => ({ i, ly: preprocessLayer(row, weights[i], budget - (sumMinW - minW[i])) }));
  raw.sort((a, b) => b.ly.spread - a.ly.spread || a.i - b.i);
  const perm = raw.map((r) => r.i); // search position -> original layer
  const layers = raw.map((r) => r.ly);
  const tables = buildTables(layers);

  // Rounding margin: covers the bound's own rounding and the gap between the real and the f64 layer-order sum.
  const eps = (4 * (nChoices + L) + 64) * 2 ** -52 * sMax * (1 + 1e-6);
  const q = costGrid(costs);
  const exact = sMax < q * 2 ** 53;
  /** A value every completion's f64 total is guaranteed to reach, from a computed LP bound. */
  const floorOf = (lb: number): number => exact ? q * Math.ceil((lb - eps) / q) : lb - eps;

  // ---- incumbent: LP-greedy rounding, then single-layer improvements ----
  const cur = new Array<number>(L).fill(-1); // original choice per original layer while searching
  const fixed = new Uint8Array(L);
  const inc = new Array<number>(L);
  let incCost = Infinity, incW = Infinity;
  {
    const pick = layers.map(() => 0); // hull point per position (0 = lightest)
    let cap = budget - tables[0].baseW;
    const order: { pos: number; k: number; s: number }[] = [];
    for (let pos = 0; pos < L; pos++) {
      for (let k = 0; k < layers[pos].incW.length; k++) order.push({ pos, k, s: layers[pos].incSlope[k] });
    }
    order.sort((a, b) => a.s - b.s || a.pos - b.pos || a.k - b.k);
    const blocked = new Uint8Array(L);
    for (const e of order) {
      if (blocked[e.pos] || pick[e.pos] !== e.k) continue;
      const dw = layers[e.pos].incW[e.k];
      if (dw <= cap) {
        cap -= dw;
        pick[e.pos] = e.k + 1;
      } else blocked[e.pos] = 1;
    }
    // kept index per position: the first kept choice of the hull point's weight is the hull point
    const sel = layers.map((ly, pos) => ly.w.indexOf(ly.hullW[pick[pos]]));
    let used = 0;
    for (let pos = 0; pos < L; pos++) used += layers[pos].w[sel[pos]];
    for (let round = 0; round < L * 4; round++) {
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
      if (fixed[i]) {
        if (cur[i] !== inc[i]) return cur[i] > inc[i];
      } else {
        const m = layers[posOf[i]].minOrig;
        if (m !== inc[i]) return m > inc[i];
      }
    }
    return true;
  };
  const posOf = new Array<number>(L);
  for (let pos = 0; pos < L; pos++) posOf[perm[pos]] = pos;

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
    const next = tables[d + 1];
    const lb = scratchLB[d];
    const ord = scratchOrd[d];
    const n = ly.w.length;
    for (let k = 0; k < n; k++) {
      const cap = budget - used - ly.w[k] - next.baseW;
      lb[k] = cap < 0 ? Infinity : partCost + ly.c[k] + next.baseC + lpGain(next, cap);
      ord[k] = k;
    }
    ord.sort((a, b) => lb[a] - lb[b] || a - b); // kept order is weight-then-cost: ties go lighter first
    const layer = perm[d];
    fixed[layer] = 1;
    for (let t = 0; t < n; t++) {
      const k = ord[t];
      if (lb[k] === Infinity) break;
      const low = floorOf(lb[k]);
      if (low > incCost) break; // sorted: every later child is cut too
      cur[layer] = ly.orig[k];
      if (low === incCost) {
        // No completion is cheaper: it must beat the incumbent on weight, or tie it and win on order.
        const minWeight = used + ly.w[k] + next.baseW;
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
