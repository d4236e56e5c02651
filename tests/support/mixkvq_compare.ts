/**
 * Byte comparison of two MixKVQ layer exports (`MixKvqCache.exportLayer` vs the GPU's `readExport`), naming
 * the first mismatching field and index. Used by tests/conformance_mixkvq_test.ts and
 * tests/conformance_engine_mixkvq_test.ts.
 *
 * @example
 * ```ts
 * sameMixExport(await gpuCache.readExport(0), cpuCache.exportLayer(0), "layer 0 after 40 tokens");
 * ```
 * @module
 */
import assert from "node:assert/strict";
import type { MixKvqLayerExport } from "../../src/kv/mixkvq.ts";
import type { QuantBuffers } from "../../src/quant/quantizer.ts";

/**
 * Asserts equal length and elements (NaN equals NaN); the message counts the mismatches.
 *
 * @example
 * ```ts
 * sameArray(new Uint16Array([1]), new Uint16Array([1]), "x");
 * ```
 */
export function sameArray(got: ArrayLike<number> | null, want: ArrayLike<number> | null, what: string): void {
  if (got === null || want === null) {
    assert.equal(got === null, want === null, `${what}: null on one side only`);
    return;
  }
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i] && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) {
      let n = 0;
      for (let j = 0; j < want.length; j++) if (got[j] !== want[j]) n++;
      assert.fail(`${what}: ${n} mismatches, first at ${i}: got ${got[i]}, want ${want[i]}`);
    }
  }
}

function sameQuant(got: QuantBuffers, want: QuantBuffers, what: string): void {
  sameArray(got.codes, want.codes, `${what} codes`);
  sameArray(got.scales, want.scales, `${what} scales`);
  sameArray(got.zeros, want.zeros, `${what} zeros`);
}

/**
 * Asserts that two layer exports hold the same counts and bytes (residual, query sums, every block's tier
 * map, slots, bf16 / 4-bit / 2-bit keys and values).
 *
 * @example
 * ```ts
 * sameMixExport(got, want, "after step 3");
 * ```
 */
export function sameMixExport(g: MixKvqLayerExport, c: MixKvqLayerExport, step: string): void {
  assert.equal(g.residualTokens, c.residualTokens, `${step}: residual tokens`);
  assert.equal(g.queryTokens, c.queryTokens, `${step}: query tokens`);
  assert.equal(g.blocks.length, c.blocks.length, `${step}: blocks`);
  sameArray(g.residualK, c.residualK, `${step}: residual K`);
  sameArray(g.residualV, c.residualV, `${step}: residual V`);
  sameArray(g.querySum, c.querySum, `${step}: query sums`);
  g.blocks.forEach((gb, b) => {
    const cb = c.blocks[b], w = `${step}: block ${b}`;
    assert.deepEqual([gb.k.n16, gb.k.n4, gb.k.n2], [cb.k.n16, cb.k.n4, cb.k.n2], `${w} tier counts`);
    sameArray(gb.k.bits, cb.k.bits, `${w} tier map`);
    sameArray(gb.k.slot, cb.k.slot, `${w} slots`);
    sameArray(gb.k.bf16, cb.k.bf16, `${w} bf16 keys`);
    sameQuant(gb.k.q4, cb.k.q4, `${w} 4-bit keys`);
    sameQuant(gb.k.q2, cb.k.q2, `${w} 2-bit keys`);
    sameQuant(gb.v, cb.v, `${w} values`);
  });
}
