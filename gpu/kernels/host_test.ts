/** Host-side tests of WGSL generation helpers and dispatch arithmetic (no adapter needed). */
import assert from "node:assert/strict";
import { f32Lit, u32Lit } from "./wgsl_util.ts";
import { decodeSplit, SPLIT_STEP } from "./attention.ts";

Deno.test("f32Lit parses back to the same f32; u32Lit rejects non-u32", () => {
  for (const v of [1e-5, 1e-6, 0.08838834764831845, -3.4028234663852886e38, 2, 0]) {
    const lit = f32Lit(v);
    assert.match(lit, /f$/);
    assert.equal(Math.fround(Number(lit.slice(0, -1))), Math.fround(v), lit);
  }
  assert.equal(u32Lit(384), "384u");
  assert.throws(() => u32Lit(-1), RangeError);
  assert.throws(() => u32Lit(1.5), RangeError);
});

Deno.test("decodeSplit covers the context with at most maxSplits splits of a multiple of 16 tokens", () => {
  for (const n of [1, 15, 16, 17, 1000, 2048, 2049, 32768, 100000]) {
    for (const maxSplits of [4, 128]) {
      const { split, nSplits } = decodeSplit(n, maxSplits);
      assert.equal(split % SPLIT_STEP, 0);
      assert.ok(nSplits <= maxSplits, `${n}/${maxSplits}`);
      assert.ok(split * nSplits >= n && split * (nSplits - 1) < n, `${n}: ${nSplits}×${split}`);
    }
  }
});
