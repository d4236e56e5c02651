import assert from "node:assert/strict";
import { TensorShapeError } from "../errors.ts";
import { decodeBf16, decodeF16, decodeF32, decodeToF32, dtypeItemSize, f16BitsToF32 } from "./dtype.ts";

/** Reference f16 decoding straight from the IEEE 754 definition. */
function refF16(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Little-endian u16 bytes at `offset` inside a larger buffer (offset 1 makes the view unaligned). */
function u16Bytes(values: number[], offset = 0): Uint8Array {
  const buf = new Uint8Array(offset + values.length * 2);
  const dv = new DataView(buf.buffer);
  values.forEach((v, i) => dv.setUint16(offset + 2 * i, v, true));
  return buf.subarray(offset);
}

Deno.test("dtype: item sizes", () => {
  assert.equal(dtypeItemSize("BF16"), 2);
  assert.equal(dtypeItemSize("F16"), 2);
  assert.equal(dtypeItemSize("F32"), 4);
});

Deno.test("dtype: f16 special values (zero, subnormal, normal, max, inf, nan)", () => {
  const cases: [number, number][] = [
    [0x0000, 0],
    [0x0001, 2 ** -24],
    [0x03ff, 1023 * 2 ** -24],
    [0x0400, 2 ** -14],
    [0x3c00, 1],
    [0x3555, 0.333251953125],
    [0xc000, -2],
    [0x7bff, 65504],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ];
  for (const [h, v] of cases) assert.equal(f16BitsToF32(h), v, `0x${h.toString(16)}`);
  assert.ok(Object.is(f16BitsToF32(0x8000), -0));
  assert.ok(Object.is(f16BitsToF32(0x8001), -(2 ** -24)));
  assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
  assert.ok(Number.isNaN(f16BitsToF32(0xfc01)));
});

Deno.test("dtype: decodeF16 matches the IEEE definition for all 65536 patterns, aligned and unaligned", () => {
  const all = Array.from({ length: 65536 }, (_, i) => i);
  for (const offset of [0, 1]) {
    const out = decodeF16(u16Bytes(all, offset));
    for (let h = 0; h < 65536; h++) {
      const want = refF16(h);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(out[h]), `0x${h.toString(16)}`);
      else if (out[h] !== want || Object.is(want, -0) !== Object.is(out[h], -0)) {
        assert.fail(`f16 0x${h.toString(16)} (offset ${offset}): got ${out[h]}, want ${want}`);
      }
    }
  }
});

Deno.test("dtype: decodeBf16 is the upper half of f32, aligned and unaligned", () => {
  const f = new Float32Array([1, -2, 0.5, 3.140625, -0, Infinity, 1e-40]);
  const u = new Uint32Array(f.buffer);
  const halves = Array.from(u, (x) => x >>> 16);
  for (const offset of [0, 1, 3]) {
    const out = decodeBf16(u16Bytes(halves, offset));
    const outBits = new Uint32Array(out.buffer);
    for (let i = 0; i < f.length; i++) assert.equal(outBits[i], (u[i] & 0xffff0000) >>> 0);
  }
  assert.deepEqual(Array.from(decodeBf16(new Uint8Array([0x80, 0x3f, 0x00, 0xc0]))), [1, -2]);
  assert.ok(Number.isNaN(decodeBf16(u16Bytes([0x7fc0]))[0]));
});

Deno.test("dtype: decodeF32 copies bytes at any alignment", () => {
  const src = new Float32Array([1.5, -7, 1e-45, NaN]);
  for (const offset of [0, 1, 2]) {
    const buf = new Uint8Array(offset + 16);
    buf.set(new Uint8Array(src.buffer), offset);
    const out = decodeF32(buf.subarray(offset));
    assert.deepEqual(new Uint32Array(out.buffer), new Uint32Array(src.buffer));
    assert.notEqual(out.buffer, buf.buffer);
  }
});

Deno.test("dtype: decodeToF32 dispatches and rejects partial elements", () => {
  assert.deepEqual(Array.from(decodeToF32(new Uint8Array([0x00, 0x3c]), "F16")), [1]);
  assert.deepEqual(Array.from(decodeToF32(new Uint8Array([0x80, 0x3f]), "BF16")), [1]);
  assert.deepEqual(Array.from(decodeToF32(new Uint8Array([0, 0, 0x80, 0x3f]), "F32")), [1]);
  assert.equal(decodeToF32(new Uint8Array(0), "BF16").length, 0);
  assert.throws(
    () => decodeBf16(new Uint8Array(3)),
    (e) => e instanceof TensorShapeError && /BF16.*3 bytes/.test(e.message),
  );
  assert.throws(
    () => decodeF32(new Uint8Array(6)),
    (e) => e instanceof TensorShapeError && /F32.*6 bytes/.test(e.message),
  );
});
