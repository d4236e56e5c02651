import assert from "node:assert/strict";
import { NonFiniteError } from "../errors.ts";
import { bf16ToF32, bitsToF32, f32ToBf16Up, f32ToBits } from "./bf16.ts";
import { formatFor, QUANT_BITS } from "./format.ts";
import { quantizeGroup } from "./quantizer.ts";
import {
  type ApproxDiv,
  exactDivF32,
  gpuCode,
  gpuScaleBits,
  quantizeGroupGpuStyle,
  roundF32,
} from "./quantizer_gpu_style.ts";
import { mulberry32 } from "../sampling.ts";

const rng = mulberry32;

/** Move an f32 by k ulps (k may be negative), crossing zero and signs correctly. */
function addUlps(x: number, k: number): number {
  for (; k > 0; k--) x = x === 0 ? bitsToF32(1) : bitsToF32(x > 0 ? f32ToBits(x) + 1 : f32ToBits(x) - 1);
  for (; k < 0; k++) {
    x = x === 0 ? bitsToF32(0x80000001) : bitsToF32(x > 0 ? f32ToBits(x) - 1 : f32ToBits(x) + 1);
  }
  return x;
}

/** approxDiv returning the correctly rounded quotient moved by a seeded random −3..+3 ulps. */
function perturbedDiv(seed: number): ApproxDiv {
  const r = rng(seed);
  return (a, b) => addUlps(Math.fround(a / b), Math.floor(r() * 7) - 3);
}

/** A non-negative f32 as m·2^e. */
function f32Parts(x: number): [bigint, number] {
  const u = f32ToBits(x);
  const ef = (u >>> 23) & 0xff;
  const fr = u & 0x7fffff;
  return ef === 0 ? [BigInt(fr), -149] : [BigInt(fr | 0x800000), ef - 150];
}

/** roundHalfEven(num / den), exact rational; num ≥ 0, den > 0 f32 values. */
function exactCode(num: number, den: number): number {
  const [nm, ne] = f32Parts(num);
  const [dm, de] = f32Parts(den);
  let N = nm, D = dm;
  if (ne >= de) N <<= BigInt(ne - de);
  else D <<= BigInt(de - ne);
  let q = N / D;
  const r2 = 2n * (N - q * D);
  if (r2 > D || (r2 === D && (q & 1n) === 1n)) q++;
  return Number(q);
}

const randomBf16 = (r: () => number, a: number) => (128 + Math.floor(r() * 128)) * 2 ** (a - 7);

/** Test groups: varied magnitudes, signs, constants, exact ties and (k + 1/2)·S ± 1 ulp boundaries. */
function genGroup(r: () => number, G: number, bits: number, kind: number): Float32Array {
  const x = new Float32Array(G);
  const qmax = 2 ** bits - 1;
  const mag = 2 ** Math.floor(r() * 61 - 30);
  const bump = (t: number) => addUlps(Math.fround(t), Math.floor(r() * 3) - 1);
  switch (kind) {
    case 0: { // uniform around an offset, both signs
      const off = (r() - 0.5) * 4 * mag;
      for (let i = 0; i < G; i++) x[i] = off + (2 * r() - 1) * mag;
      break;
    }
    case 1: // outliers
      for (let i = 0; i < G; i++) x[i] = mag * Math.tan((r() - 0.5) * 3);
      break;
    case 2: { // constant, half the time bf16
      const c = (r() - 0.5) * 2 * mag;
      x.fill(r() < 0.5 ? bf16ToF32(f32ToBf16Up(c)) : c);
      break;
    }
    case 3: { // exact ties: S = 2^a, z = m·2^a, d = (k + 1/2)·2^a
      const S = 2 ** Math.floor(r() * 40 - 20);
      const m = Math.floor(r() * Math.min(qmax, 255));
      x[0] = -m * S;
      x[1] = (qmax - m) * S;
      for (let i = 2; i < G; i++) x[i] = (Math.floor(r() * qmax) + 0.5 - m) * S;
      break;
    }
    case 4: { // z = 0, S a random bf16, values (k + 1/2)·S and ± 1 ulp
      const S = randomBf16(r, Math.floor(r() * 40 - 20));
      x[0] = 0;
      x[1] = qmax * S;
      for (let i = 2; i < G; i++) x[i] = Math.min(qmax * S, bump((Math.floor(r() * qmax) + 0.5) * S));
      break;
    }
    case 5: { // z ≠ 0 (random bf16 of either sign), values (k + 1/2)·S − z ± 1 ulp
      const a = Math.floor(r() * 40 - 20);
      const S = randomBf16(r, a);
      const zv = (r() < 0.5 ? -1 : 1) * randomBf16(r, a + Math.floor(r() * (bits + 4)) - 2);
      x[0] = -zv;
      x[1] = Math.fround(qmax * S - zv);
      for (let i = 2; i < G; i++) {
        x[i] = Math.max(x[0], Math.min(x[1], bump((Math.floor(r() * qmax) + 0.5) * S - zv)));
      }
      break;
    }
    case 6: // tiny / zero / wide range / flushed
      for (let i = 0; i < G; i++) {
        const e = Math.floor(r() * 129 - 66);
        x[i] = (r() < 0.5 ? -1 : 1) * (r() + 0.5) * 2 ** e * (r() < 0.1 ? 0 : 1);
      }
      break;
    case 7: // near the 2^64 limit
      for (let i = 0; i < G; i++) x[i] = (r() < 0.5 ? -1 : 1) * (r() * 0.99 + 0.5) * 2 ** 63;
      break;
    default: { // narrow spread on a large offset (cancellation in x + z)
      const off = (r() < 0.5 ? -1 : 1) * mag * 1000;
      for (let i = 0; i < G; i++) x[i] = off + r() * mag * 1e-3;
    }
  }
  return x;
}

interface Tally {
  values: number;
  oracleChecked: number;
}

/** Quantize groups with both paths and compare every output bit. */
function compareMany(seed: number, minValues: number, div: ApproxDiv, oracleValues: number): Tally {
  const r = rng(seed);
  const tally: Tally = { values: 0, oracleChecked: 0 };
  let n = 0;
  while (tally.values < minValues) {
    const bits = QUANT_BITS[n % 4];
    const G = [128, 128, 96, 64][(n >> 2) % 4];
    const x = genGroup(r, G, bits, n % 9);
    n++;
    const fmt = formatFor(bits);
    const wpg = fmt.wordsPerGroup(G);
    const c1 = new Uint32Array(wpg), s1 = new Uint16Array(1), z1 = new Uint16Array(1);
    const c2 = new Uint32Array(wpg).fill(0xffffffff), s2 = new Uint16Array(1), z2 = new Uint16Array(1);
    quantizeGroup(x, 0, G, bits, c1, 0, s1, z1, 0);
    quantizeGroupGpuStyle(x, 0, G, bits, c2, 0, s2, z2, 0, div);
    assert.equal(s2[0], s1[0], `scale, group ${n}`);
    assert.equal(z2[0], z1[0], `zero, group ${n}`);
    for (let w = 0; w < wpg; w++) assert.equal(c2[w], c1[w], `codes word ${w}, group ${n}, bits ${bits}`);
    if (tally.oracleChecked < oracleValues) {
      // Independent check of the CPU reference on the boundary-heavy groups.
      const S = bf16ToF32(s1[0]);
      const z = bf16ToF32(z1[0]);
      for (let i = 0; i < G; i++) {
        const v = Math.abs(x[i]) < 2 ** -64 ? 0 : x[i];
        const q = (c1[Math.floor(i / fmt.codesPerWord)] >>> ((i % fmt.codesPerWord) * bits)) & fmt.mask;
        assert.equal(q, S === 0 ? 0 : exactCode(Math.fround(v + z), S));
      }
      tally.oracleChecked += G;
    }
    tally.values += G;
  }
  return tally;
}

Deno.test("GPU-style ≡ CPU reference, bit for bit, ≥ 1,000,000 values, exact division", () => {
  const t = compareMany(1, 1_000_000, exactDivF32, 100_000);
  assert.ok(t.values >= 1_000_000);
});

Deno.test("GPU-style ≡ CPU reference, ≥ 1,000,000 values, quotient perturbed by up to ±3 ulps", () => {
  const t = compareMany(1, 1_000_000, perturbedDiv(77), 0);
  assert.ok(t.values >= 1_000_000);
  // Always the extreme perturbation, in each direction.
  compareMany(2, 100_000, (a, b) => addUlps(Math.fround(a / b), 3), 0);
  compareMany(3, 100_000, (a, b) => addUlps(Math.fround(a / b), -3), 0);
});

Deno.test("GPU-style tolerates far larger quotient errors (relative 2^-19) than any GPU has", () => {
  const r = rng(4);
  const div: ApproxDiv = (a, b) => Math.fround((a / b) * (1 + (r() * 2 - 1) * 2 ** -19));
  compareMany(5, 200_000, div, 0);
});

Deno.test("gpuCode: correct for any approximation within ±1/4 of the quotient (the documented precondition)", () => {
  const r = rng(6);
  let inexact = 0;
  for (let n = 0; n < 200_000; n++) {
    const bits = QUANT_BITS[n % 4];
    const qmax = 2 ** bits - 1;
    const S = randomBf16(r, Math.floor(r() * 20 - 10));
    // d anywhere in [0, qmax·S], often within a few ulps of a half-integer multiple of S.
    let d = Math.fround(r() * qmax * S);
    if (n % 2 === 0) d = addUlps(Math.fround((Math.floor(r() * qmax) + 0.5) * S), Math.floor(r() * 9) - 4);
    if (n % 7 === 0) d = addUlps(Math.fround(0.5 * S), Math.floor(r() * 9) - 4); // around Q = 1/2
    if (!(d >= 0 && d <= qmax * S)) continue;
    const Q = d / S;
    const err = (r() * 2 - 1) / 4;
    const A = Math.fround(Q + err);
    const want = exactCode(d, S);
    assert.equal(gpuCode(d, S, qmax, () => A), want, `d=${d} S=${S} A=${A}`);
    // Without the guard, e = fl32(d − q0·S) is inexact only for q0 = 1 and Q < 1/2 (the hole in the
    // Sterbenz argument); with the guard (q0 := 0 there) it is always exact.
    const q0 = Math.min(qmax, Math.max(0, roundF32(A)));
    if (Math.fround(d - q0 * S) !== d - q0 * S) {
      inexact++;
      assert.ok(q0 === 1 && Q < 0.5, `inexact residual with q0=${q0}, Q=${Q}`);
    }
    const g0 = q0 === 1 && d < S * 0.5 ? 0 : q0;
    assert.equal(Math.fround(d - g0 * S), d - g0 * S, `guarded residual inexact: d=${d} S=${S} q0=${g0}`);
  }
  assert.ok(inexact > 0, "the inexact-residual corner was not exercised");
});

Deno.test("gpuCode: the inexact-residual corner (q0 = 1, d/S just below 1/2) still rounds correctly", () => {
  // S = 1, d = 0.5 − 2^-25 (largest f32 below 1/2); the approximate quotient says 0.5 + 2^-24, so q0 = 1.
  const d = 0.5 - 2 ** -25;
  const S = 1;
  assert.equal(Math.fround(d), d);
  const e = Math.fround(d - 1); // exact −0.5 − 2^-25 needs 25 bits: rounds (to even) to exactly −S/2
  assert.notEqual(e, d - 1);
  assert.equal(e, -0.5);
  // Unguarded, the tie rule would send q0 = 1 (odd) down to 0, correct by luck of ties-to-even; the
  // guard (d < S/2 → q0 = 0) makes e = d exact instead. Either way the code is 0.
  assert.equal(gpuCode(d, S, 3, () => 0.5 + 2 ** -24), 0);
  assert.equal(gpuCode(d, S, 3, () => 0.5 - 2 ** -25), 0);
  // The same for 16 bits and for other power-of-two scales.
  for (const a of [-20, -3, 0, 7, 30]) {
    const Sa = 2 ** a;
    assert.equal(gpuCode(d * Sa, Sa, 65535, () => 0.75), 0);
  }
});

Deno.test("gpuScaleBits finds the minimal bf16 scale from poor starting guesses", () => {
  const r = rng(8);
  for (let n = 0; n < 50_000; n++) {
    const qmax = 2 ** QUANT_BITS[n % 4] - 1;
    const rr = Math.fround(2 ** (r() * 100 - 50));
    const want = f32ToBf16Up(rr / qmax);
    const guess = Math.fround((rr / qmax) * (1 + (r() * 2 - 1) * 2 ** -10));
    assert.equal(gpuScaleBits(rr, qmax, () => guess), want);
  }
  assert.equal(gpuScaleBits(0, 255, exactDivF32), 0);
  assert.throws(() => gpuScaleBits(1, 3, () => 1e-3), /too inaccurate/);
});

Deno.test("GPU-style rejects the same inputs with the same NonFiniteError", () => {
  for (const v of [NaN, Infinity, -Infinity, 2 ** 64, -(2 ** 70)]) {
    const x = new Float32Array(128).fill(0.25);
    x[17] = v;
    const c = new Uint32Array(16), s = new Uint16Array(1), z = new Uint16Array(1);
    let m1 = "", m2 = "";
    try {
      quantizeGroup(x, 0, 128, 4, c, 0, s, z, 0);
    } catch (e) {
      assert.ok(e instanceof NonFiniteError);
      m1 = e.message;
    }
    try {
      quantizeGroupGpuStyle(x, 0, 128, 4, c, 0, s, z, 0, exactDivF32);
    } catch (e) {
      assert.ok(e instanceof NonFiniteError);
      m2 = e.message;
    }
    assert.ok(m1.includes("index 17") && m1 === m2, `${m1} / ${m2}`);
  }
  // Denormal inputs are flushed by the exponent test exactly as by |x| < 2^-64.
  const x = new Float32Array([bitsToF32(1), -bitsToF32(5), 1, -1]);
  const c1 = new Uint32Array(1), c2 = new Uint32Array(1);
  const s1 = new Uint16Array(1), s2 = new Uint16Array(1), z1 = new Uint16Array(1), z2 = new Uint16Array(1);
  quantizeGroup(x, 0, 4, 8, c1, 0, s1, z1, 0);
  quantizeGroupGpuStyle(x, 0, 4, 8, c2, 0, s2, z2, 0);
  assert.deepEqual([c1[0], s1[0], z1[0]], [c2[0], s2[0], z2[0]]);
});
