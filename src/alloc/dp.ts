/**
 * Independent exact dynamic program for the bit allocation, used as a test oracle on instances too large
 * for brute force. It shares nothing with the branch and bound except input validation.
 *
 * Weights and budget are divided by the gcd of all weights; the table has (L+1)·(C+1) cells where
 * C = min(budget, Σ heaviest weights) / gcd. A backward pass computes, for every layer i and exact scaled
 * weight r, the cheapest cost of layers i..L-1; the answer is the cheapest total, then the smallest total
 * weight reaching it, then the lexicographically smallest vector (reconstructed forwards taking the smallest
 * choice index that still reaches the optimum).
 *
 * Exactness: the cost order is the real sum, which equals the f64 layer-order sum whenever f64 addition of
 * the costs is exact (e.g. integer costs, or costs on a common dyadic grid 2^-k with every sum below 2^53
 * grid steps). With arbitrary reals a tie produced by rounding may be resolved differently from
 * `solveAllocation`; tests use exact costs.
 *
 * @example
 * ```ts
 * import { solveAllocationDp } from "./dp.ts";
 * const r = solveAllocationDp({ costs: [[3, 1], [2, 0]], weights: [[10, 20], [10, 20]], budget: 30 });
 * console.log(r.choice, r.cost, r.weight); // [0, 1] 3 30  (ties with [1, 0]: smaller vector)
 * ```
 * @module
 */

import { InputError } from "../errors.ts";
import { type AllocationProblem, checkAllocationProblem } from "./bnb.ts";

/** Result of {@link solveAllocationDp}. */
export interface DpResult {
  choice: number[];
  cost: number;
  weight: number;
  /** Table cells used ((L+1)·(C+1)). */
  cells: number;
}

function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/**
 * Solve by dynamic programming over the (gcd-scaled) weight axis. Throws the same errors as
 * `solveAllocation`, and {@link InputError} when the table would exceed `maxCells` (default 20,000,000).
 *
 * @example
 * ```ts
 * import { solveAllocationDp } from "./dp.ts";
 * const r = solveAllocationDp({ costs: [[1, 1], [4, 0]], weights: [[2, 2], [2, 6]], budget: 8 });
 * console.log(r.choice, r.weight); // [0, 1] 8
 * ```
 */
export function solveAllocationDp(problem: AllocationProblem, options: { maxCells?: number } = {}): DpResult {
  const { costs, weights, budget } = checkAllocationProblem(problem);
  const L = costs.length;
  let g = 0, heaviest = 0;
  for (const row of weights) {
    for (const w of row) g = gcd(g, w);
    heaviest = Math.min(budget, heaviest + Math.max(...row));
  }
  if (g === 0) g = 1;
  const C = Math.floor(heaviest / g);
  const cells = (L + 1) * (C + 1);
  const maxCells = options.maxCells ?? 20_000_000;
  if (cells > maxCells) throw new InputError(`DP table of ${cells} cells exceeds maxCells ${maxCells}`);
  const sw = weights.map((row) => row.map((w) => w / g));
  const W = C + 1;
  const f = new Float64Array(cells).fill(Infinity); // f[i*W + r]: cheapest layers i..L-1 at exact weight r
  f[L * W] = 0;
  for (let i = L - 1; i >= 0; i--) {
    const ci = costs[i], wi = sw[i], base = i * W, nxt = (i + 1) * W;
    for (let r = 0; r <= C; r++) {
      let best = Infinity;
      for (let j = 0; j < ci.length; j++) {
        if (wi[j] > r) continue;
        const v = f[nxt + r - wi[j]];
        if (v === Infinity) continue;
        const t = ci[j] + v;
        if (t < best) best = t;
      }
      f[base + r] = best;
    }
  }
  let bestR = -1;
  for (let r = 0; r <= C; r++) if (f[r] < (bestR < 0 ? Infinity : f[bestR])) bestR = r;
  if (bestR < 0) throw new Error("unreachable: a feasible budget has a solution");
  const choice: number[] = [];
  let r = bestR, cost = 0;
  for (let i = 0; i < L; i++) {
    const target = f[i * W + r], nxt = (i + 1) * W;
    let pick = -1;
    for (let j = 0; j < costs[i].length && pick < 0; j++) {
      if (sw[i][j] <= r && costs[i][j] + f[nxt + r - sw[i][j]] === target) pick = j;
    }
    if (pick < 0) throw new Error("unreachable: DP reconstruction failed");
    choice.push(pick);
    cost += costs[i][pick];
    r -= sw[i][pick];
  }
  return { choice, cost, weight: bestR * g, cells };
}
