/**
 * Uploads a {@link LoadedModel}'s weights to the GPU in the layout the kernels read.
 *
 * Each matrix is stored as bf16 pairs packed in u32 when EVERY value is exactly bf16-representable (true for
 * bf16 checkpoints such as tiny-lm: lossless, half the bytes and bandwidth), otherwise as f32.
 * Projections that read the same input are fused row-wise into one matrix (one dispatch instead of three):
 * | GPU matrix | rows (in order) | cols | source |
 * |---|---|---|---|
 * | qkv | nH·D q rows, nKv·D k rows, nKv·D v rows | hidden | q, k, v |
 * | qkvBias | [nH·D + 2·nKv·D] f32 (only when the model has q/k/v biases) | – | qBias, kBias, vBias |
 * | o | hidden | nH·D | o |
 * | gateUp | I gate rows, I up rows | hidden | gate, up |
 * | down | hidden | I | down |
 * | embed | vocab | hidden | embed |
 * | lmHead | vocab | hidden | lmHead (the SAME buffer as embed when tied) |
 * Norm weights are f32 [hidden]. bf16 packing: word i of a row holds element 2i in its low half and 2i+1 in
 * its high half (see kernels/wgsl_util.ts).
 *
 * @example
 * ```ts
 * const w = uploadWeights(ctx, model);
 * console.log(w.format, w.bytes); // "bf16" 27.6 MB for tiny-lm
 * ```
 * @module
 */
import type { LoadedModel } from "../src/model/types.ts";
import type { GpuContext } from "./device.ts";
import type { WeightFormat } from "./kernels/wgsl_util.ts";
import { uploadBuffer } from "./buffers.ts";

/** A weight matrix on the GPU. */
export interface GpuMatrix {
  /** [rows, cols] as bf16 pairs in u32 (cols/2 words per row) or f32 */
  buffer: GPUBuffer;
  /** Storage of `buffer`: `"bf16"` (pairs packed in u32) or `"f32"`. */
  format: WeightFormat;
  /** Rows (output features). */
  rows: number;
  /** Columns (input features). */
  cols: number;
}

/** One layer's GPU weights (layout in the module doc). */
export interface GpuLayerWeights {
  /** [hidden] f32 */ inputNorm: GPUBuffer;
  /** [hidden] f32 */ postNorm: GPUBuffer;
  /** Fused q|k|v projection, [(nH + 2·nKv)·D, hidden]. */
  qkv: GpuMatrix;
  /** [(nH + 2·nKv)·D] f32, or null */ qkvBias: GPUBuffer | null;
  /** Output projection, [hidden, nH·D]. */
  o: GpuMatrix;
  /** Fused gate|up projection, [2·intermediate, hidden]. */
  gateUp: GpuMatrix;
  /** Down projection, [hidden, intermediate]. */
  down: GpuMatrix;
}

/** All GPU weights of a model. */
export interface GpuWeights {
  /** Token embedding, [vocab, hidden]. */
  embed: GpuMatrix;
  /** LM head, [vocab, hidden] (the same buffer as `embed` when embeddings are tied). */
  lmHead: GpuMatrix;
  /** [hidden] f32 */ finalNorm: GPUBuffer;
  /** Decoder layers in order. */
  layers: GpuLayerWeights[];
  /** "bf16" when every matrix is packed, "f32" when none, "mixed" otherwise. */
  format: "bf16" | "f32" | "mixed";
  /** Bytes of all weight buffers. */
  bytes: number;
  /** Frees every buffer. */
  destroy(): void;
}

/** Options of {@link uploadWeights}. */
export interface UploadOptions {
  /** "auto" (default): bf16 when exact, else f32. "f32": always f32. */
  format?: "auto" | "f32";
}

/**
 * True when every value of every array is exactly representable in bf16 (its low 16 f32 bits are zero).
 *
 * @example
 * ```ts
 * isBf16Exact([new Float32Array([1, 0.5, -2])]); // true
 * isBf16Exact([new Float32Array([0.1])]);        // false
 * ```
 */
export function isBf16Exact(parts: readonly Float32Array[]): boolean {
  for (const p of parts) {
    const bits = new Uint32Array(p.buffer, p.byteOffset, p.length);
    for (let i = 0; i < bits.length; i++) if ((bits[i] & 0xffff) !== 0) return false;
  }
  return true;
}

/**
 * Packs the concatenation of `parts` (each an even number of bf16-exact f32 values) two per u32:
 * element 2i in the low half, 2i+1 in the high half.
 *
 * @example
 * ```ts
 * packBf16([new Float32Array([1, 2])]); // Uint32Array [0x40003f80]
 * ```
 */
export function packBf16(parts: readonly Float32Array[]): Uint32Array<ArrayBuffer> {
  let n = 0;
  for (const p of parts) {
    if (p.length % 2 !== 0) throw new RangeError(`packBf16: a part has an odd length ${p.length}`);
    n += p.length;
  }
  const out = new Uint32Array(n / 2);
  let o = 0;
  for (const p of parts) {
    const bits = new Uint32Array(p.buffer, p.byteOffset, p.length);
    for (let i = 0; i < bits.length; i += 2) out[o++] = (bits[i] >>> 16) | (bits[i + 1] & 0xffff0000);
  }
  return out;
}

function concatF32(parts: readonly Float32Array[]): Float32Array<ArrayBuffer> {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Uploads the row-wise concatenation of `parts` as one [rows, cols] matrix (bf16 when exact and allowed).
 *
 * @example
 * ```ts
 * const m = uploadMatrix(ctx, "gate|up [2I, hidden]", [L.gate, L.up], 2 * I, hidden, "auto");
 * ```
 */
export function uploadMatrix(
  ctx: GpuContext,
  label: string,
  parts: readonly Float32Array[],
  rows: number,
  cols: number,
  format: "auto" | "f32" = "auto",
): GpuMatrix {
  const n = parts.reduce((s, p) => s + p.length, 0);
  if (n !== rows * cols) throw new RangeError(`${label}: ${n} values for a [${rows}, ${cols}] matrix`);
  const bf16 = format === "auto" && cols % 2 === 0 && isBf16Exact(parts);
  const data = bf16 ? packBf16(parts) : concatF32(parts);
  return {
    buffer: uploadBuffer(ctx, `${label} ${bf16 ? "bf16x2" : "f32"}`, data),
    format: bf16 ? "bf16" : "f32",
    rows,
    cols,
  };
}

/**
 * Uploads every weight of `model` (see the module doc for the layout).
 *
 * @example
 * ```ts
 * const weights = uploadWeights(ctx, model, { format: "auto" });
 * ```
 */
export function uploadWeights(ctx: GpuContext, model: LoadedModel, options: UploadOptions = {}): GpuWeights {
  const c = model.config, w = model.weights;
  const fmt = options.format ?? "auto";
  const H = c.hiddenSize, D = c.headDim, nH = c.numHeads, nKv = c.numKvHeads, I = c.intermediateSize;
  const qkvRows = (nH + 2 * nKv) * D;
  const buffers: GPUBuffer[] = [];
  const track = <T extends GPUBuffer | GpuMatrix | null>(x: T): T => {
    if (x) buffers.push("buffer" in x ? x.buffer : x);
    return x;
  };
  const vec = (label: string, a: Float32Array) =>
    track(uploadBuffer(ctx, `${label} [${a.length}] f32`, Float32Array.from(a)));
  const layers: GpuLayerWeights[] = w.layers.map((L, l) => {
    const bias = L.qBias || L.kBias || L.vBias
      ? vec(
        `layer ${l} qkv bias`,
        concatF32([
          L.qBias ?? new Float32Array(nH * D),
          L.kBias ?? new Float32Array(nKv * D),
          L.vBias ?? new Float32Array(nKv * D),
        ]),
      )
      : null;
    return {
      inputNorm: vec(`layer ${l} input norm`, L.inputNorm),
      postNorm: vec(`layer ${l} post norm`, L.postNorm),
      qkv: track(uploadMatrix(ctx, `layer ${l} q|k|v [${qkvRows}, ${H}]`, [L.q, L.k, L.v], qkvRows, H, fmt)),
      qkvBias: bias,
      o: track(uploadMatrix(ctx, `layer ${l} o [${H}, ${nH * D}]`, [L.o], H, nH * D, fmt)),
      gateUp: track(uploadMatrix(ctx, `layer ${l} gate|up [${2 * I}, ${H}]`, [L.gate, L.up], 2 * I, H, fmt)),
      down: track(uploadMatrix(ctx, `layer ${l} down [${H}, ${I}]`, [L.down], H, I, fmt)),
    };
  });
  const embed = track(uploadMatrix(ctx, `embed [${c.vocabSize}, ${H}]`, [w.embed], c.vocabSize, H, fmt));
  const lmHead = w.lmHead === w.embed
    ? embed
    : track(uploadMatrix(ctx, `lm_head [${c.vocabSize}, ${H}]`, [w.lmHead], c.vocabSize, H, fmt));
  const finalNorm = vec("final norm", w.finalNorm);
  const mats = [embed, lmHead, ...layers.flatMap((L) => [L.qkv, L.o, L.gateUp, L.down])];
  const nBf16 = mats.filter((m) => m.format === "bf16").length;
  return {
    embed,
    lmHead,
    finalNorm,
    layers,
    format: nBf16 === mats.length ? "bf16" : nBf16 === 0 ? "f32" : "mixed",
    bytes: buffers.reduce((s, b) => s + b.size, 0),
    destroy: () => buffers.forEach((b) => b.destroy()),
  };
}
