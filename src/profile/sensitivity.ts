/**
 * Per-layer KV quantization sensitivity (PM-KVQ paper Eqs. 4–5), first-order Taylor:
 *
 *   s^K_{l,b} = mean over the elements of K_l of |(Q_b(K_l) − K_l) ⊙ dL/dK_l|,   same for V,
 *
 * averaged over calibration windows; the allocator uses s_{l,b} = s^K_{l,b} + s^V_{l,b}. K_l are layer l's
 * post-RoPE keys and V_l its v_proj output ([T, numKvHeads, headDim], from cpu/grad.ts), L the window's mean
 * next-token cross-entropy with positions stretched 0, s, 2s, … (positional interpolation), and Q_b the
 * project's quantizer (`fakeQuantize`) with G = groupSizeFor(headDim) contiguous values along head_dim per
 * token and KV head: the grouping of the cache. The error is taken against the f32 value the cache would hold.
 *
 * Layer l's quantization error is paired with layer l's OWN gradient, as the paper's formula says. (The
 * reference code pairs it with layer L−1−i's gradient because its backward hooks fire in reverse order; that
 * is a bug and is not reproduced.)
 *
 * @example
 * ```ts
 * import { profileSensitivity } from "./sensitivity.ts";
 * import { loadModel } from "../model/load.ts";
 * import { loadTokenizer } from "../model/tokenizer.ts";
 * const model = await loadModel("models/tiny-lm");
 * const tokenizer = await loadTokenizer("models/tiny-lm/tokenizer.json");
 * const r = await profileSensitivity(model, tokenizer, { samples: 2, length: 64, corpus: "models/tiny-lm/heldout.txt" });
 * r.total["2"][0]; // sensitivity of layer 0 at 2 bits
 * ```
 * @module
 */
import { type KvGradients, kvGradients } from "../../cpu/grad.ts";
import { fakeQuantize } from "../quant/quantizer.ts";
import { checkBits, groupSizeFor } from "../quant/format.ts";
import type { LoadedModel } from "../model/types.ts";
import {
  DEFAULT_CORPUS,
  type Encoder,
  loadCorpusSegments,
  stretchedPositions,
  tokenWindows,
} from "../../calib/corpus.ts";
import { InputError } from "../errors.ts";

/** Candidate bit-widths profiled by default. */
export const DEFAULT_PROFILE_BITS: readonly number[] = Object.freeze([2, 4, 8, 16]);

/** How to profile. Every field has a default (see {@link DEFAULT_PROFILE_SETTINGS}). */
export interface ProfileSettings {
  /** Calibration windows (default 16). */
  samples: number;
  /** Tokens per window (default 512). */
  length: number;
  /** Position stretch s: positions 0, s, 2s, … (default 4). */
  stretch: number;
  /** Seed of the window selection (default 0). */
  seed: number;
  /** Corpus file (.txt or .gz); default the shipped tiny-lm training-text sample. */
  corpus: string;
  /** Candidate bit-widths, each in {2, 4, 8, 16} (default [2, 4, 8, 16]). */
  bits: number[];
}

/** The defaults. */
export const DEFAULT_PROFILE_SETTINGS: Readonly<ProfileSettings> = Object.freeze({
  samples: 16,
  length: 512,
  stretch: 4,
  seed: 0,
  corpus: DEFAULT_CORPUS,
  bits: [...DEFAULT_PROFILE_BITS],
});

/** Progress after each window. */
export interface ProfileProgress {
  /** Windows done (1-based). */
  window: number;
  /** Windows in total. */
  windows: number;
  /** Seconds since profiling started. */
  elapsedSeconds: number;
  /** Estimated seconds left (mean time per window so far × windows left). */
  etaSeconds: number;
  /** This window's loss. */
  loss: number;
}

/** Per bit-width (key: String(bits)) the per-layer sensitivities. */
export type SensitivityTable = Record<string, number[]>;

/** The profile of one model. */
export interface SensitivityResult {
  /** The profiled bit-widths (the keys of the tables, as numbers). */
  bits: number[];
  /** s^K per bit-width, per layer. */
  k: SensitivityTable;
  /** s^V per bit-width, per layer. */
  v: SensitivityTable;
  /** s^K + s^V. */
  total: SensitivityTable;
  /** Mean of the windows' losses (nats). */
  loss: number;
  /** Windows averaged over. */
  windows: number;
  /** Wall-clock seconds the profile took. */
  seconds: number;
}

/** mean_i |(Q_b(x) − x)_i · g_i| with x rounded to f32 first (what the cache stores). */
function termFor(x: Float64Array, g: Float64Array, G: number, bits: number): number {
  const x32 = Float32Array.from(x);
  const xq = fakeQuantize(x32, G, bits);
  let s = 0;
  for (let i = 0; i < x32.length; i++) s += Math.abs((xq[i] - x32[i]) * g[i]);
  return s / x32.length;
}

/**
 * The sensitivity terms of ONE window: `k[bitIndex][layer]`, `v[bitIndex][layer]`, pairing every layer's
 * quantization error with its own gradient.
 *
 * @example
 * ```ts
 * import { kvGradients } from "../../cpu/grad.ts";
 * import { windowSensitivity } from "./sensitivity.ts";
 * import { randomModel } from "./testing_model.ts";
 * const model = randomModel({ seed: 1 });
 * const ids = [3, 14, 15, 9, 26], positions = [0, 4, 8, 12, 16];
 * const w = windowSensitivity(kvGradients(model, ids, positions), model.config.headDim, [2, 4]);
 * w.k[0][1]; // s^K of layer 1 at 2 bits, this window
 * ```
 */
export function windowSensitivity(
  g: KvGradients,
  headDim: number,
  bits: readonly number[],
): { k: number[][]; v: number[][] } {
  const G = groupSizeFor(headDim);
  const k = bits.map((b) => g.k.map((x, l) => termFor(x, g.dk[l], G, b)));
  const v = bits.map((b) => g.v.map((x, l) => termFor(x, g.dv[l], G, b)));
  return { k, v };
}

/**
 * The settings with defaults filled in and bits sorted ascending; throws InputError naming the first bad one.
 *
 * @example
 * ```ts
 * import { resolveSettings } from "./sensitivity.ts";
 * resolveSettings({ samples: 4, bits: [4, 2] }); // { samples: 4, length: 512, stretch: 4, seed: 0, bits: [2, 4], corpus }
 * ```
 */
export function resolveSettings(partial: Partial<ProfileSettings> = {}): ProfileSettings {
  const s: ProfileSettings = {
    ...DEFAULT_PROFILE_SETTINGS,
    ...partial,
    bits: [...(partial.bits ?? DEFAULT_PROFILE_BITS)],
  };
  const posInt = (name: string, v: number, min: number) => {
    if (!Number.isSafeInteger(v) || v < min) {
      throw new InputError(`${name} must be an integer >= ${min}, got ${v}`);
    }
  };
  posInt("samples", s.samples, 1);
  posInt("length", s.length, 2);
  posInt("stretch", s.stretch, 1);
  posInt("seed", s.seed, 0);
  if (s.bits.length === 0) throw new InputError("bits must name at least one bit-width");
  for (const b of s.bits) {
    try {
      checkBits(b);
    } catch {
      throw new InputError(`bit-width ${b} is not supported: choose from 2, 4, 8, 16`);
    }
  }
  if (new Set(s.bits).size !== s.bits.length) throw new InputError(`bits ${s.bits.join(",")} has duplicates`);
  s.bits.sort((a, b) => a - b);
  return s;
}

/**
 * Profiles `model` on given token windows (all at positions 0, s, 2s, …): runs {@link kvGradients} per window
 * and averages {@link windowSensitivity}. `onProgress` is called after each window.
 *
 * @example
 * ```ts
 * import { profileWindows } from "./sensitivity.ts";
 * import { randomModel } from "./testing_model.ts";
 * const model = randomModel({ seed: 1 });
 * const r = profileWindows(model, [[3, 14, 15, 9], [2, 6, 5, 35]], { stretch: 4, bits: [2, 4] }, (p) =>
 *   console.error(`window ${p.window}/${p.windows}`));
 * r.total["4"]; // per-layer 4-bit sensitivities, averaged over the two windows
 * ```
 */
export function profileWindows(
  model: LoadedModel,
  windows: number[][],
  options: { stretch: number; bits: number[] },
  onProgress?: (p: ProfileProgress) => void,
): SensitivityResult {
  const { bits, stretch } = options;
  const L = model.config.numLayers;
  const kSum = bits.map(() => new Float64Array(L));
  const vSum = bits.map(() => new Float64Array(L));
  let lossSum = 0;
  const t0 = performance.now();
  for (const [i, ids] of windows.entries()) {
    const g = kvGradients(model, ids, stretchedPositions(ids.length, stretch));
    const w = windowSensitivity(g, model.config.headDim, bits);
    for (let b = 0; b < bits.length; b++) {
      for (let l = 0; l < L; l++) {
        kSum[b][l] += w.k[b][l];
        vSum[b][l] += w.v[b][l];
      }
    }
    lossSum += g.loss;
    const elapsed = (performance.now() - t0) / 1000;
    onProgress?.({
      window: i + 1,
      windows: windows.length,
      elapsedSeconds: elapsed,
      etaSeconds: (elapsed / (i + 1)) * (windows.length - i - 1),
      loss: g.loss,
    });
  }
  const n = windows.length;
  const k: SensitivityTable = {}, v: SensitivityTable = {}, total: SensitivityTable = {};
  bits.forEach((b, j) => {
    k[b] = Array.from(kSum[j], (x) => x / n);
    v[b] = Array.from(vSum[j], (x) => x / n);
    total[b] = k[b].map((x, l) => x + v[b][l]);
  });
  return {
    bits: [...bits],
    k,
    v,
    total,
    loss: lossSum / n,
    windows: n,
    seconds: (performance.now() - t0) / 1000,
  };
}

/**
 * The whole profile: reads the corpus, cuts `samples` windows of `length` tokens (seeded selection,
 * calib/corpus.ts), and runs {@link profileWindows}. Throws InputError for bad settings or a corpus too small.
 *
 * @example
 * ```ts
 * import { profileSensitivity } from "./sensitivity.ts";
 * import { loadModel } from "../model/load.ts";
 * import { loadTokenizer } from "../model/tokenizer.ts";
 * const model = await loadModel("models/tiny-lm");
 * const tok = await loadTokenizer(model.tokenizerPath!);
 * const r = await profileSensitivity(model, tok, { samples: 2, length: 64, corpus: "models/tiny-lm/heldout.txt" }, (p) =>
 *   console.error(`window ${p.window}/${p.windows}, ETA ${p.etaSeconds.toFixed(0)} s`));
 * ```
 */
export async function profileSensitivity(
  model: LoadedModel,
  tokenizer: Encoder,
  settings: Partial<ProfileSettings> = {},
  onProgress?: (p: ProfileProgress) => void,
): Promise<SensitivityResult> {
  const s = resolveSettings(settings);
  const segments = await loadCorpusSegments(s.corpus);
  const windows = tokenWindows(segments, tokenizer, { count: s.samples, length: s.length, seed: s.seed });
  return profileWindows(model, windows, { stretch: s.stretch, bits: s.bits }, onProgress);
}
