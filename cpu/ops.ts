/**
 * CPU kernels of the forward pass. f32 storage, f64 accumulation (JavaScript numbers).
 * Each function names the WGSL kernel that mirrors it (gpu/kernels/<same name>.wgsl).
 * @module
 */

/**
 * out[t, j] = Σ_k x[t, k]·w[j, k] (+ bias[j]).
 * x: [T, inDim], w: [outDim, inDim] (PyTorch nn.Linear layout), bias: [outDim] or null, out: [T, outDim].
 *
 * @example
 * ```ts
 * const out = new Float32Array(2);
 * matmul(out, new Float32Array([1, 2]), 1, 2, new Float32Array([1, 0, 0, 1]), 2, null); // out = [1, 2]
 * ```
 */
export function matmul(
  out: Float32Array,
  x: Float32Array,
  T: number,
  inDim: number,
  w: Float32Array,
  outDim: number,
  bias: Float32Array | null,
): void {
  let t = 0;
  // Four tokens at a time reuse each weight row from cache.
  for (; t + 4 <= T; t += 4) {
    const x0 = t * inDim, x1 = x0 + inDim, x2 = x1 + inDim, x3 = x2 + inDim;
    for (let j = 0; j < outDim; j++) {
      const wb = j * inDim;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0; k < inDim; k++) {
        const wk = w[wb + k];
        s0 += x[x0 + k] * wk;
        s1 += x[x1 + k] * wk;
        s2 += x[x2 + k] * wk;
        s3 += x[x3 + k] * wk;
      }
      const b = bias ? bias[j] : 0;
      out[t * outDim + j] = s0 + b;
      out[(t + 1) * outDim + j] = s1 + b;
      out[(t + 2) * outDim + j] = s2 + b;
      out[(t + 3) * outDim + j] = s3 + b;
    }
  }
  for (; t < T; t++) {
    const xb = t * inDim;
    let j = 0;
    // Two weight rows at a time share each x load; every row's sum runs in the same order as the loop below.
    for (; j + 2 <= outDim; j += 2) {
      const wb = j * inDim, wc = wb + inDim;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0, r0 = 0, r1 = 0, r2 = 0, r3 = 0;
      let k = 0;
      for (; k + 4 <= inDim; k += 4) {
        const x0 = x[xb + k], x1 = x[xb + k + 1], x2 = x[xb + k + 2], x3 = x[xb + k + 3];
        s0 += x0 * w[wb + k];
        s1 += x1 * w[wb + k + 1];
        s2 += x2 * w[wb + k + 2];
        s3 += x3 * w[wb + k + 3];
        r0 += x0 * w[wc + k];
        r1 += x1 * w[wc + k + 1];
        r2 += x2 * w[wc + k + 2];
        r3 += x3 * w[wc + k + 3];
      }
      for (; k < inDim; k++) {
        s0 += x[xb + k] * w[wb + k];
        r0 += x[xb + k] * w[wc + k];
      }
      out[t * outDim + j] = s0 + s1 + s2 + s3 + (bias ? bias[j] : 0);
      out[t * outDim + j + 1] = r0 + r1 + r2 + r3 + (bias ? bias[j + 1] : 0);
    }
    for (; j < outDim; j++) {
      const wb = j * inDim;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      let k = 0;
      for (; k + 4 <= inDim; k += 4) {
        s0 += x[xb + k] * w[wb + k];
        s1 += x[xb + k + 1] * w[wb + k + 1];
        s2 += x[xb + k + 2] * w[wb + k + 2];
        s3 += x[xb + k + 3] * w[wb + k + 3];
      }
      for (; k < inDim; k++) s0 += x[xb + k] * w[wb + k];
      out[t * outDim + j] = s0 + s1 + s2 + s3 + (bias ? bias[j] : 0);
    }
  }
}

/** RMSNorm: out[t] = x[t] / sqrt(mean(x[t]²) + eps) · weight. x, out: [T, dim], weight: [dim]. */
export function rmsnorm(
  out: Float32Array,
  x: Float32Array,
  T: number,
  dim: number,
  weight: Float32Array,
  eps: number,
): void {
  for (let t = 0; t < T; t++) {
    const b = t * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[b + i] * x[b + i];
    const r = 1 / Math.sqrt(Math.fround(ss / dim) + eps);
    for (let i = 0; i < dim; i++) out[b + i] = weight[i] * Math.fround(x[b + i] * r);
  }
}

/** SwiGLU in place: gate[i] = silu(gate[i])·up[i]. gate, up: [T, intermediate]. */
export function swiglu(gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    gate[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}

/** x[i] += y[i] for i < n. */
export function addInPlace(x: Float32Array, y: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) x[i] += y[i];
}
