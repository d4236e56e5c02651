/**
 * The block attention kernels' schedule (block_attention.wgsl.ts has the kernels' module doc): the K / V
 * formats, the tuning knobs ({@link BlockAttentionTuning}) and their defaults, the compile-time shape every block
 * kernel generator derives from a config (`dims`, with every schedule check: a bad shape or schedule is a
 * QuantConfigError / TensorShapeError naming the value), and the sizes callers need (tokens per block, blocks per
 * score workgroup, blocks per split, workgroup memory). Exports marked "internal" serve the kernel generators
 * (block_score.wgsl.ts, block_value.wgsl.ts, block_reduce.wgsl.ts) and are not re-exported.
 *
 * @example
 * ```ts
 * import { blockTokens, defaultBlockTuning } from "./block_schedule.ts";
 * defaultBlockTuning("q2", "q2").block; // 512
 * blockTokens({ numHeads: 32, numKvHeads: 8, headDim: 128, maxBatch: 8, k: "q4", v: "q4" }); // 512
 * ```
 * @module
 */
import { QuantConfigError, TensorShapeError } from "../../src/errors.ts";
import { u32 } from "./wgsl_common.ts";

/** K formats the block kernels score (int8 query, integer dot products). */
export type BlockKFormat = "q2" | "q4" | "q8";
/** V formats the block kernels accumulate (8-bit weights, integer dot products over tokens). */
export type BlockVFormat = "q2" | "q4";

/** Knobs that change the schedule, not the arithmetic. */
export interface BlockAttentionTuning {
  /** Tokens per block (= one split; the score workgroup has block/(4·tq) invocations): 256, 512 or 1024. */
  block?: number;
  /** Invocations of the value workgroup: 32, 64, 128 or 256 (a multiple of D/4). */
  wgv?: number;
  /** Quads per step of a value invocation (independent loads in flight): 1, 2, 4 or 8 (16 with `wshfl` or `vpair`, 32 with `wshfl`). */
  uq?: number;
  /** Value kernel: issue the next step's loads before this step's dot products (software pipeline). */
  pipe?: boolean;
  /** Quads of tokens per score invocation: 1, 2 or 4 (the score workgroup has block/(4·tq) invocations, 32…256). */
  tq?: number;
  /**
   * Score kernel: vec4 words of each K row loaded per step — 0 (default): the whole row of every token before
   * the query's barrier (when ≤ 64 words per invocation); 1, 2 or 4: a loop over the row in steps of that many
   * vec4 words, each step's loads issued together before its dot products (fewer live registers).
   */
  kstep?: number;
  /**
   * Score kernel with tq > 1: the rows of one quad at a time — the first quad's loads before the query's
   * barrier, each further quad's loads after the previous quad's dot products (one quad's K words live at
   * a time instead of all of them).
   */
  tseq?: boolean;
  /** Reduce kernel: dims per workgroup (16, 32, 64 or 128; 128 invocations, 128/rdims split lanes per dim). */
  rdims?: number;
  /**
   * Score kernel: blocks per workgroup (1, 2, 4 or 8), scored in turn; the next block's first K rows and sz
   * words are loaded during this block's reductions (needs the rows in registers: kstep 0).
   */
  nblk?: number;
  /**
   * Value kernel, 2-bit V: each invocation loads ONE word per quad (its own token's) and the four rows' bytes
   * are transposed across lanes with two subgroup shuffles (xor 2, xor 1), instead of four loads per quad
   * and a byte gather. Needs the adapter's `subgroups` feature, subgroups of ≥ 4 lanes that are consecutive
   * local invocation indices (probed once per device: subgroups.ts `subgroupLanes`).
   */
  vshuf?: boolean;
  /**
   * Value kernel with `vshuf` (2-bit V, ≤ 4 query heads per KV head, no `pipe`): the step's 8-bit weights are
   * loaded once per step as one u32 per lane (lane 4j + h: quad j, head h; two words per lane at uq 16) and each
   * quad's vec4 is gathered by four `subgroupShuffle`s, instead of every lane loading every quad's vec4 — 4·uq
   * registers fewer, which lets `uq` be 16. Subgroups of 32 lanes only: the kernel checks the subgroup size
   * and takes the vec4 loads where it is not 32 (same sums either way); at head_dim < 128 (fewer than 32 lanes per
   * row of the value workgroup, so a subgroup would span rows on different quads) only the vec4 loads are built.
   */
  wshfl?: boolean;
  /**
   * Value kernel: the lane sums of all but the first subgroup go through workgroup memory and the first
   * subgroup adds them to its own and writes the split (half the workgroup memory at wgv 64, so more
   * workgroups fit per SM), instead of every subgroup's sums stored and all invocations summing.
   */
  vsum1?: boolean;
  /**
   * Value kernel, 2-bit V (needs `vshuf`'s subgroups; ≤ 4 query heads per KV head, no `pipe`, uq 4, 8 or 16):
   * each invocation owns 8 dims (two bytes of a V word) instead of 4, so D/8 invocations cover a quad. Lanes
   * 2i and 2i + 1 share a word: each loads it from two of the quad's four rows, and one `subgroupShuffleXor`
   * (xor 1) trades the halves, so each lane holds its two bytes of all four rows — half the shuffles per
   * dot product of `vshuf` (one per 32 dot products instead of two per 16), and each quad's weights (four
   * `subgroupShuffle`s from one word per lane, as `wshfl`, where subgroups have 32 lanes and D is 128; vec4
   * loads elsewhere) serve 32 dot products instead of 16. 32 integer accumulators instead of 16; the lane sums
   * of the D/8-lane streams are added through workgroup memory one stream at a time. Same integer sums.
   * Opt-in and slower on the H100 (value stage 56–58 µs against 39 at the int2 default's shape:
   * docs/measurements/h100-block-attention-2026-12-07b.md): the value kernel does not wait on its shuffles.
   */
  vpair?: boolean;
  /**
   * Value kernel, 2-bit V: the last code plane's dot products take the unmasked bytes (c0 + 4·c1 + 16·c2 +
   * 64·c3, so Σ w·byte = the four planes' sums at their bit offsets), and plane 3's sum is recovered once per
   * invocation after the loop as that total minus planes 0…2 — three ANDs per gathered word instead of four.
   * Exact: each accumulator is a u32 sum of non-negative integers below 2^27 (≤ 4·255·255 per dot product,
   * ≤ 256 quads per invocation), so the wrapping subtraction gives plane 3's sum bit for bit. Same sums.
   * Opt-in: no faster on the H100 (value stage 40.0 µs against 38.8, within noise; h100-block-attention-2026-12-07b.md).
   */
  vsub?: boolean;
  /**
   * Score kernel, 2-bit K: the four code planes of a K word from the word and ONE right shift by 4 — planes 0
   * and 2 as `& 0x03030303` of the word and of the shifted word, planes 1 and 3 as `& 0x0c0c0c0c` (codes left
   * ×4, bytes ≤ 12, so still non-negative int8) — five integer ops per word instead of seven. The ×4 planes'
   * dot products go to a second accumulator (from the same 1.5·2^23 bits), folded into the first in f32 after
   * each quad (exact: every partial sum is an integer below 2^22 in magnitude) — float ops instead of integer.
   * Same exact sums. Opt-in: slower on the H100 (score 58.5 µs against 51.6 at the int2 default, no faster at
   * tq 1; h100-block-attention-2026-12-07b.md).
   */
  kacc2?: boolean;
  /**
   * Value kernel with `vsum1`: the first subgroup puts the split's dims in workgroup memory (head-major) and,
   * after one more barrier, every invocation writes consecutive floats of the split — coalesced stores —
   * instead of the first subgroup's lanes writing their 4 dims × heads at a stride of 4 floats; the other rows'
   * lane sums are staged plane-major (consecutive lanes, consecutive vec4s), and the block's V statistics
   * (S_max/255, Σp·z_V) are loaded before the loop instead of after its barrier. Same values. Opt-in: slower on
   * the H100 (value stage 48.5 µs against 39.3 at the int2 default; h100-block-attention-2026-12-07c.md).
   */
  vcoal?: boolean;
  /**
   * Value kernel (wgv > D/4, no `pipe`, no `vpair`, ≤ D/4 query heads per KV head): a workgroup's QL = wgv/(D/4)
   * rows of lanes take QL consecutive blocks, one block per row, instead of sharing one block, and write them as
   * ONE split: each row turns its exact u32 sums into its block's f32 acc = (S_max/255)·Σ w·c − Σp·z_V, the rows
   * after the first hand theirs and their block's (m, Σp) over in workgroup memory, and the first merges them —
   * M = max m, acc = Σ e^(m − M)·acc, Σp = Σ e^(m − M)·Σp — the merge the reduce kernel would have done. So the
   * score kernel keeps its block size while the value and reduce kernels see QL times fewer, longer splits
   * (`block` 512 + wgv 64: 512-token score blocks, 1024-token splits, each value row on one whole block). The same
   * weights; the f32 merge moves from the reduce into the value kernel, so its outputs agree with other schedules
   * of the same block size within f32 rounding (not bit for bit). Opt-in: no faster on the H100 — at the int2 shape
   * its score stage is 3–4 µs shorter (512-token blocks) but its value stage 3 µs longer (42.4 µs against 39.3,
   * as at 512-token splits without it): int2 98.0 µs fresh against 96.6 (h100-block-attention-2026-12-07c.md).
   */
  vjoin?: boolean;
  /**
   * Value kernel, 2-bit V with `vshuf`, no `pipe`: each step also loads one word of every V row of the step
   * `vtouch` steps ahead (1 or 2; 0 = off; lane (w, pj) the rows of its token pj at step offsets ≡ w mod 8)
   * and, with `wshfl`, that step's weight words, each into a register consumed (XORed into one word that only a
   * never-taken store keeps alive) a step later, when it has long arrived — so those sectors are on their way
   * to the L1 / L2 while this step computes, without the registers a software pipeline (`pipe`) holds. The sums
   * and every stored byte are the same as without it. Opt-in: **slower on the H100** (value stage 40.8–41.6 µs at
   * 1 step, 43.7 at 2, against 37.4–39.0; h100-block-attention-2026-12-07d.md).
   */
  vtouch?: number;
  /**
   * Value kernel with `vsum1` (not `vcoal`, `vjoin`, `vpair`): the first row writes each head's 4 dims of the
   * split as ONE vec4 store (through a second, vec4 binding of `part`, binding 5 or 6) instead of 4 scalar
   * stores at a stride of 4 floats: 4 full-line warp stores instead of 16 quarter-filled ones. Same bytes.
   * {q2, q2}'s default on 32-lane subgroups (value stage about 0.5 µs shorter on the H100).
   */
  vst4?: boolean;
  /**
   * Score and value kernels: each packed dot product added to its accumulator's component on its own
   * (`it.x += dot4I8Packed(…); it.y += …`) instead of one vec4 add of four dot products — the form the driver
   * can fold into the dot product instruction's accumulator. Same integer sums (exact, order-free). Opt-in:
   * **slower on the H100** (value stage 49–50 µs against 38; the probe's miniature of the score loop costs the
   * same either way, so the driver already folds the vec4 form's adds).
   */
  dacc?: boolean;
  /**
   * Value kernel with `vsum1` (not `vcoal`, `vjoin`, `vpair`): the block's statistics (S_max/255, Σp·z_V, and
   * for the first HPK invocations m and Σp) loaded before the loop instead of after it, so their latency is not
   * paid at the end of every workgroup. Same bytes. Opt-in: **slower on the H100** (value stage 40.9 µs against
   * 38–39; with `vst4` 54 — the registers it holds through the loop cost residency).
   */
  vstat?: boolean;
  /**
   * Score kernel: the block's maximum and sums reduced within each subgroup first (subgroupMax / subgroupAdd),
   * then over the subgroups' results in workgroup memory (two barriers per reduction instead of three).
   * Needs the `subgroups` feature and subgroup lanes that are consecutive local invocation indices.
   */
  sred?: boolean;
  /**
   * Score kernel, with `sred`: the block's sums reduced through their own workgroup arrays (`rl`, `rz`) instead of
   * the maxima's (`rv`), so neither reduction needs its leading barrier — the barrier that guarded each array's
   * writes against the previous block's reads is already there (the other reduction's second barrier lies
   * between them): two barriers per block instead of four, the same sums in the same order (byte-identical).
   * 16·(WQ/4)·NV bytes more workgroup memory. Needs `sred`. {q2, q2}'s default on 32-lane subgroups (score stage
   * 1–2 µs shorter on the H100).
   */
  sbar2?: boolean;
  /**
   * Score kernel, with `sred` (implies `sbar2`'s own arrays for the sums): ONE barrier per block. The maxima's
   * and the sums' subgroup results are double-buffered by block parity; a block's sums are written with no
   * barrier and folded — by every invocation, in the same order, so byte-identical — right after the NEXT
   * block's maximum barrier (the last block's after one more barrier past the loop), where its statistics go to
   * `bst`. Opt-in: **slower on the H100** (score stage 53.1 / 52.9 µs against 50.4 / 52.7 at the int2 default;
   * h100-block-attention-2026-12-07e.md).
   */
  sbar1?: boolean;
  /**
   * Score kernel with nblk > 1: at the start of each block but the workgroup's last, every invocation loads one
   * word of each of its share of the 128-byte lines of the NEXT block's K rows and sz words (K and V), into
   * registers XORed together after this block's dot products (kept alive by a never-taken store), so the next
   * block's lines are on their way to the L2 / L1 while this block computes, instead of being requested only
   * after its dot products. The sums and every stored byte are the same as without it. Opt-in: **slower on the
   * H100** (score stage 56.0–56.3 µs against 50.1–51.8 at the int2 default; fresh int2 100.2 µs against 94.7;
   * h100-block-attention-2026-12-07e.md — the score kernel does not wait on its K rows).
   */
  stouch?: boolean;
  /**
   * Score kernel: fewer operations after the dot products, the same bytes — each packed weight word as
   * `(w0 − 0x4b000000) + (w1 << 8) + (w2 << 16) + (w3 << 24)` of the weights' f32 bits (0x4b000000 + w: the other
   * lanes' 0x4b000000 shifts out of the word) instead of `pack4xU8`, and the block sums folded over the subgroups
   * by invocation 0 alone (the only one that stores them) instead of by every invocation. Part of {q2, q2}'s
   * default on 32-lane subgroups (with stx, sexp2, sbias: int2 91.7 µs against 94.6 on the H100,
   * h100-block-attention-2026-12-07f.md).
   */
  sepi?: boolean;
  /**
   * Score kernel with `sred` + `sbar2` (not `sbar1`, ≤ 4 query heads per KV head): the block's 8 per-invocation
   * values of each reduction — the 4 heads' score maxima and the V scale maximum (3 lanes of padding), then Σp
   * and Σp·z_V of the 4 heads — reduced within each subgroup by a transposing butterfly: three exchanges of half
   * the remaining values (xor sgs/2, sgs/4, sgs/8: 4 + 2 + 1 shuffles) leave each group of sgs/8 lanes with one
   * value, finished by log2(sgs/8) plain butterflies — 9 shuffles per reduction at 32 lanes instead of 25 (max)
   * and 40 (sums) for `subgroupMax` / `subgroupAdd` of each value. The maxima are exact (the same bytes); the
   * sums add in butterfly order (xor 16, 8, 4, 2, 1). Subgroups of fewer than 8 lanes take the subgroup
   * built-ins. Part of {q2, q2}'s default on 32-lane subgroups (where sred and sbar2 are on, sbar1 off and
   * ≤ 4 query heads per KV head).
   */
  stx?: boolean;
  /**
   * Score kernel: base-2 exponentials — the query's scales 2^e times log2(e) (so the scores come out in log2
   * units: s·log2 e, rounded once more), `exp2(s − m)` instead of `exp(s − m)` (no multiply by log2 e per score
   * and head), and the block maximum stored back in natural units (m·ln 2) for the value and reduce kernels.
   * Not byte-identical to its twin (the scores round differently); checked against the reference. Part of
   * {q2, q2}'s default on 32-lane subgroups.
   */
  sexp2?: boolean;
  /**
   * Score kernel: a token past the count gets its NEG from the score's own multiply — `fma(qsc, x, b)` with b = 0
   * or NEG per token — instead of a `select` per score and head (one select per token). fma(qsc, x, 0) rounds
   * as qsc·x and fma(qsc, x, NEG) is NEG (|qsc·x| is far below NEG's ulp): byte-identical to its twin. Part
   * of {q2, q2}'s default on 32-lane subgroups.
   */
  sbias?: boolean;
  /**
   * Score kernel: the int8 query computed in its prologue (the query kernel's arithmetic) instead of a query
   * dispatch — every subgroup folds the D/4 plane words (lane i takes words i, i + size, …) with subgroupMax /
   * subgroupAdd, and the subgroup holding invocation 0 writes them to workgroup memory before the barrier the
   * dot products already wait for. One dispatch fewer; the records (`qrec`) are not written. Needs the
   * `subgroups` feature (and the probed lane mapping, as the other subgroup knobs).
   */
  qsub?: boolean;
  /**
   * Reduce kernel: every load issued first (the new token's products, the invocation's split statistics and
   * its first {@link BLOCK_REDUCE}.pre partials), then the maximum, the new token's score and the denominator
   * reduced within each subgroup (subgroupMax / subgroupAdd) and over the subgroups in workgroup memory: three
   * barriers and one round trip to memory for up to pre·(128/rdims) splits, instead of the trees' 25 barriers
   * and a load after every reduction. Same formula, another summation order. Needs the `subgroups` feature and
   * subgroup lanes that are consecutive local invocation indices. (The preloaded partials are unrolled scalars:
   * as a function-scope array indexed in a loop they cost 6.7 µs more on the H100 than the trees, not 1.4 less.)
   */
  rsub?: boolean;
}

/** Compile-time shape of the block kernels. */
export interface BlockAttentionConfig {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxBatch: number;
  k: BlockKFormat;
  v: BlockVFormat;
  tuning?: BlockAttentionTuning;
}

/** Invocations of the query kernel. */
export const QUERY_THREADS = 128;

/** The default schedule (H100 sweeps, docs/gpu-packed.md §3b) of every format pair but {q2, q2} and {q4, q4}. */
export const DEFAULT_BLOCK_TUNING: Required<BlockAttentionTuning> = {
  block: 256,
  wgv: 64,
  uq: 4,
  pipe: true,
  tq: 1,
  kstep: 0,
  tseq: false,
  rdims: 32,
  nblk: 1,
  vshuf: false,
  wshfl: false,
  vsum1: false,
  vpair: false,
  vsub: false,
  kacc2: false,
  vcoal: false,
  vjoin: false,
  vtouch: 0,
  vst4: false,
  dacc: false,
  vstat: false,
  sred: false,
  sbar2: false,
  sbar1: false,
  stouch: false,
  sepi: false,
  stx: false,
  sexp2: false,
  sbias: false,
  qsub: false,
  rsub: false,
};

/**
 * The default schedule of a K / V format pair: {@link DEFAULT_BLOCK_TUNING}, except 2-bit and 4-bit K with V of
 * the same width, which take 512-token blocks scored 2 quads per invocation one quad after the other (`tseq`),
 * with 8 quads per value step (`uq` 8; 4-bit: software-pipelined, 2-bit: not) and 4 blocks per score workgroup
 * (`nblk` 4). H100 sweeps (docs/measurements/h100-block-attention-2026-12-06d.md, one process per schedule, same
 * call): int4 150.8 µs against 162.9 for the block-256 default, int2 121.9 against 128.0 for the earlier
 * block-512 default; the 512-token blocks halve the splits the value and reduce kernels write and merge, and
 * `tseq` keeps the score kernel at one quad's K rows in registers (block 512 without it: score 85 µs against
 * 72). `nblk` 4: int4 145.9 µs against 147.8, int2 119.7 against 120.7 (fresh processes, medians of 3,
 * h100-block-attention-2026-12-06e.md).
 *
 * @example
 * ```ts
 * defaultBlockTuning("q2", "q2").block; // 512
 * defaultBlockTuning("q8", "q4").block; // 256
 * ```
 */
export function defaultBlockTuning(k: BlockKFormat, v: BlockVFormat): Required<BlockAttentionTuning> {
  if (k === v) {
    return { ...DEFAULT_BLOCK_TUNING, block: 512, tq: 2, tseq: true, uq: 8, pipe: k === "q4", nblk: 4 };
  }
  return DEFAULT_BLOCK_TUNING;
}

/**
 * The schedule a device whose subgroups pass the lane probe (subgroups.ts) gets by default
 * (BlockAttention.create merges it over {@link defaultBlockTuning}, under the given fields): `qsub` (no query
 * dispatch) and `rsub` (the reduce's loads first, subgroup folds) for every pair; `vshuf` for every 2-bit V; for
 * {q2, q2} also `sred` and 2 blocks per score workgroup (with the cheaper reductions, nblk 2 beats 4), and where
 * the probe saw subgroups of 32 lanes (`size`) `wshfl` with 16 quads per value step and `vsum1` (create drops
 * them where the shape cannot take them: more than 4 query heads per KV head, `pipe`, no `vshuf`) and 1024-token
 * blocks, 2 quads per score invocation (one after the other: the format's `tseq`) and 4 blocks per score
 * workgroup (`block` 1024, `tq` 2, `nblk` 4: 512 score workgroups of 128 invocations, half the value workgroups
 * and splits of 512-token blocks; a given field overrides only itself). H100
 * (docs/measurements/h100-block-attention-2026-12-06f.md):
 * per kernel (one process), the int2 value kernel 54.2 → 46.2 µs with vshuf, the score kernel 52.8 → 50.1 with
 * sred; at int4 sred was no faster (score 65.9 → 67.1), so it stays off there. Fresh processes, medians of 3:
 * int2 119.9 → 109.9 µs (vshuf + sred), 108.9 → 107.2 (nblk 4 → 2). `qsub`
 * (h100-block-attention-2026-12-06g.md, one call): int2 107.5 → 107.1 µs, PM-KVQ body@2 126.6 → 125.3, int4
 * 143.9 → 141.7. `rsub` (h100-block-attention-2026-12-06h.md, one machine): the int2 reduce stage 8.5 → 7.1 µs
 * (cumulative 106.7 → 105.3), int4 143.3 → 141.6; fresh processes int2 107.0 → 105.1 µs. `wshfl` + uq 16 +
 * `vsum1` (h100-block-attention-2026-12-06k.md, fresh processes): int2 104.7 → 101.4 µs (call 3), 105.1 → 103.0
 * (call 4). `tq` 1 + `nblk` 8 (h100-block-attention-2026-12-06l.md, fresh processes): int2 101.8 → 99.0 µs
 * (call 5), 103.2 → 99.8 (call 6); PM-KVQ body@2 123.9 → 120.4 (call 6). `block` 1024 + `tq` 2 + `nblk` 4
 * (h100-block-attention-2026-12-06n.md, fresh processes against tq 1 + nblk 8 at block 512): int2 98.8 → 96.2 µs
 * (call 2), 98.6 → 96.0 (call 3); PM-KVQ body@2 119.2 → 122.9 (call 3), so MixedBlockAttention keeps the
 * previous score schedule (`mixedBlockTuning`). `sbar2` + `vst4` + `rdims` 64 (h100-block-attention-2026-12-07d.md,
 * fresh processes, same call): int2 97.3 → 94.3 µs (call 3), 96.2 → 95.3 with sbar2 + rdims 64 alone (call 2).
 * The score epilogue `stx` + `sepi` + `sexp2` + `sbias` (h100-block-attention-2026-12-07f.md, fresh processes,
 * same call): int2 94.1 → 92.2 µs (call 2), 94.6 → 91.7 (call 3, the default); PM-KVQ body@2 no faster (118.9
 * → 119.2 / 120.6, call 1), so `mixedBlockTuning` keeps them off.
 *
 * @example
 * ```ts
 * subgroupBlockTuning("q2", "q2"); // { qsub: true, rsub: true, vshuf: true, sred: true, nblk: 2 }
 * subgroupBlockTuning("q2", "q2", 32); // … and { wshfl: true, uq: 16, vsum1: true, block: 1024, tq: 2, nblk: 4,
 * //   sbar2: true, vst4: true, rdims: 64, stx: true, sepi: true, sexp2: true, sbias: true }
 * subgroupBlockTuning("q4", "q4"); // { qsub: true, rsub: true }
 * ```
 */
export function subgroupBlockTuning(k: BlockKFormat, v: BlockVFormat, size?: number): BlockAttentionTuning {
  if (k === "q2" && v === "q2") {
    const base = { qsub: true, rsub: true, vshuf: true, sred: true, nblk: 2 };
    return size === 32
      ? {
        ...base,
        wshfl: true,
        uq: 16,
        vsum1: true,
        block: 1024,
        tq: 2,
        nblk: 4,
        sbar2: true,
        vst4: true,
        rdims: 64,
        stx: true,
        sepi: true,
        sexp2: true,
        sbias: true,
      }
      : base;
  }
  return v === "q2" ? { qsub: true, rsub: true, vshuf: true } : { qsub: true, rsub: true };
}

export interface Dims {
  D: number;
  HPK: number;
  NV: number;
  NKV: number;
  NH: number;
  KB: number;
  VB: number;
  PL: number;
  KCPW: number;
  WPTK: number;
  WPTV: number;
  BT: number;
  WQ: number;
  QB: number;
  TQ: number;
  KSTEP: number;
  /**
   * How the score kernel holds its K rows: `seq` one quad's rows at a time (tseq), `all` every row before the
   * query's barrier, `loop` a loop over the row (kstep > 0, or rows over 64 words per invocation).
   */
  KROWS: "seq" | "all" | "loop";
  NBLK: number;
  WGV: number;
  DG: number;
  QL: number;
  UQ: number;
  PIPE: boolean;
  NCNT: number;
  REC: number;
  VSHUF: boolean;
  WSHFL: boolean;
  VSUM1: boolean;
  /** Value kernel: 8 dims per invocation, lane pairs (`vpair`); QL is then wgv / (D/8). */
  VPAIR: boolean;
  /** Value kernel, 2-bit V: plane 3 as the unmasked total minus planes 0…2 (`vsub`). */
  VSUB: boolean;
  /** Score kernel, 2-bit K: planes from the word and one shift, the ×4 planes in a second accumulator (`kacc2`). */
  KACC2: boolean;
  /** Value kernel with vsum1: the split staged in workgroup memory and written coalesced (`vcoal`). */
  VCOAL: boolean;
  /** Value kernel: each row of lanes on its own block, the rows' blocks merged into one split (`vjoin`). */
  VJOIN: boolean;
  /** Value kernel: the rows and weights of the step VTOUCH steps ahead touched during this step (0: off). */
  VTOUCH: number;
  /** Score and value kernels: dot products added per accumulator component (`dacc`). */
  DACC: boolean;
  /** Value kernel (vsum1): each head's 4 dims stored as one vec4 (`vst4`). */
  VST4: boolean;
  /** Value kernel (vsum1): the block statistics loaded before the loop (`vstat`). */
  VSTAT: boolean;
  SRED: boolean;
  /** Score kernel: the sums in their own arrays, no leading barrier in either reduction (`sbar2`, with sred). */
  SBAR2: boolean;
  /** Score kernel: one barrier per block, the sums folded after the next block's (`sbar1`, with sred). */
  SBAR1: boolean;
  /** Score kernel: the next block's lines touched during this block (`stouch`, nblk > 1). */
  STOUCH: boolean;
  /** Score kernel: the packed weights by shifts and adds, the sums folded by invocation 0 (`sepi`). */
  SEPI: boolean;
  /** Score kernel: transposing butterflies for the block's reductions (`stx`). */
  STX: boolean;
  /** Score kernel: scores in log2 units, exp2, the maximum stored in natural units (`sexp2`). */
  SEXP2: boolean;
  /** Score kernel: the past-the-count NEG as the score multiply's fma addend (`sbias`). */
  SBIAS: boolean;
  QSUB: boolean;
}

/** Whether the K rows of `quads` quads (WPTK words each) are loaded whole, before any dot product (≤ 64 words). */
export function rowsFit(WPTK: number, kstep: number, quads: number): boolean {
  return WPTK % 4 === 0 && kstep === 0 && WPTK * 4 * quads <= 64;
}

export function dims(c: BlockAttentionConfig): Dims {
  const D = c.headDim;
  if (!(D % 16 === 0 && D >= 16 && D <= 128)) {
    throw new QuantConfigError(`block attention needs head_dim % 16 == 0 and ≤ 128, got ${D}`);
  }
  if (!(c.numKvHeads > 0 && c.numHeads % c.numKvHeads === 0)) {
    throw new TensorShapeError(
      `block attention: ${c.numHeads} query heads not divisible by ${c.numKvHeads} KV heads`,
    );
  }
  const KB = { q2: 2, q4: 4, q8: 8 }[c.k];
  const VB = { q2: 2, q4: 4 }[c.v];
  if (!KB) throw new QuantConfigError(`block attention: K format ${c.k} is not q2, q4 or q8`);
  if (!VB) throw new QuantConfigError(`block attention: V format ${c.v} is not q2 or q4`);
  const unknown = Object.keys(c.tuning ?? {}).filter((k) => !(k in DEFAULT_BLOCK_TUNING));
  if (unknown.length > 0) {
    throw new QuantConfigError(
      `block attention: unknown tuning field${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")} (known: ${
        Object.keys(DEFAULT_BLOCK_TUNING).join(", ")
      })`,
    );
  }
  const t = { ...defaultBlockTuning(c.k, c.v), ...c.tuning };
  if (![256, 512, 1024].includes(t.block)) {
    throw new QuantConfigError(`block attention: block ${t.block} must be 256, 512 or 1024`);
  }
  const DG = D / 4;
  if (![32, 64, 128, 256].includes(t.wgv) || t.wgv % DG !== 0) {
    throw new QuantConfigError(
      `block attention: wgv ${t.wgv} must be 32/64/128/256 and a multiple of D/4 = ${DG}`,
    );
  }
  if (
    ![1, 2, 4, 8, ...(t.wshfl || t.vpair ? [16] : []), ...(t.wshfl && !t.vpair ? [32] : [])].includes(t.uq)
  ) {
    throw new QuantConfigError(
      `block attention: uq ${t.uq} must be 1, 2, 4 or 8 (16 with wshfl or vpair, 32 with wshfl)`,
    );
  }
  const HPK = c.numHeads / c.numKvHeads;
  const NV = Math.ceil(HPK / 4);
  if (t.vpair && !(t.vshuf && VB === 2 && NV === 1 && !t.pipe && [4, 8, 16].includes(t.uq))) {
    throw new QuantConfigError(
      `block attention: vpair needs vshuf, 2-bit V (got ${c.v}), ≤ 4 query heads per KV head (got ${HPK}), ` +
        `no pipe and uq 4, 8 or 16 (got ${t.uq})`,
    );
  }
  // (wgv is a multiple of D/4, so of vpair's D/8)
  const QL = valueRows(t, D);
  if (![1, 2, 4].includes(t.tq)) throw new QuantConfigError(`block attention: tq ${t.tq} must be 1, 2 or 4`);
  if (![1, 2, 4, 8, 16].includes(t.nblk)) {
    throw new QuantConfigError(`block attention: nblk ${t.nblk} must be 1, 2, 4, 8 or 16`);
  }
  if (![0, 1, 2, 4].includes(t.kstep)) {
    throw new QuantConfigError(`block attention: kstep ${t.kstep} must be 0, 1, 2 or 4`);
  }
  const WPTK = (D * KB) / 32;
  // nblk > 1 prefetches the K rows the score kernel keeps in registers (blockScoreWgsl's kAll); without them
  // (kstep > 0, or rows too long) a given nblk is an error and the format's default falls back to 1
  const KROWS = t.tseq && t.tq > 1 && rowsFit(WPTK, t.kstep, 1)
    ? "seq"
    : rowsFit(WPTK, t.kstep, t.tq)
    ? "all"
    : "loop";
  let NBLK = t.nblk;
  if (NBLK > 1 && KROWS === "loop") {
    if (c.tuning?.nblk !== undefined) {
      throw new QuantConfigError(
        `block attention: nblk ${NBLK} needs the score kernel's K rows in registers (kstep 0, ≤ 64 words per invocation)`,
      );
    }
    NBLK = 1;
  }
  if (t.vshuf && VB !== 2) {
    throw new QuantConfigError(`block attention: vshuf needs 2-bit V, got ${c.v}`);
  }
  if (t.vsub && VB !== 2) {
    throw new QuantConfigError(`block attention: vsub needs 2-bit V, got ${c.v}`);
  }
  if (t.vcoal && !((t.vsum1 || t.vjoin) && !t.vpair && t.wgv > D / 4)) {
    throw new QuantConfigError(
      `block attention: vcoal needs vsum1 or vjoin (got ${t.vsum1}, ${t.vjoin}), no vpair (got ${t.vpair}) and ` +
        `wgv > D/4 = ${D / 4} (got ${t.wgv})`,
    );
  }
  if (t.vjoin && !(t.wgv > DG && !t.pipe && !t.vpair && HPK <= DG)) {
    throw new QuantConfigError(
      `block attention: vjoin needs wgv > D/4 = ${DG} (got ${t.wgv}), no pipe (got ${t.pipe}), no vpair (got ${t.vpair}) ` +
        `and ≤ D/4 query heads per KV head (got ${HPK})`,
    );
  }
  if (t.kacc2 && KB !== 2) {
    throw new QuantConfigError(`block attention: kacc2 needs 2-bit K, got ${c.k}`);
  }
  if (t.vsum1 && HPK > DG) {
    throw new QuantConfigError(
      `block attention: vsum1 needs ≤ D/4 = ${DG} query heads per KV head, got ${HPK}`,
    );
  }
  if (t.wshfl && !(t.vshuf && NV === 1 && !t.pipe)) {
    throw new QuantConfigError(
      `block attention: wshfl needs vshuf, ≤ 4 query heads per KV head (got ${HPK}) and no pipe`,
    );
  }
  for (const [k, on] of [["vst4", t.vst4], ["vstat", t.vstat]] as const) {
    if (on && !firstRowWrites(t, D)) {
      throw new QuantConfigError(
        `block attention: ${k} needs vsum1 with more than one row of lanes (got vsum1 ${t.vsum1}, ${QL} rows) and ` +
          `no vcoal, vjoin or vpair (got ${t.vcoal}, ${t.vjoin}, ${t.vpair})`,
      );
    }
  }
  if (![0, 1, 2].includes(t.vtouch)) {
    throw new QuantConfigError(`block attention: vtouch ${t.vtouch} must be 0, 1 or 2 (steps ahead)`);
  }
  if (t.vtouch && !(t.vshuf && !t.pipe && !t.vpair)) {
    throw new QuantConfigError(
      `block attention: vtouch needs vshuf (got ${t.vshuf}), no pipe (got ${t.pipe}) and no vpair (got ${t.vpair})`,
    );
  }
  if (t.stouch && NBLK === 1) {
    throw new QuantConfigError(
      `block attention: stouch needs more than one block per score workgroup (nblk ${t.nblk}, ${NBLK} with these ` +
        `K rows): it touches the next block`,
    );
  }
  if (t.stx && !(t.sred && t.sbar2 && !t.sbar1 && HPK <= 4)) {
    throw new QuantConfigError(
      `block attention: stx needs sred and sbar2 (got ${t.sred}, ${t.sbar2}), no sbar1 (got ${t.sbar1}) and ≤ 4 ` +
        `query heads per KV head (got ${HPK})`,
    );
  }
  if (t.sbar1 && !t.sred) {
    throw new QuantConfigError(`block attention: sbar1 needs sred (got ${t.sred})`);
  }
  if (t.sbar2 && !t.sred) {
    throw new QuantConfigError(`block attention: sbar2 needs sred (got ${t.sred})`);
  }
  const WQ = t.block / 4 / t.tq;
  if (!(WQ >= 32 && WQ <= 256)) {
    throw new QuantConfigError(
      `block attention: block ${t.block} / (4·tq ${t.tq}) = ${WQ} score invocations, must be 32…256`,
    );
  }
  const stepQuads = valueStepQuads(t, D);
  if ((t.block / 4) % stepQuads !== 0) {
    throw new QuantConfigError(
      `block attention: block/4 = ${t.block / 4} quads not a multiple of ${stepQuads}`,
    );
  }
  return {
    D,
    HPK,
    NV,
    NKV: c.numKvHeads,
    NH: c.numHeads,
    KB,
    VB,
    PL: KB === 8 ? 1 : 8 / KB,
    KCPW: 32 / KB,
    WPTK,
    WPTV: (D * VB) / 32,
    BT: t.block,
    WQ,
    QB: t.block / 4,
    TQ: t.tq,
    KSTEP: t.kstep,
    KROWS,
    NBLK,
    WGV: t.wgv,
    DG,
    QL,
    UQ: t.uq,
    PIPE: t.pipe,
    NCNT: Math.max(1, Math.ceil(c.maxBatch / 4)),
    REC: (D / 4 + 2) * NV,
    VSHUF: t.vshuf,
    WSHFL: t.wshfl && !t.vpair,
    VSUM1: t.vsum1 && QL > 1 && !t.vpair,
    VPAIR: t.vpair,
    VSUB: t.vsub,
    KACC2: t.kacc2,
    VCOAL: t.vcoal,
    VJOIN: t.vjoin,
    VTOUCH: t.vtouch,
    VST4: t.vst4,
    DACC: t.dacc,
    VSTAT: t.vstat,
    SRED: t.sred,
    SBAR2: (t.sbar2 || t.sbar1) && t.sred,
    SBAR1: t.sbar1 && t.sred,
    STOUCH: t.stouch,
    SEPI: t.sepi,
    STX: t.stx,
    SEXP2: t.sexp2,
    SBIAS: t.sbias,
    QSUB: t.qsub,
  };
}

/** Internal: rows of value lanes in a value workgroup — wgv / (D/4), with `vpair` wgv / (D/8). */
export function valueRows(t: Required<BlockAttentionTuning>, headDim: number): number {
  return t.vpair ? t.wgv / (headDim / 8) : t.wgv / (headDim / 4);
}

/** Internal: quads a value step of the workgroup covers in one block — every row's (vjoin: one row's). */
export function valueStepQuads(t: Required<BlockAttentionTuning>, headDim: number): number {
  return (t.vjoin ? 1 : valueRows(t, headDim)) * t.uq;
}

/**
 * Internal: whether the value kernel's first row of lanes can write the split alone (what `vst4` and `vstat`
 * need): `vsum1` with more than one row, and no `vcoal`, `vjoin` or `vpair`.
 */
export function firstRowWrites(t: Required<BlockAttentionTuning>, headDim: number): boolean {
  return t.vsum1 && valueRows(t, headDim) > 1 && !t.vcoal && !t.vjoin && !t.vpair;
}

/**
 * Whether the score kernel of this config holds its K rows in registers (the `nblk` > 1 precondition): false
 * with `kstep` > 0 or rows over 64 words per invocation (8-bit K at D 128).
 *
 * @example
 * ```ts
 * blockRowsInRegisters({ numHeads: 32, numKvHeads: 8, headDim: 128, maxBatch: 8, k: "q2", v: "q2" }); // true
 * ```
 */
export function blockRowsInRegisters(c: BlockAttentionConfig): boolean {
  return dims(c).KROWS !== "loop";
}

/**
 * Vec4 words of one (sequence, KV head) query record (`qrec`).
 *
 * @example
 * ```ts
 * blockQueryRecord({ numHeads: 32, numKvHeads: 8, headDim: 128, maxBatch: 1, k: "q4", v: "q4" }); // 34
 * ```
 */
export function blockQueryRecord(c: BlockAttentionConfig): number {
  return dims(c).REC;
}

/**
 * Tokens per block (= split) of `c`.
 *
 * @example
 * ```ts
 * blockTokens({ numHeads: 8, numKvHeads: 2, headDim: 64, maxBatch: 1, k: "q2", v: "q2" }); // 512 (the {q2, q2} default)
 * ```
 */
export function blockTokens(c: BlockAttentionConfig): number {
  return dims(c).BT;
}

/**
 * Blocks each score workgroup scores (`nblk`): the score grid's x is ⌈blocks / nblk⌉.
 *
 * @example
 * ```ts
 * blockScoreBlocks({ numHeads: 8, numKvHeads: 2, headDim: 64, maxBatch: 1, k: "q2", v: "q2" }); // 4 (the {q2, q2} default)
 * blockScoreBlocks({ numHeads: 8, numKvHeads: 2, headDim: 64, maxBatch: 1, k: "q8", v: "q4" }); // 1
 * ```
 */
export function blockScoreBlocks(c: BlockAttentionConfig): number {
  return dims(c).NBLK;
}

/**
 * Blocks per split of the value and reduce kernels: wgv/(D/4) with `vjoin` (one block per row of value lanes),
 * else 1. The value grid's x is ⌈blocks / this⌉, and so is the number of splits the reduce merges.
 *
 * @example
 * ```ts
 * blockSplitBlocks({ numHeads: 32, numKvHeads: 8, headDim: 128, maxBatch: 1, k: "q2", v: "q2", tuning: { vjoin: true } }); // 2 (wgv 64)
 * ```
 */
export function blockSplitBlocks(c: BlockAttentionConfig): number {
  const d = dims(c);
  return d.VJOIN ? d.QL : 1;
}

/**
 * Bytes of workgroup memory each kernel declares (unit-tested against the WGSL).
 *
 * @example
 * ```ts
 * blockSharedBytes({ numHeads: 32, numKvHeads: 8, headDim: 128, maxBatch: 8, k: "q4", v: "q4" }).value; // 4096 (2 lanes × 128 dims × 16 B)
 * ```
 */
export function blockSharedBytes(c: BlockAttentionConfig): { query: number; score: number; value: number } {
  const d = dims(c);
  return {
    query: 16 * 3 * d.D * d.NV,
    score: 16 * ((d.D / 4) * d.NV + 2 * d.NV + 2 * (d.WQ * d.NV + (d.WQ / 8) * d.NV)) +
      4 * (d.WQ + d.WQ / 8) +
      (d.SBAR2 ? 16 * (d.SBAR1 ? d.WQ / 2 : d.WQ / 4) * d.NV : 0) +
      (d.STX ? 2 * 4 * 8 * (d.WQ / 4) : 0),
    value: d.VPAIR
      ? 16 * d.D
      : d.VJOIN
      ? 16 * (d.QL - 1) * (d.D + 2) * d.NV + (d.VCOAL ? 4 * d.HPK * d.D : 0)
      : 16 * (d.VSUM1 ? d.QL - 1 : d.QL) * d.D * d.NV + (d.VCOAL ? 4 * d.HPK * d.D : 0),
  };
}

export const lanes = ["x", "y", "z", "w"];
/** Bits of 1.5·2^23 as i32, and the value: `bitcast<f32>(MAGIC_I + n) − MAGIC_F` = n exactly for |n| < 2^22. */
export const MAGIC_I = "0x4b400000i", MAGIC_F = "12582912.0";

/** WGSL `const` lines of the shape every kernel uses (D, NV, HPK, NKV, NH) plus `extra`. */
export function consts(d: Dims, extra: Record<string, number>): string {
  const all = { D: d.D, NV: d.NV, HPK: d.HPK, NKV: d.NKV, NH: d.NH, ...extra };
  return Object.entries(all).map(([k, v]) => `const ${k} = ${u32(v)};`).join("\n");
}

/** Per-head vec4 lanes: `f(u)` for u < NV. */
export function each(n: number, f: (i: number) => string, sep = "\n"): string {
  return [...Array(n).keys()].map(f).join(sep);
}
