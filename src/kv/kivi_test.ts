import assert from "node:assert/strict";
import { mulberry32 } from "../sampling.ts";
import type { KVShape } from "./cache.ts";
import { KiviCache, type KiviLayerExport } from "./kivi.ts";
import { kiviLayerBytesAt } from "./accounting.ts";
import { assertSameFloats, bf16Array, randomKV, randomSizes, thrown, walkExportBytes } from "./testing.ts";
import { dequantizeGroup, dequantizeRows, quantizeGroup, quantizeRows } from "../quant/quantizer.ts";
import { bf16ToF32, f32ToBf16RNE } from "../quant/bf16.ts";
import { formatFor } from "../quant/format.ts";
import { NonFiniteError, QuantConfigError } from "../errors.ts";

const S64: KVShape = { numLayers: 2, numKvHeads: 2, headDim: 64 };
const S128: KVShape = { numLayers: 2, numKvHeads: 2, headDim: 128 };

/** K and V of an export, dequantized with src/quant directly (chronological [tokens, nKv, D]). */
function dequantizeKiviExport(ex: KiviLayerExport): { k: Float32Array; v: Float32Array } {
  const row = ex.numKvHeads * ex.headDim, n = ex.tokens, R = ex.residual, g = ex.group;
  const k = new Float32Array(n * row), v = new Float32Array(n * row);
  const wpg = formatFor(ex.bits).wordsPerGroup(g);
  const tmp = new Float32Array(g);
  ex.keyBlocks.forEach((q, b) => {
    for (let j = 0; j < R / g; j++) {
      for (let c = 0; c < row; c++) {
        const gi = j * row + c;
        dequantizeGroup(q.codes, gi * wpg, g, ex.bits, q.scales[gi], q.zeros[gi], tmp, 0);
        for (let s = 0; s < g; s++) k[(b * R + j * g + s) * row + c] = tmp[s];
      }
    }
  });
  k.set(bf16Array(ex.keyResidual!.subarray(0, ex.keyResidualTokens * row)), ex.keyQuantTokens * row);
  const gpt = row / ex.valueGroupSize;
  let at = 0;
  for (const c of ex.valueChunks) {
    v.set(dequantizeRows(c.q, c.tokens * gpt, ex.valueGroupSize, ex.bits), at * row);
    at += c.tokens;
  }
  v.set(bf16Array(ex.valueFifo!.subarray(0, ex.valueFifoTokens * row)), at * row);
  return { k, v };
}

const bf = (x: number) => bf16ToF32(f32ToBf16RNE(x));

Deno.test("kivi: residual/FIFO lengths, bytes == walked == kiviLayerBytesAt at every step, view == export", () => {
  const rng = mulberry32(42);
  for (
    const [shape, bits, group, residual] of [[S128, 2, 128, 128], [S64, 4, 32, 128], [
      S64,
      2,
      16,
      48,
    ]] as const
  ) {
    const cache = new KiviCache({ method: "kivi", bits, group, residual }, shape);
    const row = shape.numKvHeads * shape.headDim;
    const sizes = randomSizes(rng, 700);
    sizes.forEach((t, i) => {
      for (let l = 0; l < 2; l++) cache.append(l, randomKV(rng, t, row), randomKV(rng, t, row), t);
      const n = cache.length(0);
      const ex = cache.exportLayer(0);
      assert.equal(ex.keyResidualTokens, n % residual);
      assert.equal(ex.keyQuantTokens, n - (n % residual));
      assert.equal(ex.keyBlocks.length, Math.floor(n / residual));
      assert.equal(ex.valueFifoTokens, Math.min(n, residual));
      assert.equal(ex.valueQuantTokens, Math.max(0, n - residual));
      const st = cache.stats();
      const seen = new Set<ArrayBufferLike>();
      for (let l = 0; l < 2; l++) {
        const walked = walkExportBytes(cache.exportLayer(l), seen);
        assert.equal(walked, st.layers[l].bytes);
        assert.equal(walked, kiviLayerBytesAt(shape, { bits, group, residual }, n));
      }
      assert.equal(st.bytes, st.layers[0].bytes + st.layers[1].bytes);
      if (i % 89 === 0 || i === sizes.length - 1) {
        const ref = dequantizeKiviExport(ex);
        assertSameFloats(cache.view(0).k, ref.k, `step ${i} keys`);
        assertSameFloats(cache.view(0).v, ref.v, `step ${i} values`);
      }
    });
  }
});

Deno.test("kivi: keys quantized per channel over g tokens, values per token, from the bf16-rounded inputs", () => {
  const rng = mulberry32(3);
  const shape = S64, row = 128, R = 64, g = 32, bits = 4;
  const cache = new KiviCache({ method: "kivi", bits, group: g, residual: R }, shape);
  const total = 200;
  const k = randomKV(rng, total, row), v = randomKV(rng, total, row);
  let at = 0;
  for (const t of [5, 1, 100, 1, 93]) {
    cache.append(0, k.subarray(at * row), v.subarray(at * row), t);
    at += t;
  }
  const ex = cache.exportLayer(0);
  const wpg = formatFor(bits).wordsPerGroup(g);
  const tmp = new Float32Array(g);
  const codes = new Uint32Array(wpg), sc = new Uint16Array(1), ze = new Uint16Array(1);
  ex.keyBlocks.forEach((q, b) => {
    for (let j = 0; j < R / g; j++) {
      for (let c = 0; c < row; c++) {
        for (let s = 0; s < g; s++) tmp[s] = bf(k[(b * R + j * g + s) * row + c]);
        quantizeGroup(tmp, 0, g, bits, codes, 0, sc, ze, 0);
        const gi = j * row + c;
        assert.deepEqual(q.codes.subarray(gi * wpg, (gi + 1) * wpg), codes);
        assert.deepEqual([q.scales[gi], q.zeros[gi]], [sc[0], ze[0]]);
      }
    }
  });
  const nq = ex.valueQuantTokens;
  const want = quantizeRows(v.slice(0, nq * row).map(bf), nq * 2, 64, bits, {
    codes: new Uint32Array(nq * 2 * 8),
    scales: new Uint16Array(nq * 2),
    zeros: new Uint16Array(nq * 2),
  });
  assert.equal(ex.valueChunks.length, 2);
  const got = ex.valueChunks.flatMap((c) => [...c.q.codes.subarray(0, c.tokens * 2 * 8)]);
  assert.deepEqual(Uint32Array.from(got), want.codes);
  const gotScales = ex.valueChunks.flatMap((c) => [...c.q.scales.subarray(0, c.tokens * 2)]);
  assert.deepEqual(Uint16Array.from(gotScales), want.scales);
  // FIFO holds the last R tokens oldest first; residual the last (200 mod 64) tokens.
  assert.deepEqual(ex.valueFifo, Uint16Array.from(v.subarray((total - R) * row, total * row), f32ToBf16RNE));
  assert.deepEqual(
    ex.keyResidual!.subarray(0, (total % R) * row),
    Uint16Array.from(k.subarray((total - (total % R)) * row, total * row), f32ToBf16RNE),
  );
});

Deno.test("kivi: batching does not change the state; NaN -> NonFiniteError, unchanged; bad parameters", () => {
  const rng = mulberry32(5);
  const row = 256, total = 500;
  const k = randomKV(rng, total, row), v = randomKV(rng, total, row);
  const a = new KiviCache({ method: "kivi", bits: 2 }, S128),
    b = new KiviCache({ method: "kivi", bits: 2 }, S128);
  a.append(1, k, v, total);
  let at = 0;
  for (const t of randomSizes(rng, total, 7)) {
    b.append(1, k.subarray(at * row), v.subarray(at * row), t);
    at += t;
  }
  assert.deepEqual(b.exportLayer(1), a.exportLayer(1));
  assertSameFloats(b.view(1).k, a.view(1).k, "keys");
  const stats = b.stats();
  const view = b.view(1).v.slice();
  const bad = randomKV(rng, 3, row);
  bad[row * 2 + 130] = -Infinity;
  const err = thrown(() => b.append(1, randomKV(rng, 3, row), bad, 3), NonFiniteError);
  assert.match(err.message, /layer 1: value of token 502, head 1, channel 2 is -Infinity/);
  assert.deepEqual(b.stats(), stats);
  assertSameFloats(b.view(1).v, view, "view after NaN");
  assert.deepEqual(b.exportLayer(1), a.exportLayer(1));
  assert.throws(
    () => new KiviCache({ method: "kivi", bits: 2, group: 48, residual: 128 }, S128),
    QuantConfigError,
  );
  assert.throws(() => new KiviCache({ method: "kivi", bits: 8 as 2 }, S128), QuantConfigError);
  assert.equal(a.stats().method, "kivi2");
  a.reset();
  assert.deepEqual([a.stats().bytes, a.length(1)], [0, 0]);
});
