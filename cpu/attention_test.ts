import assert from "node:assert/strict";
import { attention } from "./attention.ts";

function rand(seed: number, n: number): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

/** One query head at a time through the general loop (group 1): the reference for the paired decode path. */
function headByHead(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  P: number,
  kn: Float32Array,
  vn: Float32Array,
  nH: number,
  nKv: number,
  D: number,
): Float32Array {
  const out = new Float32Array(nH * D);
  const pick = (src: Float32Array, rows: number, kvh: number) => {
    const r = new Float32Array(rows * D);
    for (let j = 0; j < rows; j++) r.set(src.subarray((j * nKv + kvh) * D, (j * nKv + kvh + 1) * D), j * D);
    return r;
  };
  for (let h = 0; h < nH; h++) {
    const kvh = Math.floor(h / (nH / nKv));
    const o = new Float32Array(D);
    attention(
      o,
      q.subarray(h * D, (h + 1) * D),
      { k: pick(k, P, kvh), v: pick(v, P, kvh), length: P } as never,
      pick(kn, 1, kvh),
      pick(vn, 1, kvh),
      1,
      1,
      1,
      D,
      new Float64Array(P + 1),
    );
    out.set(o, h * D);
  }
  return out;
}

Deno.test("attention: the paired-head decode path is bit-identical to the general loop", () => {
  for (
    const [nH, nKv, D, P] of [[4, 2, 128, 300], [8, 2, 64, 37], [32, 8, 128, 65], [2, 1, 13, 9], [
      6,
      3,
      10,
      0,
    ]]
  ) {
    const q = rand(1, nH * D), k = rand(2, P * nKv * D), v = rand(3, P * nKv * D);
    const kn = rand(4, nKv * D), vn = rand(5, nKv * D);
    const got = new Float32Array(nH * D);
    attention(got, q, { k, v, length: P } as never, kn, vn, 1, nH, nKv, D, new Float64Array(P + 1));
    const want = headByHead(q, k, v, P, kn, vn, nH, nKv, D);
    assert.deepEqual(got, want, `nH ${nH} nKv ${nKv} D ${D} P ${P}`);
  }
});
