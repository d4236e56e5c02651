/**
 * Brute-force oracle for the bit allocation: enumerates every choice vector in lexicographic order and keeps
 * the best under the same exact order as {@link solveAllocation} (f64 layer-order cost, then weight, then
 * lexicographically smallest vector). Exponential: for tests only.
 *
 * @example
 * ```ts
 * import { solveAllocationExhaustive } from "./exhaustive.ts";
 * const r = solveAllocationExhaustive({ costs: [[3, 1], [2, 0]], weights: [[1, 2], [1, 2]], budget: 3 });
 * console.log(r.choice, r.cost); // [0, 1] 3  (ties with [1, 0] on cost and weight: smaller vector)
 * ```
 * @module
 */

import { InputError } from "../errors.ts";
import { type AllocationProblem, checkAllocationProblem } from "./bnb.ts";

/** Result of {@link solveAllocationExhaustive}. */
export interface ExhaustiveResult {
  choice: number[];
  cost: number;
  weight: number;
  /** Complete choice vectors evaluated. */
  leaves: number;
}

/**
 * Enumerate all choice vectors (skipping only prefixes that cannot fit) and return the exact optimum.
 * Throws the same errors as `solveAllocation`, and {@link InputError} when the search space is larger than
 * `maxLeaves` (default 2^25).
 *
 * @example
 * ```ts
 * import { solveAllocationExhaustive } from "./exhaustive.ts";
 * const r = solveAllocationExhaustive({ costs: [[1, 1]], weights: [[5, 5]], budget: 5 });
 * console.log(r.choice); // [0]  (tie on cost and weight: smallest index)
 * ```
 */
export function solveAllocationExhaustive(
  problem: AllocationProblem,
  options: { maxLeaves?: number } = {},
): ExhaustiveResult {
  const { costs, weights, budget } = checkAllocationProblem(problem);
  const maxLeaves = options.maxLeaves ?? 2 ** 25;
  let space = 1;
  for (const row of costs) space *= row.length;
  if (space > maxLeaves) {
    throw new InputError(`exhaustive search space ${space} exceeds maxLeaves ${maxLeaves}`);
  }
  const L = costs.length;
  const minRest = new Array<number>(L + 1).fill(0); // lightest possible weight of layers i..L-1
  for (let i = L - 1; i >= 0; i--) minRest[i] = minRest[i + 1] + Math.min(...weights[i]);
  const cur = new Array<number>(L).fill(0);
  let best: number[] | null = null, bestCost = Infinity, bestW = Infinity, leaves = 0;
  // Prefix sums in layer order are exactly the f64 layer-order sum; lexicographic enumeration means the
  // first vector found among equal (cost, weight) is the lexicographically smallest: replace only on strict.
  const walk = (i: number, cost: number, w: number): void => {
    if (i === L) {
      leaves++;
      if (cost < bestCost || (cost === bestCost && w < bestW)) {
        bestCost = cost;
        bestW = w;
        best = cur.slice();
      }
      return;
    }
    const ci = costs[i], wi = weights[i];
    for (let j = 0; j < ci.length; j++) {
      const nw = w + wi[j];
      if (nw + minRest[i + 1] > budget) continue;
      cur[i] = j;
      walk(i + 1, cost + ci[j], nw);
    }
  };
  walk(0, 0, 0);
  if (best === null) throw new Error("unreachable: a feasible budget has a solution");
  return { choice: best, cost: bestCost, weight: bestW, leaves };
}
