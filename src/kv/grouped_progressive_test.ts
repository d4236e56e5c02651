import assert from "node:assert/strict";
import { mulberry32 } from "../sampling.ts";
import type { KVShape, ShrinkEvent } from "./cache.ts";
import type { GroupedCache, GroupedLayerExport } from "./grouped.ts";
import { createCache } from "./factory.ts";
import { planToCacheSpec, uniformPlan } from "./plan.ts";
import { assertSameFloats, randomKV, randomSizes, snapshotGrouped, thrown } from "./testing.ts";
import {
  allocQuantBuffers,
  type QuantBuffers,
  quantizeRows,
  roundHalfEven,
  unpackCodes,
} from "../quant/quantizer.ts";
import { ersCode, ersScaleBits } from "../quant/ers.ts";
import { bf16ToF32 } from "../quant/bf16.ts";
import { BudgetError } from "../errors.ts";

const S64: KVShape = { numLayers: 2, numKvHeads: 2, headDim: 64 };
const S128: KVShape = { numLayers: 2, numKvHeads: 2, headDim: 128 };

function pm(shape: KVShape, maxLen: number, bits: number, sink: number, window: number): GroupedCache {
  return createCache(
    planToCacheSpec(uniformPlan(shape, "t", maxLen, bits, { sink, window })),
    shape,
  ) as GroupedCache;
}

/** Independent closed form of the bytes one token takes at `bits` (K + V). */
function tokBytes(shape: KVShape, bits: number): number {
  const G = Math.min(128, shape.headDim);
  return 2 * shape.numKvHeads * (shape.headDim / G) * (4 * Math.ceil(G * bits / 32) + 4);
}

/** First token count at which a layer at `bits` exceeds `budget` (closed form; body grows per chunk). */
function overflowAt(shape: KVShape, budget: number, bits: number, sink: number, W: number): number {
  const t16 = tokBytes(shape, 16), tb = tokBytes(shape, bits);
  if (W > 0) return sink + (Math.floor((budget - (sink + W) * t16) / (W * tb)) + 1) * W;
  return sink + Math.floor((budget - sink * t16) / (128 * tb)) * 128 + 1;
}

/** Codes of token `tok` (all its groups) of a body chunk, unpacked. */
function tokenCodes(ex: GroupedLayerExport, tensor: "k" | "v", tok: number): number[] {
  const c = ex.body[Math.floor(tok / ex.chunkTokens)];
  const j = tok % ex.chunkTokens;
  const G = ex.groupSize, wpg = Math.ceil(G * ex.bits / 32);
  const out: number[] = [];
  const tmp = new Array<number>(G);
  for (let g = 0; g < ex.groupsPerToken; g++) {
    unpackCodes(c[tensor].codes, (j * ex.groupsPerToken + g) * wpg, G, ex.bits, tmp, 0);
    out.push(...tmp);
  }
  return out;
}

Deno.test("progressive: shrink events happen at the closed-form token counts of a uniform plan", () => {
  const rng = mulberry32(2505);
  let seen = 0;
  for (
    const [shape, maxLen, fin, sink, W] of [
      [S128, 2000, 2, 1, 128],
      [S64, 1500, 4, 1, 128],
      [S64, 900, 2, 1, 16],
      [S128, 700, 8, 0, 0],
      [S64, 1100, 2, 3, 0],
    ] as const
  ) {
    const cache = pm(shape, maxLen, fin, sink, W);
    const budget = cache.stats().layers[0].budget!;
    const sizes = randomSizes(rng, maxLen);
    const ends: number[] = [];
    sizes.reduce((a, t) => (ends.push(a + t), a + t), 0);
    const expected: ShrinkEvent[] = [];
    for (let b = 16; b > fin; b /= 2) {
      const n = overflowAt(shape, budget, b, sink, W);
      const step = ends.find((e) => e >= n)!;
      for (let layer = 0; layer < 2; layer++) expected.push({ step, layer, from: b, to: b / 2 });
    }
    expected.sort((a, b) => a.step - b.step || a.layer - b.layer || b.from - a.from);
    const row = shape.numKvHeads * shape.headDim;
    for (const t of sizes) {
      for (let l = 0; l < 2; l++) cache.append(l, randomKV(rng, t, row), randomKV(rng, t, row), t);
    }
    assert.deepEqual(cache.stats().events, expected, `maxLen ${maxLen}, final ${fin}, W ${W}`);
    assert.equal(cache.stats().layers[1].bits, fin);
    seen += expected.length;
  }
  assert.ok(seen >= 20);
});

Deno.test("progressive: after each shrink every body token's codes == ersCode of its earlier codes", () => {
  for (const [shape, W, sink] of [[S128, 128, 1], [S64, 16, 2], [S64, 0, 1]] as const) {
    const rng0 = mulberry32(8);
    const total = 1200;
    const row = shape.numKvHeads * shape.headDim;
    const k = randomKV(rng0, total, row), v = randomKV(rng0, total, row, 0.3);
    const sizes = randomSizes(mulberry32(4), total, 200);
    // Pass 1 finds the appends that shrink; pass 2 snapshots right before them.
    const probe = pm(shape, total, 2, sink, W);
    const shrinkAt = new Set<number>();
    let at = 0;
    sizes.forEach((t, i) => {
      const before = probe.stats().events.length;
      probe.append(0, k.subarray(at * row), v.subarray(at * row), t);
      at += t;
      if (probe.stats().events.length > before) shrinkAt.add(i);
    });
    assert.ok(shrinkAt.size >= 2, `W ${W}: expected shrinks`);
    const cache = pm(shape, total, 2, sink, W);
    at = 0;
    let checked = 0;
    sizes.forEach((t, i) => {
      const before: GroupedLayerExport | null = shrinkAt.has(i)
        ? snapshotGrouped(cache.exportLayer(0))
        : null;
      cache.append(0, k.subarray(at * row), v.subarray(at * row), t);
      at += t;
      if (!before) return;
      const after = cache.exportLayer(0);
      let steps = 0;
      for (let b = before.bits; b > after.bits; b /= 2) steps++;
      assert.ok(steps >= 1);
      for (const tensor of ["k", "v"] as const) {
        for (let tok = 0; tok < before.bodyTokens; tok++) {
          let codes = tokenCodes(before, tensor, tok);
          for (let b = before.bits; b > after.bits; b /= 2) codes = codes.map((q) => ersCode(q, b / 2));
          assert.deepEqual(tokenCodes(after, tensor, tok), codes, `W ${W} append ${i} token ${tok}`);
          const c0: QuantBuffers = before.body[Math.floor(tok / before.chunkTokens)][tensor];
          const c1: QuantBuffers = after.body[Math.floor(tok / after.chunkTokens)][tensor];
          for (let g = 0; g < before.groupsPerToken; g++) {
            const gi: number = (tok % before.chunkTokens) * before.groupsPerToken + g;
            let s: number = c0.scales[gi];
            for (let b = before.bits; b > after.bits; b /= 2) s = ersScaleBits(s, b / 2);
            assert.equal(c1.scales[gi], s);
            assert.equal(c1.zeros[gi], c0.zeros[gi]);
          }
          checked++;
        }
      }
    });
    assert.ok(checked > 500);
  }
});

Deno.test("progressive: W > 0 body codes == direct quantization at the exact scale S16·Π(2^n+1) (ERS∘Q16 = Q_b)", () => {
  const shape = S128;
  const rng = mulberry32(31);
  const total = 1400, row = 256, G = 128;
  const cache = pm(shape, total, 2, 1, 128);
  const k = randomKV(rng, total, row);
  let at = 0;
  const bitsSeen = new Set<number>();
  for (const t of randomSizes(rng, total, 130)) {
    cache.append(0, k.subarray(at * row), k.subarray(at * row), t);
    at += t;
    const ex = cache.exportLayer(0);
    if (bitsSeen.has(ex.bits) || ex.bodyTokens === 0) continue;
    bitsSeen.add(ex.bits);
    // Every body token against the oracle, at this width.
    const mul = { 16: 1, 8: 257, 4: 257 * 17, 2: 257 * 17 * 5 }[ex.bits]!;
    const qmax = 2 ** ex.bits - 1;
    let mismatches = 0;
    for (let tok = 0; tok < ex.bodyTokens; tok++) {
      const x = k.subarray((ex.sinkTokens + tok) * row, (ex.sinkTokens + tok + 1) * row);
      const q16 = quantizeRows(x, 2, G, 16, allocQuantBuffers(2, G, 16));
      const codes = tokenCodes(ex, "k", tok);
      const c = ex.body[Math.floor(tok / ex.chunkTokens)].k;
      for (let g = 0; g < 2; g++) {
        const gi = (tok % ex.chunkTokens) * 2 + g;
        assert.equal(c.zeros[gi], q16.zeros[g], "ERS keeps the 16-bit zero");
        const S = bf16ToF32(q16.scales[g]) * mul, z = bf16ToF32(q16.zeros[g]);
        for (let i = 0; i < G; i++) {
          const want = Math.min(qmax, roundHalfEven(Math.fround(x[g * G + i] + z) / S));
          if (codes[g * G + i] !== want) mismatches++;
        }
      }
    }
    assert.equal(
      mismatches,
      0,
      `${ex.bits} bits: ${mismatches} codes differ from the exact-scale quantization`,
    );
  }
  assert.deepEqual([...bitsSeen].sort((a, b) => a - b), [2, 4, 8, 16]);
});

Deno.test("progressive: BudgetError when the sequence outgrows a 2-bit plan; the cache is unchanged", () => {
  for (const [shape, W] of [[S64, 16], [S128, 128], [S64, 0]] as const) {
    const rng = mulberry32(21);
    const maxLen = 800, row = shape.numKvHeads * shape.headDim;
    const cache = pm(shape, maxLen, 2, 1, W);
    const budget = cache.stats().layers[0].budget!;
    for (const t of randomSizes(rng, maxLen)) {
      for (let l = 0; l < 2; l++) cache.append(l, randomKV(rng, t, row), randomKV(rng, t, row), t);
    }
    const limit = overflowAt(shape, budget, 2, 1, W); // first length that cannot fit at 2 bits
    assert.ok(limit > maxLen);
    // Grow layer 0 to limit - 1, then a 2-token append must fail transactionally.
    const fill = limit - 1 - maxLen;
    if (fill > 0) cache.append(0, randomKV(rng, fill, row), randomKV(rng, fill, row), fill);
    const before = snapshotGrouped(cache.exportLayer(0));
    const view = cache.view(0).v.slice();
    const stats = cache.stats();
    const err = thrown(() => cache.append(0, randomKV(rng, 2, row), randomKV(rng, 2, row), 2), BudgetError);
    assert.match(
      err.message,
      new RegExp(
        `layer 0: ${
          limit + 1
        } tokens need \\d+ bytes at 2 bits, budget ${budget} bytes, plan maxLen ${maxLen}: the sequence outgrew its plan`,
      ),
    );
    assert.deepEqual(snapshotGrouped(cache.exportLayer(0)), before);
    assertSameFloats(cache.view(0).v, view, "view after BudgetError");
    assert.deepEqual(cache.stats(), stats);
    thrown(() => cache.append(0, randomKV(rng, 1, row), randomKV(rng, 1, row), 1), BudgetError); // `limit` itself
    assert.equal(cache.length(0), limit - 1);
  }
});

Deno.test("progressive: a budget that cannot hold even the 2-bit layer fails before any shrink", () => {
  const shape = S64;
  const spec = { method: "pmkvq" as const, finalBits: [2, 2], budgets: [90_000, 90_000], maxLen: 50 };
  const cache = createCache(spec, shape) as GroupedCache;
  const row = 128;
  const rng = mulberry32(1);
  cache.append(0, randomKV(rng, 100, row), randomKV(rng, 100, row), 100); // sink + window only: 129·528 bytes
  cache.checkCapacity(0);
  assert.match(thrown(() => cache.checkCapacity(300), BudgetError).message, /layer 0: 400 tokens/);
  const err = thrown(
    () => cache.append(0, randomKV(rng, 300, row), randomKV(rng, 300, row), 300),
    BudgetError,
  );
  assert.match(
    err.message,
    /layer 0: 400 tokens need \d+ bytes at 2 bits, budget 90000 bytes, plan maxLen 50/,
  );
  const st = cache.stats();
  assert.deepEqual([st.layers[0].bits, st.layers[0].tokens, st.events.length], [16, 100, 0]);
});
