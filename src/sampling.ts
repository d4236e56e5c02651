/**
 * Token selection from logits: greedy (argmax, lowest id on ties) or seeded sampling with temperature,
 * top-k and top-p. Deterministic for a given seed on every backend (sampling runs on the host).
 *
 * @example
 * ```ts
 * const pick = makeSampler({ temperature: 0 });        // greedy
 * const rnd = makeSampler({ temperature: 0.6, topP: 0.95, seed: 42 });
 * pick(new Float32Array([0.1, 2, 1])); // 1
 * ```
 * @module
 */
import { InputError } from "./errors.ts";

/** Sampling settings. temperature 0 means greedy. */
export interface SamplingOptions {
  /** Softmax temperature (≥ 0, default 0: greedy argmax). */
  temperature?: number;
  /** Keep only the `topK` most likely tokens (integer ≥ 0, default 0: no limit). */
  topK?: number;
  /**
   * Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches `topP` (in (0, 1], default 1).
   */
  topP?: number;
  /** Seed of the PRNG (mulberry32) used for sampling (default 0). */
  seed?: number;
}

/**
 * Index of the largest logit; the lowest index wins ties.
 *
 * @example
 * ```ts
 * import { argmax } from "./sampling.ts";
 * argmax([0.1, 2, 2, 1]); // 1
 * ```
 */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** A small seeded PRNG (mulberry32): uniform floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Returns a function that picks the next token id from logits ([vocab_size]): {@link argmax} when the
 * temperature is 0 (default), else seeded sampling with temperature, then top-k, then top-p. Throws InputError
 * for a negative temperature, top-p outside (0, 1] or a bad top-k.
 *
 * @example
 * ```ts
 * import { makeSampler } from "./sampling.ts";
 * const greedy = makeSampler();
 * greedy(new Float32Array([0.1, 2, 1])); // 1
 * const pick = makeSampler({ temperature: 0.6, topK: 40, topP: 0.95, seed: 42 });
 * pick(new Float32Array([0.1, 2, 1])); // same id for the same seed and call sequence
 * ```
 */
export function makeSampler(options: SamplingOptions = {}): (logits: Float32Array) => number {
  const temperature = options.temperature ?? 0;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    throw new InputError(`temperature ${temperature} must be >= 0`);
  }
  const topP = options.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) throw new InputError(`top-p ${topP} must be in (0, 1]`);
  const topK = options.topK ?? 0;
  if (!Number.isInteger(topK) || topK < 0) {
    throw new InputError(`top-k ${topK} must be a non-negative integer`);
  }
  if (temperature === 0) return argmax;
  const rand = mulberry32(options.seed ?? 0);
  return (logits: Float32Array) => {
    const idx = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
    const n = topK > 0 ? Math.min(topK, idx.length) : idx.length;
    const mx = logits[idx[0]];
    const p: number[] = [];
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const e = Math.exp((logits[idx[i]] - mx) / temperature);
      p.push(e);
      sum += e;
    }
    let keep = n, cum = 0;
    for (let i = 0; i < n; i++) {
      cum += p[i] / sum;
      if (cum >= topP) {
        keep = i + 1;
        break;
      }
    }
    let total = 0;
    for (let i = 0; i < keep; i++) total += p[i];
    let r = rand() * total;
    for (let i = 0; i < keep; i++) {
      r -= p[i];
      if (r < 0) return idx[i];
    }
    return idx[keep - 1];
  };
}
