/**
 * Gradients of the language-model loss with respect to every layer's KV cache content (CPU, f64).
 *
 * What is differentiated: the mean next-token cross-entropy of one window of T tokens,
 *   L = −(1 / (T−1)) Σ_{t=0}^{T−2} log softmax(logits_t)[ids[t+1]]
 * (Hugging Face `labels = input_ids`), with respect to
 *   K_l: layer l's POST-RoPE keys   [T, numKvHeads, headDim] (token-major, as cpu/forward.ts caches them),
 *   V_l: layer l's v_proj output    [T, numKvHeads, headDim].
 * Only activations are differentiated, never weights. The backward runs through the LM head, the final RMSNorm
 * and, layer by layer from the last, the SwiGLU MLP, the post-attention RMSNorm, the residuals, o_proj, causal
 * GQA softmax attention (to q, K and V), RoPE (transposed rotation), the q/k/v projections and the input
 * RMSNorm, stopping at the embeddings. dL/dK_l is the gradient reaching K_l through layer l's attention with
 * every later layer accounted for through the residual stream (full chain rule).
 *
 * Numerics: the forward is recomputed in f64 from the f32 weights (cpu/forward.ts stores f32), so the loss agrees
 * with the inference forward to ~1e-6 and finite differences can check the gradients to ~1e-8. Attention maps are
 * never stored: the backward recomputes each layer's scores from the saved q, K and the per-row log-sum-exp.
 * Memory: the saved activations are ~(2·hidden + 2·q + 2·kv + 2·intermediate)·8 bytes per token per layer
 * (tiny-lm, T = 2048: ~430 MB), plus a transposed f32 copy of the weights, made once per model and kept in a
 * WeakMap keyed by the weight arrays.
 *
 * @example
 * ```ts
 * import { kvGradients } from "./grad.ts";
 * import { loadModel } from "../src/model/load.ts";
 * const model = await loadModel("models/tiny-lm");
 * const ids = [85, 296, 1024, 7, 99];
 * const g = kvGradients(model, ids, ids.map((_, i) => 4 * i)); // positions stretched by s = 4
 * console.log(g.loss, g.dk[0].length === g.k[0].length);
 * ```
 * @module
 */
import type { LayerWeights, LoadedModel } from "../src/model/types.ts";
import { ropeInvFreq, ropeTable } from "../src/model/rope.ts";
import { InputError, NonFiniteError } from "../src/errors.ts";

/**
 * A change to one layer's post-RoPE K or V before attention (finite-difference and Taylor tests): either
 * `delta` added to the element at flat `index`, or a whole tensor `deltas` [T, numKvHeads, headDim] added.
 */
export type KvPerturbation =
  | {
    layer: number;
    kind: "k" | "v"; /** Flat index into [T, numKvHeads, headDim]. */
    index: number;
    delta: number;
  }
  | { layer: number; kind: "k" | "v"; deltas: Float64Array };

/** Options of {@link kvLoss} and {@link kvGradients}. */
export interface KvGradOptions {
  perturb?: KvPerturbation;
}

/** The loss of a window, the K/V it produced, and dL/dK, dL/dV per layer (all [T, numKvHeads, headDim]). */
export interface KvGradients {
  /** Mean next-token cross-entropy over positions 0..T−2 (nats). */
  loss: number;
  /** Post-RoPE keys per layer. */
  k: Float64Array[];
  /** Values (v_proj output, bias included) per layer. */
  v: Float64Array[];
  /** dL/dK_l per layer. */
  dk: Float64Array[];
  /** dL/dV_l per layer. */
  dv: Float64Array[];
}

// ---------------------------------------------------------------------------------------------------------
// Kernels (f64 activations, f32 weights in PyTorch [out, in] layout)

/**
 * out[t, j] (+)= Σ_k x[t, k]·w[j, k] (+ bias[j]); x: [T, inDim], w: [outDim, inDim].
 * With `w` a transposed weight this is the input gradient dx = dy·W of a linear layer.
 */
function linear(
  out: Float64Array,
  x: Float64Array,
  T: number,
  inDim: number,
  w: Float32Array,
  outDim: number,
  bias: Float32Array | null,
  accumulate: boolean,
): void {
  let t = 0;
  // 4 tokens × 2 outputs per block: each loaded weight and input value is used 4 or 2 times from registers.
  for (; t + 4 <= T; t += 4) {
    const x0 = t * inDim, x1 = x0 + inDim, x2 = x1 + inDim, x3 = x2 + inDim;
    const o0 = t * outDim, o1 = o0 + outDim, o2 = o1 + outDim, o3 = o2 + outDim;
    let j = 0;
    for (; j + 2 <= outDim; j += 2) {
      const wa = j * inDim, wb = wa + inDim;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
      for (let k = 0; k < inDim; k++) {
        const u = w[wa + k], v = w[wb + k];
        const y0 = x[x0 + k], y1 = x[x1 + k], y2 = x[x2 + k], y3 = x[x3 + k];
        a0 += y0 * u;
        a1 += y1 * u;
        a2 += y2 * u;
        a3 += y3 * u;
        b0 += y0 * v;
        b1 += y1 * v;
        b2 += y2 * v;
        b3 += y3 * v;
      }
      const ba = bias ? bias[j] : 0, bb = bias ? bias[j + 1] : 0;
      out[o0 + j] = (accumulate ? out[o0 + j] : 0) + a0 + ba;
      out[o1 + j] = (accumulate ? out[o1 + j] : 0) + a1 + ba;
      out[o2 + j] = (accumulate ? out[o2 + j] : 0) + a2 + ba;
      out[o3 + j] = (accumulate ? out[o3 + j] : 0) + a3 + ba;
      out[o0 + j + 1] = (accumulate ? out[o0 + j + 1] : 0) + b0 + bb;
      out[o1 + j + 1] = (accumulate ? out[o1 + j + 1] : 0) + b1 + bb;
      out[o2 + j + 1] = (accumulate ? out[o2 + j + 1] : 0) + b2 + bb;
      out[o3 + j + 1] = (accumulate ? out[o3 + j + 1] : 0) + b3 + bb;
    }
    for (; j < outDim; j++) {
      const wa = j * inDim;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (let k = 0; k < inDim; k++) {
        const u = w[wa + k];
        a0 += x[x0 + k] * u;
        a1 += x[x1 + k] * u;
        a2 += x[x2 + k] * u;
        a3 += x[x3 + k] * u;
      }
      const ba = bias ? bias[j] : 0;
      out[o0 + j] = (accumulate ? out[o0 + j] : 0) + a0 + ba;
      out[o1 + j] = (accumulate ? out[o1 + j] : 0) + a1 + ba;
      out[o2 + j] = (accumulate ? out[o2 + j] : 0) + a2 + ba;
      out[o3 + j] = (accumulate ? out[o3 + j] : 0) + a3 + ba;
    }
  }
  for (; t < T; t++) {
    const xb = t * inDim, ob = t * outDim;
    for (let j = 0; j < outDim; j++) {
      const wb = j * inDim;
      let s0 = 0, s1 = 0;
      let k = 0;
      for (; k + 2 <= inDim; k += 2) {
        s0 += x[xb + k] * w[wb + k];
        s1 += x[xb + k + 1] * w[wb + k + 1];
      }
      for (; k < inDim; k++) s0 += x[xb + k] * w[wb + k];
      out[ob + j] = (accumulate ? out[ob + j] : 0) + s0 + s1 + (bias ? bias[j] : 0);
    }
  }
}

const transposes = new WeakMap<Float32Array, Float32Array>();

/** w [rows, cols] → [cols, rows], cached per weight array. */
function transposed(w: Float32Array, rows: number, cols: number): Float32Array {
  let t = transposes.get(w);
  if (!t) {
    t = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      const rb = r * cols;
      for (let c = 0; c < cols; c++) t[c * rows + r] = w[rb + c];
    }
    transposes.set(w, t);
  }
  return t;
}

/** RMSNorm forward: out = w ⊙ x·r with r[t] = 1/sqrt(mean(x[t]²) + eps), r saved. */
function rmsnormFwd(
  out: Float64Array,
  r: Float64Array,
  x: Float64Array,
  T: number,
  dim: number,
  w: Float32Array,
  eps: number,
): void {
  for (let t = 0; t < T; t++) {
    const b = t * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[b + i] * x[b + i];
    const rt = 1 / Math.sqrt(ss / dim + eps);
    r[t] = rt;
    for (let i = 0; i < dim; i++) out[b + i] = w[i] * x[b + i] * rt;
  }
}

/** RMSNorm backward, accumulated: dx += r·(w⊙dy) − (r³/dim)·((w⊙dy)·x)·x. */
function rmsnormBackAdd(
  dx: Float64Array,
  dy: Float64Array,
  x: Float64Array,
  r: Float64Array,
  T: number,
  dim: number,
  w: Float32Array,
): void {
  for (let t = 0; t < T; t++) {
    const b = t * dim;
    const rt = r[t];
    let dot = 0;
    for (let i = 0; i < dim; i++) dot += w[i] * dy[b + i] * x[b + i];
    const c = (rt * rt * rt * dot) / dim;
    for (let i = 0; i < dim; i++) dx[b + i] += rt * w[i] * dy[b + i] - c * x[b + i];
  }
}

/** RoPE (Hugging Face rotate_half) in place on x [T, heads, D]; `inverse` applies the transpose (backward). */
function rope(
  x: Float64Array,
  T: number,
  heads: number,
  D: number,
  cos: Float32Array,
  sin: Float32Array,
  inverse: boolean,
): void {
  const half = D / 2;
  for (let t = 0; t < T; t++) {
    const cb = t * half;
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * D;
      for (let i = 0; i < half; i++) {
        const c = cos[cb + i], s = inverse ? -sin[cb + i] : sin[cb + i];
        const a = x[base + i], b = x[base + i + half];
        x[base + i] = a * c - b * s;
        x[base + i + half] = b * c + a * s;
      }
    }
  }
}

interface AttnDims {
  T: number;
  nH: number;
  nKv: number;
  D: number;
}

/** Causal GQA attention forward: out [T, nH, D], lse [T, nH] (log-sum-exp of the scaled scores). */
function attnFwd(
  out: Float64Array,
  lse: Float64Array,
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  d: AttnDims,
): void {
  const { T, nH, nKv, D } = d;
  const group = nH / nKv;
  const scale = 1 / Math.sqrt(D);
  const kvS = nKv * D;
  const s = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nH; h++) {
      const kvo = Math.floor(h / group) * D;
      const qb = (t * nH + h) * D;
      let mx = -Infinity;
      for (let j = 0; j <= t; j++) {
        const kb = j * kvS + kvo;
        let a0 = 0, a1 = 0, a2 = 0, a3 = 0; // independent partial sums: the loop is not add-latency bound
        let e = 0;
        for (; e + 4 <= D; e += 4) {
          a0 += q[qb + e] * k[kb + e];
          a1 += q[qb + e + 1] * k[kb + e + 1];
          a2 += q[qb + e + 2] * k[kb + e + 2];
          a3 += q[qb + e + 3] * k[kb + e + 3];
        }
        for (; e < D; e++) a0 += q[qb + e] * k[kb + e];
        const a = (a0 + a1 + a2 + a3) * scale;
        s[j] = a;
        if (a > mx) mx = a;
      }
      let sum = 0;
      for (let j = 0; j <= t; j++) {
        const p = Math.exp(s[j] - mx);
        s[j] = p;
        sum += p;
      }
      for (let e = 0; e < D; e++) out[qb + e] = 0;
      const inv = 1 / sum;
      for (let j = 0; j <= t; j++) {
        const p = s[j] * inv;
        const vb = j * kvS + kvo;
        for (let e = 0; e < D; e++) out[qb + e] += p * v[vb + e];
      }
      lse[t * nH + h] = mx + Math.log(sum);
    }
  }
}

/**
 * Causal GQA attention backward, recomputing probabilities from q, K and the saved log-sum-exp:
 * ds_j = p_j·(dO·v_j − dO·O), dq = scale·Σ ds_j k_j, dk_j += scale·ds_j q, dv_j += p_j dO. Overwrites dq, dk, dv.
 */
function attnBack(
  dq: Float64Array,
  dk: Float64Array,
  dv: Float64Array,
  dO: Float64Array,
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  O: Float64Array,
  lse: Float64Array,
  d: AttnDims,
): void {
  const { T, nH, nKv, D } = d;
  const group = nH / nKv;
  const scale = 1 / Math.sqrt(D);
  const kvS = nKv * D;
  dq.fill(0);
  dk.fill(0);
  dv.fill(0);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nH; h++) {
      const kvo = Math.floor(h / group) * D;
      const qb = (t * nH + h) * D;
      const m = lse[t * nH + h];
      let Dt = 0;
      for (let e = 0; e < D; e++) Dt += dO[qb + e] * O[qb + e];
      for (let j = 0; j <= t; j++) {
        const kb = j * kvS + kvo;
        let a0 = 0, a1 = 0, d0 = 0, d1 = 0;
        let e = 0;
        for (; e + 2 <= D; e += 2) {
          a0 += q[qb + e] * k[kb + e];
          a1 += q[qb + e + 1] * k[kb + e + 1];
          d0 += dO[qb + e] * v[kb + e];
          d1 += dO[qb + e + 1] * v[kb + e + 1];
        }
        for (; e < D; e++) {
          a0 += q[qb + e] * k[kb + e];
          d0 += dO[qb + e] * v[kb + e];
        }
        const dp = d0 + d1;
        const p = Math.exp((a0 + a1) * scale - m);
        const ds = p * (dp - Dt) * scale;
        for (let e = 0; e < D; e++) {
          dq[qb + e] += ds * k[kb + e];
          dk[kb + e] += ds * q[qb + e];
          dv[kb + e] += p * dO[qb + e];
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Forward with saved activations

interface LayerTape {
  hIn: Float64Array; // [T, H] residual stream entering the layer
  r1: Float64Array; // [T] input RMSNorm factors
  q: Float64Array; // [T, nH, D] post-RoPE
  att: Float64Array; // [T, nH, D] attention output (before o_proj)
  lse: Float64Array; // [T, nH]
  hMid: Float64Array; // [T, H] residual stream after attention
  r2: Float64Array; // [T]
  gate: Float64Array; // [T, I] gate_proj output (pre-activation)
  up: Float64Array; // [T, I]
}

interface Tape {
  loss: number;
  k: Float64Array[];
  v: Float64Array[];
  layers: LayerTape[];
  hFinal: Float64Array;
  rF: Float64Array;
  /** dL/d(final-norm output) [T, H], filled while the loss is computed (when wanted). */
  dxF: Float64Array | null;
  cos: Float32Array;
  sin: Float32Array;
}

function checkInputs(
  model: LoadedModel,
  ids: ArrayLike<number>,
  positions: ArrayLike<number>,
  p?: KvPerturbation,
): void {
  const c = model.config;
  const T = ids.length;
  if (T < 2) throw new InputError(`the loss needs at least 2 tokens (got ${T})`);
  if (positions.length !== T) {
    throw new InputError(`positions has ${positions.length} entries for ${T} tokens`);
  }
  for (let t = 0; t < T; t++) {
    const id = ids[t];
    if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) {
      throw new InputError(`token id ${id} at index ${t} is outside the vocabulary [0, ${c.vocabSize})`);
    }
    if (!Number.isFinite(positions[t])) {
      throw new InputError(`position ${positions[t]} at index ${t} is not finite`);
    }
  }
  if (p) {
    const n = T * c.numKvHeads * c.headDim;
    if (!Number.isInteger(p.layer) || p.layer < 0 || p.layer >= c.numLayers) {
      throw new InputError(`perturbation layer ${p.layer} is outside the model's ${c.numLayers} layers`);
    }
    if ("deltas" in p ? p.deltas.length !== n : !Number.isInteger(p.index) || p.index < 0 || p.index >= n) {
      const what = "deltas" in p ? `${p.deltas.length} deltas` : `index ${p.index}`;
      throw new InputError(`perturbation ${what} does not fit a K/V tensor of ${n} elements`);
    }
  }
}

function forwardTape(
  model: LoadedModel,
  ids: ArrayLike<number>,
  positions: ArrayLike<number>,
  wantGrad: boolean,
  perturb?: KvPerturbation,
): Tape {
  checkInputs(model, ids, positions, perturb);
  const c = model.config;
  const w = model.weights;
  const T = ids.length;
  const H = c.hiddenSize,
    nH = c.numHeads,
    nKv = c.numKvHeads,
    D = c.headDim,
    I = c.intermediateSize,
    V = c.vocabSize;
  const dims: AttnDims = { T, nH, nKv, D };
  const { cos, sin } = ropeTable(ropeInvFreq(c), positions);
  let h = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    const src = w.embed.subarray(ids[t] * H, (ids[t] + 1) * H);
    for (let i = 0; i < H; i++) h[t * H + i] = src[i];
  }
  const xn = new Float64Array(T * H);
  const layers: LayerTape[] = [];
  const ks: Float64Array[] = [];
  const vs: Float64Array[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const L = w.layers[l];
    const r1 = new Float64Array(T);
    rmsnormFwd(xn, r1, h, T, H, L.inputNorm, c.rmsNormEps);
    const q = new Float64Array(T * nH * D);
    const k = new Float64Array(T * nKv * D);
    const v = new Float64Array(T * nKv * D);
    linear(q, xn, T, H, L.q, nH * D, L.qBias, false);
    linear(k, xn, T, H, L.k, nKv * D, L.kBias, false);
    linear(v, xn, T, H, L.v, nKv * D, L.vBias, false);
    rope(q, T, nH, D, cos, sin, false);
    rope(k, T, nKv, D, cos, sin, false);
    if (perturb && perturb.layer === l) {
      const x = perturb.kind === "k" ? k : v;
      if ("deltas" in perturb) { for (let i = 0; i < x.length; i++) x[i] += perturb.deltas[i]; }
      else x[perturb.index] += perturb.delta;
    }
    const att = new Float64Array(T * nH * D);
    const lse = new Float64Array(T * nH);
    attnFwd(att, lse, q, k, v, dims);
    const hMid = new Float64Array(h);
    linear(hMid, att, T, nH * D, L.o, H, null, true);
    const r2 = new Float64Array(T);
    rmsnormFwd(xn, r2, hMid, T, H, L.postNorm, c.rmsNormEps);
    const gate = new Float64Array(T * I);
    const up = new Float64Array(T * I);
    linear(gate, xn, T, H, L.gate, I, null, false);
    linear(up, xn, T, H, L.up, I, null, false);
    const act = new Float64Array(T * I);
    for (let i = 0; i < T * I; i++) {
      const g = gate[i];
      act[i] = (g / (1 + Math.exp(-g))) * up[i];
    }
    const hOut = new Float64Array(hMid);
    linear(hOut, act, T, I, L.down, H, null, true);
    layers.push({ hIn: h, r1, q, att, lse, hMid, r2, gate, up });
    ks.push(k);
    vs.push(v);
    h = hOut;
  }
  const rF = new Float64Array(T);
  rmsnormFwd(xn, rF, h, T, H, w.finalNorm, c.rmsNormEps);
  // LM head and loss, 4 tokens at a time; the logits never exist for the whole window at once.
  const n = T - 1;
  const dxF = wantGrad ? new Float64Array(T * H) : null;
  const headT = wantGrad ? transposed(w.lmHead, V, H) : null;
  const logits = new Float64Array(4 * V);
  let loss = 0;
  for (let t0 = 0; t0 < n; t0 += 4) {
    const m = Math.min(4, n - t0);
    linear(logits, xn.subarray(t0 * H, (t0 + m) * H), m, H, w.lmHead, V, null, false);
    for (let r = 0; r < m; r++) {
      const lb = r * V;
      let mx = -Infinity;
      for (let j = 0; j < V; j++) if (logits[lb + j] > mx) mx = logits[lb + j];
      let sum = 0;
      for (let j = 0; j < V; j++) sum += Math.exp(logits[lb + j] - mx);
      const target = ids[t0 + r + 1];
      loss += mx + Math.log(sum) - logits[lb + target];
      if (dxF) {
        // dL/dlogit = (softmax − onehot) / n
        for (let j = 0; j < V; j++) logits[lb + j] = Math.exp(logits[lb + j] - mx) / sum / n;
        logits[lb + target] -= 1 / n;
      }
    }
    if (dxF && headT) linear(dxF.subarray(t0 * H, (t0 + m) * H), logits, m, V, headT, H, null, false);
  }
  loss /= n;
  if (!Number.isFinite(loss)) throw new NonFiniteError(`the window's loss is ${loss}`);
  return { loss, k: ks, v: vs, layers, hFinal: h, rF, dxF, cos, sin };
}

/**
 * The mean next-token cross-entropy of `ids` at `positions` (f64 forward), optionally with one post-RoPE K or
 * V element perturbed before attention (for finite-difference checks of {@link kvGradients}).
 *
 * @example
 * ```ts
 * import { kvLoss } from "./grad.ts";
 * import { randomModel } from "../src/profile/testing_model.ts";
 * const model = randomModel({ seed: 1 });
 * const ids = [3, 14, 15, 9, 26], positions = [0, 4, 8, 12, 16];
 * const base = kvLoss(model, ids, positions);
 * const bumped = kvLoss(model, ids, positions, { perturb: { layer: 1, kind: "k", index: 5, delta: 1e-5 } });
 * // (bumped - base) / 1e-5 ≈ kvGradients(model, ids, positions).dk[1][5]
 * ```
 */
export function kvLoss(
  model: LoadedModel,
  ids: ArrayLike<number>,
  positions: ArrayLike<number>,
  options: KvGradOptions = {},
): number {
  return forwardTape(model, ids, positions, false, options.perturb).loss;
}

/**
 * Forward + backward: the window's loss, every layer's post-RoPE K and V, and dL/dK, dL/dV (see the module
 * comment for the exact definition). Throws InputError for bad ids/positions (T < 2 included) and
 * NonFiniteError when the loss is not finite.
 *
 * @example
 * ```ts
 * import { kvGradients } from "./grad.ts";
 * import { stretchedPositions } from "../calib/corpus.ts";
 * import { randomModel } from "../src/profile/testing_model.ts";
 * const model = randomModel({ seed: 1 });
 * const ids = [3, 14, 15, 9, 26];
 * const { loss, k, dk } = kvGradients(model, ids, stretchedPositions(ids.length, 4));
 * // k[l], dk[l]: [T, numKvHeads, headDim] for layer l; loss in nats
 * ```
 */
export function kvGradients(
  model: LoadedModel,
  ids: ArrayLike<number>,
  positions: ArrayLike<number>,
  options: KvGradOptions = {},
): KvGradients {
  const tape = forwardTape(model, ids, positions, true, options.perturb);
  const c = model.config;
  const w = model.weights;
  const T = ids.length;
  const H = c.hiddenSize, nH = c.numHeads, nKv = c.numKvHeads, D = c.headDim, I = c.intermediateSize;
  const dims: AttnDims = { T, nH, nKv, D };
  const dh = new Float64Array(T * H); // dL/d(residual stream) at the current point
  rmsnormBackAdd(dh, tape.dxF!, tape.hFinal, tape.rF, T, H, w.finalNorm);
  const dA = new Float64Array(T * I);
  const dG = new Float64Array(T * I);
  const dxn = new Float64Array(T * H);
  const dO = new Float64Array(T * nH * D);
  const dq = new Float64Array(T * nH * D);
  const dks: Float64Array[] = new Array(c.numLayers);
  const dvs: Float64Array[] = new Array(c.numLayers);
  for (let l = c.numLayers - 1; l >= 0; l--) {
    const L: LayerWeights = w.layers[l];
    const s = tape.layers[l];
    // MLP: h_out = h_mid + down(silu(gate)·up), gate/up = proj(rmsnorm(h_mid)).
    linear(dA, dh, T, H, transposed(L.down, H, I), I, null, false);
    for (let i = 0; i < T * I; i++) {
      const g = s.gate[i];
      const sg = 1 / (1 + Math.exp(-g));
      const silu = g * sg;
      dG[i] = dA[i] * s.up[i] * sg * (1 + g * (1 - sg));
      dA[i] = dA[i] * silu; // now dL/d(up)
    }
    linear(dxn, dG, T, I, transposed(L.gate, I, H), H, null, false);
    linear(dxn, dA, T, I, transposed(L.up, I, H), H, null, true);
    rmsnormBackAdd(dh, dxn, s.hMid, s.r2, T, H, L.postNorm);
    // Attention: h_mid = h_in + o_proj(attn(rope(q), rope(k), v)), q/k/v = proj(rmsnorm(h_in)) + bias.
    linear(dO, dh, T, H, transposed(L.o, H, nH * D), nH * D, null, false);
    const dk = new Float64Array(T * nKv * D);
    const dv = new Float64Array(T * nKv * D);
    attnBack(dq, dk, dv, dO, s.q, tape.k[l], tape.v[l], s.att, s.lse, dims);
    dks[l] = dk;
    dvs[l] = dv;
    if (l === 0) break; // the embeddings are not differentiated
    rope(dq, T, nH, D, tape.cos, tape.sin, true);
    const dkPre = new Float64Array(dk);
    rope(dkPre, T, nKv, D, tape.cos, tape.sin, true);
    linear(dxn, dq, T, nH * D, transposed(L.q, nH * D, H), H, null, false);
    linear(dxn, dkPre, T, nKv * D, transposed(L.k, nKv * D, H), H, null, true);
    linear(dxn, dv, T, nKv * D, transposed(L.v, nKv * D, H), H, null, true);
    rmsnormBackAdd(dh, dxn, s.hIn, s.r1, T, H, L.inputNorm);
    tape.layers[l] = undefined as unknown as LayerTape; // let the layer's activations be collected
  }
  return { loss: tape.loss, k: tape.k, v: tape.v, dk: dks, dv: dvs };
}
