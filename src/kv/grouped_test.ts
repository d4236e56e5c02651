import assert from "node:assert/strict";
import { mulberry32 } from "../sampling.ts";
import type { KVShape } from "./cache.ts";
import { GroupedCache } from "./grouped.ts";
import { createCache, groupedConfigOf } from "./factory.ts";
import { layerBytesAt } from "./accounting.ts";
import { planToCacheSpec, uniformPlan } from "./plan.ts";
import {
  assertSameFloats,
  dequantizeGroupedExport,
  randomKV,
  randomSizes,
  snapshotGrouped,
  thrown,
  walkExportBytes,
} from "./testing.ts";
import { allocQuantBuffers, quantizeRows } from "../quant/quantizer.ts";
import { NonFiniteError, TensorShapeError } from "../errors.ts";

const S64: KVShape = { numLayers: 2, numKvHeads: 2, headDim: 64 };
const S128: KVShape = { numLayers: 2, numKvHeads: 2, headDim: 128 };

function staticCache(shape: KVShape, bits: 16 | 8 | 4 | 2, sink: number, window: number): GroupedCache {
  const spec = { method: "static" as const, bits, sink, window };
  return new GroupedCache(spec, shape, groupedConfigOf(spec, shape.numLayers));
}

function pmCache(shape: KVShape, maxLen: number, bits: number, sink: number, window: number): GroupedCache {
  const plan = uniformPlan(shape, "test", maxLen, bits, { sink, window });
  return createCache(planToCacheSpec(plan), shape) as GroupedCache;
}

/** Every storage byte is counted once, equals layerBytesAt, and no budget is exceeded. */
function checkAccounting(cache: GroupedCache, what: string): void {
  const st = cache.stats();
  const seen = new Set<ArrayBufferLike>();
  let sum = 0;
  for (let l = 0; l < cache.shape.numLayers; l++) {
    const ex = cache.exportLayer(l);
    const walked = walkExportBytes(ex, seen);
    assert.equal(walked, st.layers[l].bytes, `${what}: layer ${l} reported vs walked`);
    const formula = layerBytesAt(
      cache.shape,
      { bits: ex.bits, sink: cache.config.sink, window: cache.config.window },
      cache.length(l),
    );
    assert.equal(walked, formula, `${what}: layer ${l} walked vs layerBytesAt (${cache.length(l)} tokens)`);
    const budget = st.layers[l].budget;
    if (budget !== null) {
      assert.ok(walked <= budget, `${what}: layer ${l} holds ${walked} > budget ${budget}`);
    }
    sum += walked;
  }
  assert.equal(st.bytes, sum, `${what}: total`);
  assert.ok(st.peakBytes >= st.bytes);
}

function checkView(cache: GroupedCache, what: string): void {
  for (let l = 0; l < cache.shape.numLayers; l++) {
    const ex = cache.exportLayer(l);
    const ref = dequantizeGroupedExport(ex);
    const view = cache.view(l);
    assert.equal(view.length, cache.length(l));
    assertSameFloats(view.k, ref.k, `${what}: layer ${l} keys`);
    assertSameFloats(view.v, ref.v, `${what}: layer ${l} values`);
  }
}

/** Appends `sizes` tokens to every layer (layer-major per step, as the forward pass does). */
function feed(
  cache: GroupedCache,
  rng: () => number,
  sizes: number[],
  each?: (step: number) => void,
): Float32Array[][] {
  const row = cache.shape.numKvHeads * cache.shape.headDim;
  const kept: Float32Array[][] = [];
  sizes.forEach((t, i) => {
    const step: Float32Array[] = [];
    for (let l = 0; l < cache.shape.numLayers; l++) {
      const k = randomKV(rng, t, row), v = randomKV(rng, t, row, 0.5);
      cache.append(l, k, v, t);
      step.push(k, v);
    }
    kept.push(step);
    each?.(i);
  });
  return kept;
}

Deno.test("grouped: bytes == walked storage == layerBytesAt, budgets held, view == dequantized export (seeded)", () => {
  const rng = mulberry32(20250518);
  for (let trial = 0; trial < 10; trial++) {
    const shape = trial % 2 ? S64 : S128;
    const sink = [0, 1, 3][trial % 3];
    const window = [0, 128, 16, 37, 1][trial % 5];
    const progressive = trial % 4 !== 3;
    const total = 300 + Math.floor(rng() * 500);
    const cache = progressive
      ? pmCache(shape, total, [8, 4, 2][trial % 3], sink, window)
      : staticCache(shape, ([16, 8, 4, 2] as const)[trial % 4], sink, window);
    const what = `trial ${trial} (D ${shape.headDim}, sink ${sink}, W ${window}, ${cache.config.method})`;
    const sizes = randomSizes(rng, total);
    feed(cache, rng, sizes, (i) => {
      const st = cache.stats();
      for (let l = 0; l < shape.numLayers; l++) {
        const L = st.layers[l];
        assert.equal(
          L.bytes,
          layerBytesAt(shape, { bits: L.bits, sink, window }, L.tokens),
          `${what}: step ${i} layer ${l}`,
        );
        if (L.budget !== null) assert.ok(L.bytes <= L.budget);
      }
      if (i % 97 === 0 || i === sizes.length - 1) {
        checkAccounting(cache, `${what} step ${i}`);
        checkView(cache, `${what} step ${i}`);
      }
    });
    assert.equal(cache.length(0), total);
    const before = cache.view(1).k.slice();
    cache.rebuildView(1);
    assertSameFloats(cache.view(1).k, before, `${what}: rebuilt view`);
    assert.ok(
      cache.stats().scratchBytes >= 2 * total * shape.numKvHeads * shape.headDim * 4 * shape.numLayers,
    );
  }
});

Deno.test("grouped: layerBytesAt matches the allocation at every length 0..700 (static, many layouts)", () => {
  const rng = mulberry32(5);
  for (const [sink, window, bits] of [[0, 0, 4], [1, 128, 2], [3, 5, 8], [0, 1, 16], [130, 7, 2]] as const) {
    const cache = staticCache(S64, bits, sink, window);
    assert.equal(cache.stats().bytes, 0);
    const row = 2 * 64;
    for (let n = 1; n <= 700; n++) {
      cache.append(0, randomKV(rng, 1, row), randomKV(rng, 1, row), 1);
      assert.equal(cache.stats().layers[0].bytes, layerBytesAt(S64, { bits, sink, window }, n), `n ${n}`);
    }
    checkAccounting(cache, `sink ${sink} W ${window}`);
  }
});

Deno.test("grouped: the final state does not depend on how tokens were batched (W > 0)", () => {
  for (
    const [shape, make] of [
      [S128, () => pmCache(S128, 900, 2, 1, 128)],
      [S64, () => pmCache(S64, 700, 4, 2, 16)],
      [S64, () => staticCache(S64, 4, 1, 32)],
    ] as const
  ) {
    const row = shape.numKvHeads * shape.headDim;
    const rng = mulberry32(77);
    const total = 650;
    const k = randomKV(rng, total, row), v = randomKV(rng, total, row);
    const a = make(), b = make();
    for (let l = 0; l < 2; l++) a.append(l, k, v, total);
    let at = 0;
    for (const t of randomSizes(mulberry32(3), total)) {
      for (let l = 0; l < 2; l++) b.append(l, k.subarray(at * row), v.subarray(at * row), t);
      at += t;
    }
    for (let l = 0; l < 2; l++) {
      const ea = snapshotGrouped(a.exportLayer(l)), eb = snapshotGrouped(b.exportLayer(l));
      assert.deepEqual(eb, ea);
      assertSameFloats(b.view(l).k, a.view(l).k, "keys");
    }
    assert.deepEqual(b.stats().layers, a.stats().layers);
  }
});

Deno.test("grouped: static W = 0 quantizes every token at b right away (codes == direct quantization)", () => {
  const rng = mulberry32(9);
  for (const bits of [8, 4, 2] as const) {
    const cache = staticCache(S128, bits, 0, 0);
    const row = 256;
    const all: number[] = [];
    for (const t of [3, 1, 1, 130, 1]) {
      const k = randomKV(rng, t, row);
      cache.append(0, k, k, t);
      all.push(...k);
      const ex = cache.exportLayer(0);
      assert.equal(ex.windowTokens, 0);
      assert.equal(ex.window, null);
      assert.equal(ex.bodyTokens, all.length / row);
      assert.equal(ex.bits, bits);
      const x = Float32Array.from(all);
      const n = x.length / 128;
      const direct = quantizeRows(x, n, 128, bits, allocQuantBuffers(n, 128, bits));
      const wpg = 128 * bits / 32;
      let g = 0;
      for (const c of ex.body) {
        for (let i = 0; i < c.tokens * 2; i++, g++) {
          assert.deepEqual(
            c.k.codes.subarray(i * wpg, (i + 1) * wpg),
            direct.codes.subarray(g * wpg, (g + 1) * wpg),
          );
          assert.equal(c.k.scales[i], direct.scales[g]);
          assert.equal(c.k.zeros[i], direct.zeros[g]);
        }
      }
    }
  }
});

Deno.test("grouped: mean dequantization error shrinks as bits grow", () => {
  const rng = mulberry32(11);
  const row = 256, t = 400;
  const k = randomKV(rng, t, row);
  let prev = Infinity;
  for (const bits of [2, 4, 8, 16] as const) {
    const cache = staticCache(S128, bits, 0, 0);
    cache.append(0, k, k, t);
    const view = cache.view(0).k;
    let err = 0;
    for (let i = 0; i < t * row; i++) err += Math.abs(view[i] - k[i]);
    err /= t * row;
    assert.ok(err < prev, `${bits} bits: mean error ${err} should be below ${prev}`);
    prev = err;
  }
  assert.ok(prev < 1e-3);
});

Deno.test("grouped: NaN / Inf / |x| >= 2^64 -> NonFiniteError with context, cache unchanged", () => {
  const rng = mulberry32(13);
  const cache = pmCache(S64, 500, 2, 1, 16);
  feed(cache, rng, [300]);
  const row = 128;
  for (
    const [bad, where, which] of [[NaN, 5, "key"], [Infinity, row + 70, "value"], [
      2 ** 64,
      3,
      "key",
    ]] as const
  ) {
    const before = snapshotGrouped(cache.exportLayer(1));
    const view = cache.view(1).k.slice();
    const stats = cache.stats();
    const k = randomKV(rng, 2, row), v = randomKV(rng, 2, row);
    (which === "key" ? k : v)[where] = bad;
    const err = thrown(() => cache.append(1, k, v, 2), NonFiniteError);
    const tok = 300 + Math.floor(where / row), head = Math.floor((where % row) / 64), ch = where % 64;
    assert.match(
      err.message,
      new RegExp(`layer 1: ${which} of token ${tok}, head ${head}, channel ${ch} is ${bad}`),
    );
    assert.ok(err.cause instanceof NonFiniteError && /group/.test((err.cause as Error).message));
    assert.deepEqual(snapshotGrouped(cache.exportLayer(1)), before);
    assertSameFloats(cache.view(1).k, view, "view after NaN");
    assert.deepEqual(cache.stats(), stats);
  }
  assert.throws(() => cache.append(2, new Float32Array(row), new Float32Array(row), 1), TensorShapeError);
  assert.throws(() => cache.append(0, new Float32Array(row), new Float32Array(row), 2), TensorShapeError);
});

Deno.test("grouped: reset empties storage, events and peak; t = 0 is a no-op", () => {
  const cache = pmCache(S64, 400, 2, 1, 16);
  feed(cache, mulberry32(1), [300, 50]);
  assert.ok(cache.stats().events.length > 0);
  cache.append(0, new Float32Array(0), new Float32Array(0), 0);
  cache.reset();
  const st = cache.stats();
  assert.deepEqual([st.bytes, st.peakBytes, st.tokens, st.events.length, st.layers[0].bits], [
    0,
    0,
    0,
    0,
    16,
  ]);
  assert.equal(cache.view(0).length, 0);
});
