/**
 * Causal grouped-query attention of T new tokens over P cached tokens plus themselves (CPU; mirrored by
 * gpu/kernels/attention_*.wgsl). The new tokens attend with their EXACT keys/values; cached tokens are seen as
 * the cache dequantizes them.
 * @module
 */
import type { LayerView } from "../src/kv/cache.ts";

/**
 * out: [T, numHeads, headDim]; q: [T, numHeads, headDim] post-RoPE; past: P cached tokens;
 * kNew, vNew: [T, numKvHeads, headDim]; scores: scratch of at least P + T floats.
 * Query head h reads KV head floor(h / (numHeads / numKvHeads)) (Hugging Face `repeat_kv`).
 *
 * @example
 * ```ts
 * const out = new Float32Array(2);
 * attention(out, new Float32Array([1, 0]), { k: new Float32Array(0), v: new Float32Array(0), length: 0 },
 *   new Float32Array([1, 0]), new Float32Array([3, 4]), 1, 1, 1, 2, new Float64Array(1)); // out = [3, 4]
 * ```
 */
export function attention(
  out: Float32Array,
  q: Float32Array,
  past: LayerView,
  kNew: Float32Array,
  vNew: Float32Array,
  T: number,
  numHeads: number,
  numKvHeads: number,
  headDim: number,
  scores: Float64Array,
): void {
  const P = past.length;
  const group = numHeads / numKvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const kvStride = numKvHeads * headDim;
  const d4 = headDim - (headDim % 4);
  const acc = new Float64Array(headDim);
  if (group % 2 === 0 && T === 1) {
    // decode fast path: the two query heads of a pair share each key/value load; every head's sums run in
    // exactly the order of the general loop below (bit-identical results)
    pairDecode(out, q, past, kNew, vNew, numHeads, group, headDim, kvStride, d4, scale, scores);
    return;
  }
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < numHeads; h++) {
      const kvh = Math.floor(h / group);
      const qb = (t * numHeads + h) * headDim;
      const n = P + t + 1;
      let mx = -Infinity;
      // Scores over cached keys, then over the new tokens' exact keys (causal: up to t).
      for (let j = 0; j < n; j++) {
        const src = j < P ? past.k : kNew;
        const kb = (j < P ? j : j - P) * kvStride + kvh * headDim;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (let d = 0; d < d4; d += 4) {
          s0 += q[qb + d] * src[kb + d];
          s1 += q[qb + d + 1] * src[kb + d + 1];
          s2 += q[qb + d + 2] * src[kb + d + 2];
          s3 += q[qb + d + 3] * src[kb + d + 3];
        }
        for (let d = d4; d < headDim; d++) s0 += q[qb + d] * src[kb + d];
        const s = (s0 + s1 + s2 + s3) * scale;
        scores[j] = s;
        if (s > mx) mx = s;
      }
      let sum = 0;
      for (let j = 0; j < n; j++) {
        const e = Math.exp(scores[j] - mx);
        scores[j] = e;
        sum += e;
      }
      acc.fill(0);
      const inv = 1 / sum;
      for (let j = 0; j < n; j++) {
        const p = scores[j] * inv;
        const src = j < P ? past.v : vNew;
        const vb = (j < P ? j : j - P) * kvStride + kvh * headDim;
        for (let d = 0; d < headDim; d++) acc[d] += p * src[vb + d];
      }
      for (let d = 0; d < headDim; d++) out[qb + d] = acc[d];
    }
  }
}

/** T = 1, group even: heads h and h + 1 (same KV head) together. scores: [2, P + 1] (second row at P + 1). */
function pairDecode(
  out: Float32Array,
  q: Float32Array,
  past: LayerView,
  kNew: Float32Array,
  vNew: Float32Array,
  numHeads: number,
  group: number,
  headDim: number,
  kvStride: number,
  d4: number,
  scale: number,
  scores: Float64Array,
): void {
  const P = past.length;
  const n = P + 1;
  const sc = scores.length >= 2 * n ? scores : new Float64Array(2 * n);
  const accA = new Float64Array(headDim), accB = new Float64Array(headDim);
  for (let h = 0; h < numHeads; h += 2) {
    const kvh = Math.floor(h / group);
    const qa = h * headDim, qb = qa + headDim;
    let mxA = -Infinity, mxB = -Infinity;
    for (let j = 0; j < n; j++) {
      const src = j < P ? past.k : kNew;
      const kb = (j < P ? j : 0) * kvStride + kvh * headDim;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
      for (let d = 0; d < d4; d += 4) {
        const k0 = src[kb + d], k1 = src[kb + d + 1], k2 = src[kb + d + 2], k3 = src[kb + d + 3];
        a0 += q[qa + d] * k0;
        a1 += q[qa + d + 1] * k1;
        a2 += q[qa + d + 2] * k2;
        a3 += q[qa + d + 3] * k3;
        b0 += q[qb + d] * k0;
        b1 += q[qb + d + 1] * k1;
        b2 += q[qb + d + 2] * k2;
        b3 += q[qb + d + 3] * k3;
      }
      for (let d = d4; d < headDim; d++) {
        a0 += q[qa + d] * src[kb + d];
        b0 += q[qb + d] * src[kb + d];
      }
      const sa = (a0 + a1 + a2 + a3) * scale, sb = (b0 + b1 + b2 + b3) * scale;
      sc[j] = sa;
      sc[n + j] = sb;
      if (sa > mxA) mxA = sa;
      if (sb > mxB) mxB = sb;
    }
    let sumA = 0, sumB = 0;
    for (let j = 0; j < n; j++) {
      const ea = Math.exp(sc[j] - mxA), eb = Math.exp(sc[n + j] - mxB);
      sc[j] = ea;
      sc[n + j] = eb;
      sumA += ea;
      sumB += eb;
    }
    accA.fill(0);
    accB.fill(0);
    const invA = 1 / sumA, invB = 1 / sumB;
    for (let j = 0; j < n; j++) {
      const pa = sc[j] * invA, pb = sc[n + j] * invB;
      const src = j < P ? past.v : vNew;
      const vb = (j < P ? j : 0) * kvStride + kvh * headDim;
      for (let d = 0; d < headDim; d++) {
        const v = src[vb + d];
        accA[d] += pa * v;
        accB[d] += pb * v;
      }
    }
    for (let d = 0; d < headDim; d++) {
      out[qa + d] = accA[d];
      out[qb + d] = accB[d];
    }
  }
}
