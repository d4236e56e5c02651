/**
 * The calibration pipeline: max|K| over the windows at stretched positions (pass 1, calib/maxkeys.ts), then the
 * per-layer α search (pass 2, calib/search.ts) fed by a second forward pass of each window whose layer inputs
 * go straight to the searches, so only one window's activations are ever held. Returns a sealed artifact.
 *
 * Cost on tiny-lm (2-core CPU): a 512-token forward ≈ 7 s; the search ≈ 20 attention+o_proj evaluations per
 * layer per window (≈ 40 s per 512-token window over 6 layers). Defaults (16 × 512) take ≈ 12 min.
 *
 * @example
 * ```ts
 * const art = calibrateModel(model, windows, { stretch: 4, seed: 0, kBits: 4, vBits: 4 });
 * await writeCalibration("out/calibration.json", art);
 * ```
 * @module
 */
import type { LoadedModel } from "../src/model/types.ts";
import { CpuForward } from "../cpu/forward.ts";
import { createCache, kvShapeOf } from "../src/kv/factory.ts";
import { collectMaxKeys, type MaxKeys } from "./maxkeys.ts";
import { ALPHA_GRID, LayerAlphaSearch, type LayerSearchResult } from "./search.ts";
import { type CalibrationArtifact, sealCalibration } from "./artifact.ts";
import { stretchedPositions } from "./corpus.ts";
import { InputError } from "../src/errors.ts";

/** Settings of {@link calibrateModel} (recorded in the artifact). */
export interface CalibrateOptions {
  /** Position stretch s (default 4). */
  stretch?: number;
  /** Seed the windows were selected with (recorded only; default 0). */
  seed?: number;
  /** Key bit-width the α search quantizes with (default 4). */
  kBits?: number;
  /** Value bit-width the α search quantizes with (default 4). */
  vBits?: number;
  /** Candidate α values (default {@link ALPHA_GRID}). */
  grid?: readonly number[];
  /** Progress: pass 1 = max|K|, pass 2 = α search. */
  onProgress?: (p: { pass: 1 | 2; window: number; windows: number; layer: number; layers: number }) => void;
}

/** The artifact plus the intermediate results (for studies and reports). */
export interface CalibrationRun {
  /** The sealed artifact (write it with `writeCalibration`). */
  artifact: CalibrationArtifact;
  /** Pass 1: per-layer max|K| of each RoPE channel pair, [numKvHeads, headDim / 2] per layer. */
  maxKeys: MaxKeys;
  /** Pass 2: each layer's α-search result, in layer order. */
  searches: LayerSearchResult[];
}

/**
 * Runs both passes over `windows` (token-id arrays of equal length) and seals the artifact for `model`.
 *
 * @example
 * ```ts
 * const { artifact, maxKeys } = calibrateModel(model, windows, { stretch: 4 });
 * ```
 */
export function calibrateModel(
  model: LoadedModel,
  windows: number[][],
  options: CalibrateOptions = {},
): CalibrationRun {
  if (windows.length === 0) throw new InputError("calibration needs at least one window");
  const length = windows[0].length;
  if (windows.some((w) => w.length !== length)) {
    throw new InputError("calibration windows must all have the same length");
  }
  const c = model.config;
  const stretch = options.stretch ?? 4;
  const kBits = options.kBits ?? 4, vBits = options.vBits ?? 4;
  const grid = [...(options.grid ?? ALPHA_GRID)];
  const maxKeys = collectMaxKeys(model, windows, {
    stretch,
    onProgress: (window, n, layer, layers) =>
      options.onProgress?.({ pass: 1, window, windows: n, layer, layers }),
  });
  const searches = maxKeys.map((m, l) => new LayerAlphaSearch(model, l, m, { kBits, vBits, grid }));
  const fwd = new CpuForward(model);
  const positions = stretchedPositions(length, stretch);
  windows.forEach((ids, w) => {
    fwd.forward(ids, positions, createCache({ method: "exact" }, kvShapeOf(c)), {
      logits: "none",
      hooks: {
        onLayerInput: (l, h) => {
          searches[l].addWindow(h, positions);
          options.onProgress?.({
            pass: 2,
            window: w + 1,
            windows: windows.length,
            layer: l + 1,
            layers: c.numLayers,
          });
        },
      },
    });
  });
  const results = searches.map((s) => s.result());
  const half = c.headDim / 2;
  const artifact = sealCalibration({
    modelFingerprint: model.fingerprint,
    settings: {
      samples: windows.length,
      length,
      stretch,
      seed: options.seed ?? 0,
      kBits,
      vBits,
      alphaGrid: grid,
    },
    layers: results.map((r) => ({
      alpha: r.alpha,
      loss: r.loss,
      lossNoSmoothing: r.lossNoSmoothing,
      lambda: Array.from(
        { length: c.numKvHeads },
        (_, h) => Array.from(r.lambda.subarray(h * half, (h + 1) * half)),
      ),
    })),
  });
  return { artifact, maxKeys, searches: results };
}
