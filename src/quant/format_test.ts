import assert from "node:assert/strict";
import { QuantConfigError } from "../errors.ts";
import { checkBits, formatFor, groupSizeFor, PACKED_FORMATS, QUANT_BITS } from "./format.ts";

Deno.test("PACKED_FORMATS matches the documented table", () => {
  const table: [number, number, number, number, number][] = [
    // bits, codesPerWord, mask, words(128), bytes(128)
    [16, 2, 0xffff, 64, 260],
    [8, 4, 0xff, 32, 132],
    [4, 8, 0xf, 16, 68],
    [2, 16, 0x3, 8, 36],
  ];
  assert.deepEqual([...QUANT_BITS], [16, 8, 4, 2]);
  for (const [bits, cpw, mask, words, bytes] of table) {
    const f = formatFor(bits);
    assert.equal(f, PACKED_FORMATS[bits as 16 | 8 | 4 | 2]);
    assert.equal(f.bits, bits);
    assert.equal(f.codesPerWord, cpw);
    assert.equal(f.mask, mask);
    assert.equal(f.qmax, 2 ** bits - 1);
    assert.equal(f.wordsPerGroup(128), words);
    assert.equal(f.bytesPerGroup(128), bytes);
    // 4 bytes per word + bf16 scale + bf16 zero, for other group sizes too.
    for (const G of [64, 80, 96, 112]) {
      assert.equal(f.wordsPerGroup(G), G * bits / 32);
      assert.equal(f.bytesPerGroup(G), G * bits / 8 + 4);
    }
  }
  // Padding when G is not a multiple of codesPerWord: the last word is partly used.
  assert.equal(PACKED_FORMATS[2].wordsPerGroup(72), 5);
  assert.equal(PACKED_FORMATS[2].bytesPerGroup(72), 24);
  assert.ok(Object.isFrozen(PACKED_FORMATS) && Object.isFrozen(PACKED_FORMATS[4]));
});

Deno.test("checkBits / formatFor reject unsupported widths, naming the value", () => {
  for (const b of [3, 1, 32, 0, -4, 2.5, NaN]) {
    assert.throws(
      () => checkBits(b),
      (e: unknown) => e instanceof QuantConfigError && e.message.includes(String(b)),
    );
    assert.throws(() => formatFor(b), QuantConfigError);
  }
  for (const b of [16, 8, 4, 2]) assert.equal(checkBits(b), b);
});

Deno.test("groupSizeFor: G = min(128, head_dim), head_dim % G == 0", () => {
  assert.equal(groupSizeFor(128), 128);
  assert.equal(groupSizeFor(64), 64);
  assert.equal(groupSizeFor(96), 96);
  assert.equal(groupSizeFor(80), 80);
  assert.equal(groupSizeFor(256), 128);
  for (const hd of [192, 160, 320]) {
    assert.throws(
      () => groupSizeFor(hd),
      (e: unknown) => e instanceof QuantConfigError && e.message.includes(String(hd)),
    );
  }
  for (const hd of [0, -128, 64.5, NaN]) assert.throws(() => groupSizeFor(hd), QuantConfigError);
  assert.throws(() => PACKED_FORMATS[4].wordsPerGroup(0), QuantConfigError);
});
