/**
 * Rotary position embedding parameters, computed once and shared by every backend.
 *
 * Convention (Hugging Face `rotate_half`): for channel pair (i, i + D/2) of a head with angle a = pos·f_i,
 *   out[i]       = x[i]·cos a − x[i + D/2]·sin a
 *   out[i + D/2] = x[i + D/2]·cos a + x[i]·sin a
 * Frequencies follow transformers in f32: f_i = 1 / theta^(2i/D), then the config's scaling (linear, llama3).
 *
 * @example
 * ```ts
 * const f = ropeInvFreq({ headDim: 128, ropeTheta: 10000, ropeScaling: { type: "default" } });
 * const { cos, sin } = ropeTable(f, [0, 1, 2]); // each [3, 64]
 * ```
 * @module
 */
import type { ModelConfig } from "./types.ts";

const f = Math.fround;

/** Inverse frequencies, shape [headDim / 2], as f32 values. */
export function ropeInvFreq(
  config: Pick<ModelConfig, "headDim" | "ropeTheta" | "ropeScaling">,
): Float32Array {
  const half = config.headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    inv[i] = f(1 / f(Math.pow(config.ropeTheta, f((2 * i) / config.headDim))));
  }
  const s = config.ropeScaling;
  if (s.type === "linear") {
    for (let i = 0; i < half; i++) inv[i] = f(inv[i] / s.factor);
  } else if (s.type === "llama3") {
    const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      const scaled = wavelen > lowWavelen ? inv[i] / s.factor : inv[i];
      if (wavelen < highWavelen || wavelen > lowWavelen) {
        inv[i] = f(scaled);
      } else {
        const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) /
          (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = f((1 - smooth) * (scaled / s.factor) + smooth * scaled);
      }
    }
  }
  return inv;
}

/** cos/sin tables for the given positions: each [positions.length, headDim / 2], f32. */
export function ropeTable(
  invFreq: Float32Array,
  positions: ArrayLike<number>,
): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const cos = new Float32Array(positions.length * half);
  const sin = new Float32Array(positions.length * half);
  for (let t = 0; t < positions.length; t++) {
    const p = positions[t];
    for (let i = 0; i < half; i++) {
      const a = f(p * invFreq[i]);
      cos[t * half + i] = Math.cos(a);
      sin[t * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/**
 * Rotates `x` in place: x [t, heads, headDim] with cos/sin [t, headDim/2].
 */
export function applyRope(
  x: Float32Array,
  t: number,
  heads: number,
  headDim: number,
  cos: Float32Array,
  sin: Float32Array,
): void {
  const half = headDim / 2;
  for (let ti = 0; ti < t; ti++) {
    const cb = ti * half;
    for (let h = 0; h < heads; h++) {
      const base = (ti * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const c = cos[cb + i], s = sin[cb + i];
        const a = x[base + i], b = x[base + i + half];
        x[base + i] = a * c - b * s;
        x[base + i + half] = b * c + a * s;
      }
    }
  }
}
