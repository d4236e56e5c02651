/**
 * Test support for the cache tests (not used by the library): seeded random K/V tensors, a walk over exported
 * storage that sums byteLength and checks no two arrays share memory, deep snapshots of exports, and a
 * dequantization of a grouped export done directly with src/quant (independent of the cache's own view code).
 *
 * @example
 * ```ts
 * import { randomKV, randomSizes } from "./testing.ts";
 * import { mulberry32 } from "../sampling.ts";
 * const rng = mulberry32(1);
 * const x = randomKV(rng, 3, 256); // 3 tokens of 256 values
 * const sizes = randomSizes(rng, 1000);  // prefill 300, then mostly single tokens
 * ```
 * @module
 */
import type { GroupedLayerExport } from "./grouped.ts";
import type { KiviLayerExport } from "./kivi.ts";
import { dequantizeRows, type QuantBuffers } from "../quant/quantizer.ts";
import { bf16ToF32 } from "../quant/bf16.ts";
import assert from "node:assert/strict";

/**
 * Bitwise equality of two f32 arrays (NaN payloads and ±0 included), reporting the first difference.
 *
 * @example
 * ```ts
 * import { assertSameFloats } from "./testing.ts";
 * assertSameFloats(new Float32Array([1]), new Float32Array([1]), "x"); // ok
 * ```
 */
export function assertSameFloats(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths differ`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) assert.fail(`${what}: element ${i} is ${a[i]} vs ${b[i]}`);
  }
}

/**
 * `t` tokens of `row` values: Gaussian-ish noise with a per-channel offset and occasional outliers
 * (deterministic for a given rng).
 *
 * @example
 * ```ts
 * import { randomKV } from "./testing.ts";
 * import { mulberry32 } from "../sampling.ts";
 * randomKV(mulberry32(7), 2, 128).length; // 256
 * ```
 */
export function randomKV(rng: () => number, t: number, row: number, scale = 1): Float32Array {
  const x = new Float32Array(t * row);
  for (let i = 0; i < x.length; i++) {
    const c = i % row;
    const g = (rng() + rng() + rng() - 1.5) * 2;
    const outlier = rng() < 0.01 ? 20 * (rng() - 0.5) : 0;
    x[i] = scale * (g + Math.sin(c) * 2 + outlier);
  }
  return x;
}

/**
 * Append sizes summing to `total`: a prefill of min(300, total), then mostly single tokens with some
 * random bursts of up to 200.
 *
 * @example
 * ```ts
 * import { randomSizes } from "./testing.ts";
 * import { mulberry32 } from "../sampling.ts";
 * randomSizes(mulberry32(1), 320).reduce((a, b) => a + b); // 320
 * ```
 */
export function randomSizes(rng: () => number, total: number, prefill = 300): number[] {
  const sizes = [Math.min(prefill, total)];
  let left = total - sizes[0];
  while (left > 0) {
    const n = Math.min(left, rng() < 0.85 ? 1 : 1 + Math.floor(rng() * 200));
    sizes.push(n);
    left -= n;
  }
  return sizes;
}

/**
 * Runs `fn`, asserts it throws an instance of `cls`, and returns the error.
 *
 * @example
 * ```ts
 * import { thrown } from "./testing.ts";
 * thrown(() => { throw new RangeError("x"); }, RangeError).message; // "x"
 * ```
 */
export function thrown<E extends Error>(fn: () => unknown, cls: new (...args: never[]) => E): E {
  try {
    fn();
  } catch (e) {
    if (e instanceof cls) return e;
    throw e;
  }
  assert.fail(`expected ${cls.name} to be thrown`);
}

function addArray(a: ArrayBufferView | null | undefined, seen: Set<ArrayBufferLike>): number {
  if (!a) return 0;
  if (seen.has(a.buffer)) throw new Error("two storage arrays share one ArrayBuffer");
  if (a.byteOffset !== 0 || a.byteLength !== a.buffer.byteLength) {
    throw new Error("a storage array is a view into a larger buffer");
  }
  seen.add(a.buffer);
  return a.byteLength;
}

function addQuant(q: QuantBuffers | null | undefined, seen: Set<ArrayBufferLike>): number {
  if (!q) return 0;
  return addArray(q.codes, seen) + addArray(q.scales, seen) + addArray(q.zeros, seen);
}

/**
 * Σ byteLength of every storage array of a grouped or KIVI export; throws when two arrays share memory
 * or an array is a view into a bigger buffer (either would make the count wrong).
 *
 * @example
 * ```ts
 * import { walkExportBytes } from "./testing.ts";
 * // walkExportBytes(cache.exportLayer(0)) === cache.stats().layers[0].bytes
 * ```
 */
export function walkExportBytes(
  ex: GroupedLayerExport | KiviLayerExport,
  seen = new Set<ArrayBufferLike>(),
): number {
  let b = 0;
  if ("keyBlocks" in ex) {
    b += addArray(ex.keyResidual, seen) + addArray(ex.valueFifo, seen);
    for (const q of ex.keyBlocks) b += addQuant(q, seen);
    for (const c of ex.valueChunks) b += addQuant(c.q, seen);
    return b;
  }
  for (const r of [ex.sink, ex.window, ...ex.body]) if (r) b += addQuant(r.k, seen) + addQuant(r.v, seen);
  return b;
}

function copyQuant(q: QuantBuffers): QuantBuffers {
  return { codes: q.codes.slice(), scales: q.scales.slice(), zeros: q.zeros.slice() };
}

/**
 * A deep copy of a grouped export (arrays copied), for before/after comparisons.
 *
 * @example
 * ```ts
 * import { snapshotGrouped } from "./testing.ts";
 * // const before = snapshotGrouped(cache.exportLayer(0));
 * ```
 */
export function snapshotGrouped(ex: GroupedLayerExport): GroupedLayerExport {
  const pair = (p: { k: QuantBuffers; v: QuantBuffers } | null) =>
    p && { k: copyQuant(p.k), v: copyQuant(p.v) };
  return {
    ...ex,
    sink: pair(ex.sink),
    window: pair(ex.window),
    body: ex.body.map((c) => ({ k: copyQuant(c.k), v: copyQuant(c.v), tokens: c.tokens })),
  };
}

/**
 * Dequantizes a grouped export into chronological [tokens, nKv, D] K and V, with src/quant directly.
 *
 * @example
 * ```ts
 * import { dequantizeGroupedExport } from "./testing.ts";
 * // const { k, v } = dequantizeGroupedExport(cache.exportLayer(0)); // equals cache.view(0) bit for bit
 * ```
 */
export function dequantizeGroupedExport(ex: GroupedLayerExport): { k: Float32Array; v: Float32Array } {
  const gpt = ex.groupsPerToken, G = ex.groupSize, row = gpt * G;
  const n = ex.sinkTokens + ex.bodyTokens + ex.windowTokens;
  const k = new Float32Array(n * row), v = new Float32Array(n * row);
  let at = 0;
  const put = (q: QuantBuffers, bits: number, tokens: number, out: Float32Array) => {
    if (tokens > 0) out.set(dequantizeRows(q, tokens * gpt, G, bits), at * row);
  };
  if (ex.sink) {
    put(ex.sink.k, ex.sinkBits, ex.sinkTokens, k);
    put(ex.sink.v, ex.sinkBits, ex.sinkTokens, v);
  }
  at = ex.sinkTokens;
  for (const c of ex.body) {
    put(c.k, ex.bits, c.tokens, k);
    put(c.v, ex.bits, c.tokens, v);
    at += c.tokens;
  }
  if (ex.window) {
    put(ex.window.k, ex.windowBits, ex.windowTokens, k);
    put(ex.window.v, ex.windowBits, ex.windowTokens, v);
  }
  return { k, v };
}

/**
 * bf16 bits → f32 for a whole array (test convenience).
 *
 * @example
 * ```ts
 * import { bf16Array } from "./testing.ts";
 * bf16Array(new Uint16Array([0x3f80])); // Float32Array [1]
 * ```
 */
export function bf16Array(x: Uint16Array): Float32Array {
  return Float32Array.from(x, bf16ToF32);
}
