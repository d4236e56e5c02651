/**
 * Folds a calibration into the weights (spec §4.1): for every layer, KV head h and channel c (c and c + D/2
 * share λ[h][c mod D/2]):
 *   k_proj row h·D + c      (and its bias) /= λ
 *   q_proj row hq·D + c     (and its bias) *= λ[floor(hq / (numHeads / numKvHeads))]
 * Because each RoPE pair shares λ, RoPE(q ⊙ λ)·RoPE(k ⊘ λ) = RoPE(q)·RoPE(k): attention scores are unchanged up
 * to f32 rounding, while the cached keys become k ⊘ λ (flatter channels, easier to quantize). No runtime op.
 *
 * @example
 * ```ts
 * const smoothed = applyCalibration(model, await readCalibration("out/calibration.json", model));
 * smoothed.fingerprint; // model.fingerprint + ":calib:" + first 16 hex digits of the artifact checksum
 * ```
 * @module
 */
import type { LayerWeights, LoadedModel } from "../src/model/types.ts";
import { type CalibrationArtifact, checkCalibrationFor } from "./artifact.ts";
import { calibratedFingerprint } from "./fingerprint.ts";

/**
 * Scales rows of a row-major [rows, cols] matrix: row r is multiplied by factor(r) (a new array).
 *
 * @example
 * ```ts
 * scaleRows(new Float32Array([1, 2, 3, 4]), 2, (r) => r + 1); // [1, 2, 6, 8]
 * ```
 */
export function scaleRows(w: Float32Array, cols: number, factor: (row: number) => number): Float32Array {
  const out = new Float32Array(w.length);
  const rows = w.length / cols;
  for (let r = 0; r < rows; r++) {
    const f = factor(r);
    for (let i = r * cols; i < (r + 1) * cols; i++) out[i] = w[i] * f;
  }
  return out;
}

/**
 * Returns a NEW model with the calibration folded into q_proj / k_proj (weights and biases); the original is
 * not modified (unchanged tensors are shared, q/k tensors are fresh copies). Its fingerprint is
 * calibratedFingerprint(model.fingerprint, art.checksum) (see calib/fingerprint.ts; `baseFingerprint` recovers
 * the original). Throws ArtifactError when the artifact was made for another model or shape, or when `model`
 * already carries a calibration.
 *
 * @example
 * ```ts
 * const smoothed = applyCalibration(model, art);
 * new CpuForward(smoothed).forward(ids, positions, cache);
 * ```
 */
export function applyCalibration(model: LoadedModel, art: CalibrationArtifact): LoadedModel {
  checkCalibrationFor(art, model);
  const c = model.config;
  const D = c.headDim, half = D / 2, H = c.hiddenSize, group = c.numHeads / c.numKvHeads;
  const layers: LayerWeights[] = model.weights.layers.map((L, l) => {
    const lam = art.layers[l].lambda;
    const lamOf = (kvHead: number, row: number) => lam[kvHead][row % D % half];
    const qFactor = (row: number) => lamOf(Math.floor(Math.floor(row / D) / group), row);
    // k rows are divided by λ (not multiplied by 1/λ) so each weight rounds once.
    const kDiv = (w: Float32Array, cols: number) => {
      const out = new Float32Array(w.length);
      for (let r = 0; r < w.length / cols; r++) {
        const f = lamOf(Math.floor(r / D), r);
        for (let i = r * cols; i < (r + 1) * cols; i++) out[i] = w[i] / f;
      }
      return out;
    };
    return {
      ...L,
      q: scaleRows(L.q, H, qFactor),
      qBias: L.qBias ? scaleRows(L.qBias, 1, qFactor) : null,
      k: kDiv(L.k, H),
      kBias: L.kBias ? kDiv(L.kBias, 1) : null,
    };
  });
  return {
    ...model,
    weights: { ...model.weights, layers },
    fingerprint: calibratedFingerprint(model.fingerprint, art.checksum),
  };
}
