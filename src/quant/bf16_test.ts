import assert from "node:assert/strict";
import {
  bf16NextDown,
  bf16NextUp,
  bf16ToF32,
  bitsToF32,
  f32BitsToBf16RNE,
  f32BitsToBf16Up,
  f32ToBf16RNE,
  f32ToBf16Up,
  f32ToBits,
} from "./bf16.ts";
import { mulberry32 } from "../sampling.ts";

/** Seeded PRNG (mulberry32). */
const rng = mulberry32;

const isNaNBf16 = (b: number) => (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;

/** All non-NaN bf16 values, sorted ascending, ±0 merged into +0. */
function sortedBf16Values(): number[] {
  const vals = new Set<number>();
  for (let b = 0; b < 65536; b++) if (!isNaNBf16(b)) vals.add(bf16ToF32(b) + 0); // -0 + 0 = +0
  return [...vals].sort((a, b) => a - b);
}

Deno.test("bf16ToF32 is the upper half of the f32 bits (exhaustive)", () => {
  for (let b = 0; b < 65536; b++) {
    const v = bf16ToF32(b);
    if (isNaNBf16(b)) {
      assert.ok(Number.isNaN(v));
      continue;
    }
    assert.equal(f32ToBits(v), (b << 16) >>> 0);
  }
});

Deno.test("RNE and Up are the identity on every bf16 value (exhaustive; -0 → +0 for Up)", () => {
  for (let b = 0; b < 65536; b++) {
    const v = bf16ToF32(b);
    if (isNaNBf16(b)) {
      assert.ok(isNaNBf16(f32ToBf16RNE(v)));
      assert.ok(isNaNBf16(f32ToBf16Up(v)));
      continue;
    }
    assert.equal(f32ToBf16RNE(v), b);
    assert.equal(f32ToBf16Up(v), b === 0x8000 ? 0 : b);
  }
});

Deno.test("bf16NextUp / bf16NextDown step to the adjacent value (exhaustive)", () => {
  const sorted = sortedBf16Values();
  const index = new Map<number, number>();
  sorted.forEach((v, i) => index.set(v, i));
  for (let b = 0; b < 65536; b++) {
    if (isNaNBf16(b)) {
      assert.equal(bf16NextUp(b), b);
      assert.equal(bf16NextDown(b), b);
      continue;
    }
    const i = index.get(bf16ToF32(b) + 0)!;
    const up = bf16NextUp(b);
    const down = bf16NextDown(b);
    if (i === sorted.length - 1) assert.equal(up, 0x7f80);
    else assert.equal(bf16ToF32(up), sorted[i + 1]);
    if (i === 0) assert.equal(down, 0xff80);
    else assert.equal(bf16ToF32(down), sorted[i - 1]);
    assert.notEqual(up, 0x8000);
    assert.notEqual(down, 0x8000);
  }
});

/** Independent references via the two bf16 neighbours of an f32 (distances exact in f64). */
function neighbours(x: number): [number, number] {
  const u = f32ToBits(x);
  const t = u >>> 16; // truncation toward zero
  const lo = bf16ToF32(t);
  const away = bf16ToF32(t + 1); // one more magnitude step (sign kept)
  return x >= 0 ? [lo, away] : [away, lo];
}

function checkRandomF32(x: number): void {
  const [below, above] = neighbours(x); // below ≤ x ≤ above, adjacent bf16 values
  assert.ok(below <= x && x <= above, `${x}: ${below} ${above}`);
  // Up: smallest bf16 ≥ x.
  const up = bf16ToF32(f32ToBf16Up(x));
  assert.equal(up + 0, (below === x ? below : above) + 0); // Up returns canonical +0 for zeros
  // RNE: nearest, ties to even fraction.
  const rne = f32ToBf16RNE(x);
  const dl = x - below, da = above - x; // exact in f64
  let want: number;
  if (dl < da) want = below;
  else if (da < dl) want = above;
  else want = ((f32ToBits(below) >>> 16) & 1) === 0 ? below : above;
  assert.equal(bf16ToF32(rne), want, `RNE(${x})`);
}

Deno.test("random f32: RNE is nearest-even and Up is the smallest bf16 ≥ x", () => {
  const r = rng(12345);
  for (let n = 0; n < 200_000; n++) {
    let u = Math.floor(r() * 2 ** 32) >>> 0;
    if (n % 4 === 0) u = (u & 0xffff0000) | 0x8000; // exact ties
    if (((u >>> 23) & 0xff) === 0xff) continue; // NaN/Inf separately
    const x = bitsToF32(u);
    if (Math.abs(x) > 3.3895313892515355e38) continue; // above max bf16: overflow cases below
    checkRandomF32(x);
  }
});

Deno.test("special values: NaN, ±Inf, overflow, ±0, tiny", () => {
  assert.ok(isNaNBf16(f32ToBf16RNE(NaN)));
  assert.ok(isNaNBf16(f32ToBf16Up(NaN)));
  assert.ok(isNaNBf16(f32BitsToBf16RNE(0x7f800001))); // signalling NaN stays NaN (not Inf)
  assert.ok(isNaNBf16(f32BitsToBf16Up(0xff800001)));
  assert.equal(f32ToBf16RNE(Infinity), 0x7f80);
  assert.equal(f32ToBf16RNE(-Infinity), 0xff80);
  assert.equal(f32ToBf16Up(Infinity), 0x7f80);
  assert.equal(f32ToBf16Up(-Infinity), 0xff80);
  assert.equal(f32BitsToBf16RNE(0x7f7fffff), 0x7f80); // max f32 rounds to +Inf
  assert.equal(f32BitsToBf16Up(0x7f7fffff), 0x7f80);
  assert.equal(f32BitsToBf16Up(0xff7fffff), 0xff7f); // -max f32 rounds up to -max bf16
  assert.equal(f32ToBf16Up(-0), 0);
  assert.equal(f32ToBf16Up(0), 0);
  assert.equal(f32BitsToBf16Up(0x80000001), 0); // -tiny rounds up to (+)0
  assert.equal(f32BitsToBf16Up(0x00000001), 0x0001);
  assert.equal(f32ToBf16RNE(-0), 0x8000);
});

Deno.test("f32ToBf16Up on f64 inputs is the true directed rounding", () => {
  const r = rng(7);
  for (let n = 0; n < 50_000; n++) {
    const x = (r() - 0.5) * 2 ** Math.floor(r() * 120 - 60);
    const b = f32ToBf16Up(x);
    const v = bf16ToF32(b);
    assert.ok(v >= x, `${x} → ${v}`);
    assert.ok(bf16ToF32(bf16NextDown(b)) < x, `${x}: not the smallest`);
  }
  // A double just above a bf16 value must round to the next bf16 even though fround(x) == that value.
  const x = 1 + 2 ** -40;
  assert.equal(Math.fround(x), 1);
  assert.equal(f32ToBf16Up(x), 0x3f81);
  assert.equal(f32ToBf16Up(-1 - 2 ** -40), 0xbf80);
  assert.equal(f32ToBf16Up(3.4e38 * 1.0001), 0x7f80);
});
