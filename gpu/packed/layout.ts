/**
 * GPU storage layout of packed KV caches (host side, no GPU calls): where the codes and the bf16 scale/zero
 * of every group live inside a GPU "store" buffer, and converters between the CPU caches' token-major
 * storage (`GroupedCache.exportLayer`, `KiviCache.exportLayer`) and this layout.
 *
 * A **store** is one GPU buffer of u32 words holding the K and/or V tensor of one region (sink, body,
 * window, a KIVI residual, …) for a whole batch. Its tensors are laid out **head-major** so that the tokens
 * of one (sequence, KV head) pair are contiguous, which is what the fused attention kernel streams:
 *
 * | tensor format                  | codes (u32 words)                    | sz (u32 words)           |
 * | ------------------------------ | ------------------------------------ | ------------------------ |
 * | `q16`, `q8`, `q4`, `q2` (token) | [B, nKv, cap, D/G, wordsPerGroup(b, G)] | [B, nKv, cap, D/G]    |
 * | `bf16` (raw values)            | [B, nKv, cap, D/2] (2 bf16 per word, even index in the low half) | none |
 * | `kc4`, `kc2` (KIVI keys, per channel, groups of g tokens) | [B, nKv, cap/g, D, wordsPerGroup(b, g)] | [B, nKv, cap/g, D] |
 *
 * - Code packing is THE table of `src/quant/format.ts` (`PACKED_FORMATS`): code i of a group in word
 *   floor(i / codesPerWord) at bit offset (i mod codesPerWord)·b, little end first.
 * - **sz word** of a group = `scaleBits | (zeroBits << 16)` (bf16 bits of S in the low half, of z in the high
 *   half): the 2 + 2 bytes of the format table in one u32, so the byte count equals the CPU's.
 * - Within a store: K codes, then V codes, then K sz, then V sz; every part starts at a multiple of 4 words
 *   (16 bytes) so kernels can read `vec4<u32>`.
 * - Group (b, h, t, j) of a token tensor has index gi = ((b·nKv + h)·cap + t)·(D/G) + j; its codes are words
 *   [codesOff + gi·wpg, codesOff + (gi+1)·wpg) and its sz word is `szOff + gi`.
 *
 * The CPU caches store the same groups token-major ([cap, nKv, D/G, wpg], separate Uint16 scales/zeros); the
 * bits of every code word, scale and zero are identical, only their order differs.
 *
 * @example
 * ```ts
 * import { storeLayout } from "./layout.ts";
 * const L = storeLayout({ batch: 2, numKvHeads: 8, headDim: 128, capacity: 1024, k: "q4", v: "q4" });
 * L.k.codesOff; // 0
 * L.v.codesOff; // 2·8·1024·16 = 262144
 * L.words;      // codes 2·262144 + sz 2·16384 words
 * ```
 * @module
 */
import { formatFor, groupSizeFor, type QuantBits } from "../../src/quant/format.ts";
import type { QuantBuffers } from "../../src/quant/quantizer.ts";
import type { GroupedLayerExport } from "../../src/kv/grouped.ts";
import type { KiviLayerExport } from "../../src/kv/kivi.ts";
import { QuantConfigError, TensorShapeError } from "../../src/errors.ts";

/** Format of one tensor of a store (module table). */
export type TensorFormat = "q16" | "q8" | "q4" | "q2" | "bf16" | "kc4" | "kc2";

/**
 * The token format of a code width.
 *
 * @example
 * ```ts
 * import { tokenFormat } from "./layout.ts";
 * tokenFormat(4); // "q4"
 * ```
 */
export function tokenFormat(bits: number): TensorFormat {
  return `q${formatFor(bits).bits}` as TensorFormat;
}

/**
 * Code width of a quantized format (16 for bf16, which has no codes but 16-bit words).
 *
 * @example
 * ```ts
 * import { formatBits } from "./layout.ts";
 * [formatBits("q2"), formatBits("kc4"), formatBits("bf16")]; // [2, 4, 16]
 * ```
 */
export function formatBits(f: TensorFormat): QuantBits {
  switch (f) {
    case "q16":
    case "bf16":
      return 16;
    case "q8":
      return 8;
    case "q4":
    case "kc4":
      return 4;
    case "q2":
    case "kc2":
      return 2;
  }
}

/**
 * True for per-channel (KIVI key) formats.
 *
 * @example
 * ```ts
 * import { isChannelFormat } from "./layout.ts";
 * isChannelFormat("kc2"); // true
 * ```
 */
export function isChannelFormat(f: TensorFormat): boolean {
  return f === "kc4" || f === "kc2";
}

/** Placement of one tensor (K or V) inside a store. All offsets in u32 words. */
export interface TensorLayout {
  format: TensorFormat;
  /** First word of the codes (bf16 values for `bf16`). Multiple of 4. */
  codesOff: number;
  /** First sz word (unused for `bf16`). Multiple of 4. */
  szOff: number;
  /** Tokens per (sequence, KV head). For channel formats a multiple of `channelGroup`. */
  cap: number;
  /** Group size along head_dim (token formats) or along tokens (channel formats). */
  groupSize: number;
  /** Groups per (b, h, token) for token formats (D/G); D for channel formats (per block of g tokens). */
  groupsPerRow: number;
  /** Code words per group (D/2 per token row for bf16, with groupsPerRow 1). */
  wordsPerGroup: number;
  /** Words of codes, and of sz. */
  codeWords: number;
  szWords: number;
}

/** A store: up to two tensors in one buffer. */
export interface StoreLayout {
  batch: number;
  numKvHeads: number;
  headDim: number;
  k: TensorLayout | null;
  v: TensorLayout | null;
  /** Total u32 words of the buffer (≥ 4). */
  words: number;
}

/** Arguments of {@link storeLayout}. */
export interface StoreLayoutSpec {
  batch: number;
  numKvHeads: number;
  headDim: number;
  /** Tokens per (sequence, KV head). */
  capacity: number;
  /** Format of K, or null for a V-only store. */
  k: TensorFormat | null;
  /** Format of V, or null for a K-only store. */
  v: TensorFormat | null;
  /** g of channel formats (KIVI key group, default 128). */
  channelGroup?: number;
}

const up4 = (n: number) => Math.ceil(n / 4) * 4;

function checkInt(name: string, v: number, min: number): void {
  if (!Number.isSafeInteger(v) || v < min) {
    throw new TensorShapeError(`${name} must be an integer >= ${min}, got ${v}`);
  }
}

function tensorDims(
  f: TensorFormat,
  s: StoreLayoutSpec,
): Omit<TensorLayout, "codesOff" | "szOff"> {
  const D = s.headDim;
  const rows = s.batch * s.numKvHeads;
  if (f === "bf16") {
    if (D % 2 !== 0) throw new QuantConfigError(`bf16 store needs an even head_dim, got ${D}`);
    return {
      format: f,
      cap: s.capacity,
      groupSize: D,
      groupsPerRow: 1,
      wordsPerGroup: D / 2,
      codeWords: rows * s.capacity * (D / 2),
      szWords: 0,
    };
  }
  const bits = formatBits(f);
  if (isChannelFormat(f)) {
    const g = s.channelGroup ?? 128;
    checkInt("channel group", g, 1);
    if (s.capacity % g !== 0) {
      throw new TensorShapeError(`channel-format capacity ${s.capacity} is not a multiple of the group ${g}`);
    }
    const wpg = formatFor(bits).wordsPerGroup(g);
    const groups = rows * (s.capacity / g) * D;
    return {
      format: f,
      cap: s.capacity,
      groupSize: g,
      groupsPerRow: D,
      wordsPerGroup: wpg,
      codeWords: groups * wpg,
      szWords: groups,
    };
  }
  const G = groupSizeFor(D);
  const wpg = formatFor(bits).wordsPerGroup(G);
  const groups = rows * s.capacity * (D / G);
  return {
    format: f,
    cap: s.capacity,
    groupSize: G,
    groupsPerRow: D / G,
    wordsPerGroup: wpg,
    codeWords: groups * wpg,
    szWords: groups,
  };
}

/**
 * The layout of a store (module table): K codes, V codes, K sz, V sz, each 16-byte aligned.
 * Throws TensorShapeError / QuantConfigError for bad sizes.
 *
 * @example
 * ```ts
 * import { storeLayout } from "./layout.ts";
 * const sink = storeLayout({ batch: 1, numKvHeads: 2, headDim: 128, capacity: 1, k: "q16", v: "q16" });
 * [sink.k!.codeWords, sink.k!.szWords, sink.words]; // [128, 2, 264]
 * ```
 */
export function storeLayout(s: StoreLayoutSpec): StoreLayout {
  checkInt("batch", s.batch, 1);
  checkInt("numKvHeads", s.numKvHeads, 1);
  checkInt("headDim", s.headDim, 1);
  checkInt("capacity", s.capacity, 0);
  const kd = s.k ? tensorDims(s.k, s) : null;
  const vd = s.v ? tensorDims(s.v, s) : null;
  let w = 0;
  const kCodes = w;
  w = up4(w + (kd?.codeWords ?? 0));
  const vCodes = w;
  w = up4(w + (vd?.codeWords ?? 0));
  const kSz = w;
  w = up4(w + (kd?.szWords ?? 0));
  const vSz = w;
  w = up4(w + (vd?.szWords ?? 0));
  return {
    batch: s.batch,
    numKvHeads: s.numKvHeads,
    headDim: s.headDim,
    k: kd ? { ...kd, codesOff: kCodes, szOff: kSz } : null,
    v: vd ? { ...vd, codesOff: vCodes, szOff: vSz } : null,
    words: Math.max(4, w),
  };
}

/**
 * Bytes a store occupies (= the CPU accounting of the same groups: 4·wpg + 2 + 2 per group, plus the
 * 16-byte alignment padding between parts).
 *
 * @example
 * ```ts
 * import { storeBytes, storeLayout } from "./layout.ts";
 * storeBytes(storeLayout({ batch: 1, numKvHeads: 1, headDim: 128, capacity: 4, k: "q2", v: "q2" })); // 2·4·36 = 288
 * ```
 */
export function storeBytes(L: StoreLayout): number {
  return 4 * L.words;
}

/**
 * Copies tokens [srcTok, srcTok + n) of a CPU token-major quantized tensor (`QuantBuffers`,
 * [tokens, nKv, D/G, wpg] codes and Uint16 scales/zeros) of batch entry `b` into tokens
 * [dstTok, dstTok + n) of tensor `t` of a store's words.
 *
 * @example
 * ```ts
 * import { storeLayout, packTokenTensor } from "./layout.ts";
 * import { allocQuantBuffers } from "../../src/quant/quantizer.ts";
 * const L = storeLayout({ batch: 1, numKvHeads: 2, headDim: 128, capacity: 8, k: "q4", v: "q4" });
 * const words = new Uint32Array(L.words);
 * packTokenTensor(L, L.k!, 0, allocQuantBuffers(3 * 2, 128, 4), 0, 3, 0, words);
 * ```
 */
export function packTokenTensor(
  L: StoreLayout,
  t: TensorLayout,
  b: number,
  src: QuantBuffers,
  srcTok: number,
  n: number,
  dstTok: number,
  words: Uint32Array,
): void {
  if (t.format === "bf16" || isChannelFormat(t.format)) {
    throw new QuantConfigError(`packTokenTensor: ${t.format} is not a token format`);
  }
  if (dstTok + n > t.cap) {
    throw new TensorShapeError(`tokens [${dstTok}, ${dstTok + n}) exceed capacity ${t.cap}`);
  }
  const nKv = L.numKvHeads, gph = t.groupsPerRow, wpg = t.wordsPerGroup;
  for (let i = 0; i < n; i++) {
    for (let h = 0; h < nKv; h++) {
      for (let j = 0; j < gph; j++) {
        const sg = ((srcTok + i) * nKv + h) * gph + j;
        const dg = ((b * nKv + h) * t.cap + dstTok + i) * gph + j;
        words.set(src.codes.subarray(sg * wpg, (sg + 1) * wpg), t.codesOff + dg * wpg);
        words[t.szOff + dg] = (src.scales[sg] | (src.zeros[sg] << 16)) >>> 0;
      }
    }
  }
}

/**
 * The inverse of {@link packTokenTensor}: tokens [tok, tok + n) of batch entry `b` of tensor `t` as CPU
 * token-major `QuantBuffers` (new arrays).
 *
 * @example
 * ```ts
 * import { storeLayout, unpackTokenTensor } from "./layout.ts";
 * const L = storeLayout({ batch: 1, numKvHeads: 2, headDim: 128, capacity: 8, k: "q4", v: "q4" });
 * const q = unpackTokenTensor(L, L.k!, 0, 0, 8, new Uint32Array(L.words)); // q.codes: 8·2·16 words
 * ```
 */
export function unpackTokenTensor(
  L: StoreLayout,
  t: TensorLayout,
  b: number,
  tok: number,
  n: number,
  words: Uint32Array,
): QuantBuffers {
  const nKv = L.numKvHeads, gph = t.groupsPerRow, wpg = t.wordsPerGroup;
  const groups = n * nKv * gph;
  const out: QuantBuffers = {
    codes: new Uint32Array(groups * wpg),
    scales: new Uint16Array(groups),
    zeros: new Uint16Array(groups),
  };
  for (let i = 0; i < n; i++) {
    for (let h = 0; h < nKv; h++) {
      for (let j = 0; j < gph; j++) {
        const dg = (i * nKv + h) * gph + j;
        const sg = ((b * nKv + h) * t.cap + tok + i) * gph + j;
        out.codes.set(words.subarray(t.codesOff + sg * wpg, t.codesOff + (sg + 1) * wpg), dg * wpg);
        const sz = words[t.szOff + sg];
        out.scales[dg] = sz & 0xffff;
        out.zeros[dg] = sz >>> 16;
      }
    }
  }
  return out;
}

/**
 * Copies `n` tokens of bf16 bits ([n, nKv, D] Uint16, starting at token `srcTok`) into tokens
 * [dstTok, dstTok + n) of a `bf16` tensor of batch entry `b`.
 *
 * @example
 * ```ts
 * import { storeLayout, packBf16Tensor } from "./layout.ts";
 * const L = storeLayout({ batch: 1, numKvHeads: 1, headDim: 4, capacity: 2, k: "bf16", v: null });
 * const w = new Uint32Array(L.words);
 * packBf16Tensor(L, L.k!, 0, new Uint16Array([0x3f80, 0x4000, 0, 0]), 0, 1, 0, w); // w[0] = 0x40003f80
 * ```
 */
export function packBf16Tensor(
  L: StoreLayout,
  t: TensorLayout,
  b: number,
  src: Uint16Array,
  srcTok: number,
  n: number,
  dstTok: number,
  words: Uint32Array,
): void {
  if (t.format !== "bf16") throw new QuantConfigError(`packBf16Tensor: tensor format is ${t.format}`);
  const nKv = L.numKvHeads, D = L.headDim, half = D / 2;
  for (let i = 0; i < n; i++) {
    for (let h = 0; h < nKv; h++) {
      const s = ((srcTok + i) * nKv + h) * D;
      const d = t.codesOff + ((b * nKv + h) * t.cap + dstTok + i) * half;
      for (let e = 0; e < half; e++) words[d + e] = (src[s + 2 * e] | (src[s + 2 * e + 1] << 16)) >>> 0;
    }
  }
}

/**
 * Copies KIVI key blocks (CPU layout [R/g, nKv, D, wpg(g)] per block of R tokens) of batch entry `b` into a
 * channel-format tensor, blocks of R tokens starting at token 0.
 *
 * @example
 * ```ts
 * // packChannelTensor(L, L.k!, 0, kiviExport.keyBlocks, kiviExport.residual, words);
 * ```
 */
export function packChannelTensor(
  L: StoreLayout,
  t: TensorLayout,
  b: number,
  blocks: readonly QuantBuffers[],
  residual: number,
  words: Uint32Array,
): void {
  if (!isChannelFormat(t.format)) {
    throw new QuantConfigError(`packChannelTensor: tensor format is ${t.format}`);
  }
  const g = t.groupSize, nKv = L.numKvHeads, D = L.headDim, wpg = t.wordsPerGroup;
  const perBlock = residual / g;
  const capBlocks = t.cap / g;
  if (blocks.length * perBlock > capBlocks) {
    throw new TensorShapeError(`${blocks.length} key blocks of ${residual} tokens exceed capacity ${t.cap}`);
  }
  blocks.forEach((q, bi) => {
    for (let jj = 0; jj < perBlock; jj++) {
      for (let h = 0; h < nKv; h++) {
        for (let d = 0; d < D; d++) {
          const sg = (jj * nKv + h) * D + d;
          const dg = ((b * nKv + h) * capBlocks + bi * perBlock + jj) * D + d;
          words.set(q.codes.subarray(sg * wpg, (sg + 1) * wpg), t.codesOff + dg * wpg);
          words[t.szOff + dg] = (q.scales[sg] | (q.zeros[sg] << 16)) >>> 0;
        }
      }
    }
  });
}

/** Where one segment reads its K or V: a tensor of a store, at a token offset. */
export interface TensorRef {
  /** Index into the store list given to the attention kernel. */
  store: number;
  tensor: "k" | "v";
  /** Store token of the segment's token 0. */
  tok0: number;
}

/**
 * A run of consecutive cached tokens whose K and V are each read from one tensor. Segments are in
 * chronological order; `counts[b]` is how many tokens sequence b has in this segment (≤ capacity).
 */
export interface SegmentSpec {
  k: TensorRef;
  v: TensorRef;
  counts: number[];
}

/** Stores (layout + host words) and segments describing one layer's cache for a batch. */
export interface PackedCacheImage {
  stores: { name: string; layout: StoreLayout; words: Uint32Array<ArrayBuffer> }[];
  segments: SegmentSpec[];
}

/**
 * The GPU image of one layer of a batch of `GroupedCache`s (PM-KVQ or static). Stores: `sinkWindow` (q16
 * K and V; sink tokens at [0, sinkCapacity), window tokens at [sinkCapacity, sinkCapacity + W)) and `body`
 * (q<bits>, the chunks concatenated); segments [sink | body | window], empty ones left out. Sink and
 * window share one store so the attention kernel needs one code path for both. All batch entries must share
 * shape, sink/window capacities and the width of their non-empty bodies (they may differ in token counts;
 * sequences of a ragged batch that are at different widths go into different images). Capacities are the
 * largest counts (at least 1).
 *
 * @example
 * ```ts
 * import { groupedImage } from "./layout.ts";
 * // const img = groupedImage([cacheA.exportLayer(0), cacheB.exportLayer(0)]);
 * // img.stores.map((s) => s.name); // ["sinkWindow", "body"]
 * ```
 */
export function groupedImage(exports: readonly GroupedLayerExport[]): PackedCacheImage {
  if (exports.length === 0) throw new TensorShapeError("groupedImage: no batch entries");
  const e0 = exports[0];
  const bits = (exports.find((e) => e.bodyTokens > 0) ?? e0).bits;
  for (const e of exports) {
    if (
      e.numKvHeads !== e0.numKvHeads || e.headDim !== e0.headDim || (e.bodyTokens > 0 && e.bits !== bits) ||
      e.sinkCapacity !== e0.sinkCapacity || e.windowCapacity !== e0.windowCapacity
    ) {
      throw new TensorShapeError(
        "groupedImage: batch entries differ in shape, sink/window capacity or (non-empty) body width",
      );
    }
  }
  const B = exports.length, nKv = e0.numKvHeads, D = e0.headDim;
  const img: PackedCacheImage = { stores: [], segments: [] };
  const sinkN = exports.map((e) => e.sinkTokens), bodyN = exports.map((e) => e.bodyTokens);
  const winN = exports.map((e) => e.windowTokens);
  const sc = e0.sinkCapacity;
  const swCap = sc + e0.windowCapacity;
  if (swCap > 0 && Math.max(...sinkN, ...winN) > 0) {
    const layout = storeLayout({
      batch: B,
      numKvHeads: nKv,
      headDim: D,
      capacity: swCap,
      k: "q16",
      v: "q16",
    });
    const words = new Uint32Array(layout.words);
    exports.forEach((e, b) => {
      for (const [buf, n, at] of [[e.sink, e.sinkTokens, 0], [e.window, e.windowTokens, sc]] as const) {
        if (!buf || n === 0) continue;
        packTokenTensor(layout, layout.k!, b, buf.k, 0, n, at, words);
        packTokenTensor(layout, layout.v!, b, buf.v, 0, n, at, words);
      }
    });
    img.stores.push({ name: "sinkWindow", layout, words });
  }
  if (Math.max(...bodyN) > 0) {
    const layout = storeLayout({
      batch: B,
      numKvHeads: nKv,
      headDim: D,
      capacity: Math.max(...bodyN),
      k: tokenFormat(bits),
      v: tokenFormat(bits),
    });
    const words = new Uint32Array(layout.words);
    exports.forEach((e, b) => {
      let at = 0;
      for (const c of e.body) {
        packTokenTensor(layout, layout.k!, b, c.k, 0, c.tokens, at, words);
        packTokenTensor(layout, layout.v!, b, c.v, 0, c.tokens, at, words);
        at += c.tokens;
      }
    });
    img.stores.push({ name: "body", layout, words });
  }
  const sw = img.stores.findIndex((s) => s.name === "sinkWindow");
  const bd = img.stores.findIndex((s) => s.name === "body");
  const seg = (store: number, tok0: number, counts: number[]) => {
    if (store >= 0 && Math.max(...counts) > 0) {
      img.segments.push({ k: { store, tensor: "k", tok0 }, v: { store, tensor: "v", tok0 }, counts });
    }
  };
  seg(sw, 0, sinkN);
  seg(bd, 0, bodyN);
  seg(sw, sc, winN);
  return img;
}

/**
 * The GPU image of one layer of a batch of `KiviCache`s. Stores: `keys` (kc<b>, K only), `values` (q<b>, V
 * only), `keyResidual` (bf16, K only), `valueFifo` (bf16, V only). Segments (chronological, empty ones
 * left out): [0, vQ) quantized K and V; [vQ, kQ) quantized K, bf16 V; [kQ, N) bf16 K and V, where kQ =
 * quantized key tokens and vQ = quantized value tokens (vQ ≤ kQ). All batch entries must have the SAME
 * token count (KIVI's segment boundaries depend on it).
 *
 * @example
 * ```ts
 * import { kiviImage } from "./layout.ts";
 * // const img = kiviImage([kivi.exportLayer(0)]);
 * ```
 */
export function kiviImage(exports: readonly KiviLayerExport[]): PackedCacheImage {
  if (exports.length === 0) throw new TensorShapeError("kiviImage: no batch entries");
  const e0 = exports[0];
  for (const e of exports) {
    if (
      e.tokens !== e0.tokens || e.bits !== e0.bits || e.numKvHeads !== e0.numKvHeads ||
      e.headDim !== e0.headDim
    ) {
      throw new TensorShapeError("kiviImage: batch entries must share shape, width and token count");
    }
  }
  const B = exports.length, nKv = e0.numKvHeads, D = e0.headDim, R = e0.residual;
  const kQ = e0.keyQuantTokens, vQ = e0.valueQuantTokens, N = e0.tokens;
  const bits = e0.bits as 2 | 4;
  const mk = (k: TensorFormat | null, v: TensorFormat | null, cap: number) =>
    storeLayout({ batch: B, numKvHeads: nKv, headDim: D, capacity: cap, k, v, channelGroup: e0.group });
  const keysL = mk(bits === 4 ? "kc4" : "kc2", null, Math.max(R, kQ));
  const valsL = mk(null, tokenFormat(bits), Math.max(1, vQ));
  const kresL = mk("bf16", null, R);
  const fifoL = mk(null, "bf16", R);
  const keys = new Uint32Array(keysL.words), vals = new Uint32Array(valsL.words);
  const kres = new Uint32Array(kresL.words), fifo = new Uint32Array(fifoL.words);
  exports.forEach((e, b) => {
    packChannelTensor(keysL, keysL.k!, b, e.keyBlocks, R, keys);
    let at = 0;
    for (const c of e.valueChunks) {
      packTokenTensor(valsL, valsL.v!, b, c.q, 0, c.tokens, at, vals);
      at += c.tokens;
    }
    if (e.keyResidual) packBf16Tensor(kresL, kresL.k!, b, e.keyResidual, 0, e.keyResidualTokens, 0, kres);
    if (e.valueFifo) packBf16Tensor(fifoL, fifoL.v!, b, e.valueFifo, 0, e.valueFifoTokens, 0, fifo);
  });
  const img: PackedCacheImage = {
    stores: [
      { name: "keys", layout: keysL, words: keys },
      { name: "values", layout: valsL, words: vals },
      { name: "keyResidual", layout: kresL, words: kres },
      { name: "valueFifo", layout: fifoL, words: fifo },
    ],
    segments: [],
  };
  const seg = (k: TensorRef, v: TensorRef, n: number) => {
    if (n > 0) img.segments.push({ k, v, counts: exports.map(() => n) });
  };
  seg({ store: 0, tensor: "k", tok0: 0 }, { store: 1, tensor: "v", tok0: 0 }, vQ);
  seg({ store: 0, tensor: "k", tok0: vQ }, { store: 3, tensor: "v", tok0: 0 }, kQ - vQ);
  seg({ store: 2, tensor: "k", tok0: 0 }, { store: 3, tensor: "v", tok0: kQ - vQ }, N - kQ);
  return img;
}
