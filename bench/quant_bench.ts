/**
 * Throughput of the CPU quantizer on 128-dim groups: `deno bench bench/quant_bench.ts`.
 *
 * Every bench processes GROUPS groups of 128 f32 values (4 MiB of f32 input) per iteration, so
 * GB/s = 4,194,304 bytes / (time per iteration). A one-line GB/s summary per operation is also printed
 * (measured separately, best of a few runs) when the module loads.
 *
 * @example
 * ```sh
 * deno bench bench/quant_bench.ts
 * ```
 * @module
 */

import { ersRows } from "../src/quant/ers.ts";
import { QUANT_BITS } from "../src/quant/format.ts";
import { allocQuantBuffers, dequantizeRows, quantizeRows } from "../src/quant/quantizer.ts";
import { exactDivF32, quantizeGroupGpuStyle } from "../src/quant/quantizer_gpu_style.ts";

const G = 128;
const GROUPS = 8192;
const BYTES = GROUPS * G * 4; // f32 input (or output) bytes per iteration
const MIB = (BYTES / 2 ** 20).toFixed(0);

let seed = 1;
const rand = () => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed / 2 ** 32;
};
const x = new Float32Array(GROUPS * G).map(() => (rand() - 0.5) * 4);
const bufs = new Map(QUANT_BITS.map((b) => [b, allocQuantBuffers(GROUPS, G, b)]));
for (const b of QUANT_BITS) quantizeRows(x, GROUPS, G, b, bufs.get(b)!);
const out = new Float32Array(GROUPS * G);

function quantizeGpuStyleRows(bits: number): void {
  const q = bufs.get(bits as 16)!;
  const wpg = (G * bits) / 32;
  for (let g = 0; g < GROUPS; g++) {
    quantizeGroupGpuStyle(x, g * G, G, bits, q.codes, g * wpg, q.scales, q.zeros, g, exactDivF32);
  }
}

function ersOnce(bitsIn: number): void {
  const q = bufs.get(bitsIn as 16)!;
  const codes = new Uint32Array(q.codes.length / 2);
  const scales = new Uint16Array(GROUPS);
  ersRows(q.codes, bitsIn, q.scales, scales, GROUPS, G, codes);
}

const ops: [string, () => void][] = [];
for (const b of QUANT_BITS) {
  ops.push([`quantize ${b}-bit`, () => quantizeRows(x, GROUPS, G, b, bufs.get(b)!)]);
  ops.push([`dequantize ${b}-bit`, () => dequantizeRows(bufs.get(b)!, GROUPS, G, b, out)]);
}
ops.push(["quantize 4-bit (GPU-style path)", () => quantizeGpuStyleRows(4)]);
for (const b of [16, 8, 4]) ops.push([`ERS ${b}→${b / 2}-bit`, () => ersOnce(b)]);

// One-line summary (GB/s of f32 values processed), measured once at load.
const summary: string[] = [];
for (const [name, fn] of ops) {
  fn();
  let best = Infinity;
  for (let rep = 0; rep < 3; rep++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  summary.push(`${name}: ${(BYTES / (best * 1e6)).toFixed(2)} GB/s`);
}
console.log(`quant throughput (${GROUPS} groups × ${G} f32 = ${MIB} MiB per op): ${summary.join("; ")}`);

for (const [name, fn] of ops) {
  Deno.bench({ name: `${name}, ${GROUPS}×${G} f32 (${MIB} MiB per iter)`, n: 20, warmup: 3, fn });
}
