import assert from "node:assert/strict";
import { kiviLayerBytesAt, layerBytesAt, tokenBytes } from "./accounting.ts";
import { QuantConfigError } from "../errors.ts";

const TINY = { numLayers: 6, numKvHeads: 2, headDim: 128 };

Deno.test("accounting: token bytes of tiny-lm's shape (codes + bf16 scale + bf16 zero, K and V)", () => {
  assert.deepEqual([16, 8, 4, 2].map((b) => tokenBytes(TINY, b)), [1040, 528, 272, 144]);
  // head_dim 64: G = 64; 16-bit: 32 words + 4 bytes per group.
  assert.deepEqual([16, 2].map((b) => tokenBytes({ numLayers: 1, numKvHeads: 2, headDim: 64 }, b)), [
    528,
    80,
  ]);
  // head_dim 256: two groups of 128 per head.
  assert.equal(tokenBytes({ numLayers: 1, numKvHeads: 1, headDim: 256 }, 4), 272);
});

Deno.test("accounting: layerBytesAt closed form (sink, window, W = 0 chunks)", () => {
  const L = (bits: number, sink: number, window: number, n: number) =>
    layerBytesAt(TINY, { bits, sink, window }, n);
  assert.equal(L(4, 1, 128, 0), 0);
  assert.equal(L(4, 1, 128, 1), 1040); // the sink only
  assert.equal(L(4, 1, 128, 2), 1040 + 128 * 1040); // sink + window allocated
  assert.equal(L(4, 1, 128, 129), 1040 + 128 * 1040 + 128 * 272); // first flush
  assert.equal(L(4, 1, 128, 300), 203792);
  assert.equal(L(2, 0, 0, 1), 128 * 144);
  assert.equal(L(2, 0, 0, 128), 128 * 144);
  assert.equal(L(2, 0, 0, 129), 256 * 144);
  assert.equal(L(8, 3, 0, 2), 3 * 1040);
  assert.equal(L(8, 3, 0, 4), 3 * 1040 + 128 * 528);
  assert.throws(() => L(3, 0, 0, 1), QuantConfigError);
  assert.throws(() => L(4, -1, 0, 1), QuantConfigError);
  assert.throws(() => L(4, 0, 0, 1.5), QuantConfigError);
  assert.throws(() =>
    layerBytesAt({ numLayers: 1, numKvHeads: 1, headDim: 192 }, { bits: 4, sink: 0, window: 0 }, 1)
  );
});

Deno.test("accounting: kiviLayerBytesAt", () => {
  const K = (n: number) => kiviLayerBytesAt(TINY, { bits: 2, group: 128, residual: 128 }, n);
  const res = 4 * 128 * 256; // bf16 key residual + bf16 value FIFO, 128 tokens each
  assert.equal(K(0), 0);
  assert.equal(K(127), res);
  // 128 tokens: one key block of 256 channel groups of 128 tokens at 2 bits (36 bytes each); no value quantized yet.
  assert.equal(K(128), res + 256 * 36);
  assert.equal(K(129), res + 256 * 36 + 128 * 2 * 36); // + one 128-token value chunk (2 groups/token)
  assert.equal(kiviLayerBytesAt(TINY, { bits: 4, group: 32, residual: 64 }, 64), 4 * 64 * 256 + 2 * 256 * 20);
  assert.throws(() => K(-1), QuantConfigError);
  assert.throws(() => kiviLayerBytesAt(TINY, { bits: 2, group: 48, residual: 128 }, 1), QuantConfigError);
});
