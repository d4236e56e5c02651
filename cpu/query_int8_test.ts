import assert from "node:assert/strict";
import { int8Query, int8QueryExponent, int8QueryValues } from "./query_int8.ts";
import { TensorShapeError } from "../src/errors.ts";

Deno.test("int8QueryExponent: 127·2^e ≥ a > 63.5·2^e at every binade edge, 0 below 2^-126", () => {
  for (const a of [1, 1.5, 127 / 64, 1.9844, 1.99, 2 ** 20 * 1.999, 3e-38, 2 ** -126, 1e38, 0.7]) {
    const af = Math.fround(a), e = int8QueryExponent(af);
    assert.ok(127 * 2 ** e >= af, `${af}: e ${e}`);
    if (e > -126) assert.ok(63.5 * 2 ** e < af, `${af}: e ${e} not the smallest`);
  }
  assert.equal(int8QueryExponent(1), -6);
  assert.equal(int8QueryExponent(127 / 64), -6);
  assert.equal(int8QueryExponent(Math.fround(127 / 64 + 2 ** -20)), -5);
  assert.equal(int8QueryExponent(0), 0);
  assert.equal(int8QueryExponent(1e-39), 0); // subnormal: all codes round to 0 on any adapter
  assert.equal(int8QueryExponent(NaN), 0);
  assert.equal(int8QueryExponent(2 ** -126), -126);
});

Deno.test("int8Query: codes in [−127, 127], half-to-even ties, error ≤ 2^(e−1) per element", () => {
  let s = 7;
  const r = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) - 0.5;
  const nH = 5, D = 64;
  // head h spans magnitudes 10^(h−3) (head 0 stays below 1)
  const q = new Float32Array(nH * D).map((_, i) => r() * 10 ** (Math.floor(i / D) - 3) * (1 + (i % 3)));
  q[3] = 0.5 * 2 ** -6; // a tie under the head-0 exponent if a = 1 …
  q[0] = 1; // … which this forces: 0.5·2^-6 → code 0.5 → 0 (even)
  q[D + 1] = -127 / 16; // head 1: e = −4, code −127 exactly
  const iq = int8Query(q, nH, D);
  assert.equal(iq.exps[0], -6);
  assert.equal(iq.codes[3], 0);
  assert.equal(Math.min(...iq.codes.slice(D, 2 * D)), -127);
  const qh = int8QueryValues(iq, D);
  for (let h = 0; h < nH; h++) {
    for (let d = 0; d < D; d++) {
      const c = iq.codes[h * D + d];
      assert.ok(c >= -127 && c <= 127);
      assert.ok(Math.abs(qh[h * D + d] - q[h * D + d]) <= 2 ** (iq.exps[h] - 1), `h ${h} d ${d}`);
    }
  }
  const tie = int8Query(new Float32Array([1, 1.5 / 64, 2.5 / 64, -2.5 / 64]), 1, 4);
  assert.deepEqual([...tie.codes], [64, 2, 2, -2]);
  const zero = int8Query(new Float32Array(4), 1, 4);
  assert.deepEqual([...zero.codes, ...zero.exps], [0, 0, 0, 0, 0]);
  assert.throws(() => int8Query(new Float32Array(5), 1, 4), TensorShapeError);
});
