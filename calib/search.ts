/**
 * Per-layer grid search of the smoothing exponent α (spec §4.4). Project decision (spec "Project decisions"
 * and §11): the folded factor is λ = max|K|^α itself, NOT its square root as the reference code deploys it.
 *
 * For each α of the grid {1.00, 0.95, …, 0.05}: λ = clamp(m^α, 1e-4, 1e4) per KV head and RoPE channel pair, and
 *
 *   loss(α) = Σ_windows MSE(teacher, student)
 *   teacher = o_proj(attention(q, k, v))                                (the layer in full precision)
 *   student = o_proj(attention(q ⊙ λ, Q_kBits(k ⊘ λ), Q_vBits(v)))      (K, V fake-quantized over the whole window)
 *
 * with q, k, v the layer's post-RoPE projections of its input hidden states (captured from the UNMODIFIED model,
 * so layers are independent). Scaling the post-RoPE q and k equals folding λ into q_proj / k_proj because λ is
 * shared by each rotation pair (it commutes with RoPE); only f32 rounding differs. Q is the project's quantizer
 * (src/quant/quantizer.ts: asymmetric groups of G = min(128, D) contiguous values per token per KV head).
 * The smallest loss wins; ties keep the larger α. The loss without smoothing (λ = 1) is recorded for reference.
 *
 * @example
 * ```ts
 * const search = new LayerAlphaSearch(model, layer, maxKeys[layer], { kBits: 4, vBits: 4 });
 * for (const h of inputs) search.addWindow(h, positions);
 * const { alpha, loss, lossNoSmoothing, lambda } = search.result();
 * ```
 * @module
 */
import type { LoadedModel } from "../src/model/types.ts";
import { fakeQuantize } from "../src/quant/quantizer.ts";
import { checkBits, groupSizeFor } from "../src/quant/format.ts";
import { attentionOutput, projectQKV, queryRows } from "./layer_attention.ts";
import { InputError } from "../src/errors.ts";

/** The α grid {1.00, 0.95, …, 0.05} (α = 1 − n/20, n = 0..19; α = 0, i.e. no smoothing, is not a candidate). */
export const ALPHA_GRID: readonly number[] = Object.freeze(
  Array.from({ length: 20 }, (_, n) => (20 - n) / 20),
);

/** Smallest λ. */
export const LAMBDA_MIN = 1e-4;
/** Largest λ. */
export const LAMBDA_MAX = 1e4;

/**
 * λ = clamp(m^α, 1e-4, 1e4) elementwise, as f32.
 *
 * @example
 * ```ts
 * lambdaFor(new Float32Array([4, 0]), 0.5); // [2, fround(1e-4)]
 * ```
 */
export function lambdaFor(maxKeys: Float32Array, alpha: number): Float32Array {
  return maxKeys.map((m) => Math.min(LAMBDA_MAX, Math.max(LAMBDA_MIN, Math.pow(m, alpha))));
}

/**
 * Smoothed copies of post-RoPE q [T, numHeads, D] (multiplied by λ of the query head's KV head) and k
 * [T, numKvHeads, D] (divided by λ); λ is [numKvHeads, D/2], channel c uses λ[c mod D/2].
 *
 * @example
 * ```ts
 * const { q: qs, k: ks } = smoothQK(q, k, lambda, T, 4, 2, 128);
 * ```
 */
export function smoothQK(
  q: Float32Array,
  k: Float32Array,
  lambda: Float32Array,
  T: number,
  numHeads: number,
  numKvHeads: number,
  headDim: number,
): { q: Float32Array; k: Float32Array } {
  const half = headDim / 2, group = numHeads / numKvHeads;
  const qs = new Float32Array(T * numHeads * headDim), ks = new Float32Array(T * numKvHeads * headDim);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < numHeads; h++) {
      const b = (t * numHeads + h) * headDim, lb = Math.floor(h / group) * half;
      for (let c = 0; c < headDim; c++) qs[b + c] = q[b + c] * lambda[lb + (c % half)];
    }
    for (let h = 0; h < numKvHeads; h++) {
      const b = (t * numKvHeads + h) * headDim, lb = h * half;
      for (let c = 0; c < headDim; c++) ks[b + c] = k[b + c] / lambda[lb + (c % half)];
    }
  }
  return { q: qs, k: ks };
}

/**
 * Index of the smallest loss; on a tie the larger α wins (whatever the grid order).
 *
 * @example
 * ```ts
 * pickAlpha([1, 0.5, 0.25], [3, 2, 2]); // 1 (α = 0.5)
 * ```
 */
export function pickAlpha(grid: readonly number[], losses: readonly number[]): number {
  if (grid.length === 0 || grid.length !== losses.length) {
    throw new InputError(`α grid of ${grid.length} entries with ${losses.length} losses`);
  }
  let best = 0;
  for (let i = 1; i < grid.length; i++) {
    if (losses[i] < losses[best] || (losses[i] === losses[best] && grid[i] > grid[best])) best = i;
  }
  return best;
}

/** Mean of squared differences, in f64. */
function mse(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    s += d * d;
  }
  return s / a.length;
}

/** Options of {@link LayerAlphaSearch}. */
export interface SearchOptions {
  /** Key bits of the student (default 4). */
  kBits?: number;
  /** Value bits of the student (default 4). */
  vBits?: number;
  /** Candidate α values (default {@link ALPHA_GRID}). */
  grid?: readonly number[];
  /**
   * Measure the loss on every `queryStride`-th query row only (default 1 = every row, as specified). Keys and
   * values are still quantized over the whole window. A speed knob for studies; the CLI uses 1.
   */
  queryStride?: number;
}

/** What the search of one layer found. */
export interface LayerSearchResult {
  /** The chosen α (lowest loss; the larger α on ties). */
  alpha: number;
  /** Loss at the chosen α. */
  loss: number;
  /** Loss with λ = 1 (quantization without smoothing). */
  lossNoSmoothing: number;
  /** λ at the chosen α, [numKvHeads, headDim/2]. */
  lambda: Float32Array;
  /** The grid searched and the loss of each entry. */
  grid: number[];
  /** Loss of each `grid` entry, same order. */
  losses: number[];
  /** Windows seen. */
  windows: number;
}

/** Accumulates the α-search losses of one layer over calibration windows (one window in memory at a time). */
export class LayerAlphaSearch {
  readonly model: LoadedModel;
  readonly layer: number;
  readonly grid: number[];
  readonly kBits: number;
  readonly vBits: number;
  readonly queryStride: number;
  readonly #lambdas: Float32Array[];
  readonly #losses: number[];
  #lossNone = 0;
  #windows = 0;

  /**
   * `maxKeys` is the layer's [numKvHeads, headDim/2] maxima (see maxkeys.ts). Throws QuantConfigError for
   * unsupported bits and InputError for a bad grid or a maxKeys of the wrong size.
   *
   * @example
   * ```ts
   * const s = new LayerAlphaSearch(model, 0, maxKeys[0], { kBits: 2 });
   * ```
   */
  constructor(model: LoadedModel, layer: number, maxKeys: Float32Array, options: SearchOptions = {}) {
    const c = model.config;
    if (maxKeys.length !== (c.numKvHeads * c.headDim) / 2) {
      throw new InputError(
        `max keys of layer ${layer} hold ${maxKeys.length} values, ${c.numKvHeads}·${c.headDim / 2} expected`,
      );
    }
    this.model = model;
    this.layer = layer;
    this.kBits = checkBits(options.kBits ?? 4);
    this.vBits = checkBits(options.vBits ?? 4);
    this.grid = [...(options.grid ?? ALPHA_GRID)];
    if (this.grid.length === 0 || this.grid.some((a) => !(a > 0 && a <= 1))) {
      throw new InputError(`α grid must be non-empty values in (0, 1], got [${this.grid.join(", ")}]`);
    }
    this.queryStride = options.queryStride ?? 1;
    queryRows(1, this.queryStride); // validates
    this.#lambdas = this.grid.map((a) => lambdaFor(maxKeys, a));
    this.#losses = this.grid.map(() => 0);
  }

  /**
   * Adds one window: `h` [T, hidden] is the layer's input (from the full-precision model) at `positions`.
   *
   * @example
   * ```ts
   * search.addWindow(layerInput, stretchedPositions(512, 4));
   * ```
   */
  addWindow(h: Float32Array, positions: ArrayLike<number>): void {
    const c = this.model.config;
    const T = positions.length;
    const G = groupSizeFor(c.headDim);
    const { q, k, v } = projectQKV(this.model, this.layer, h, T, positions);
    const rows = this.queryStride === 1 ? undefined : queryRows(T, this.queryStride);
    const teacher = attentionOutput(this.model, this.layer, q, k, v, T, rows);
    const vq = fakeQuantize(v, G, this.vBits);
    const kq = fakeQuantize(k, G, this.kBits);
    this.#lossNone += mse(teacher, attentionOutput(this.model, this.layer, q, kq, vq, T, rows));
    this.#lambdas.forEach((lambda, i) => {
      const s = smoothQK(q, k, lambda, T, c.numHeads, c.numKvHeads, c.headDim);
      const student = attentionOutput(
        this.model,
        this.layer,
        s.q,
        fakeQuantize(s.k, G, this.kBits),
        vq,
        T,
        rows,
      );
      this.#losses[i] += mse(teacher, student);
    });
    this.#windows++;
  }

  /**
   * The chosen α (smallest summed loss, ties → larger α) and its λ. Throws InputError before any window.
   *
   * @example
   * ```ts
   * const { alpha, lambda } = search.result();
   * ```
   */
  result(): LayerSearchResult {
    if (this.#windows === 0) throw new InputError(`α search of layer ${this.layer} saw no window`);
    const best = pickAlpha(this.grid, this.#losses);
    return {
      alpha: this.grid[best],
      loss: this.#losses[best],
      lossNoSmoothing: this.#lossNone,
      lambda: this.#lambdas[best].slice(),
      grid: [...this.grid],
      losses: [...this.#losses],
      windows: this.#windows,
    };
  }
}
