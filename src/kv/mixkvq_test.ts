import assert from "node:assert/strict";
import { MixKvqCache, mixkvqLayerBytes, type MixKvqLayerExport, resolveMixKvqSpec } from "./mixkvq.ts";
import { normalizedSalience, queryMagnitudes, tierOf } from "./mixkvq_select.ts";
import { ExactCache } from "./exact.ts";
import type { KVShape } from "./cache.ts";
import { bf16ToF32, f32ToBf16RNE } from "../quant/bf16.ts";
import { dequantizeGroup } from "../quant/quantizer.ts";
import { PACKED_FORMATS } from "../quant/format.ts";
import { NonFiniteError, QuantConfigError, TensorShapeError } from "../errors.ts";
import { mulberry32 } from "../sampling.ts";

const SHAPE: KVShape = { numLayers: 2, numKvHeads: 2, headDim: 64 };
const NH = 4; // query heads (GQA group of 2)
const ROW = SHAPE.numKvHeads * SHAPE.headDim;

/** Keys whose channel c has amplitude amp(c) (log-spread), values N(0,1)-ish; deterministic. */
function data(t: number, seed: number): { k: Float32Array; v: Float32Array; q: Float32Array } {
  const rnd = mulberry32(seed);
  const k = new Float32Array(t * ROW),
    v = new Float32Array(t * ROW),
    q = new Float32Array(t * NH * SHAPE.headDim);
  for (let i = 0; i < t; i++) {
    for (let c = 0; c < ROW; c++) {
      const amp = Math.exp(2 * Math.sin(c * 1.7));
      k[i * ROW + c] = amp * (rnd() - 0.5) + 0.1 * amp;
      v[i * ROW + c] = rnd() - 0.5;
    }
    for (let c = 0; c < NH * SHAPE.headDim; c++) {
      q[i * NH * SHAPE.headDim + c] = (rnd() - 0.5) * (1 + (c % 7));
    }
  }
  return { k, v, q };
}

function sub(x: Float32Array, from: number, n: number, row: number): Float32Array {
  return x.slice(from * row, (from + n) * row);
}

/** Feeds tokens [from, from + n) of `d` to every layer (observeQuery then append). */
function feed(c: MixKvqCache, d: ReturnType<typeof data>, from: number, n: number, withQ = true): void {
  for (let l = 0; l < SHAPE.numLayers; l++) {
    if (withQ) c.observeQuery(l, sub(d.q, from, n, NH * SHAPE.headDim), n);
    c.append(l, sub(d.k, from, n, ROW), sub(d.v, from, n, ROW), n);
  }
}

/** Σ byteLength of every array in an export (the storage walk of the accounting test). */
function exportBytes(ex: MixKvqLayerExport): number {
  let b = (ex.residualK?.byteLength ?? 0) + (ex.residualV?.byteLength ?? 0) + (ex.querySum?.byteLength ?? 0);
  for (const { k, v } of ex.blocks) {
    b += k.bits.byteLength + k.slot.byteLength + k.bf16.byteLength;
    for (const q of [k.q4, k.q2, v]) b += q.codes.byteLength + q.scales.byteLength + q.zeros.byteLength;
  }
  return b;
}

/** An independent decoder of the export layout (module table of mixkvq.ts): [length, nKv, D] k and v. */
function decode(ex: MixKvqLayerExport): { k: Float32Array; v: Float32Array } {
  const R = ex.residual, g = ex.keyGroup, G = ex.valueGroup, D = ex.headDim, row = ex.numKvHeads * D;
  const len = ex.blocks.length * R + ex.residualTokens;
  const k = new Float32Array(len * row), v = new Float32Array(len * row);
  const tmp = new Float32Array(Math.max(g, G));
  ex.blocks.forEach((b, bi) => {
    for (let c = 0; c < row; c++) {
      const bits = b.k.bits[c], s = b.k.slot[c];
      for (let j = 0; j < R; j++) {
        let x: number;
        if (bits === 16) x = bf16ToF32(b.k.bf16[s * R + j]);
        else {
          const q = bits === 4 ? b.k.q4 : b.k.q2;
          const wpg = PACKED_FORMATS[bits as 4 | 2].wordsPerGroup(g);
          const gi = s * (R / g) + Math.floor(j / g);
          dequantizeGroup(q.codes, gi * wpg, g, bits, q.scales[gi], q.zeros[gi], tmp, 0);
          x = tmp[j % g];
        }
        k[(bi * R + j) * row + c] = x;
      }
    }
    const wpg = PACKED_FORMATS[ex.valueBits as 2 | 4].wordsPerGroup(G);
    for (let j = 0; j < R; j++) {
      for (let gg = 0; gg < row / G; gg++) {
        const gi = j * (row / G) + gg;
        dequantizeGroup(b.v.codes, gi * wpg, G, ex.valueBits, b.v.scales[gi], b.v.zeros[gi], tmp, 0);
        for (let i = 0; i < G; i++) v[(bi * R + j) * row + gg * G + i] = tmp[i];
      }
    }
  });
  const base = ex.blocks.length * R * row;
  for (let i = 0; i < ex.residualTokens * row; i++) {
    k[base + i] = bf16ToF32(ex.residualK![i]);
    v[base + i] = bf16ToF32(ex.residualV![i]);
  }
  return { k, v };
}

Deno.test("mixkvq: spec defaults and validation", () => {
  const c = resolveMixKvqSpec({ method: "mixkvq" });
  assert.deepEqual(c, {
    tau16: 1.44,
    tau4: 0.79,
    residual: 128,
    keyGroup: 128,
    valueBits: 2,
    numHeads: null,
  });
  assert.equal(resolveMixKvqSpec({ method: "mixkvq", residual: 64 }).keyGroup, 64);
  for (
    const bad of [
      { tau16: 0.5, tau4: 1 },
      { tau4: NaN },
      { residual: 0 },
      { residual: 64, keyGroup: 48 },
      {
        valueBits: 3,
      },
      { tau: 1 },
      { tau16: "1" },
    ]
  ) {
    assert.throws(
      () => new MixKvqCache({ method: "mixkvq", ...bad }, SHAPE),
      QuantConfigError,
      JSON.stringify(bad),
    );
  }
  assert.throws(
    () => new MixKvqCache({ method: "mixkvq" }, { numLayers: 1, numKvHeads: 1, headDim: 192 }),
    QuantConfigError,
  );
});

Deno.test("mixkvq: tiers follow the thresholds on the normalized salience of each block and head", () => {
  const R = 32;
  const d = data(2 * R + 3, 1);
  const c = new MixKvqCache({ method: "mixkvq", residual: R, tau16: 1.5, tau4: 0.8 }, SHAPE);
  feed(c, d, 0, 2 * R + 3);
  const D = SHAPE.headDim;
  for (let l = 0; l < SHAPE.numLayers; l++) {
    const ex = c.exportLayer(l);
    assert.equal(ex.blocks.length, 2);
    for (let b = 0; b < 2; b++) {
      // Independent salience: I = mean over block tokens and group heads of |q|, S = range/3 of bf16 keys.
      const seen = { 16: 0, 4: 0, 2: 0 } as Record<number, number>;
      for (let h = 0; h < SHAPE.numKvHeads; h++) {
        const A: number[] = [];
        for (let ch = 0; ch < D; ch++) {
          let mn = Infinity, mx = -Infinity, I = 0;
          for (let j = b * R; j < (b + 1) * R; j++) {
            const x = bf16ToF32(f32ToBf16RNE(d.k[j * ROW + h * D + ch]));
            mn = Math.min(mn, x);
            mx = Math.max(mx, x);
            for (let gh = 2 * h; gh < 2 * h + 2; gh++) I += Math.abs(d.q[(j * NH + gh) * D + ch]);
          }
          A.push((I / (2 * R)) * (mx - mn) / 3);
        }
        const mean = A.reduce((s, x) => s + x, 0) / D;
        for (let ch = 0; ch < D; ch++) {
          const a = A[ch] / mean;
          const got = ex.blocks[b].k.bits[h * D + ch];
          // Allow a disagreement only within rounding of the threshold (f32 query sums).
          if (Math.abs(a - 1.5) > 1e-5 && Math.abs(a - 0.8) > 1e-5) {
            assert.equal(got, tierOf(a, 1.5, 0.8), `l${l} b${b} h${h} d${ch}`);
          }
          seen[got]++;
        }
      }
      assert.ok(seen[16] > 0 && seen[4] > 0 && seen[2] > 0, `all three tiers used: ${JSON.stringify(seen)}`);
      const k = ex.blocks[b].k;
      assert.deepEqual([k.n16, k.n4, k.n2], [seen[16], seen[4], seen[2]]);
      assert.equal(k.bf16.length, k.n16 * R);
    }
  }
});

Deno.test("mixkvq: higher thresholds give fewer key bits; extreme thresholds give all-bf16 / all-2-bit", () => {
  const R = 32, d = data(4 * R, 2);
  const bitsAt = (tau16: number, tau4: number) => {
    const c = new MixKvqCache({ method: "mixkvq", residual: R, tau16, tau4 }, SHAPE);
    feed(c, d, 0, 4 * R);
    return { avg: c.stats().avgBits!.k, bytes: c.stats().bytes };
  };
  const grid = [[0, 0], [0.5, 0.3], [1, 0.6], [1.5, 0.8], [2, 1.2], [3, 2], [Infinity, Infinity]];
  const res = grid.map(([a, b]) => bitsAt(a, b));
  for (let i = 1; i < res.length; i++) {
    assert.ok(res[i].avg <= res[i - 1].avg, `${grid[i]}: ${res[i].avg} > ${res[i - 1].avg}`);
    assert.ok(res[i].bytes <= res[i - 1].bytes);
  }
  assert.ok(res[3].avg < res[1].avg);
  // τ = 0: every channel with a non-zero range is bf16 (here all); τ = ∞: every channel 2-bit.
  assert.equal(res[0].avg, 16);
  assert.equal(res[res.length - 1].avg, 2);
  // Raising τ4 alone (τ16 fixed) also never adds bits.
  assert.ok(bitsAt(1.5, 1.2).avg <= bitsAt(1.5, 0.6).avg);
});

Deno.test("mixkvq: bytes == allocated storage (walk and formula), incl. tier maps, over prefill + decode", () => {
  const R = 32, d = data(3 * R + 10, 3);
  const c = new MixKvqCache({ method: "mixkvq", residual: R, keyGroup: 16 }, SHAPE);
  assert.equal(c.stats().bytes, 0);
  const check = () => {
    const st = c.stats();
    let total = 0;
    for (let l = 0; l < SHAPE.numLayers; l++) {
      const ex = c.exportLayer(l);
      const walk = exportBytes(ex);
      const formula = mixkvqLayerBytes(SHAPE, c.config, c.length(l), ex.blocks.map((b) => b.k));
      assert.equal(st.layers[l].bytes, walk);
      assert.equal(walk, formula);
      total += walk;
    }
    assert.equal(st.bytes, total);
    assert.ok(st.peakBytes >= st.bytes);
    assert.ok(st.scratchBytes >= 2 * 4 * st.tokens * ROW);
  };
  feed(c, d, 0, R + 7); // prefill across a block boundary
  check();
  for (let i = R + 7; i < 3 * R + 10; i++) {
    feed(c, d, i, 1);
    check();
  }
  // Residual (2·R·row·2) + query sums (4·row) are held from the first token.
  const fresh = new MixKvqCache({ method: "mixkvq", residual: R }, SHAPE);
  feed(fresh, d, 0, 1);
  assert.equal(fresh.stats().layers[0].bytes, 4 * R * ROW + 4 * ROW);
});

Deno.test("mixkvq: view() equals the dequantized storage, bit for bit", () => {
  const R = 32, d = data(3 * R + 5, 4);
  const c = new MixKvqCache({ method: "mixkvq", residual: R, keyGroup: 8, valueBits: 4 }, SHAPE);
  feed(c, d, 0, 2 * R - 3);
  for (let i = 2 * R - 3; i < 3 * R + 5; i += 4) feed(c, d, i, Math.min(4, 3 * R + 5 - i));
  for (let l = 0; l < SHAPE.numLayers; l++) {
    const view = c.view(l);
    const ref = decode(c.exportLayer(l));
    assert.equal(view.length, 3 * R + 5);
    assert.deepEqual(view.k, ref.k);
    assert.deepEqual(view.v, ref.v);
  }
});

Deno.test("mixkvq: residual length and block count over decode steps; prefill == token by token", () => {
  const R = 16, n = 3 * R + 5, d = data(n, 5);
  const step = new MixKvqCache({ method: "mixkvq", residual: R }, SHAPE);
  for (let i = 0; i < n; i++) {
    feed(step, d, i, 1);
    const ex = step.exportLayer(1);
    assert.equal(ex.residualTokens, (i + 1) % R);
    assert.equal(ex.blocks.length, Math.floor((i + 1) / R));
    assert.equal(ex.queryTokens, (i + 1) % R);
    assert.equal(step.length(1), i + 1);
  }
  const once = new MixKvqCache({ method: "mixkvq", residual: R }, SHAPE);
  feed(once, d, 0, n);
  for (let l = 0; l < SHAPE.numLayers; l++) {
    assert.deepEqual(once.exportLayer(l), step.exportLayer(l));
    assert.deepEqual(once.view(l), step.view(l));
  }
  assert.deepEqual(once.stats(), step.stats());
  once.reset();
  assert.equal(once.stats().bytes, 0);
  assert.equal(once.length(0), 0);
  assert.equal(once.stats().avgBits, undefined);
});

Deno.test("mixkvq: storage below an exact bf16 cache at equal settings (R = 128, 2-bit values)", () => {
  const shape = { numLayers: 1, numKvHeads: 2, headDim: 128 };
  const n = 512, row = 256, rnd = mulberry32(6);
  const k = new Float32Array(n * row).map((_, i) => (rnd() - 0.5) * (1 + (i % 5))),
    v = k.map(() => rnd() - 0.5);
  const q = new Float32Array(n * 4 * 128).map(() => rnd() - 0.5);
  const m = new MixKvqCache({ method: "mixkvq" }, shape);
  const e = new ExactCache({ method: "exact", dtype: "bf16" }, shape);
  m.observeQuery(0, q, n);
  m.append(0, k, v, n);
  e.append(0, k, v, n);
  const mb = m.stats().bytes, eb = e.stats().bytes;
  assert.ok(mb < eb, `mixkvq ${mb} bytes, exact bf16 ${eb}`);
  assert.ok(m.stats().avgBits!.k < 16 && m.stats().avgBits!.v === 2);
  // Close to the formula: residual + 4 blocks; each block's keys cost ≥ 2-bit storage.
  assert.ok(mb < 0.5 * eb, `${mb} vs ${eb}`);
});

Deno.test("mixkvq: bf16 channels carry exactly the bf16 rounding error; 2-bit channels much more", () => {
  const R = 32, d = data(R, 7);
  const c = new MixKvqCache({ method: "mixkvq", residual: R, tau16: 1.2, tau4: 1.2 }, SHAPE);
  feed(c, d, 0, R);
  const ex = c.exportLayer(0), view = c.view(0);
  let e16 = 0, b16 = 0, n16 = 0;
  let e2 = 0;
  for (let cIdx = 0; cIdx < ROW; cIdx++) {
    for (let j = 0; j < R; j++) {
      const i = j * ROW + cIdx, x = d.k[i];
      const err = Math.abs(view.k[i] - x);
      if (ex.blocks[0].k.bits[cIdx] === 16) {
        assert.equal(view.k[i], bf16ToF32(f32ToBf16RNE(x)));
        assert.ok(err <= Math.abs(x) * 2 ** -8);
        e16 += err;
        b16 += Math.abs(bf16ToF32(f32ToBf16RNE(x)) - x);
        n16++;
      } else e2 += err;
    }
  }
  assert.ok(n16 > 0);
  assert.equal(e16, b16);
  assert.ok(e2 / (R * ROW - n16) > 10 * (e16 / n16));
});

Deno.test("mixkvq: query-aware — large |Q| channel gets more bits than an equal-scale tiny-|Q| channel", () => {
  const shape = { numLayers: 1, numKvHeads: 1, headDim: 8 };
  const R = 16;
  // Every channel has the same key range; queries are large on channel 0, tiny on channel 1, 1 elsewhere.
  const k = new Float32Array(R * 8).map((_, i) => ((Math.floor(i / 8) * 7 + (i % 8) * 3) % R) / R);
  const q = new Float32Array(R * 2 * 8).map((_, i) => (i % 8 === 0 ? 5 : i % 8 === 1 ? 0.01 : 1));
  const c = new MixKvqCache({ method: "mixkvq", residual: R, tau16: 2, tau4: 0.5 }, shape);
  c.observeQuery(0, q, R);
  c.append(0, k, new Float32Array(R * 8), R);
  const bits = c.exportLayer(0).blocks[0].k.bits;
  assert.equal(bits[0], 16);
  assert.equal(bits[1], 2);
  assert.ok(bits[0] > bits[1]);
  // Without queries (I = 1, error-only) the equal-scale channels tie.
  const noQ = new MixKvqCache({ method: "mixkvq", residual: R, tau16: 2, tau4: 0.5 }, shape);
  noQ.append(0, k, new Float32Array(R * 8), R);
  assert.equal(noQ.exportLayer(0).blocks[0].k.bits[0], noQ.exportLayer(0).blocks[0].k.bits[1]);
  // The shared salience helper agrees with the cache.
  const sal = normalizedSalience(
    k.map((x) => bf16ToF32(f32ToBf16RNE(x))),
    R,
    1,
    8,
    queryMagnitudes(q, R, 2, 1, 8).reduce(
      (acc, x, i) => (acc[i % 8] += x / R, acc),
      new Float32Array(8),
    ),
  );
  assert.ok(sal[0] > 2 && sal[1] < 0.5);
});

Deno.test("mixkvq: NaN/Inf are NonFiniteError with layer/token/channel context; the cache is unchanged", () => {
  const R = 16, d = data(R + 4, 8);
  const c = new MixKvqCache({ method: "mixkvq", residual: R }, SHAPE);
  feed(c, d, 0, R - 1);
  const before = { st: c.stats(), ex: structuredClone(c.exportLayer(1)), view: c.view(1).k.slice() };
  const k = sub(d.k, R - 1, 2, ROW), v = sub(d.v, R - 1, 2, ROW);
  k[ROW + 70] = NaN; // token R (second new token), head 1, channel 6
  c.observeQuery(1, sub(d.q, R - 1, 2, NH * SHAPE.headDim), 2);
  assert.throws(() => c.append(1, k, v, 2), (e: Error) => {
    assert.ok(e instanceof NonFiniteError);
    assert.match(e.message, /layer 1: key of token 16, head 1, channel 6 is NaN/);
    return true;
  });
  const vb = sub(d.v, R - 1, 2, ROW);
  vb[3] = Infinity;
  assert.throws(
    () => c.append(1, sub(d.k, R - 1, 2, ROW), vb, 2),
    /layer 1: value of token 15, head 0, channel 3 is Infinity/,
  );
  const badQ = sub(d.q, R - 1, 1, NH * SHAPE.headDim);
  badQ[SHAPE.headDim * 3 + 5] = -Infinity;
  assert.throws(
    () => c.observeQuery(1, badQ, 1),
    (e: Error) =>
      e instanceof NonFiniteError &&
      /layer 1: query of token 0, head 3, channel 5 is -Infinity/.test(e.message),
  );
  // Pending queries for a different token count: a shape error, nothing stored.
  assert.throws(() => c.append(1, sub(d.k, R - 1, 1, ROW), sub(d.v, R - 1, 1, ROW), 1), TensorShapeError);
  assert.deepEqual(c.stats(), before.st);
  assert.deepEqual(c.exportLayer(1), before.ex);
  assert.deepEqual(c.view(1).k, before.view);
  assert.throws(() => c.append(5, k, v, 1), TensorShapeError);
  assert.throws(() => c.observeQuery(0, new Float32Array(3), 1), TensorShapeError);
});
