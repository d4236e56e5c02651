import assert from "node:assert/strict";
import { NonFiniteError, QuantConfigError, TensorShapeError } from "../errors.ts";
import { bf16NextDown, bf16ToF32, f32ToBf16Up, f32ToBits } from "./bf16.ts";
import { formatFor, QUANT_BITS } from "./format.ts";
import {
  allocQuantBuffers,
  dequantizeGroup,
  dequantizeRows,
  fakeQuantize,
  packCodes,
  quantizeGroup,
  quantizeRows,
  roundHalfEven,
  scaleBitsFor,
  unpackCodes,
} from "./quantizer.ts";
import { mulberry32 } from "../sampling.ts";

// ---------------------------------------------------------------------------------------------------------
// Helpers: seeded PRNG and an exact (BigInt) oracle for the codes.

const rng = mulberry32;

/** A non-negative f32 as m·2^e with m an integer. */
function f32Parts(x: number): [bigint, number] {
  const u = f32ToBits(x);
  const ef = (u >>> 23) & 0xff;
  const fr = u & 0x7fffff;
  return ef === 0 ? [BigInt(fr), -149] : [BigInt(fr | 0x800000), ef - 150];
}

/** roundHalfEven(num / (den·mult)) in exact rational arithmetic; num ≥ 0, den > 0 are f32 values. */
function exactCode(num: number, den: number, mult = 1): number {
  const [nm, ne] = f32Parts(num);
  const [dm, de] = f32Parts(den);
  let N = nm;
  let D = dm * BigInt(mult);
  if (ne >= de) N <<= BigInt(ne - de);
  else D <<= BigInt(de - ne);
  let q = N / D;
  const r2 = 2n * (N - q * D);
  if (r2 > D || (r2 === D && (q & 1n) === 1n)) q++;
  return Number(q);
}

const flush = (v: number) => (Math.abs(v) < 2 ** -64 ? 0 : v);

/** Random test groups of several kinds (magnitudes 2^-30..2^30, constant, exact ties, mixed). */
function genGroup(r: () => number, G: number, bits: number, kind: number): Float32Array {
  const x = new Float32Array(G);
  const qmax = 2 ** bits - 1;
  const mag = 2 ** Math.floor(r() * 61 - 30);
  switch (kind) {
    case 0: { // uniform around a random offset
      const off = (r() - 0.5) * 4 * mag;
      for (let i = 0; i < G; i++) x[i] = off + (2 * r() - 1) * mag;
      break;
    }
    case 1: { // heavy-ish tails (outliers like K channels)
      for (let i = 0; i < G; i++) x[i] = mag * Math.tan((r() - 0.5) * 3);
      break;
    }
    case 2: { // constant; half the time a bf16 value
      const c = (r() - 0.5) * 2 * mag;
      x.fill(r() < 0.5 ? bf16ToF32(f32ToBf16Up(c)) : c);
      break;
    }
    case 3: { // exact ties: S = 2^a, z = m·2^a, d = (k + 1/2)·2^a
      const a = Math.floor(r() * 40 - 20);
      const m = Math.floor(r() * Math.min(qmax, 255));
      const S = 2 ** a;
      x[0] = -m * S;
      x[1] = (qmax - m) * S;
      for (let i = 2; i < G; i++) x[i] = (Math.floor(r() * qmax) + 0.5 - m) * S;
      break;
    }
    default: { // tiny, zero and wide-range values together
      for (let i = 0; i < G; i++) {
        const e = Math.floor(r() * 129 - 65); // ≤ 63: below the 2^64 limit
        x[i] = (r() < 0.5 ? -1 : 1) * (r() + 0.5) * 2 ** e * (r() < 0.1 ? 0 : 1);
      }
    }
  }
  return x;
}

/** Every invariant of one quantized group against the exact definition. */
function checkGroup(x: Float32Array, G: number, bits: number): { err: number; ties: number } {
  const fmt = formatFor(bits);
  const qmax = fmt.qmax;
  const codes = new Uint32Array(fmt.wordsPerGroup(G));
  const scales = new Uint16Array(1);
  const zeros = new Uint16Array(1);
  quantizeGroup(x, 0, G, bits, codes, 0, scales, zeros, 0);
  let mn = Infinity, mx = -Infinity;
  for (let i = 0; i < G; i++) {
    mn = Math.min(mn, flush(x[i]));
    mx = Math.max(mx, flush(x[i]));
  }
  const z = bf16ToF32(zeros[0]);
  const S = bf16ToF32(scales[0]);
  // z is the smallest bf16 ≥ -mn (and +0 rather than -0).
  assert.ok(z >= -mn && bf16ToF32(bf16NextDown(zeros[0])) < -mn, `z=${z} mn=${mn}`);
  assert.notEqual(zeros[0], 0x8000);
  const r = Math.fround(mx + z);
  assert.ok(r >= 0);
  // S is the smallest non-negative bf16 with S·qmax ≥ r (products exact in f64).
  if (r === 0) assert.equal(scales[0], 0);
  else assert.ok(S * qmax >= r && bf16ToF32(scales[0] - 1) * qmax < r, `S=${S} r=${r}`);
  const q = new Uint32Array(G);
  unpackCodes(codes, 0, G, bits, q, 0);
  const xh = new Float32Array(G);
  dequantizeGroup(codes, 0, G, bits, scales[0], zeros[0], xh, 0);
  let err = 0, ties = 0;
  for (let i = 0; i < G; i++) {
    const xf = flush(x[i]);
    const d = Math.fround(xf + z);
    assert.ok(q[i] <= qmax);
    const want = S === 0 ? 0 : exactCode(d, S);
    assert.equal(q[i], want, `code ${i}: d=${d} S=${S}`);
    if (S > 0 && d / S - Math.floor(d / S) === 0.5) ties++;
    // |d − qS| ≤ S/2 exactly (the difference is exact in f64).
    assert.ok(Math.abs(d - q[i] * S) <= S / 2);
    // Dequant error bound: |x − x̂| ≤ S/2 + 2^-24·(d + |x̂|) (f64 evaluation, tiny slack).
    const e = Math.abs(xf - xh[i]);
    const bound = S / 2 + 2 ** -24 * (d + Math.abs(xh[i]));
    assert.ok(e <= bound * (1 + 2 ** -40), `elem ${i}: |${xf} - ${xh[i]}| = ${e} > ${bound}`);
    assert.equal(xh[i], Math.fround(q[i] * S - z));
    err += e;
  }
  return { err, ties };
}

// ---------------------------------------------------------------------------------------------------------

Deno.test("quantizeGroup satisfies the definition on random groups (all widths, exact oracle)", () => {
  const r = rng(2024);
  let ties = 0;
  for (const bits of QUANT_BITS) {
    for (let n = 0; n < 150; n++) {
      const G = n % 3 === 0 ? 96 : 128;
      ties += checkGroup(genGroup(r, G, bits, n % 5), G, bits).ties;
    }
  }
  assert.ok(ties > 1000, `only ${ties} exact ties exercised`);
});

Deno.test("ties go to even", () => {
  const x = new Float32Array([0, 0.5, 1.5, 2.5, 3, 1, 2, 0.25]);
  const codes = new Uint32Array(1), scales = new Uint16Array(1), zeros = new Uint16Array(1);
  quantizeGroup(x, 0, 8, 2, codes, 0, scales, zeros, 0);
  assert.equal(scales[0], 0x3f80); // S = 1
  assert.equal(zeros[0], 0);
  const q = new Uint8Array(8);
  unpackCodes(codes, 0, 8, 2, q, 0);
  assert.deepEqual([...q], [0, 0, 2, 2, 3, 1, 2, 0]);
  assert.equal(codes[0], 0x27a0);
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, 4.5].map(roundHalfEven), [0, 2, 2, 4, 4]);
});

Deno.test("constant groups: S = 0 iff -c is a bf16 value; otherwise a tiny S and the error bound", () => {
  for (const bits of QUANT_BITS) {
    for (const c of [0.75, -3, 0, -0, 1e-30, 2 ** 40, -(2 ** -60)]) {
      const x = new Float32Array(128).fill(c);
      const q = allocQuantBuffers(1, 128, bits);
      quantizeRows(x, 1, 128, bits, q);
      assert.equal(q.scales[0], 0, `c=${c}`);
      assert.ok(q.codes.every((w) => w === 0));
      const xh = dequantizeRows(q, 1, 128, bits);
      // dequant = fl32(0·0 − z) = −z = c exactly (tiny c is flushed to +0 first).
      for (const v of xh) assert.ok(Object.is(v, flush(Math.fround(c)) + 0), `c=${c} → ${v}`);
    }
    // -c not a bf16: z rounds up past -c, so r = c + z > 0 and the group quantizes normally.
    const c = Math.fround(1.2345);
    const x = new Float32Array(128).fill(c);
    const q = quantizeRows(x, 1, 128, bits, allocQuantBuffers(1, 128, bits));
    const S = bf16ToF32(q.scales[0]);
    assert.ok(S > 0 && S * (2 ** bits - 1) < 2 ** -7 * c);
    checkGroup(x, 128, bits);
    const xh = dequantizeRows(q, 1, 128, bits);
    for (const v of xh) assert.ok(Math.abs(v - c) <= S / 2 + 2 ** -23 * c);
  }
});

Deno.test("mean error shrinks as bits grow", () => {
  const r = rng(99);
  const x = new Float32Array(128 * 64);
  for (let i = 0; i < x.length; i++) x[i] = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const errs = [2, 4, 8, 16].map((bits) => {
    const xh = fakeQuantize(x, 128, bits);
    let s = 0;
    for (let i = 0; i < x.length; i++) s += Math.abs(x[i] - xh[i]);
    return s / x.length;
  });
  for (let i = 1; i < errs.length; i++) assert.ok(errs[i] < errs[i - 1] / 4, `errors ${errs}`);
  assert.ok(errs[3] < 1e-4);
});

Deno.test("non-finite and out-of-range inputs throw NonFiniteError naming index and value", () => {
  const cases: [number, number, string][] = [
    [NaN, 5, "NaN"],
    [Infinity, 0, "Infinity"],
    [-Infinity, 127, "-Infinity"],
    [2 ** 64, 3, String(2 ** 64)],
    [-(2 ** 64), 64, String(-(2 ** 64))],
  ];
  for (const [v, idx, text] of cases) {
    const x = new Float32Array(256).fill(1);
    x[128 + idx] = v;
    const q = allocQuantBuffers(2, 128, 4);
    assert.throws(
      () => quantizeRows(x, 2, 128, 4, q),
      (e: unknown) =>
        e instanceof NonFiniteError && e.message.includes(`index ${idx} `) &&
        e.message.includes(text) && e.message.includes("group 1"),
    );
  }
  // Just below 2^64 is accepted; |x| < 2^-64 is exactly +0.
  const big = Math.fround(2 ** 64 * (1 - 2 ** -24));
  checkGroup(new Float32Array([big, -big, 0, 1]), 4, 8);
  for (const bits of QUANT_BITS) {
    const a = new Float32Array([1e-30, -1e-25, 2 ** -65, 3, -2, 0.5, -(2 ** -64) * 0.99, 0]);
    const b = a.map(flush);
    const qa = quantizeRows(a, 1, 8, bits, allocQuantBuffers(1, 8, bits));
    const qb = quantizeRows(b, 1, 8, bits, allocQuantBuffers(1, 8, bits));
    assert.deepEqual(qa, qb);
    checkGroup(new Float32Array([2 ** -64, -(2 ** -64), 2 ** -63]), 3, bits); // smallest kept magnitudes
  }
});

Deno.test("bad configuration and buffer sizes throw typed errors naming the value", () => {
  const x = new Float32Array(128);
  const codes = new Uint32Array(64), s = new Uint16Array(1), z = new Uint16Array(1);
  for (const bits of [3, 1, 32]) {
    assert.throws(
      () => quantizeGroup(x, 0, 128, bits, codes, 0, s, z, 0),
      (e: unknown) => e instanceof QuantConfigError && e.message.includes(String(bits)),
    );
    assert.throws(() => fakeQuantize(x, 128, bits), QuantConfigError);
  }
  assert.throws(() => quantizeGroup(x, 64, 128, 4, codes, 0, s, z, 0), TensorShapeError);
  assert.throws(() => quantizeGroup(x, 0, 128, 4, codes, 60, s, z, 0), TensorShapeError);
  assert.throws(() => quantizeGroup(x, 0, 128, 4, codes, 0, s, z, 1), TensorShapeError);
  assert.throws(() => fakeQuantize(new Float32Array(100), 128, 4), TensorShapeError);
  assert.throws(() => fakeQuantize(x, 0, 4), QuantConfigError);
});

Deno.test("pack/unpack round trip for every width and group size, and the bit layout", () => {
  const r = rng(5);
  for (const bits of QUANT_BITS) {
    const fmt = formatFor(bits);
    for (const G of [128, 96, 72, 17, 8, 1]) {
      const src = new Uint32Array(G).map(() => Math.floor(r() * (fmt.qmax + 1)));
      src[0] = fmt.qmax;
      const words = new Uint32Array(fmt.wordsPerGroup(G) + 2).fill(0xdeadbeef);
      packCodes(src, 0, G, bits, words, 1);
      assert.equal(words[0], 0xdeadbeef);
      assert.equal(words[words.length - 1], 0xdeadbeef);
      const back = new Uint16Array(G);
      unpackCodes(words, 1, G, bits, back, 0);
      assert.deepEqual([...back], [...src]);
      const used = G % fmt.codesPerWord; // padding bits of the last word are zero
      if (used !== 0) assert.equal(words[fmt.wordsPerGroup(G)] >>> (used * bits), 0);
    }
    assert.throws(() => packCodes([fmt.qmax + 1], 0, 1, bits, new Uint32Array(1), 0), QuantConfigError);
    assert.throws(() => packCodes([-1], 0, 1, bits, new Uint32Array(1), 0), QuantConfigError);
  }
  const w = new Uint32Array(1);
  packCodes([1, 2, 3, 4, 5, 6, 7, 8], 0, 8, 4, w, 0);
  assert.equal(w[0], 0x87654321);
  packCodes([0x1234, 0xabcd], 0, 2, 16, w, 0);
  assert.equal(w[0], 0xabcd1234);
  packCodes([1, 2, 3, 4], 0, 4, 8, w, 0);
  assert.equal(w[0], 0x04030201);
  packCodes([1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3], 0, 16, 2, w, 0);
  assert.equal(w[0], 0xc0000039);
});

Deno.test("quantizeRows / dequantizeRows / fakeQuantize agree with per-group calls", () => {
  const r = rng(11);
  for (const bits of QUANT_BITS) {
    const G = 96, nG = 7;
    const x = new Float32Array(G * nG);
    for (let g = 0; g < nG; g++) x.set(genGroup(r, G, bits, g % 5), g * G);
    const q = quantizeRows(x, nG, G, bits, allocQuantBuffers(nG, G, bits));
    const wpg = formatFor(bits).wordsPerGroup(G);
    for (let g = 0; g < nG; g++) {
      const c = new Uint32Array(wpg), s = new Uint16Array(1), z = new Uint16Array(1);
      quantizeGroup(x.subarray(g * G, (g + 1) * G), 0, G, bits, c, 0, s, z, 0);
      assert.deepEqual([...c], [...q.codes.subarray(g * wpg, (g + 1) * wpg)]);
      assert.equal(s[0], q.scales[g]);
      assert.equal(z[0], q.zeros[g]);
    }
    assert.deepEqual(fakeQuantize(x, G, bits), dequantizeRows(q, nG, G, bits));
    assert.equal(bf16ToF32(scaleBitsFor(0, 3)), 0);
  }
});
