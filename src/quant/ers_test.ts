import assert from "node:assert/strict";
import { QuantConfigError, TensorShapeError } from "../errors.ts";
import { bf16ToF32, f32ToBf16RNE, f32ToBits } from "./bf16.ts";
import { ersCode, ersRows, ersScaleBits } from "./ers.ts";
import { formatFor } from "./format.ts";
import { allocQuantBuffers, dequantizeRows, quantizeRows, unpackCodes } from "./quantizer.ts";
import { mulberry32 } from "../sampling.ts";

const rng = mulberry32;

function f32Parts(x: number): [bigint, number] {
  const u = f32ToBits(x);
  const ef = (u >>> 23) & 0xff;
  const fr = u & 0x7fffff;
  return ef === 0 ? [BigInt(fr), -149] : [BigInt(fr | 0x800000), ef - 150];
}

/** roundHalfEven of the exact rational N / D (N ≥ 0, D > 0). */
function rheBig(N: bigint, D: bigint): number {
  let q = N / D;
  const r2 = 2n * (N - q * D);
  if (r2 > D || (r2 === D && (q & 1n) === 1n)) q++;
  return Number(q);
}

/** roundHalfEven(num / (den·mult)), exact; num ≥ 0 and den > 0 are f32 values, mult an integer. */
function exactCode(num: number, den: number, mult: number): number {
  const [nm, ne] = f32Parts(num);
  const [dm, de] = f32Parts(den);
  let N = nm;
  let D = dm * BigInt(mult);
  if (ne >= de) N <<= BigInt(ne - de);
  else D <<= BigInt(de - ne);
  return rheBig(N, D);
}

const NS = [8, 4, 2] as const;

Deno.test("ERS code: exhaustive over every 2n-bit code, n = 8, 4, 2", () => {
  const scales = [1, 0.01171875, 2 ** -40 * 1.5, 3 * 2 ** 20]; // bf16 values
  for (const n of NS) {
    const m = 2 ** n + 1;
    const M = BigInt(m);
    for (let q = 0; q < 2 ** (2 * n); q++) {
      const got = ersCode(q, n);
      // Independent: round(q / m) = floor((2q + m) / 2m) (no ties: m is odd).
      assert.equal(got, Number((2n * BigInt(q) + M) / (2n * M)), `n=${n} q=${q}`);
      assert.ok(got <= 2 ** n - 1);
      // = the direct n-bit code of the dequantized value q·S with scale m·S (q·S is exact in f32).
      const S = scales[q % scales.length];
      assert.equal(got, exactCode(Math.fround(q * S), S, m));
    }
  }
  // The 16→8 intermediate is the largest: 65535·65281 + 8,355,968 = 4,286,546,303 < 2^32.
  assert.equal(65535 * 65281 + 65281 * 128, 4_286_546_303);
  assert.equal(ersCode(65535, 8), 255);
  for (const n of [1, 3, 16, 0]) assert.throws(() => ersCode(0, n), QuantConfigError);
});

Deno.test("ERS at exact ties: Q = k + 1/2 gives the direct code for n ≥ 2, not for n = 1", () => {
  // ERS∘Q_2n vs Q_n with scale (2^n+1)·S can only differ when d/S is a half-integer (the fine rounding
  // ties); exhaustively over all of them the results agree for n = 8, 4, 2 because 2^(n−1) is even.
  const ersN1 = (q: number) => (q * 3 + 3) >>> 3; // the same formula for n = 1 (2 → 1 bit; not supported)
  for (const n of [8, 4, 2, 1]) {
    const m = 2 ** n + 1;
    let mismatches = 0;
    for (let k = 0; k < 2 ** (2 * n) - 1; k++) {
      const fine = k % 2 === 0 ? k : k + 1; // rhe(k + 1/2)
      const viaErs = n === 1 ? ersN1(fine) : ersCode(fine, n);
      const direct = rheBig(BigInt(2 * k + 1), BigInt(2 * m)); // rhe((k + 1/2) / m)
      if (viaErs !== direct) mismatches++;
    }
    if (n === 1) assert.ok(mismatches > 0);
    else assert.equal(mismatches, 0, `n=${n}`);
  }
  assert.equal(ersN1(2), 1); // Q = 1.5: Q_2 = 2 → 1, but rhe(1.5/3 = 0.5) = 0
});

/** Independent bf16 RNE of a positive f64 (exact arithmetic on the bf16 grid). */
function bf16RneRef(P: number): number {
  if (P === 0) return 0;
  const e = Math.max(Math.floor(Math.log2(P)), -126);
  let ex = e;
  while (2 ** ex > P && ex > -126) ex--; // guard log2 rounding
  while (2 ** (ex + 1) <= P) ex++;
  const spacing = 2 ** (ex - 7);
  const k = P / spacing; // exact (power-of-two divisor)
  let lo = Math.floor(k);
  const frac = k - lo;
  if (frac > 0.5 || (frac === 0.5 && lo % 2 === 1)) lo++;
  const v = lo * spacing;
  return v > bf16ToF32(0x7f7f) ? Infinity : v;
}

Deno.test("ERS scale: exhaustive over every positive bf16 scale", () => {
  for (const n of NS) {
    const m = 2 ** n + 1;
    for (let b = 0; b <= 0x7f7f; b++) {
      const S = bf16ToF32(b);
      const P = S * m;
      assert.equal(Math.fround(P), P > 3.4028234663852886e38 ? Infinity : P); // exact in f32
      assert.equal(bf16ToF32(ersScaleBits(b, n)), bf16RneRef(P), `n=${n} S=${S}`);
    }
    assert.equal(ersScaleBits(0, n), 0);
  }
  assert.equal(ersScaleBits(0x3f80, 8), 0x4380); // 257 → 256 (tie to even)
  assert.throws(() => ersScaleBits(0x3f80, 1), QuantConfigError);
});

/** Random group at 2n bits, sometimes built so that d/(S·m) hits k + 1/2 exactly. */
function genGroup(r: () => number, G: number, bitsIn: number, tieKind: boolean): Float32Array {
  const x = new Float32Array(G);
  if (tieKind) {
    const n = bitsIn / 2;
    const m = 2 ** n + 1;
    const qmax = 2 ** bitsIn - 1;
    const S = 2 ** Math.floor(r() * 30 - 15); // S = 2^a, z = 0
    x[0] = 0;
    x[1] = qmax * S;
    for (let i = 2; i < G; i++) {
      x[i] = r() < 0.5
        ? (Math.floor(r() * (2 ** n - 1)) + 0.5) * m * S // coarse tie (a fine tie too: m odd)
        : Math.floor(r() * qmax * 2) * 0.5 * S; // fine ties and integers
    }
    return x;
  }
  const mag = 2 ** Math.floor(r() * 41 - 20);
  const off = (r() - 0.5) * 3 * mag;
  for (let i = 0; i < G; i++) x[i] = off + mag * Math.tan((r() - 0.5) * 2.5);
  return x;
}

Deno.test("property: ERS∘Q_2n = Q_n with the exact scale (2^n+1)·S, codes compared exactly", () => {
  const r = rng(31);
  const G = 128;
  let coarseTies = 0;
  for (const n of NS) {
    const bitsIn = 2 * n;
    const m = 2 ** n + 1;
    const nG = 60;
    const x = new Float32Array(nG * G);
    for (let g = 0; g < nG; g++) x.set(genGroup(r, G, bitsIn, g % 2 === 0), g * G);
    const q = quantizeRows(x, nG, G, bitsIn, allocQuantBuffers(nG, G, bitsIn));
    const scalesIn = q.scales.slice();
    const scalesOut = new Uint16Array(nG);
    const codesOut = ersRows(q.codes, bitsIn, q.scales, scalesOut, nG, G);
    const codes = new Uint16Array(nG * G);
    for (let g = 0; g < nG; g++) unpackCodes(codesOut, g * formatFor(n).wordsPerGroup(G), G, n, codes, g * G);
    const xh = dequantizeRows({ codes: codesOut, scales: scalesOut, zeros: q.zeros }, nG, G, n);
    for (let g = 0; g < nG; g++) {
      const S = bf16ToF32(scalesIn[g]);
      const z = bf16ToF32(q.zeros[g]);
      assert.equal(scalesOut[g], ersScaleBits(scalesIn[g], n));
      const S2 = bf16ToF32(scalesOut[g]);
      for (let i = 0; i < G; i++) {
        const d = Math.fround(x[g * G + i] + z);
        const want = S === 0 ? 0 : exactCode(d, S, m);
        assert.equal(codes[g * G + i], want, `n=${n} g=${g} i=${i}`);
        if (S > 0 && (2 * d / (S * m)) % 2 === 1) coarseTies++;
        // Error after the shift: |d − q'·m·S| ≤ m·S/2, plus the bf16 rounding of the scale, plus f32 rounding.
        const qq = codes[g * G + i];
        const bound = (m * S) / 2 + qq * Math.abs(S2 - m * S) + 2 ** -24 * (d + Math.abs(xh[g * G + i]));
        assert.ok(Math.abs(x[g * G + i] - xh[g * G + i]) <= bound * (1 + 2 ** -40));
      }
    }
  }
  assert.ok(coarseTies > 500, `only ${coarseTies} coarse ties`);
});

Deno.test("chain 16 → 8 → 4 → 2 equals direct rounding with scale 257·17·5·S", () => {
  const r = rng(32);
  const G = 128, nG = 40;
  const x = new Float32Array(nG * G);
  for (let g = 0; g < nG; g++) x.set(genGroup(r, G, 16, false), g * G);
  const q = quantizeRows(x, nG, G, 16, allocQuantBuffers(nG, G, 16));
  const s16 = q.scales.slice();
  let codes = q.codes;
  for (const bitsIn of [16, 8, 4]) codes = ersRows(codes, bitsIn, q.scales, q.scales, nG, G, codes); // in place
  const out = new Uint8Array(G);
  for (let g = 0; g < nG; g++) {
    const S = bf16ToF32(s16[g]);
    const z = bf16ToF32(q.zeros[g]);
    unpackCodes(codes, g * formatFor(2).wordsPerGroup(G), G, 2, out, 0);
    for (let i = 0; i < G; i++) {
      assert.equal(out[i], S === 0 ? 0 : exactCode(Math.fround(x[g * G + i] + z), S, 257 * 17 * 5));
    }
    const s2 = ersScaleBits(ersScaleBits(ersScaleBits(s16[g], 8), 4), 2);
    assert.equal(q.scales[g], s2);
  }
});

Deno.test("ersRows: in place equals out of place, padding widths, typed errors", () => {
  const r = rng(33);
  for (const bitsIn of [16, 8, 4]) {
    for (const G of [128, 96, 72]) {
      const nG = 9;
      const x = new Float32Array(nG * G).map(() => r() * 10 - 3);
      const q = quantizeRows(x, nG, G, bitsIn, allocQuantBuffers(nG, G, bitsIn));
      const sepScales = new Uint16Array(nG);
      const sep = ersRows(q.codes, bitsIn, q.scales, sepScales, nG, G);
      assert.equal(sep.length, nG * formatFor(bitsIn / 2).wordsPerGroup(G));
      const inPlace = ersRows(q.codes, bitsIn, q.scales, q.scales, nG, G, q.codes);
      assert.equal(inPlace, q.codes);
      assert.deepEqual([...inPlace.subarray(0, sep.length)], [...sep]);
      assert.deepEqual([...q.scales], [...sepScales]);
      // Direct per-code check.
      const a = new Uint32Array(G), b = new Uint32Array(G);
      const qIn = quantizeRows(x, nG, G, bitsIn, allocQuantBuffers(nG, G, bitsIn));
      for (let g = 0; g < nG; g++) {
        unpackCodes(qIn.codes, g * formatFor(bitsIn).wordsPerGroup(G), G, bitsIn, a, 0);
        unpackCodes(sep, g * formatFor(bitsIn / 2).wordsPerGroup(G), G, bitsIn / 2, b, 0);
        for (let i = 0; i < G; i++) assert.equal(b[i], ersCode(a[i], bitsIn / 2));
      }
    }
  }
  const q = allocQuantBuffers(2, 128, 4);
  assert.throws(() => ersRows(q.codes, 2, q.scales, q.scales, 2, 128), QuantConfigError);
  assert.throws(() => ersRows(q.codes, 3, q.scales, q.scales, 2, 128), QuantConfigError);
  assert.throws(() => ersRows(q.codes, 4, q.scales, q.scales, 3, 128), TensorShapeError);
  assert.throws(() => ersRows(q.codes, 4, q.scales, q.scales, 2, 128, new Uint32Array(3)), TensorShapeError);
  assert.equal(f32ToBf16RNE(257), 0x4380);
});
