import assert from "node:assert/strict";
import { compareLogProbs, logSoftmax, matchFraction, prefixMatch } from "./metrics.ts";

Deno.test("metrics: prefix match and position-wise match", () => {
  assert.equal(prefixMatch([1, 2, 3, 4], [1, 2, 9, 4]), 2);
  assert.equal(prefixMatch([1, 2], [1, 2, 3]), 2);
  assert.equal(matchFraction([1, 2, 9, 4], [1, 2, 3, 4]), 0.75);
});

Deno.test("metrics: KL is 0 for identical distributions, positive otherwise; perplexity of a uniform model", () => {
  const V = 4, ids = [0, 1, 2];
  const a = new Float32Array(2 * V), b = new Float32Array(2 * V);
  logSoftmax([1, 2, 3, 4], a.subarray(0, V));
  logSoftmax([0, 0, 0, 0], a.subarray(V));
  b.set(a);
  const same = compareLogProbs(a, b, ids, V);
  assert.equal(same.kl, 0);
  assert.equal(same.top1, 1);
  logSoftmax([4, 3, 2, 1], b.subarray(0, V));
  const diff = compareLogProbs(a, b, ids, V);
  assert.ok(diff.kl > 0.1);
  assert.equal(diff.top1, 0.5); // position 1: all-equal logits, argmax 0 on both sides
  // position 1 is uniform: NLL log 4; position 0 true token 1
  assert.ok(Math.abs(Math.log(same.perplexity) - (-(a[1]) + Math.log(4)) / 2) < 1e-6);
});
