/**
 * Benchmarks of the exact block-wise bit allocator (src/alloc/bnb.ts) on PM-KVQ-shaped instances:
 * 80 layers x {2,4,8,16} bits at three budgets, and 32 layers x {2,4} bits.
 *
 * Weights: bytes of one layer's K and V cache at max_len 32768 with n_kv_heads·head_dim = 1024, i.e.
 * bits · 8 MiB, plus a constant overhead (fp16 scales/zeros per group of 128, a 16-bit sink+window).
 * Costs: shaped like first-order sensitivities: a per-layer gradient scale (log-normal, deeper layers and
 * the first layer more sensitive) times the quantization error ~ 2^-bits, with per-entry noise. Seeded.
 *
 * Run: deno bench -A bench/alloc_bench.ts
 * @module
 */

import { type AllocationProblem, solveAllocation } from "../src/alloc/bnb.ts";

function mulberry32(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BYTES_PER_BIT = (2 * 1024 * 32768) / 8; // K and V, 1024 wide, 32768 tokens: 8 MiB per bit
const OVERHEAD = 2 * (1024 / 128) * 32768 * 2 * 2 + 129 * 1024 * 2 * 2; // scales+zeros, sink+window

/**
 * A seeded PM-KVQ-shaped allocation instance whose budget averages `avgBits` bits per layer.
 *
 * @example
 * ```ts
 * const p = instance(80, [2, 4, 8, 16], 5, 1);
 * console.log(p.costs.length, p.weights[0].length); // 80 4
 * ```
 */
function instance(layers: number, bits: number[], avgBits: number, seed: number): AllocationProblem {
  const r = mulberry32(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const costs: number[][] = [], weights: number[][] = [];
  for (let i = 0; i < layers; i++) {
    const grad = Math.exp(normal()) * (1 + (1.5 * i) / layers) * (i === 0 ? 3 : 1) * 1e-3;
    costs.push(bits.map((b) => grad * 2 ** -b * (0.7 + 0.6 * r())));
    weights.push(bits.map((b) => b * BYTES_PER_BIT + OVERHEAD));
  }
  const budget = Math.floor(layers * (avgBits * BYTES_PER_BIT + OVERHEAD));
  return { costs, weights, budget, labels: costs.map(() => bits.slice()) };
}

const B4 = [2, 4, 8, 16];
const cases: [string, AllocationProblem][] = [
  ["80 layers x 4 choices, budget 3 bits/layer", instance(80, B4, 3, 11)],
  ["80 layers x 4 choices, budget 5 bits/layer", instance(80, B4, 5, 12)],
  ["80 layers x 4 choices, budget 10 bits/layer", instance(80, B4, 10, 13)],
  ["32 layers x 2 choices {2,4}, budget 2.5 bits/layer", instance(32, [2, 4], 2.5, 14)],
];

for (const [name, p] of cases) {
  Deno.bench({ name, group: "alloc", fn: () => void solveAllocation(p) });
}
