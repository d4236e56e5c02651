/** Host-side tests of the bf16 packing used for GPU weights (no adapter needed). */
import assert from "node:assert/strict";
import { isBf16Exact, packBf16 } from "./weights.ts";

Deno.test("packBf16: element 2i in the low half, 2i+1 in the high half, exactly", () => {
  const a = new Float32Array([1, -2, 0.5, 3.140625]); // all bf16-exact
  const w = packBf16([a.subarray(0, 2), a.subarray(2)]);
  assert.equal(w.length, 2);
  const f = (bits: number) => new Float32Array(new Uint32Array([bits >>> 0]).buffer)[0];
  for (let i = 0; i < 2; i++) {
    assert.equal(f(w[i] << 16), a[2 * i]);
    assert.equal(f(w[i] & 0xffff0000), a[2 * i + 1]);
  }
});

Deno.test("isBf16Exact: true only when every low half is zero", () => {
  assert.equal(isBf16Exact([new Float32Array([1, 0.5, -0, Infinity])]), true);
  assert.equal(isBf16Exact([new Float32Array([1]), new Float32Array([0.1])]), false);
});

Deno.test("packBf16 rejects odd-length parts", () => {
  assert.throws(() => packBf16([new Float32Array(3)]), RangeError);
});
