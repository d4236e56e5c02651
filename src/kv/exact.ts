/**
 * The exact (unquantized) KV cache: keys and values stored as f32, bf16 or f16.
 *
 * Storage per layer, K and V alike, grown in steps of {@link GROW_TOKENS} tokens (allocated capacity is what
 * `bytes` reports):
 * | dtype | storage                         | bytes per token per layer |
 * |-------|---------------------------------|---------------------------|
 * | f32   | Float32Array [cap, nKv, D]      | 2·nKv·D·4                 |
 * | bf16  | Uint16Array (bf16 bits) [cap, nKv, D] + f32 scratch | 2·nKv·D·2 |
 * | f16   | Float16Array [cap, nKv, D] + f32 scratch | 2·nKv·D·2        |
 *
 * @example
 * ```ts
 * const cache = new ExactCache({ method: "exact", dtype: "bf16" }, { numLayers: 1, numKvHeads: 1, headDim: 2 });
 * cache.append(0, new Float32Array([1, 2]), new Float32Array([3, 4]), 1);
 * cache.view(0).k; // Float32Array [1, 2]
 * ```
 * @module
 */
import type { CacheSpec, CacheStats, KVCache, KVShape, LayerView } from "./cache.ts";
import { bf16ToF32, f32ToBf16RNE } from "../quant/bf16.ts";
import { NonFiniteError } from "../errors.ts";

/** Capacity grows in steps of this many tokens. */
export const GROW_TOKENS = 128;

type Store = Float32Array | Uint16Array | Float16Array;

interface LayerState {
  len: number;
  cap: number;
  /** [cap, nKv, D] */ k: Store;
  /** [cap, nKv, D] */ v: Store;
  /** [cap, nKv, D] f32 working copy; same arrays as k/v for f32 storage */ kf: Float32Array;
  /** [cap, nKv, D] */ vf: Float32Array;
}

/**
 * Exact KV cache: keys and values stored unquantized as f32, bf16 or f16 (see the module table for bytes).
 *
 * @example
 * ```ts
 * import { ExactCache } from "./exact.ts";
 * const cache = new ExactCache({ method: "exact", dtype: "bf16" }, { numLayers: 1, numKvHeads: 1, headDim: 2 });
 * cache.append(0, new Float32Array([1, 2]), new Float32Array([3, 4]), 1); // k, v: [t=1, numKvHeads, headDim]
 * cache.view(0).k; // Float32Array [1, 2]
 * cache.stats().bytes; // 2 · 128 tokens capacity · 2 elements · 2 bytes = 1024
 * ```
 */
export class ExactCache implements KVCache {
  /** The spec the cache was built from. */
  readonly spec: CacheSpec;
  /** Layers, KV heads and head size of the cache. */
  readonly shape: KVShape;
  /**
   * Storage element type (`spec.dtype`, default `"f32"`); bf16/f16 keep an extra f32 working copy as scratch.
   */
  readonly dtype: "f32" | "bf16" | "f16";
  #layers: LayerState[] = [];
  #peak = 0;

  /**
   * Creates an empty cache.
   *
   * @param spec `{ method: "exact", dtype? }`
   * @param shape layers, KV heads and head size
   */
  constructor(spec: CacheSpec & { method: "exact" }, shape: KVShape) {
    this.spec = spec;
    this.shape = shape;
    this.dtype = spec.dtype ?? "f32";
    this.reset();
  }

  reset(): void {
    this.#layers = [];
    for (let l = 0; l < this.shape.numLayers; l++) {
      this.#layers.push({
        len: 0,
        cap: 0,
        k: new Float32Array(0),
        v: new Float32Array(0),
        kf: new Float32Array(0),
        vf: new Float32Array(0),
      });
    }
    this.#peak = 0;
  }

  length(layer: number): number {
    return this.#layers[layer].len;
  }

  #alloc(n: number): Store {
    return this.dtype === "f32"
      ? new Float32Array(n)
      : this.dtype === "bf16"
      ? new Uint16Array(n)
      : new Float16Array(n);
  }

  append(layer: number, k: Float32Array, v: Float32Array, t: number): void {
    const row = this.shape.numKvHeads * this.shape.headDim;
    const n = t * row;
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(k[i]) || !Number.isFinite(v[i])) {
        const which = Number.isFinite(k[i]) ? "value" : "key";
        throw new NonFiniteError(
          `${which} of layer ${layer}, token ${this.#layers[layer].len + Math.floor(i / row)}, channel ${
            i % row
          } is ${which === "key" ? k[i] : v[i]}`,
        );
      }
    }
    const L = this.#layers[layer];
    if (L.len + t > L.cap) {
      const cap = Math.ceil((L.len + t) / GROW_TOKENS) * GROW_TOKENS;
      const nk = this.#alloc(cap * row), nv = this.#alloc(cap * row);
      (nk as Float32Array).set(L.k.subarray(0, L.len * row) as Float32Array);
      (nv as Float32Array).set(L.v.subarray(0, L.len * row) as Float32Array);
      L.k = nk;
      L.v = nv;
      if (this.dtype === "f32") {
        L.kf = nk as Float32Array;
        L.vf = nv as Float32Array;
      } else {
        const kf = new Float32Array(cap * row), vf = new Float32Array(cap * row);
        kf.set(L.kf.subarray(0, L.len * row));
        vf.set(L.vf.subarray(0, L.len * row));
        L.kf = kf;
        L.vf = vf;
      }
      L.cap = cap;
    }
    const off = L.len * row;
    if (this.dtype === "bf16") {
      const ks = L.k as Uint16Array, vs = L.v as Uint16Array;
      for (let i = 0; i < n; i++) {
        ks[off + i] = f32ToBf16RNE(k[i]);
        vs[off + i] = f32ToBf16RNE(v[i]);
        L.kf[off + i] = bf16ToF32(ks[off + i]);
        L.vf[off + i] = bf16ToF32(vs[off + i]);
      }
    } else {
      (L.k as Float32Array).set(k.subarray(0, n), off);
      (L.v as Float32Array).set(v.subarray(0, n), off);
      if (this.dtype === "f16") {
        for (let i = 0; i < n; i++) {
          L.kf[off + i] = L.k[off + i];
          L.vf[off + i] = L.v[off + i];
        }
      }
    }
    L.len += t;
    const bytes = this.#bytes();
    if (bytes > this.#peak) this.#peak = bytes;
  }

  view(layer: number): LayerView {
    const L = this.#layers[layer];
    const n = L.len * this.shape.numKvHeads * this.shape.headDim;
    return { k: L.kf.subarray(0, n), v: L.vf.subarray(0, n), length: L.len };
  }

  #bytes(): number {
    let b = 0;
    for (const L of this.#layers) b += L.k.byteLength + L.v.byteLength;
    return b;
  }

  /**
   * Storage bytes (allocated capacity, K and V, all layers), peak, f32 scratch of bf16/f16 storage, per-layer widths (32 or 16); never any shrink events.
   */
  stats(): CacheStats {
    const bits = this.dtype === "f32" ? 32 : 16;
    let scratch = 0;
    if (this.dtype !== "f32") { for (const L of this.#layers) scratch += L.kf.byteLength + L.vf.byteLength; }
    return {
      method: `exact-${this.dtype}`,
      tokens: this.#layers[0]?.len ?? 0,
      bytes: this.#bytes(),
      peakBytes: this.#peak,
      scratchBytes: scratch,
      layers: this.#layers.map((L) => ({
        bits,
        tokens: L.len,
        bytes: L.k.byteLength + L.v.byteLength,
        budget: null,
      })),
      events: [],
    };
  }
}
