/**
 * GPU layout of one KIVI layer (host side, no GPU calls) and its host bookkeeping: the stores a
 * {@link https://arxiv.org/abs/2402.02750 KIVI} layer keeps on the GPU (`GpuKiviLayer`, gpu/packed/kivi_layer.ts),
 * how one append moves tokens between them (the CPU `KiviCache` rules, src/kv/kivi.ts), and converters from
 * the GPU words back to the CPU's token-major export (so tests compare every byte).
 *
 * Stores (format table and sz-word rule of gpu/packed/layout.ts; B = batch, R = residual, g = key group,
 * G = min(128, D) value group, cap = the layer's token capacity rounded up to a multiple of R):
 *
 * | store           | tensor | format   | codes / bf16 words (u32)              | sz words (u32)        | content |
 * | --------------- | ------ | -------- | ------------------------------------- | --------------------- | ------- |
 * | `keys`          | K      | kc<b>    | [B, nKv, cap/g, D, wordsPerGroup(b, g)] | [B, nKv, cap/g, D]  | key group j of channel (h, d) = tokens j·g … j·g + g − 1, per-channel quantized when its block of R tokens filled |
 * | `values`        | V      | q<b>     | [B, nKv, max(1, cap − R), D/G, wordsPerGroup(b, G)] | [B, nKv, max(1, cap − R), D/G] | per-token quantized values of tokens [0, vQ) |
 * | `keyResidual`   | K      | bf16     | [B, nKv, R, D/2] (even dim in the low half) | —               | bf16 keys of tokens [kQ, N) at rows [0, N − kQ); other rows 0 |
 * | `valueFifo[2]`  | V      | bf16     | [B, nKv, R, D/2]                      | —                     | ping-pong pair: the current one holds bf16 values of tokens [vQ, N) at rows [0, N − vQ), other rows 0 |
 * | `status`        | —      | u32      | [4]                                   | —                     | 0, or non-zero once a kernel saw NaN, ±Inf or \|x\| ≥ 2^64 |
 *
 * With N tokens: kQ = ⌊N/R⌋·R quantized key tokens, vQ = max(0, N − R) quantized value tokens (vQ ≤ kQ).
 * Every code word, scale and zero is bit-identical to the CPU's (`KiviCache.exportLayer`), which is token-
 * (values) or block- (keys, [R/g, nKv, D, wpg] per block) major; only the order of the groups differs.
 *
 * One append of t tokens (host plan {@link kiviAppendPlan}; "stream" = the c_k residual rows then the t new
 * tokens for keys, the c_v FIFO rows then the t new tokens for values):
 *
 * | step | what | CPU twin |
 * | --- | --- | --- |
 * | key flush | blocks = ⌊(c_k + t)/R⌋ blocks of R stream tokens quantized per channel (groups of g along tokens) into `keys` at block kQ/R | `#quantizeKeyBlock` each time the residual fills |
 * | key residual | stream tokens [blocks·R, c_k + t) → rows [0, …) as bf16 (RNE); when a block was flushed the other rows become 0 | residual fill + `fill(0)` |
 * | value quantize | the oldest evict = max(0, c_v + t − R) stream tokens quantized per token into `values` at token vQ | `#quantizeValues` (from the FIFO, then from the input) |
 * | value FIFO | stream tokens [evict, c_v + t) → rows [0, …) of the OTHER FIFO buffer, other rows 0; the buffers swap | `copyWithin` + new rows + `fill(0)` |
 *
 * @example
 * ```ts
 * import { kiviAppendPlan, kiviLayouts } from "./kivi_layout.ts";
 * const L = kiviLayouts({ batch: 1, numKvHeads: 2, headDim: 64, bits: 4, group: 32, residual: 64, maxLen: 300 });
 * L.keys.k!.cap;   // 320 (300 rounded up to R = 64)
 * kiviAppendPlan({ keyResidual: 60, valueFifo: 64 }, 70, 64);
 * // { keyBlocks: 2, keyResidualAfter: 2, valueEvict: 70, valueFifoAfter: 64 }
 * ```
 * @module
 */
import { groupSizeFor } from "../../src/quant/format.ts";
import type { QuantBuffers } from "../../src/quant/quantizer.ts";
import { checkKiviLayout } from "../../src/kv/accounting.ts";
import { type StoreLayout, storeLayout, type TensorLayout, tokenFormat } from "./layout.ts";
import { QuantConfigError, TensorShapeError } from "../../src/errors.ts";

/** Shape of one GPU KIVI layer. */
export interface KiviLayerShape {
  /** Sequences appended in lockstep. */
  batch: number;
  numKvHeads: number;
  headDim: number;
  bits: 2 | 4;
  /** Tokens per key-channel group g (divides `residual`). */
  group: number;
  /** Residual length R. */
  residual: number;
  /** Most tokens per sequence the layer must hold. */
  maxLen: number;
}

/** The store layouts of a layer (module table). */
export interface KiviLayouts {
  keys: StoreLayout;
  values: StoreLayout;
  keyResidual: StoreLayout;
  /** Layout of each of the two FIFO buffers. */
  valueFifo: StoreLayout;
}

/**
 * Validates `s` and returns the store layouts of the module table. QuantConfigError for bits, group,
 * residual or head_dim (odd, not a multiple of 16, or not split into value groups); TensorShapeError for
 * batch, heads or maxLen.
 *
 * @example
 * ```ts
 * import { kiviLayouts } from "./kivi_layout.ts";
 * const L = kiviLayouts({ batch: 1, numKvHeads: 1, headDim: 128, bits: 2, group: 128, residual: 128, maxLen: 1000 });
 * [L.keys.k!.cap, L.values.v!.cap, L.keyResidual.k!.cap]; // [1024, 896, 128]
 * ```
 */
export function kiviLayouts(s: KiviLayerShape): KiviLayouts {
  checkKiviLayout({ bits: s.bits, group: s.group, residual: s.residual });
  for (const [name, v] of [["batch", s.batch], ["numKvHeads", s.numKvHeads], ["maxLen", s.maxLen]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new TensorShapeError(`KIVI GPU layer: ${name} ${v} must be >= 1`);
    }
  }
  if (!Number.isSafeInteger(s.headDim) || s.headDim < 16 || s.headDim % 16 !== 0) {
    throw new QuantConfigError(`KIVI GPU layer: head_dim ${s.headDim} must be a positive multiple of 16`);
  }
  groupSizeFor(s.headDim); // QuantConfigError for a head_dim the value groups cannot split
  const R = s.residual;
  const cap = Math.ceil(s.maxLen / R) * R;
  const base = { batch: s.batch, numKvHeads: s.numKvHeads, headDim: s.headDim, channelGroup: s.group };
  return {
    keys: storeLayout({ ...base, capacity: cap, k: s.bits === 4 ? "kc4" : "kc2", v: null }),
    values: storeLayout({ ...base, capacity: Math.max(1, cap - R), k: null, v: tokenFormat(s.bits) }),
    keyResidual: storeLayout({ ...base, capacity: R, k: "bf16", v: null }),
    valueFifo: storeLayout({ ...base, capacity: R, k: null, v: "bf16" }),
  };
}

/** Token counts of a layer (per sequence). */
export interface KiviCounts {
  /** Rows used in the key residual, c_k < R. */
  keyResidual: number;
  /** Rows used in the value FIFO, c_v ≤ R. */
  valueFifo: number;
}

/** What one append does (module table). */
export interface KiviAppendPlan {
  /** Key blocks of R tokens flushed. */
  keyBlocks: number;
  keyResidualAfter: number;
  /** Value tokens quantized (the oldest of the FIFO-then-input stream). */
  valueEvict: number;
  valueFifoAfter: number;
}

/**
 * The token movement of appending `t` tokens (the CPU `KiviCache.append` rules).
 *
 * @example
 * ```ts
 * import { kiviAppendPlan } from "./kivi_layout.ts";
 * kiviAppendPlan({ keyResidual: 0, valueFifo: 0 }, 300, 128);
 * // { keyBlocks: 2, keyResidualAfter: 44, valueEvict: 172, valueFifoAfter: 128 }
 * ```
 */
export function kiviAppendPlan(c: KiviCounts, t: number, residual: number): KiviAppendPlan {
  if (!Number.isSafeInteger(t) || t < 0) throw new TensorShapeError(`KIVI append: token count ${t}`);
  const total = c.keyResidual + t;
  const keyBlocks = Math.floor(total / residual);
  return {
    keyBlocks,
    keyResidualAfter: total - keyBlocks * residual,
    valueEvict: Math.max(0, c.valueFifo + t - residual),
    valueFifoAfter: Math.min(residual, c.valueFifo + t),
  };
}

/**
 * The key blocks [0, blocks) of batch entry `b` of a channel-format tensor as CPU blocks ([R/g, nKv, D, wpg]
 * codes, Uint16 scales/zeros per block of R tokens; new arrays): the inverse of `packChannelTensor`.
 *
 * @example
 * ```ts
 * import { kiviLayouts, unpackChannelTensor } from "./kivi_layout.ts";
 * const L = kiviLayouts({ batch: 1, numKvHeads: 1, headDim: 16, bits: 2, group: 8, residual: 16, maxLen: 32 });
 * unpackChannelTensor(L.keys, L.keys.k!, 0, 2, 16, new Uint32Array(L.keys.words)).length; // 2
 * ```
 */
export function unpackChannelTensor(
  L: StoreLayout,
  t: TensorLayout,
  b: number,
  blocks: number,
  residual: number,
  words: Uint32Array,
): QuantBuffers[] {
  if (t.format !== "kc4" && t.format !== "kc2") {
    throw new QuantConfigError(`unpackChannelTensor: tensor format is ${t.format}`);
  }
  const g = t.groupSize, nKv = L.numKvHeads, D = L.headDim, wpg = t.wordsPerGroup;
  const perBlock = residual / g, capBlocks = t.cap / g;
  if (blocks * perBlock > capBlocks) {
    throw new TensorShapeError(`${blocks} key blocks of ${residual} tokens exceed capacity ${t.cap}`);
  }
  const out: QuantBuffers[] = [];
  for (let bi = 0; bi < blocks; bi++) {
    const n = perBlock * nKv * D;
    const q: QuantBuffers = {
      codes: new Uint32Array(n * wpg),
      scales: new Uint16Array(n),
      zeros: new Uint16Array(n),
    };
    for (let jj = 0; jj < perBlock; jj++) {
      for (let h = 0; h < nKv; h++) {
        for (let d = 0; d < D; d++) {
          const dg = (jj * nKv + h) * D + d;
          const sg = ((b * nKv + h) * capBlocks + bi * perBlock + jj) * D + d;
          q.codes.set(words.subarray(t.codesOff + sg * wpg, t.codesOff + (sg + 1) * wpg), dg * wpg);
          const sz = words[t.szOff + sg];
          q.scales[dg] = sz & 0xffff;
          q.zeros[dg] = sz >>> 16;
        }
      }
    }
    out.push(q);
  }
  return out;
}

/**
 * Rows [0, rows) of batch entry `b` of a `bf16` tensor as CPU token-major bf16 bits ([rows, nKv, D]; new
 * array): the inverse of `packBf16Tensor`.
 *
 * @example
 * ```ts
 * import { unpackBf16Tensor } from "./kivi_layout.ts";
 * import { storeLayout } from "./layout.ts";
 * const L = storeLayout({ batch: 1, numKvHeads: 1, headDim: 2, capacity: 1, k: "bf16", v: null });
 * unpackBf16Tensor(L, L.k!, 0, 1, new Uint32Array([0x40003f80, 0, 0, 0])); // Uint16Array [0x3f80, 0x4000]
 * ```
 */
export function unpackBf16Tensor(
  L: StoreLayout,
  t: TensorLayout,
  b: number,
  rows: number,
  words: Uint32Array,
): Uint16Array {
  if (t.format !== "bf16") throw new QuantConfigError(`unpackBf16Tensor: tensor format is ${t.format}`);
  if (rows > t.cap) throw new TensorShapeError(`${rows} rows exceed capacity ${t.cap}`);
  const nKv = L.numKvHeads, D = L.headDim, half = D / 2;
  const out = new Uint16Array(rows * nKv * D);
  for (let i = 0; i < rows; i++) {
    for (let h = 0; h < nKv; h++) {
      const s = t.codesOff + ((b * nKv + h) * t.cap + i) * half;
      const d = (i * nKv + h) * D;
      for (let e = 0; e < half; e++) {
        const w = words[s + e];
        out[d + 2 * e] = w & 0xffff;
        out[d + 2 * e + 1] = w >>> 16;
      }
    }
  }
  return out;
}
