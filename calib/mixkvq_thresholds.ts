/**
 * Threshold search for the MixKVQ cache (src/kv/mixkvq.ts): pick (τ16, τ4) that minimize the attention-logit
 * error on calibration text subject to an average key code width ≤ a target (e.g. 2.3–3.0 bits).
 *
 * The paper searches the thresholds with Optuna TPE (30 trials in [0.1, 2.0], accuracy vs. bits on GSM8K;
 * spec §7.2). Here (interpretation C1) an exhaustive GRID replaces TPE and a proxy replaces task accuracy:
 *
 * 1. Run the model (cpu/forward.ts, exact f32 cache, whole window in one call) on calibration windows
 *    (calib/corpus.ts) and collect per layer the post-RoPE queries Q [T, nH, D] and keys K [T, nKv, D]
 *    (hooks `onQuery` / `onKV`).
 * 2. Cut each window into blocks of R tokens from its start, exactly as the cache does, and rank every block's
 *    key channels with the cache's own functions (src/kv/mixkvq_select.ts: bf16 keys, f32 query sums of the
 *    block's own tokens, normalized salience), so a threshold pair gives the same tiers here and in the cache.
 * 3. Key bits (C2): mean code width (16/4/2) over every channel of every complete block — what the cache
 *    reports as `stats().avgBits.k`.
 * 4. Error (C3): the mean squared attention-logit error over the (query, key) pairs that actually see the
 *    quantized block: queries at positions ≥ the block's end (earlier queries see the block in the exact
 *    residual), every query head of the KV head's group:
 *        error = Σ_{i, j} ((q_i · (k̃_j − k_j)) / √D)² / #pairs,  k = the f32 key, k̃ = the cache's value.
 *    Blocks without a later query in their window count for bits only.
 * 5. For every candidate pair, the error is exact, not sampled: with ε^a_j the error of key j if all channels
 *    were at tier a, C = Σ_i q_i q_iᵀ and W^{ab}_{dd'} = C_{dd'} Σ_j ε^a_{jd} ε^b_{jd'}, the block-head error is
 *    Σ_{d,d'} W^{t_d t_d'}_{dd'}. Channels enter tiers in salience order, so a tier assignment is a pair of
 *    cut points (p, q) in the sorted order; all (p, q) are tabulated with O(D) updates per move (O(D³) per
 *    block-head) and every candidate is a table lookup.
 * 6. Candidates (C4): τ from `grid` ({@link DEFAULT_TAU_GRID}: the paper's range 0.10 … 2.00, extended to 8)
 *    plus +∞, every pair with τ16 ≥ τ4. Among candidates with avgKeyBits ≤ target: least error; ties → fewer bits, then larger τ16,
 *    then larger τ4.
 *
 * @example
 * ```ts
 * import { searchMixKvqThresholds } from "./mixkvq_thresholds.ts";
 * import { loadModel } from "../src/model/load.ts";
 * import { loadTokenizer } from "../src/model/tokenizer.ts";
 * import { loadCorpusSegments, tokenWindows } from "./corpus.ts";
 * const model = await loadModel("models/tiny-lm");
 * const tok = await loadTokenizer("models/tiny-lm/tokenizer.json");
 * const windows = tokenWindows(await loadCorpusSegments(), tok, { count: 4, length: 512, seed: 0 });
 * const r = searchMixKvqThresholds(model, windows, { targetBits: 2.5 });
 * // { tau16, tau4, avgKeyBits ≤ 2.5, error, ... }
 * ```
 * @module
 */
import type { LoadedModel } from "../src/model/types.ts";
import { CpuForward } from "../cpu/forward.ts";
import { ExactCache } from "../src/kv/exact.ts";
import { resolveMixKvqSpec } from "../src/kv/mixkvq.ts";
import {
  accumulateQueryStats,
  KEY_TIERS,
  keyChannelRoundTrip,
  normalizedSalience,
  queryMagnitudes,
} from "../src/kv/mixkvq_select.ts";
import { bf16ToF32, f32ToBf16RNE } from "../src/quant/bf16.ts";
import { InputError, TensorShapeError } from "../src/errors.ts";
import { stretchedPositions } from "./corpus.ts";

/**
 * The default τ grid: 0.10, 0.15, …, 2.00 (the paper's search range [0.1, 2.0], step 0.05), extended by
 * 2.25, 2.50, …, 4.00 and 5, 6, 8 (C4: our normalization is not the paper's, and on tiny-lm a τ16 ≤ 2 forces
 * too many bf16 channels); +∞ is always added by the search.
 *
 * @example
 * ```ts
 * import { DEFAULT_TAU_GRID } from "./mixkvq_thresholds.ts";
 * [DEFAULT_TAU_GRID[0], DEFAULT_TAU_GRID[38], DEFAULT_TAU_GRID.length]; // [0.1, 2, 50]
 * ```
 */
export const DEFAULT_TAU_GRID: readonly number[] = Object.freeze([
  ...Array.from({ length: 39 }, (_, i) => Math.round((0.1 + 0.05 * i) * 100) / 100),
  ...Array.from({ length: 8 }, (_, i) => 2.25 + 0.25 * i),
  5,
  6,
  8,
]);

/** The answer of a search. */
export interface MixKvqThresholds {
  tau16: number;
  tau4: number;
  /** Mean key code width over the calibration blocks at these thresholds. */
  avgKeyBits: number;
  /** Mean squared attention-logit error (module doc, step 4). */
  error: number;
}

/** A search result with context. */
export interface ThresholdSearchResult extends MixKvqThresholds {
  /** The target it was chosen for. */
  targetBits: number;
  /** Error with every key channel at 2 bits (τ = ∞) and with every channel bf16 (τ = 0), for scale. */
  errorAll2Bit: number;
  errorAllBf16: number;
  /** Block-heads counted for bits / for the error. */
  blocks: number;
  errorBlocks: number;
  /** Candidate pairs considered. */
  candidates: number;
}

/** Geometry and search parameters. */
export interface ThresholdSearchConfig {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** R (default 128, as the cache). */
  residual?: number;
  /** g (default R, as the cache). */
  keyGroup?: number;
  /** τ values (≥ 0); +∞ is always added. Default {@link DEFAULT_TAU_GRID}. */
  grid?: readonly number[];
}

/**
 * Accumulates bits and exact logit errors of every candidate threshold pair over calibration sequences
 * (module doc), then answers {@link MixKvqThresholdSearch.result} for any target.
 *
 * @example
 * ```ts
 * import { MixKvqThresholdSearch } from "./mixkvq_thresholds.ts";
 * const s = new MixKvqThresholdSearch({ numHeads: 2, numKvHeads: 1, headDim: 8, residual: 8 });
 * const T = 24;
 * const q = new Float32Array(T * 16).map((_, i) => Math.sin(i)), k = new Float32Array(T * 8).map((_, i) => Math.cos(i * 1.3));
 * s.addSequence(q, k, T);
 * s.result(3).avgKeyBits; // ≤ 3
 * ```
 */
export class MixKvqThresholdSearch {
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly residual: number;
  readonly keyGroup: number;
  /** Ascending τ values, +∞ last. */
  readonly taus: readonly number[];
  /** Candidate pairs as indices into `taus`: [i16, i4] with taus[i16] ≥ taus[i4]. */
  readonly pairs: readonly (readonly [number, number])[];
  #bitSum: Float64Array;
  #errSum: Float64Array;
  #channels = 0;
  #pairCount = 0;
  #err2 = 0;
  #err16 = 0;
  #blocks = 0;
  #errBlocks = 0;

  /**
   * Throws InputError for a bad grid and QuantConfigError (via the cache's spec check) for bad R / g.
   *
   * @example
   * ```ts
   * import { MixKvqThresholdSearch } from "./mixkvq_thresholds.ts";
   * new MixKvqThresholdSearch({ numHeads: 4, numKvHeads: 2, headDim: 128 }).pairs.length; // 1326
   * ```
   */
  constructor(cfg: ThresholdSearchConfig) {
    const spec = resolveMixKvqSpec({ method: "mixkvq", residual: cfg.residual, keyGroup: cfg.keyGroup });
    this.residual = spec.residual;
    this.keyGroup = spec.keyGroup;
    if (cfg.numHeads % cfg.numKvHeads !== 0 || cfg.numKvHeads < 1) {
      throw new TensorShapeError(
        `${cfg.numHeads} query heads are not a multiple of ${cfg.numKvHeads} KV heads`,
      );
    }
    this.numHeads = cfg.numHeads;
    this.numKvHeads = cfg.numKvHeads;
    this.headDim = cfg.headDim;
    const grid = cfg.grid ?? DEFAULT_TAU_GRID;
    for (const t of grid) {
      if (typeof t !== "number" || !(t >= 0)) {
        throw new InputError(`threshold grid value ${t} must be a number >= 0`);
      }
    }
    this.taus = Object.freeze(
      [...new Set([...grid.filter((t) => t !== Infinity), Infinity])].sort((a, b) => a - b),
    );
    const pairs: [number, number][] = [];
    for (let i16 = 0; i16 < this.taus.length; i16++) for (let i4 = 0; i4 <= i16; i4++) pairs.push([i16, i4]);
    this.pairs = Object.freeze(pairs);
    this.#bitSum = new Float64Array(pairs.length);
    this.#errSum = new Float64Array(pairs.length);
  }

  /**
   * Adds one layer of one calibration sequence: `q` [T, numHeads, headDim] and `k` [T, numKvHeads, headDim]
   * post-RoPE f32 (copies of what the forward hooks saw). Blocks are [b·R, (b+1)·R) from the start.
   *
   * @example
   * ```ts
   * // fwd.forward(ids, pos, cache, { hooks: { onQuery: (l, q) => Q[l] = q.slice(), onKV: (l, k) => K[l] = k.slice() } });
   * // for (let l = 0; l < L; l++) search.addSequence(Q[l], K[l], ids.length);
   * ```
   */
  addSequence(q: Float32Array, k: Float32Array, T: number): void {
    const { numHeads: nH, numKvHeads: nKv, headDim: D, residual: R } = this;
    const row = nKv * D;
    if (k.length < T * row) throw new TensorShapeError(`keys: ${k.length} floats for [${T}, ${nKv}, ${D}]`);
    const mags = queryMagnitudes(q, T, nH, nKv, D);
    const gs = nH / nKv;
    for (let b0 = 0; b0 + R <= T; b0 += R) {
      // The cache's inputs: bf16 keys of the block, f32 query sums of its own tokens.
      const kb = new Float32Array(R * row);
      for (let i = 0; i < R * row; i++) kb[i] = bf16ToF32(f32ToBf16RNE(k[b0 * row + i]));
      const qsum = new Float32Array(row);
      accumulateQueryStats(qsum, mags, b0, R, row);
      const qMean = new Float32Array(row);
      for (let c = 0; c < row; c++) qMean[c] = qsum[c] / R;
      const sal = normalizedSalience(kb, R, nKv, D, qMean);
      const later = T - (b0 + R);
      for (let h = 0; h < nKv; h++) {
        const s = Array.from(sal.subarray(h * D, (h + 1) * D));
        const order = s.map((_, d) => d).sort((a, b) => s[b] - s[a] || a - b);
        // cnt[ti] = channels with salience > taus[ti].
        const cnt = this.taus.map((t) => s.filter((a) => a > t).length);
        this.#blocks++;
        this.#channels += D;
        this.pairs.forEach(([i16, i4], ci) => {
          const p = cnt[i16], qq = cnt[i4];
          this.#bitSum[ci] += 16 * p + 4 * (qq - p) + 2 * (D - qq);
        });
        if (later <= 0) continue;
        const table = this.#errorTable(k, kb, q, b0, h, order, T, gs);
        this.#errBlocks++;
        this.#pairCount += later * gs * R;
        this.#err2 += table[0];
        this.#err16 += table[D * (D + 1) + D];
        this.pairs.forEach(([i16, i4], ci) => {
          this.#errSum[ci] += table[cnt[i16] * (D + 1) + cnt[i4]];
        });
      }
    }
  }

  /**
   * Σ over later queries and block keys of (q·ε)² for every cut (p, q): table[p·(D+1) + q], channels
   * order[0..p) bf16, order[p..q) 4-bit, the rest 2-bit.
   */
  #errorTable(
    k: Float32Array,
    kb: Float32Array,
    q: Float32Array,
    b0: number,
    h: number,
    order: number[],
    T: number,
    gs: number,
  ): Float64Array {
    const { numHeads: nH, numKvHeads: nKv, headDim: D, residual: R, keyGroup: g } = this;
    const row = nKv * D;
    // ε^a [3][D, R] channel-major (a = 0: bf16, 1: 4-bit, 2: 2-bit) against the f32 keys.
    const eps = KEY_TIERS.map(() => new Float64Array(R * D));
    const ch = new Float32Array(R);
    for (let d = 0; d < D; d++) {
      const c = h * D + d;
      for (let j = 0; j < R; j++) ch[j] = kb[j * row + c];
      KEY_TIERS.forEach((tier, a) => {
        const rt = keyChannelRoundTrip(ch, tier, g);
        for (let j = 0; j < R; j++) eps[a][d * R + j] = rt[j] - k[(b0 + j) * row + c];
      });
    }
    // C = Σ q qᵀ over later queries of the group's heads (symmetric, filled both halves).
    const C = new Float64Array(D * D);
    const qi = new Float64Array(D);
    for (let i = b0 + R; i < T; i++) {
      for (let hh = h * gs; hh < (h + 1) * gs; hh++) {
        const base = (i * nH + hh) * D;
        for (let d = 0; d < D; d++) qi[d] = q[base + d];
        for (let d = 0; d < D; d++) {
          const x = qi[d];
          if (x === 0) continue;
          const off = d * D;
          for (let e = d; e < D; e++) C[off + e] += x * qi[e];
        }
      }
    }
    for (let d = 0; d < D; d++) for (let e = 0; e < d; e++) C[d * D + e] = C[e * D + d];
    // W[a][b][d, e] = C[d, e] · Σ_j ε^a[j, d] ε^b[j, e]
    // (W[b][a] is the transpose of W[a][b]: computed once for a ≤ b.)
    const W: Float64Array[][] = [0, 1, 2].map(() => [0, 1, 2].map(() => new Float64Array(D * D)));
    for (let a = 0; a < 3; a++) {
      for (let b = a; b < 3; b++) {
        const Wab = W[a][b], Wba = W[b][a], ea = eps[a], eb = eps[b];
        for (let d = 0; d < D; d++) {
          const da = d * R;
          for (let e = 0; e < D; e++) {
            const eo = e * R;
            let m0 = 0, m1 = 0;
            let j = 0;
            for (; j + 1 < R; j += 2) {
              m0 += ea[da + j] * eb[eo + j];
              m1 += ea[da + j + 1] * eb[eo + j + 1];
            }
            if (j < R) m0 += ea[da + j] * eb[eo + j];
            const w = C[d * D + e] * (m0 + m1);
            Wab[d * D + e] = w;
            Wba[e * D + d] = w;
          }
        }
      }
    }
    // Incremental table over cuts. tier index per channel: 0 bf16, 1 4-bit, 2 2-bit.
    const tiers = new Uint8Array(D).fill(2);
    const move = (t: Uint8Array, c: number, to: number): number => {
      const from = t[c];
      const wTo = W[to], wFrom = W[from];
      let s = 0;
      for (let e = 0; e < D; e++) {
        if (e === c) continue;
        s += wTo[t[e]][c * D + e] - wFrom[t[e]][c * D + e];
      }
      t[c] = to;
      return 2 * s + W[to][to][c * D + c] - W[from][from][c * D + c];
    };
    let base = 0;
    for (let d = 0; d < D; d++) for (let e = 0; e < D; e++) base += W[2][2][d * D + e];
    const table = new Float64Array((D + 1) * (D + 1));
    const work = new Uint8Array(D);
    for (let p = 0; p <= D; p++) {
      if (p > 0) base += move(tiers, order[p - 1], 0);
      work.set(tiers);
      let err = base;
      table[p * (D + 1) + p] = err;
      for (let qq = p; qq < D; qq++) {
        err += move(work, order[qq], 1);
        table[p * (D + 1) + qq + 1] = err;
      }
    }
    return table;
  }

  /**
   * Every candidate pair with its mean key bits and error (NaN error when no block had a later query).
   *
   * @example
   * ```ts
   * // search.evaluate().filter((c) => c.avgKeyBits <= 2.5)
   * ```
   */
  evaluate(): MixKvqThresholds[] {
    const D2 = this.headDim; // logits are q·k/√D: squared errors carry 1/D
    return this.pairs.map(([i16, i4], ci) => ({
      tau16: this.taus[i16],
      tau4: this.taus[i4],
      avgKeyBits: this.#bitSum[ci] / this.#channels,
      error: this.#pairCount > 0 ? this.#errSum[ci] / D2 / this.#pairCount : NaN,
    }));
  }

  /**
   * The best pair for `targetBits` (module doc, step 6). Throws InputError when nothing was added, no block
   * had a later query, or no candidate meets the target (naming the smallest achievable bits).
   *
   * @example
   * ```ts
   * // search.result(2.7) // { tau16, tau4, avgKeyBits, error, errorAll2Bit, ... }
   * ```
   */
  result(targetBits: number): ThresholdSearchResult {
    if (this.#channels === 0) {
      throw new InputError(
        `no complete block of ${this.residual} tokens was added: calibration windows are too short`,
      );
    }
    if (this.#pairCount === 0) {
      throw new InputError(
        `no block had a later query: calibration windows need more than ${this.residual} tokens (2·R or more)`,
      );
    }
    const all = this.evaluate();
    let best: MixKvqThresholds | null = null;
    let minBits = Infinity;
    for (const c of all) {
      minBits = Math.min(minBits, c.avgKeyBits);
      if (!(c.avgKeyBits <= targetBits + 1e-12)) continue;
      if (
        best === null || c.error < best.error ||
        (c.error === best.error && (c.avgKeyBits < best.avgKeyBits ||
          (c.avgKeyBits === best.avgKeyBits &&
            (c.tau16 > best.tau16 || (c.tau16 === best.tau16 && c.tau4 > best.tau4)))))
      ) best = c;
    }
    if (best === null) {
      throw new InputError(
        `no threshold pair reaches ${targetBits} average key bits (the least is ${minBits})`,
      );
    }
    const n = this.#pairCount * this.headDim;
    return {
      ...best,
      targetBits,
      errorAll2Bit: this.#err2 / n,
      errorAllBf16: this.#err16 / n,
      blocks: this.#blocks,
      errorBlocks: this.#errBlocks,
      candidates: this.pairs.length,
    };
  }
}

/**
 * Runs `ids` at `positions` through `fwd` in one call with an exact f32 cache and returns copies of every
 * layer's post-RoPE queries q[l] [T, numHeads, headDim] and keys k[l] [T, numKvHeads, headDim].
 *
 * @example
 * ```ts
 * import { collectQueriesAndKeys } from "./mixkvq_thresholds.ts";
 * // const { q, k } = collectQueriesAndKeys(new CpuForward(model), ids, ids.map((_, i) => i));
 * // search.addSequence(q[0], k[0], ids.length);
 * ```
 */
export function collectQueriesAndKeys(
  fwd: CpuForward,
  ids: number[],
  positions: number[],
): { q: Float32Array[]; k: Float32Array[] } {
  const c = fwd.config;
  const q: Float32Array[] = [], k: Float32Array[] = [];
  const cache = new ExactCache({ method: "exact" }, {
    numLayers: c.numLayers,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
  });
  fwd.forward(ids, positions, cache, {
    logits: "none",
    hooks: {
      onQuery: (l, x, t) => (q[l] = x.slice(0, t * c.numHeads * c.headDim)),
      onKV: (l, x, _v, t) => (k[l] = x.slice(0, t * c.numKvHeads * c.headDim)),
    },
  });
  if (q.length !== c.numLayers || k.length !== c.numLayers) {
    throw new TensorShapeError(
      `the forward pass reported ${q.length} query / ${k.length} key layers of ${c.numLayers}`,
    );
  }
  return { q, k };
}

/** Options of {@link searchMixKvqThresholds}. */
export interface SearchOptions {
  /** Largest acceptable mean key code width, e.g. 2.3–3.0. */
  targetBits: number;
  residual?: number;
  keyGroup?: number;
  grid?: readonly number[];
  /** Positions 0, s, 2s, … (calib/corpus.ts `stretchedPositions`); default 1. */
  positionStretch?: number;
  /** Called after each window: (windows done, total). */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Runs `model` on each window (token ids; one forward call per window, exact f32 cache) and feeds every
 * layer's queries and keys to a new {@link MixKvqThresholdSearch}; ask it `.result(target)` for any number of
 * targets. Windows should hold at least 2·R tokens (module doc, step 4). `targetBits` is not used here.
 *
 * @example
 * ```ts
 * import { buildMixKvqSearch } from "./mixkvq_thresholds.ts";
 * // const search = buildMixKvqSearch(model, windows, {});
 * // [2.3, 2.7, 3.0].map((t) => search.result(t));
 * ```
 */
export function buildMixKvqSearch(
  model: LoadedModel,
  windows: number[][],
  options: Partial<SearchOptions>,
): MixKvqThresholdSearch {
  if (windows.length === 0) throw new InputError("threshold search needs at least one calibration window");
  const c = model.config;
  const search = new MixKvqThresholdSearch({
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    residual: options.residual,
    keyGroup: options.keyGroup,
    grid: options.grid,
  });
  const fwd = new CpuForward(model);
  windows.forEach((ids, wi) => {
    const { q, k } = collectQueriesAndKeys(
      fwd,
      ids,
      stretchedPositions(ids.length, options.positionStretch ?? 1),
    );
    for (let l = 0; l < c.numLayers; l++) search.addSequence(q[l], k[l], ids.length);
    options.onProgress?.(wi + 1, windows.length);
  });
  return search;
}

/**
 * The best (τ16, τ4) for `options.targetBits` on `windows` (= {@link buildMixKvqSearch} then `.result`).
 * Throws InputError for no/short windows or an unreachable target. Note τ16 may be +∞ (no bf16 channel
 * pays off at the target): `JSON.stringify` writes it as null.
 *
 * @example
 * ```ts
 * import { searchMixKvqThresholds } from "./mixkvq_thresholds.ts";
 * // const { tau16, tau4, avgKeyBits, error } = searchMixKvqThresholds(model, windows, { targetBits: 2.7 });
 * // createCache({ method: "mixkvq", tau16, tau4 }, kvShapeOf(model.config))
 * ```
 */
export function searchMixKvqThresholds(
  model: LoadedModel,
  windows: number[][],
  options: SearchOptions,
): ThresholdSearchResult {
  return buildMixKvqSearch(model, windows, options).result(options.targetBits);
}
