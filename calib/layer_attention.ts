/**
 * One decoder layer's self-attention in isolation, on the CPU kernels of the forward pass (cpu/ops.ts,
 * cpu/attention.ts): input hidden states → RMSNorm → q/k/v (+bias) → RoPE, and causal attention → o_proj for
 * chosen query rows. Used by the α search and the positional-interpolation study.
 *
 * @example
 * ```ts
 * const { q, k, v } = projectQKV(model, 0, h, T, positions);
 * const out = attentionOutput(model, 0, q, k, v, T); // [T, hidden], the layer's attention output
 * ```
 * @module
 */
import type { LoadedModel } from "../src/model/types.ts";
import { matmul, rmsnorm } from "../cpu/ops.ts";
import { attention } from "../cpu/attention.ts";
import { applyRope, ropeInvFreq, ropeTable } from "../src/model/rope.ts";
import { InputError } from "../src/errors.ts";

/** Post-RoPE queries [T, numHeads, D], keys and values [T, numKvHeads, D]. */
export interface QKV {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
}

/**
 * q, k, v of `layer` for input hidden states `h` [T, hidden] at `positions`, computed exactly as
 * CpuForward.forward computes them (same kernels, same rounding).
 *
 * @example
 * ```ts
 * const { q, k, v } = projectQKV(model, 2, h, 512, stretchedPositions(512, 4));
 * ```
 */
export function projectQKV(
  model: LoadedModel,
  layer: number,
  h: Float32Array,
  T: number,
  positions: ArrayLike<number>,
): QKV {
  const c = model.config, L = model.weights.layers[layer];
  const H = c.hiddenSize, nH = c.numHeads, nKv = c.numKvHeads, D = c.headDim;
  if (positions.length !== T) {
    throw new InputError(`positions has ${positions.length} entries for ${T} tokens`);
  }
  if (h.length < T * H) throw new InputError(`hidden states hold ${h.length} values, ${T}·${H} needed`);
  const xn = new Float32Array(T * H);
  rmsnorm(xn, h, T, H, L.inputNorm, c.rmsNormEps);
  const q = new Float32Array(T * nH * D),
    k = new Float32Array(T * nKv * D),
    v = new Float32Array(T * nKv * D);
  matmul(q, xn, T, H, L.q, nH * D, L.qBias);
  matmul(k, xn, T, H, L.k, nKv * D, L.kBias);
  matmul(v, xn, T, H, L.v, nKv * D, L.vBias);
  const { cos, sin } = ropeTable(ropeInvFreq(c), positions);
  applyRope(q, T, nH, D, cos, sin);
  applyRope(k, T, nKv, D, cos, sin);
  return { q, k, v };
}

/**
 * The query rows 0, 1, …, T−1 (all) or, with `stride` > 1, T−1, T−1−stride, … (ascending), so the last token is
 * always included.
 *
 * @example
 * ```ts
 * queryRows(10, 4); // [1, 5, 9]
 * ```
 */
export function queryRows(T: number, stride = 1): number[] {
  if (!Number.isInteger(stride) || stride < 1) {
    throw new InputError(`query stride ${stride} must be an integer >= 1`);
  }
  const rows: number[] = [];
  for (let t = T - 1; t >= 0; t -= stride) rows.push(t);
  return rows.reverse();
}

/**
 * Causal attention of the tokens at `rows` (each over keys 0..row) followed by o_proj: [rows.length, hidden].
 * q [T, numHeads, D], k, v [T, numKvHeads, D], all post-RoPE. Without `rows`, every token.
 *
 * @example
 * ```ts
 * const last = attentionOutput(model, 0, q, k, v, T, [T - 1]); // [1, hidden]
 * ```
 */
export function attentionOutput(
  model: LoadedModel,
  layer: number,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  T: number,
  rows?: readonly number[],
): Float32Array {
  const c = model.config;
  const nH = c.numHeads, nKv = c.numKvHeads, D = c.headDim, H = c.hiddenSize;
  const qRow = nH * D, kvRow = nKv * D;
  let att: Float32Array;
  let n: number;
  if (!rows) {
    n = T;
    att = new Float32Array(T * qRow);
    attention(
      att,
      q,
      { k: new Float32Array(0), v: new Float32Array(0), length: 0 },
      k,
      v,
      T,
      nH,
      nKv,
      D,
      new Float64Array(T),
    );
  } else {
    n = rows.length;
    att = new Float32Array(n * qRow);
    const scores = new Float64Array(T);
    rows.forEach((t, i) => {
      if (!Number.isInteger(t) || t < 0 || t >= T) {
        throw new InputError(`query row ${t} is outside [0, ${T})`);
      }
      const past = { k: k.subarray(0, t * kvRow), v: v.subarray(0, t * kvRow), length: t };
      attention(
        att.subarray(i * qRow, (i + 1) * qRow),
        q.subarray(t * qRow, (t + 1) * qRow),
        past,
        k.subarray(t * kvRow, (t + 1) * kvRow),
        v.subarray(t * kvRow, (t + 1) * kvRow),
        1,
        nH,
        nKv,
        D,
        scores,
      );
    });
  }
  const out = new Float32Array(n * H);
  matmul(out, att, n, qRow, model.weights.layers[layer].o, H, null);
  return out;
}
