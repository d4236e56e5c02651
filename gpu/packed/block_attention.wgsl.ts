/**
 * WGSL of the **block-integer decode attention** (`BlockAttention`, block_attention.ts): decode attention over
 * ONE per-token packed segment whose K is 2/4/8-bit and V 2/4-bit (the static int4 / int2 layouts), in four
 * kernels; the score and value kernels share no state across token blocks of BT tokens (QB = BT/4 quads):
 *
 * 1. **query** ({@link blockQueryWgsl}), grid (nKv, B): the int8 query of cpu/query_int8.ts (the same
 *    arithmetic as the fused kernel's `kdot` prologue) packed in the K format's word-plane byte order, with
 *    its per-head scale 2^e and code sum Σ qi, written once per (sequence, KV head). With `qsub` (subgroups)
 *    there is no query dispatch: every score workgroup computes the same records in its prologue
 *    (`qsubLoad`), bit-identical (checked on llvmpipe and the H100 by the conformance suite).
 * 2. **score** ({@link blockScoreWgsl}), grid (⌈blocks/nblk⌉, nKv, B), WQ = QB/tq invocations (a workgroup
 *    scores nblk blocks in turn; the next block's sz words and first K rows load during this block's
 *    reductions): invocation i scores
 *    quads q = i + k·WQ (k < tq), quad q being tokens q + j·QB (j < 4) of the block — so one K load
 *    instruction of a warp covers consecutive rows — for all HPK query heads with `dot4I8Packed` (exact i32
 *    sums; every K load is issued before the query's barrier — with `tseq`, the first quad's, and each further
 *    quad's after the previous quad's dot products), then the block's score maximum m and largest
 *    V scale S_max are reduced over the workgroup (two-stage, three barriers; with `sred` per subgroup first,
 *    then over the subgroups' results, two barriers),
 *    and each token's weight p·S_V (p = e^(s − m)) is rounded to 8 bits against S_max:
 *    w = min(round(p·S_V·(255/S_max)), 255). The four weights of a quad are packed in one u32 per head.
 *    No int ↔ float conversion instruction: the i32 sums start at the bits of 1.5·2^23 and are read as
 *    bitcast − 1.5·2^23 (exact for |Σ| < 2^22), and w is the low byte of the bits of min(x, 255) + 2^23 (the
 *    add rounds half to even, as WGSL `round`).
 *    Σp and Σp·z_V are summed over the block; (Σp·z_V, m, Σp, S_max/255) go to `bst`.
 * 3. **value** ({@link blockValueWgsl}), grid (blocks, nKv, B), WGV invocations: invocation (lane, dg) owns
 *    dims 4·dg … 4·dg + 3; for each quad of its lane it gathers the four rows' codes of its dims token-major
 *    (byte j of X_k = code of dim 4·dg + k in token j of the quad, left at its bit offset in the byte: ×4^k at
 *    2-bit, ×16 for odd k at 4-bit, so each X_k is one AND) and accumulates `dot4U8Packed(X_k, W_h)` in u32 —
 *    exact (≤ 4·255·240 per dot, ≤ 256 quads per invocation: < 2^26) — shifted back before the lane sum. With
 *    `vshuf` (2-bit V, subgroups) invocation pj = lid % 4 of each four loads only token pj's word of the quad
 *    and the four words are byte-transposed across those lanes by two `subgroupShuffleXor` (xor 2: 16-bit
 *    halves, xor 1: bytes), giving each lane the same X word the gather builds. The
 *    lanes are summed in workgroup memory and the block's partial is
 *    acc = (S_max/255)·Σ w·c − Σp·z_V (f32), written with the block's (m, Σp) in the fused kernel's `part`
 *    layout (a block is one split of the reduce kernel).
 *
 * 4. **reduce** ({@link blockReduceWgsl}), grid (nH, B, D/DC), DC = `rdims` (default 32): the fused reduce's
 *    merge of the blocks and the new token (attention.wgsl.ts `attentionReduceWgsl`), with the dims spread over
 *    a third grid axis; with `rsub` every load first and the statistics folded per subgroup (three barriers).
 *
 * Nothing in the score or value kernel depends on another block, so there is no online-softmax
 * rescale and no per-chunk barrier; the value kernel holds 16 integer accumulators per invocation (4 dims × 4
 * heads) and no floating state.
 *
 * Numerics: the int8 query is the `kdot` one (docs/gpu-packed.md §2b) and the 8-bit weights are the `vdot`
 * ones (§2c) with the block's maximum in place of the chunk's running maximum, so the §2c bound holds as
 * stated: each weight moves by at most (S_max/510)·e^(m − M) ≤ S_max/510 in units of the final maximum M.
 *
 * Buffers:
 * | kernel | binding | name | type | shape / content |
 * | --- | --- | --- | --- | --- |
 * | query | 0 | `p` | uniform | `io = (qOff, rowStride, 0, 0)`, `sc.x = 1/√D` |
 * | query | 1 | `qkv` | `array<f32>` read | query head h of sequence b at `qOff + b·rowStride + h·D` |
 * | query | 2 | `qrec` | `array<vec4<u32>>` read_write | [B, nKv, REC] records: qp [D/4, NV] (plane words, 4 heads per vec4), 2^e [NV] (f32 bits), Σ qi [NV] (i32 bits); REC = (D/4 + 2)·NV |
 * | score | 0 | `p` | uniform | `io = (blocks S, qOff, rowStride, bits of 1/√D)` (the last three read only with `qsub`), `kr/vr = (codesOff, szOff, cap, tok0)`, `cnt[b/4][b%4]` = tokens of sequence b |
 * | score | 1 | `qrec` | `array<vec4<u32>>` read | as above; with `qsub` instead `qkv` (`array<f32>` read, as the query kernel's) |
 * | score | 2 | `st` | `array<vec4<u32>>` read | the store (layout.ts) |
 * | score | 3 | `sw` | `array<u32>` read | the same store, single words |
 * | score | 4 | `wq` | `array<vec4<u32>>` read_write | weights [B, nKv, S·QB, NV]: byte j of lane c of quad q = w of token q + j·QB of the block, head 4·u + c |
 * | score | 5 | `bst` | `array<vec4<f32>>` read_write | [B, nKv, S, BST = 3·NV + 1]: Σp·z_V [NV], m [NV], Σp [NV], then (S_max/255, 0, 0, 0) |
 * | value | 0 | `p` | uniform | `io = (blocks S, split0, partSplits, statsOff)`, `vr`, `cnt` as above |
 * | value | 1 | `sw` | `array<u32>` read | the store, single words |
 * | value | 2 | `wq` | `array<vec4<u32>>` read | as above |
 * | value | 3 | `bst` | `array<vec4<f32>>` read | as above |
 * | value | 4 | `part` | `array<f32>` read_write | acc [B, nH, partSplits, D] at 0, (max, Σp) [B, nH, partSplits, 2] at `statsOff`; block x is split split0 + x |
 * | reduce | 0–3 | `p`, `qkv`, `part`, `out` | | as the fused reduce (attention.wgsl.ts) |
 *
 * Requirements: D % 16 = 0 and D ≤ 128 (one quantization group per token), nH % nKv = 0, BT ∈ {256, 512,
 * 1024}, 32 ≤ WQ ≤ 256, WGV a multiple of D/4 and QB a multiple of (WGV/(D/4))·uq.
 *
 * @example
 * ```ts
 * import { blockScoreWgsl } from "./block_attention.wgsl.ts";
 * const code = blockScoreWgsl({ numHeads: 32, numKvHeads: 8, headDim: 128, maxBatch: 8, k: "q4", v: "q4" });
 * ```
 * @module
 */
import { QuantConfigError, TensorShapeError } from "../../src/errors.ts";
import { QUANT_WGSL, u32 } from "./wgsl_common.ts";
import { Q8_WGSL, reduceDecls, reduceKernelHead } from "./attention.wgsl.ts";

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
   * `bst`. Opt-in (not measured yet).
   */
  sbar1?: boolean;
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
const QUERY_THREADS = 128;

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
 *
 * @example
 * ```ts
 * subgroupBlockTuning("q2", "q2"); // { qsub: true, rsub: true, vshuf: true, sred: true, nblk: 2 }
 * subgroupBlockTuning("q2", "q2", 32); // … and { wshfl: true, uq: 16, vsum1: true, block: 1024, tq: 2, nblk: 4,
 * //   sbar2: true, vst4: true, rdims: 64 }
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
      }
      : base;
  }
  return v === "q2" ? { qsub: true, rsub: true, vshuf: true } : { qsub: true, rsub: true };
}

interface Dims {
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
  QSUB: boolean;
}

/** Whether the K rows of `quads` quads (WPTK words each) are loaded whole, before any dot product (≤ 64 words). */
function rowsFit(WPTK: number, kstep: number, quads: number): boolean {
  return WPTK % 4 === 0 && kstep === 0 && WPTK * 4 * quads <= 64;
}

function dims(c: BlockAttentionConfig): Dims {
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
  const QL = t.vpair ? t.wgv / (D / 8) : t.wgv / DG;
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
    if (on && !(t.vsum1 && QL > 1 && !t.vcoal && !t.vjoin && !t.vpair)) {
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
  // quads a step of the workgroup covers in one block: every row's (vjoin: one row's)
  const stepQuads = (t.vjoin ? 1 : QL) * t.uq;
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
    QSUB: t.qsub,
  };
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
      (d.SBAR2 ? 16 * (d.SBAR1 ? d.WQ / 2 : d.WQ / 4) * d.NV : 0),
    value: d.VPAIR
      ? 16 * d.D
      : d.VJOIN
      ? 16 * (d.QL - 1) * (d.D + 2) * d.NV + (d.VCOAL ? 4 * d.HPK * d.D : 0)
      : 16 * (d.VSUM1 ? d.QL - 1 : d.QL) * d.D * d.NV + (d.VCOAL ? 4 * d.HPK * d.D : 0),
  };
}

const lanes = ["x", "y", "z", "w"];
/** Bits of 1.5·2^23 as i32, and the value: `bitcast<f32>(MAGIC_I + n) − MAGIC_F` = n exactly for |n| < 2^22. */
const MAGIC_I = "0x4b400000i", MAGIC_F = "12582912.0";

/** WGSL `const` lines of the shape every kernel uses (D, NV, HPK, NKV, NH) plus `extra`. */
function consts(d: Dims, extra: Record<string, number>): string {
  const all = { D: d.D, NV: d.NV, HPK: d.HPK, NKV: d.NKV, NH: d.NH, ...extra };
  return Object.entries(all).map(([k, v]) => `const ${k} = ${u32(v)};`).join("\n");
}

/** Per-head vec4 lanes: `f(u)` for u < NV. */
function each(n: number, f: (i: number) => string, sep = "\n"): string {
  return [...Array(n).keys()].map(f).join(sep);
}

/**
 * WGSL of the query kernel (module doc).
 *
 * @example
 * ```ts
 * const code = blockQueryWgsl({ numHeads: 8, numKvHeads: 2, headDim: 64, maxBatch: 1, k: "q4", v: "q4" });
 * ```
 */
export function blockQueryWgsl(c: BlockAttentionConfig): string {
  const d = dims(c);
  const { D, NV, HPK } = d;
  // tree over the D dims of every head lane: `arr[dd·NV + u] = op(arr[dd·NV + u], arr[(dd + st)·NV + u])`
  const tree = (arr: string, op: (a: string, b: string) => string) =>
    `  for (var st = D / 2u; st > 0u; st = st / 2u) {
    for (var i = lid; i < st * NV; i += QW) {
      let dd = i / NV; let u = i % NV;
      ${arr}[i] = ${op(`${arr}[i]`, `${arr}[(dd + st) * NV + u]`)};
    }
    workgroupBarrier();
  }`;
  return /* wgsl */ `
${consts(d, { PL: d.PL, KCPW: d.KCPW, REC: d.REC, QW: QUERY_THREADS })}
struct P { io: vec4<u32>, sc: vec4<f32> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> qrec: array<vec4<u32>>;
// the scaled query, 4 heads per vec4 (dims × NV); |q| folded to the per-head maximum in qa[0..NV)
var<workgroup> qs: array<vec4<f32>, ${D * NV}>;
var<workgroup> qa: array<vec4<f32>, ${D * NV}>;
// int8 codes (dims × NV), folded to Σ qi in qc[0..NV) after the planes are packed
var<workgroup> qc: array<vec4<i32>, ${D * NV}>;
${Q8_WGSL}
@compute @workgroup_size(${QUERY_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let kvh = wid.x; let b = wid.y;
  let qb = p.io.x + b * p.io.y + kvh * HPK * D;
  for (var i = lid; i < D * NV; i += QW) {
    let dd = i / NV; let u = i % NV;
    var q = vec4<f32>(0.0);
${
    each(NV, (u) =>
      `    if (u == ${u32(u)}) {
${
        each(4, (cc) => (u * 4 + cc < HPK
          ? `      q.${lanes[cc]} = qkv[qb + ${u32(u * 4 + cc)} * D + dd] * p.sc.x;`
          : ""))
      }
    }`)
  }
    qs[i] = q;
    qa[i] = abs(q);
  }
  workgroupBarrier();
${tree("qa", (a, b) => `max(${a}, ${b})`)}
  let rb = (b * NKV + kvh) * REC;
  for (var i = lid; i < D * NV; i += QW) {
    let u = i % NV;
    let mx = qa[u];
    let e = vec4<i32>(q8_exp(mx.x), q8_exp(mx.y), q8_exp(mx.z), q8_exp(mx.w));
    qc[i] = vec4<i32>(round(qs[i] * vec4<f32>(pow2(-e.x), pow2(-e.y), pow2(-e.z), pow2(-e.w))));
    if (i < NV) {
      qrec[rb + (D / 4u) * NV + i] = bitcast<vec4<u32>>(vec4<f32>(pow2(e.x), pow2(e.y), pow2(e.z), pow2(e.w)));
    }
  }
  workgroupBarrier();
  // plane words: byte j of plane sp of word wi = dim wi·KCPW + j·PL + sp (the K format's byte order)
  for (var i = lid; i < (D / 4u) * NV; i += QW) {
    let u = i % NV; let pw = i / NV; let wi = pw / PL; let sp = pw % PL;
    var r = vec4<u32>(0u);
    for (var j = 0u; j < 4u; j++) {
      let dd = wi * KCPW + j * PL + sp;
      r |= (bitcast<vec4<u32>>(qc[dd * NV + u]) & vec4<u32>(0xffu)) << vec4<u32>(8u * j);
    }
    qrec[rb + i] = r;
  }
  workgroupBarrier();
${tree("qc", (a, b) => `${a} + ${b}`)}
  if (lid < NV) { qrec[rb + (D / 4u) * NV + NV + lid] = bitcast<vec4<u32>>(qc[lid]); }
}
`;
}

/** A two-stage workgroup reduction of `vals` (names of per-invocation values) with `op`; result in `out<i>`. */
function reduce2(
  d: Dims,
  vals: { v: string; arr: string; arr2: string; idx: string; idx2: (j: string) => string }[],
  op: "max" | "add",
  outs: string[],
): string {
  const f = (a: string, b: string) => (op === "max" ? `max(${a}, ${b})` : `(${a} + ${b})`);
  const w: string[] = [];
  // sbar2: no leading barrier — the maxima (rv, rs) and the sums (rl, rz) have their own arrays, so the other
  // reduction's second barrier already separates this block's writes from the previous block's reads
  if (!d.SBAR2) w.push("  workgroupBarrier();");
  if (d.SRED) {
    // per subgroup first, then over the WQ/sgs subgroup results (subgroup g = invocations g·sgs … + sgs − 1)
    const sg = op === "max" ? "subgroupMax" : "subgroupAdd";
    vals.forEach((x, i) => w.push(`  let g${outs[i]} = ${sg}(${x.v});`));
    w.push("  if (sid == 0u) {");
    vals.forEach((x, i) => w.push(`    ${x.arr}[${x.idx.replace(/I/g, "(lid / sgs)")}] = g${outs[i]};`));
    w.push("  }");
    w.push("  workgroupBarrier();");
    vals.forEach((x, i) => {
      w.push(`  var ${outs[i]} = ${x.arr}[${x.idx.replace(/I/g, "0u")}];`);
      w.push(
        `  for (var j = 1u; j < WQ / sgs; j++) { ${outs[i]} = ${
          f(outs[i], `${x.arr}[${x.idx.replace(/I/g, "j")}]`)
        }; }`,
      );
    });
    return w.join("\n");
  }
  for (const x of vals) w.push(`  ${x.arr}[${x.idx.replace(/I/g, "lid")}] = ${x.v};`);
  w.push("  workgroupBarrier();");
  w.push(`  if (lid < ${u32(d.WQ / 8)}) {`);
  for (const x of vals) {
    const src = (j: number) => `${x.arr}[${x.idx.replace(/I/g, `(lid * 8u + ${u32(j)})`)}]`;
    let e = src(0);
    for (let j = 1; j < 8; j++) e = f(e, src(j));
    w.push(`    ${x.arr2}[${x.idx2("lid")}] = ${e};`);
  }
  w.push("  }");
  w.push("  workgroupBarrier();");
  vals.forEach((x, i) => {
    w.push(`  var ${outs[i]} = ${x.arr2}[${x.idx2("0u")}];`);
    w.push(
      `  for (var j = 1u; j < ${u32(d.WQ / 8)}; j++) { ${outs[i]} = ${
        f(outs[i], `${x.arr2}[${x.idx2("j")}]`)
      }; }`,
    );
  });
  return w.join("\n");
}

/**
 * The score kernel's prologue with `qsub`: the query kernel's int8 query ({@link blockQueryWgsl}: q·(1/√D), the
 * per-head exponent e of max |q|, codes round(q·2^−e), Σ codes) computed by every subgroup on its own — lane
 * sid takes plane words pw = sid, sid + sgs, … (the same dims per byte as the query kernel's packing), the
 * maxima and sums go through subgroupMax / subgroupAdd (exact: max and integer sums are order-free) — and
 * written by the subgroup that holds invocation 0 into `qp`, `qsc`, `qis` before the barrier the dot products
 * wait for. Every loop bound is subgroup-uniform (k steps by sgs), so the subgroup operations run in uniform
 * control flow.
 */
function qsubLoad(d: Dims): string {
  const us = [...Array(d.NV).keys()];
  const load = (u: number) =>
    `vec4<f32>(${
      [0, 1, 2, 3].map((
        cc,
      ) => (u * 4 + cc < d.HPK ? `qkv[qb + ${u32(u * 4 + cc)} * D + dd] * qscale` : "0.0"))
        .join(", ")
    })`;
  return `  let qb = p.io.y + b * p.io.z + kvh * HPK * D;
  let qscale = bitcast<f32>(p.io.w);
  let lead = subgroupAny(lid == 0u);
${us.map((u) => `  var qm${u} = vec4<f32>(0.0);`).join("\n")}
  for (var k = 0u; k < D / 4u; k += sgs) {
    let pw = k + sid;
    if (pw < D / 4u) {
      let wi = pw / PL; let sp = pw % PL;
      for (var j = 0u; j < 4u; j++) {
        let dd = wi * KCPW + j * PL + sp;
${us.map((u) => `        qm${u} = max(qm${u}, abs(${load(u)}));`).join("\n")}
      }
    }
  }
${
    us.map((u) =>
      `  let qx${u} = subgroupMax(qm${u});
  let qe${u} = vec4<i32>(q8_exp(qx${u}.x), q8_exp(qx${u}.y), q8_exp(qx${u}.z), q8_exp(qx${u}.w));
  let qi${u} = vec4<f32>(pow2(-qe${u}.x), pow2(-qe${u}.y), pow2(-qe${u}.z), pow2(-qe${u}.w));
  var qn${u} = vec4<i32>(0);`
    ).join("\n")
  }
  for (var k = 0u; k < D / 4u; k += sgs) {
    let pw = k + sid;
    if (pw < D / 4u) {
      let wi = pw / PL; let sp = pw % PL;
${us.map((u) => `      var r${u} = vec4<u32>(0u);`).join("\n")}
      for (var j = 0u; j < 4u; j++) {
        let dd = wi * KCPW + j * PL + sp;
${
    us.map((u) =>
      `        let c${u} = vec4<i32>(round(${load(u)} * qi${u}));
        qn${u} += c${u};
        r${u} |= (bitcast<vec4<u32>>(c${u}) & vec4<u32>(0xffu)) << vec4<u32>(8u * j);`
    ).join("\n")
  }
      }
      if (lead) {
${us.map((u) => `        qp[pw * NV + ${u32(u)}] = r${u};`).join("\n")}
      }
    }
  }
${us.map((u) => `  let qt${u} = subgroupAdd(qn${u});`).join("\n")}
  if (lead && sid == 0u) {
${
    us.map((u) =>
      `    qsc[${u32(u)}] = vec4<f32>(pow2(qe${u}.x), pow2(qe${u}.y), pow2(qe${u}.z), pow2(qe${u}.w));
    qis[${u32(u)}] = qt${u};`
    ).join("\n")
  }
  }
  workgroupBarrier();`;
}

/**
 * WGSL of the score kernel (module doc).
 *
 * @example
 * ```ts
 * const code = blockScoreWgsl({ numHeads: 8, numKvHeads: 2, headDim: 64, maxBatch: 1, k: "q2", v: "q2" });
 * ```
 */
export function blockScoreWgsl(c: BlockAttentionConfig): string {
  const d = dims(c);
  const { D, NV, WQ, PL, KB, WPTK, TQ } = d;
  const us = [...Array(NV).keys()], ts = [...Array(4 * TQ).keys()], qs = [...Array(TQ).keys()];
  // token t = 4k + i of an invocation: quad lid + k·WQ, offset (lid + k·WQ) + i·QB from the block start
  const tokOff = (t: number) => u32((t >> 2) * WQ + (t & 3) * d.QB);
  const fold = (f: (t: number) => string) => ts.map(f).reduce((a, b) => `max(${a}, ${b})`);
  // sbar1: the block's sums as subgroup results at parity offset rpo, no barrier; folded after the next barrier
  const lazySum =
    `  // block sums Σp and Σp·z_V (per head): subgroup results, folded after the next barrier (sbar1)
${
      us.map((u) =>
        `  let gL${u} = subgroupAdd(l${u});
  let gZ${u} = subgroupAdd(z${u});`
      ).join("\n")
    }
  if (sid == 0u) {
${
      us.map((u) =>
        `    rl[(rpo + lid / sgs) * NV + ${u32(u)}] = gL${u}; rz[(rpo + lid / sgs) * NV + ${
          u32(u)
        }] = gZ${u};`
      ).join("\n")
    }
  }
${us.map((u) => `  pm${u} = m${u};`).join("\n")}
  psmx = smx; pblk = blk; ppo = rpo;
`;
  const bigSum = d.SBAR1 ? lazySum : `${
    reduce2(
      d,
      us.flatMap((u) => [
        {
          v: `l${u}`,
          arr: d.SBAR2 ? "rl" : "rv",
          arr2: "rv2",
          idx: `I * NV + ${u32(u)}`,
          idx2: (j: string) => `${j} * NV + ${u32(u)}`,
        },
        {
          v: `z${u}`,
          arr: "rz",
          arr2: "rz2",
          idx: `I * NV + ${u32(u)}`,
          idx2: (j: string) => `${j} * NV + ${u32(u)}`,
        },
      ]),
      "add",
      us.flatMap((u) => [`L${u}`, `Z${u}`]),
    )
  }
  let bo = (head * S + blk) * BST;
  if (lid == 0u) {
${
    us.map((u) =>
      `    bst[bo + ${u32(u)}] = Z${u}; bst[bo + NV + ${u32(u)}] = m${u}; bst[bo + 2u * NV + ${
        u32(u)
      }] = L${u};`
    ).join("\n")
  }
    bst[bo + 3u * NV] = vec4<f32>(smx * (1.0 / 255.0), 0.0, 0.0, 0.0);
  }
`;
  // kacc2 (2-bit K): planes 0 / 1 from the word, 2 / 3 from the word >> 4; planes 1 and 3 keep their ×4
  const plane = (w: string, sp: number) =>
    KB === 8
      ? `(${w} ^ 0x80808080u)`
      : d.KACC2
      ? `(${sp < 2 ? w : `(${w} >> 4u)`} & ${u32(sp % 2 ? 0x0c0c0c0c : 0x03030303)})`
      : `(${sp === 0 ? w : `(${w} >> ${u32(sp * KB)})`} & ${u32(KB === 4 ? 0x0f0f0f0f : 0x03030303)})`;
  // the accumulator of plane sp: kacc2's ×4 planes in iu (folded into it after the quad: foldIu)
  const acc = (sp: number) => (d.KACC2 && sp % 2 ? "iu" : "it");
  const foldIu = (toks: number[]) =>
    d.KACC2
      ? `  // kacc2: it += iu / 4 in f32 (both from the bits of 1.5·2^23; exact integers below 2^22)\n${
        toks.flatMap((t) =>
          us.map((u) =>
            `  it${t}_${u} = bitcast<vec4<i32>>(bitcast<vec4<f32>>(it${t}_${u}) + 0.25 * (bitcast<vec4<f32>>(iu${t}_${u}) - ${MAGIC_F}));`
          )
        ).join("\n")
      }`
      : "";
  // integer K sums: word e of step w4 (vec4 loads) or of word wi (single words)
  const dotWord = (word: (t: number) => string, wIndex: string, toks: number[] = ts) => {
    const b: string[] = [];
    for (let sp = 0; sp < PL; sp++) {
      for (const u of us) {
        b.push(`      let qv${sp}_${u} = qp[(${wIndex} * PL + ${u32(sp)}) * NV + ${u32(u)}];`);
      }
      for (const t of toks) {
        b.push(`      { let pl = ${plane(word(t), sp)};`);
        for (const u of us) {
          b.push(
            d.DACC
              ? `        ${
                ["x", "y", "z", "w"].map((c) =>
                  `${acc(sp)}${t}_${u}.${c} += dot4I8Packed(pl, qv${sp}_${u}.${c});`
                ).join(" ")
              }`
              : `        ${
                acc(sp)
              }${t}_${u} += vec4<i32>(dot4I8Packed(pl, qv${sp}_${u}.x), dot4I8Packed(pl, qv${sp}_${u}.y), dot4I8Packed(pl, qv${sp}_${u}.z), dot4I8Packed(pl, qv${sp}_${u}.w));`,
          );
        }
        b.push("      }");
      }
    }
    return b.join("\n");
  };
  // rows of ≤ 16 words (2- and 4-bit K at D ≤ 128): every load of the quad issued before any dot product
  const w4s = [...Array(Math.floor(WPTK / 4)).keys()]; // (rows of fewer than 4 words take the word loop)
  const loadsOf = (toks: number[]) =>
    w4s.flatMap((w4) =>
      toks.map((t) => `  let v${t}_${w4} = st[(kr.x >> 2u) + rk${t} * ${u32(WPTK / 4)} + ${u32(w4)}];`)
    ).join("\n");
  const dotsOf = (toks: number[]) =>
    w4s.flatMap((w4) =>
      [0, 1, 2, 3].map((e) =>
        `  {\n    let wi = ${u32(w4 * 4 + e)};\n${dotWord((t) => `v${t}_${w4}.${lanes[e]}`, "wi", toks)}\n  }`
      )
    ).join("\n");
  const quad = (k: number) => ts.slice(4 * k, 4 * k + 4);
  // seq: quad 0's loads before the barrier, then each quad's dot products followed by the next quad's loads
  const kAll = d.KROWS === "seq"
    ? {
      loads: loadsOf(quad(0)),
      dots: qs.map((k) => `${k ? loadsOf(quad(k)) + "\n" : ""}${dotsOf(quad(k))}\n${foldIu(quad(k))}`).join(
        "\n",
      ),
      first: quad(0),
    }
    : d.KROWS === "all"
    ? { loads: loadsOf(ts), dots: `${dotsOf(ts)}\n${foldIu(ts)}`, first: ts }
    : null;
  // vec4 words per step of the row loop: the largest of 4, 2, 1 that is ≤ kstep (1 when kstep is 0 but the row
  // is too long for kAll) and divides the row's vec4 words
  const ks = [4, 2, 1].find((x) => x <= (d.KSTEP || 1) && (WPTK / 4) % x === 0)!, kj = [...Array(ks).keys()];
  const kLoop = WPTK % 4 === 0
    ? `  for (var w4 = 0u; w4 < ${u32(WPTK / 4)}; w4 += ${u32(ks)}) {
${
      kj.flatMap((j) =>
        ts.map((t) => `    let v${t}_${j} = st[(kr.x >> 2u) + rk${t} * ${u32(WPTK / 4)} + w4 + ${u32(j)}];`)
      ).join("\n")
    }
${
      kj.flatMap((j) =>
        [0, 1, 2, 3].map((e) =>
          `    {\n      let wi = (w4 + ${u32(j)}) * 4u + ${u32(e)};\n${
            dotWord((t) => `v${t}_${j}.${lanes[e]}`, "wi")
          }\n    }`
        )
      ).join("\n")
    }
  }`
    : `  for (var wi = 0u; wi < ${u32(WPTK)}; wi++) {
${ts.map((t) => `    let v${t} = sw[kr.x + rk${t} * ${u32(WPTK)} + wi];`).join("\n")}
    {
${dotWord((t) => `v${t}`, "wi")}
    }
  }`;
  const qisTerm = (u: number) => (KB === 8 ? ` + 128 * qis[${u32(u)}]` : "");
  const NB = d.NBLK;
  const scoreLines = `${
    ts.map((t) =>
      `  let Sk${t} = bf16(szk${t} & 0xffffu); let zk${t} = bf16(szk${t} >> 16u);
  let Sv${t} = bf16(szv${t} & 0xffffu); let zv${t} = bf16(szv${t} >> 16u);
${
        us.map((u) =>
          `  let s${t}_${u} = select(vec4<f32>(NEG), qsc[${
            u32(u)
          }] * (Sk${t} * (bitcast<vec4<f32>>(it${t}_${u}${
            qisTerm(u)
          }) - ${MAGIC_F}) - zk${t} * qf${u}), ok${t});`
        ).join("\n")
      }`
    ).join("\n")
  }`;
  // sbar1: the previous block's sums, folded after this block's barrier (subgroup results at parity offset po)
  const foldPending = (po: string) =>
    `  if (lid == 0u) {
${
      us.map((u) =>
        `    var L${u} = rl[(${po} + 0u) * NV + ${u32(u)}];
    for (var j = 1u; j < WQ / sgs; j++) { L${u} = (L${u} + rl[(${po} + j) * NV + ${u32(u)}]); }
    var Z${u} = rz[(${po} + 0u) * NV + ${u32(u)}];
    for (var j = 1u; j < WQ / sgs; j++) { Z${u} = (Z${u} + rz[(${po} + j) * NV + ${u32(u)}]); }`
      ).join("\n")
    }
    let bo = (head * S + pblk) * BST;
${
      us.map((u) =>
        `    bst[bo + ${u32(u)}] = Z${u}; bst[bo + NV + ${u32(u)}] = pm${u}; bst[bo + 2u * NV + ${
          u32(u)
        }] = L${u};`
      ).join("\n")
    }
    bst[bo + 3u * NV] = vec4<f32>(psmx * (1.0 / 255.0), 0.0, 0.0, 0.0);
  }`;
  const rpo = d.SBAR1 ? "rpo + " : "";
  const afterScores = `  // block maximum of the scores (per head) and of the V scales
${
    d.SBAR1
      ? `  // sbar1: this block's subgroup results at parity offset rpo, the previous block's at rpp
  let rpo = ${NB === 1 ? "0u" : `(jb & 1u) * ${u32(WQ / 4)}`};${
        NB === 1 ? "" : `
  let rpp = ((jb + 1u) & 1u) * ${u32(WQ / 4)};`
      }
`
      : ""
  }${
    reduce2(
      d,
      [
        ...us.map((u) => ({
          v: fold((t) => `s${t}_${u}`),
          arr: "rv",
          arr2: "rv2",
          idx: d.SBAR1 ? `(rpo + I) * NV + ${u32(u)}` : `I * NV + ${u32(u)}`,
          idx2: (j: string) => `${j} * NV + ${u32(u)}`,
        })),
        {
          v: fold((t) => `Sv${t}`),
          arr: "rs",
          arr2: "rs2",
          idx: `${rpo}I`,
          idx2: (j: string) => j,
        },
      ],
      "max",
      [...us.map((u) => `m${u}`), "smx"],
    )
  }${
    d.SBAR1 && NB > 1
      ? `
  if (jb > 0u) {
${foldPending("rpp")}
  }`
      : ""
  }
  let vinv = select(0.0, 255.0 / smx, smx > 0.0);
  let qo = (head * S + blk) * ${u32(d.QB)} + lid;
${
    us.map((u) =>
      `  var l${u} = vec4<f32>(0.0);
  var z${u} = vec4<f32>(0.0);
${
        qs.map((k) =>
          `${
            [0, 1, 2, 3].map((i) => {
              const t = 4 * k + i;
              // w = round(min(p·S_V·(255/S_max), 255)) in the low byte of the bits of w + 2^23 (the add rounds
              // to nearest even, as WGSL round; the min keeps the add from fusing with the product). A token past
              // the count has s = NEG, so p = exp(NEG − m) = 0 (m is a real score: the block has one) and its w
              // and z terms are 0 without a select; its clamped row is the count's last token, in this block, so
              // its S_V changes no maximum either
              return `  let pp${t}_${u} = exp(s${t}_${u} - m${u});
  l${u} += pp${t}_${u}; z${u} += pp${t}_${u} * zv${t};
  let wb${t}_${u} = bitcast<vec4<u32>>(min(pp${t}_${u} * (Sv${t} * vinv), vec4<f32>(255.0)) + 8388608.0);`;
            }).join("\n")
          }
  wq[(qo + ${u32(k * WQ)}) * NV + ${u32(u)}] = vec4<u32>(${
            lanes.map((l) =>
              `pack4xU8(vec4<u32>(${[0, 1, 2, 3].map((i) => `wb${4 * k + i}_${u}.${l}`).join(", ")}))`
            )
              .join(", ")
          });`
        ).join("\n")
      }`
    ).join("\n")
  }
  // block sums Σp and Σp·z_V (per head)`;
  // the packed query (and its scale, code sums) in workgroup memory, then the barrier the dot products wait for
  const queryLoad = d.QSUB ? qsubLoad(d) : `  let rb = (b * NKV + kvh) * REC;
  for (var i = lid; i < (D / 4u) * NV; i += WQ) { qp[i] = qrec[rb + i]; }
  if (lid < NV) {
    qsc[lid] = bitcast<vec4<f32>>(qrec[rb + (D / 4u) * NV + lid]);
    qis[lid] = bitcast<vec4<i32>>(qrec[rb + (D / 4u) * NV + NV + lid]);
  }
  workgroupBarrier();`;
  const qfLines = us.map((u) => `  let qf${u} = vec4<f32>(qis[${u32(u)}]);`).join("\n");
  // i32 sums start at the bits of 1.5·2^23: bitcast to f32 minus 1.5·2^23 is then the exact sum (|Σ| < 2^22),
  // an integer add and a float add instead of an int → float conversion (a quarter-rate instruction)
  const itInit = ts.flatMap((t) =>
    us.flatMap((u) => [
      `  var it${t}_${u} = vec4<i32>(${MAGIC_I});`,
      ...(d.KACC2 ? [`  var iu${t}_${u} = vec4<i32>(${MAGIC_I});`] : []),
    ])
  ).join("\n");
  // per token of the invocation (from tq): in range, its K row (clamped), with `rv` its V row
  const tokenRows = (rv: boolean) =>
    ts.map((t) =>
      `  let ok${t} = tq + ${tokOff(t)} < cnt;
  let rk${t} = head * kr.z + kr.w + min(tq + ${tokOff(t)}, cnt - 1u);${
        rv ? `\n  let rvw${t} = head * vr.z + vr.w + min(tq + ${tokOff(t)}, cnt - 1u);` : ""
      }`
    ).join("\n");
  // sbar1: the pending block's statistics (its sums wait in rl / rz at parity offset ppo)
  const pendingVars = d.SBAR1
    ? `
${us.map((u) => `  var pm${u} = vec4<f32>(0.0);`).join("\n")}
  var psmx = 0.0; var pblk = 0u; var ppo = 0u;`
    : "";
  const oneBlock = `  let blk = wid.x; let kvh = wid.y; let b = wid.z;
  let S = p.io.x;
  let cnt = p.cnt[b / 4u][b % 4u];
  let t0 = blk * BT;
  if (t0 >= cnt) { return; } // an empty block: the value kernel writes its split (no statistics needed)
  let kr = p.kr; let vr = p.vr;
  // token i of quad q = lid + k·WQ is t0 + q + i·QB: a warp's load of one row word covers consecutive rows
  let tq = t0 + lid;
  let head = (b * NKV + kvh);
${tokenRows(true)}
${itInit}
${ts.map((t) => `  let szk${t} = sw[kr.y + rk${t}]; let szv${t} = sw[vr.y + rvw${t}];`).join("\n")}
${kAll ? kAll.loads : ""}
  // the packed query (loaded after the K rows, so their latency overlaps)
${queryLoad}
${kAll ? kAll.dots : `${kLoop}\n${foldIu(ts)}`}
${qfLines}${pendingVars}
${scoreLines}
${afterScores}`;
  // nblk > 1: the workgroup scores blocks wid.x·NBLK … + NBLK − 1 in turn; the sz words of the next block and
  // the K rows its first loads cover are issued right after this block's scores, so they fly during this
  // block's reductions
  const pts = kAll?.first ?? [];
  const prefetch = (tq: string) =>
    [
      ...ts.map((t) =>
        `    let xk${t} = head * kr.z + kr.w + min(${tq} + ${tokOff(t)}, cnt - 1u);
    pk${t} = sw[kr.y + xk${t}]; pz${t} = sw[vr.y + head * vr.z + vr.w + min(${tq} + ${tokOff(t)}, cnt - 1u)];`
      ),
      ...w4s.flatMap((w4) =>
        pts.map((t) => `    pv${t}_${w4} = st[(kr.x >> 2u) + xk${t} * ${u32(WPTK / 4)} + ${u32(w4)}];`)
      ),
    ].join("\n");
  const manyBlocks = `  let kvh = wid.y; let b = wid.z;
  let S = p.io.x;
  let cnt = p.cnt[b / 4u][b % 4u];
  let blk0 = wid.x * ${u32(NB)};
  if (blk0 * BT >= cnt) { return; } // empty blocks: the value kernel writes their splits
  let kr = p.kr; let vr = p.vr;
  let head = (b * NKV + kvh);
${ts.map((t) => `  var pk${t}: u32; var pz${t}: u32;`).join("\n")}
${w4s.flatMap((w4) => pts.map((t) => `  var pv${t}_${w4}: vec4<u32>;`)).join("\n")}
  {
${prefetch("blk0 * BT + lid")}
  }
${queryLoad}
${qfLines}${pendingVars}
  for (var jb = 0u; jb < ${u32(NB)}; jb++) {
  let blk = blk0 + jb;
  let t0 = blk * BT;
  if (t0 >= cnt) { break; }
  let tq = t0 + lid;
${tokenRows(false)}
${itInit}
${ts.map((t) => `  let szk${t} = pk${t}; let szv${t} = pz${t};`).join("\n")}
${w4s.flatMap((w4) => pts.map((t) => `  let v${t}_${w4} = pv${t}_${w4};`)).join("\n")}
${kAll ? kAll.dots : ""}
${scoreLines}
  if (jb + 1u < ${u32(NB)} && t0 + BT < cnt) {
${prefetch("t0 + BT + lid")}
  }
${afterScores}`;
  return /* wgsl */ `
${consts(d, { PL, REC: d.REC, BT: d.BT, WQ, BST: 3 * NV + 1, KCPW: d.KCPW })}
const NEG = -3.0e38;
struct P { io: vec4<u32>, kr: vec4<u32>, vr: vec4<u32>, cnt: array<vec4<u32>, ${d.NCNT}> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> ${d.QSUB ? "qkv: array<f32>" : "qrec: array<vec4<u32>>"};
@group(0) @binding(2) var<storage, read> st: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> sw: array<u32>;
@group(0) @binding(4) var<storage, read_write> wq: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read_write> bst: array<vec4<f32>>;
// the int8 query's plane words [D/4, NV], 2^e [NV], Σ qi [NV]
var<workgroup> qp: array<vec4<u32>, ${(D / 4) * NV}>;
var<workgroup> qsc: array<vec4<f32>, ${NV}>;
var<workgroup> qis: array<vec4<i32>, ${NV}>;
// reductions: per invocation [WQ, NV] and per group of 8 [WQ/8, NV]; the V scale maximum [WQ], [WQ/8]
var<workgroup> rv: array<vec4<f32>, ${WQ * NV}>;
var<workgroup> rv2: array<vec4<f32>, ${(WQ / 8) * NV}>;
var<workgroup> rz: array<vec4<f32>, ${WQ * NV}>;
var<workgroup> rz2: array<vec4<f32>, ${(WQ / 8) * NV}>;
var<workgroup> rs: array<f32, ${WQ}>;
var<workgroup> rs2: array<f32, ${WQ / 8}>;${
    d.SBAR2
      ? `\n// sbar2: the sums' subgroup results [WQ/4, NV] (subgroups of ≥ 4 lanes)\nvar<workgroup> rl: array<vec4<f32>, ${
        (d.SBAR1 ? WQ / 2 : WQ / 4) * NV
      }>;`
      : ""
  }
${QUANT_WGSL}${d.QSUB ? Q8_WGSL : ""}
@compute @workgroup_size(${WQ})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32${
    d.SRED || d.QSUB ? ", @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32" : ""
  }) {
${NB === 1 ? oneBlock : manyBlocks}
${bigSum}${NB === 1 ? "" : "\n  }"}${
    d.SBAR1
      ? `
  // sbar1: the last block's sums
  workgroupBarrier();
${foldPending("ppo")}`
      : ""
  }
}
`;
}

/**
 * The value kernels' prologue after `head`: block blk is split split0 + blk, acc [D] and (max, Σp) of each head;
 * an empty block writes 0 and (NEG, 0) and returns.
 */
/** The value kernels' split index of head `h` of the KV head's group: (sequence, head, split) in `part`. */
function splitOf(h: string, x = "blk"): string {
  return `((b * NH + kvh * HPK + ${h}) * p.io.z + p.io.y + ${x})`;
}

/** `join` (vjoin): the workgroup's split is vb, its first block vb·QL. */
function valueEmptyBlock(WGV: number, join = false): string {
  const x = join ? "vb" : "blk";
  return `  // ${
    join ? "split vb (blocks vb·QL …, one per row of lanes)" : "block blk"
  } is split split0 + ${x}: acc [D] and (max, Σp) of each head (an empty ${
    join ? "split" : "block"
  }: 0, (NEG, 0))
  if (${join ? "vb * QL" : "blk"} * BT >= cnt) {
    for (var i = lid; i < HPK * D; i += ${u32(WGV)}) {
      part[${splitOf("i / D", x)} * D + i % D] = 0.0;
    }
    if (lid < HPK) {
      let o = p.io.w + ${splitOf("lid", x)} * 2u;
      part[o] = NEG; part[o + 1u] = 0.0;
    }
    return;
  }`;
}

/** The value kernels' uniform and bindings 0–4 (store words, weights, block statistics, splits). */
function valueBindings(NCNT: number): string {
  return `struct P { io: vec4<u32>, vr: vec4<u32>, cnt: array<vec4<u32>, ${NCNT}> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> sw: array<u32>;
@group(0) @binding(2) var<storage, read> wq: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> bst: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>;`;
}

/**
 * The value kernels' block range: tokens t0 … t0 + n of block blk, the quads to visit (quad q holds tokens q + i·QB,
 * so quads ≥ n are empty; rounded up to whole steps of `step` quads — their weights are zero and rows clamped),
 * the first and last V rows and the block's first quad in `wq`.
 */
function valueBlockRange(step: number, join = false): string {
  if (join) {
    return `  // vjoin: row ql takes block vb·QL + ql; a row past the tokens ("dead") runs the split's first block again and
  // is dropped in the merge
  let live = (vb * QL + ql) * BT < cnt;
  let blk = select(vb * QL, vb * QL + ql, live);
  let t0 = blk * BT;
  let n = min(BT, cnt - t0);
  // every row visits the quads of the split's first block, the fullest (quad q holds tokens q + i·QB, so quads
  // ≥ n are empty: their weights are zero and rows clamped), rounded up to whole steps; full: every row's block is whole
  let nq = min(QB, ((min(min(BT, cnt - vb * QL * BT), QB) + ${u32(step - 1)}) / ${u32(step)}) * ${u32(step)});
  let full = (vb + 1u) * QL * BT <= cnt;
  let row0 = head * vr.z + vr.w + t0;
  let rlast = row0 + n - 1u;
  let qb = (head * S + blk) * QB;`;
  }
  return `  let t0 = blk * BT;
  let n = min(BT, cnt - t0);
  // quads to visit: quad q holds tokens q + i·QB, so quads ≥ n are empty; rounded up to whole steps (their
  // weights are zero and rows clamped)
  let nq = min(QB, ((min(n, QB) + ${u32(step - 1)}) / ${u32(step)}) * ${u32(step)});
  let row0 = head * vr.z + vr.w + t0;
  let rlast = row0 + n - 1u;
  let qb = (head * S + blk) * QB;`;
}

/** The value kernels' epilogue: the block's (m, Σp) of each head into the split's statistics (lid < HPK). */
/** vstat: the first HPK invocations write the block's (m, Σp) loaded before the loop (sm, sl). */
function valueStatsPre(pad: string): string {
  return `${pad}if (lid < HPK) {
${pad}  let o = p.io.w + ${splitOf("lid")} * 2u;
${pad}  part[o] = sm; part[o + 1u] = sl;
${pad}}`;
}

function valueStatsLines(pad: string): string {
  return `${pad}if (lid < HPK) {
${pad}  let u = lid / 4u; let cc = lid % 4u;
${pad}  let o = p.io.w + ${splitOf("lid")} * 2u;
${pad}  part[o] = bst[bo + NV + u][cc]; part[o + 1u] = bst[bo + 2u * NV + u][cc];
${pad}}`;
}

/**
 * WGSL of the value kernel (module doc).
 *
 * @example
 * ```ts
 * const code = blockValueWgsl({ numHeads: 8, numKvHeads: 2, headDim: 64, maxBatch: 1, k: "q4", v: "q4" });
 * ```
 */
export function blockValueWgsl(c: BlockAttentionConfig): string {
  const d = dims(c);
  if (d.VPAIR) return blockValuePairWgsl(d);
  const { D, NV, VB, WPTV, DG, QL, UQ, WGV, PIPE } = d;
  const us = [...Array(NV).keys()], ks = [0, 1, 2, 3], js = [...Array(UQ).keys()];
  // quads between a row's consecutive quads: the rows interleave over one block, or (vjoin) each has its own
  const QS = d.VJOIN ? 1 : QL;
  // the codes of dim k stay at their bit offset within each byte (no shift): X_k's bytes hold c·2^vShift(k)
  // (2-bit: 4^k; 4-bit: 16 for odd k), undone by a right shift of the exact integer sums
  const vShift = (k: number) => (VB === 2 ? 2 * k : 4 * (k & 1));
  // words and bit offset of dims 4·dg … 4·dg + 3 in a row: 16 bits (4-bit) or 8 bits (2-bit)
  const gather = (j: number) =>
    VB === 4
      ? `    let u${j} = (r${j}_0 & 0xffffu) | (r${j}_2 << 16u);
    let v${j} = (r${j}_1 & 0xffffu) | (r${j}_3 << 16u);
    let u8${j} = u${j} >> 8u; let v8${j} = v${j} << 8u;
    let x${j}_0 = (u${j} & 0x000f000fu) | (v8${j} & 0x0f000f00u);
    let x${j}_1 = (u${j} & 0x00f000f0u) | (v8${j} & 0xf000f000u);
    let x${j}_2 = (u8${j} & 0x000f000fu) | (v${j} & 0x0f000f00u);
    let x${j}_3 = (u8${j} & 0x00f000f0u) | (v${j} & 0xf000f000u);`
      : `${
        d.VSHUF
          // 4×4 byte transpose over lanes pj = 0…3 (lane pj holds token pj's word; after it, byte j = token j's
          // byte pj): swap 16-bit halves with lane pj ^ 2, then bytes with lane pj ^ 1 (the sender rotates)
          ? `    let e${j} = subgroupShuffleXor((r${j} >> 16u) | (r${j} << 16u), 2u);
    let h${j} = (r${j} & mA) | (e${j} & ~mA);
    let f${j} = subgroupShuffleXor((h${j} << sB) | (h${j} >> (32u - sB)), 1u);
    let y${j} = (h${j} & mB) | (f${j} & ~mB);`
          : `    let y${j} = (r${j}_0 & 0xffu) | ((r${j}_1 & 0xffu) << 8u) | ((r${j}_2 & 0xffu) << 16u) | (r${j}_3 << 24u);`
      }
${
        ks.map((k) =>
          d.VSUB && k === 3
            ? `    let x${j}_3 = y${j};`
            : `    let x${j}_${k} = y${j} & ${u32(0x03030303 << (2 * k) >>> 0)};`
        ).join("\n")
      }`;
  // loads of one step (quads q + j·QL, j < UQ) into `${pre}W…` / `${pre}r…`
  // `full`: the whole block is in range, so rows need no clamp and step from one base address
  // wsh (wshfl, subgroups of 32): lane 4j' + h of the subgroup loads head h's weights word of the step's quad
  // 8i + j' into wv<i> (clamped to the step's last quad); the quads' vec4s are gathered by shuffles in `compute`
  const loads = (q: string, pre: string, decl: "let" | "" | "var", full: boolean, wsh = false) =>
    js.map((j) =>
      [
        ...(wsh
          ? (j % 8 === 0
            ? [
              `    let wv${j / 8} = wqw[(qb + ${q} + ${u32(j * QS)} + min(sid / 4u, ${
                u32(Math.min(8, UQ) - 1)
              }) * ${u32(QS)}) * 4u + sid % 4u];`,
            ]
            : [])
          : us.map((u) =>
            `    ${decl ? decl + " " : ""}${pre}W${j}_${u} = wq[(qb + ${q} + ${u32(j * QS)}) * NV + ${
              u32(u)
            }];`
          )),
        ...(full ? [`    let ${pre}ab${j} = wb + (row0 + ${q} + ${u32(j * QS)}) * WPTV;`] : []),
        ...(d.VSHUF
          ? [
            full
              ? `    ${decl ? decl + " " : ""}${pre}r${j} = sw[${pre}ab${j} + poff];`
              : `    ${decl ? decl + " " : ""}${pre}r${j} = sw[wb + min(row0 + ${q} + ${
                u32(j * QS)
              } + pq, rlast) * WPTV];`,
          ]
          : []),
        ...(d.VSHUF ? [] : ks).map((i) =>
          full
            ? `    ${decl ? decl + " " : ""}${pre}r${j}_${i} = sw[${pre}ab${j}${
              i ? ` + ${u32(i * d.QB * WPTV)}` : ""
            }] >> off;`
            : `    ${decl ? decl + " " : ""}${pre}r${j}_${i} = sw[wb + min(row0 + ${q} + ${
              u32(j * QS + i * d.QB)
            }, rlast) * WPTV] >> off;`
        ),
      ].join("\n")
    ).join("\n");
  const compute = (wsh = false) =>
    js.map((j) =>
      `${
        wsh
          ? `    let W${j}_0 = vec4<u32>(${
            [0, 1, 2, 3].map((h) => `subgroupShuffle(wv${Math.floor(j / 8)}, ${u32(4 * (j % 8) + h)})`).join(
              ", ",
            )
          });\n`
          : ""
      }${gather(j)}
${
        ks.flatMap((k) =>
          us.map((u) =>
            d.DACC
              ? `    ${
                ["x", "y", "z", "w"].map((c) =>
                  `ia${k}_${u}.${c} += dot4U8Packed(x${j}_${k}, W${j}_${u}.${c});`
                ).join(" ")
              }`
              : `    ia${k}_${u} += vec4<u32>(dot4U8Packed(x${j}_${k}, W${j}_${u}.x), dot4U8Packed(x${j}_${k}, W${j}_${u}.y), dot4U8Packed(x${j}_${k}, W${j}_${u}.z), dot4U8Packed(x${j}_${k}, W${j}_${u}.w));`
          )
        ).join("\n")
      }`
    ).join("\n");
  const names = js.flatMap((j) => [
    ...us.map((u) => `W${j}_${u}`),
    ...(d.VSHUF ? [`r${j}`] : ks.map((i) => `r${j}_${i}`)),
  ]);
  // vtouch (whole blocks): one word of each V row of the step VTOUCH ahead (past the last step, its own again)
  // and, with wsh, that step's weight words, loaded into tp<i> — each consumed (XORed into tch) one step later,
  // when it has long arrived, so no instruction waits on a touch
  const nTouch = (wsh: boolean) => Math.ceil(UQ / 8) + (wsh ? js.filter((j) => j % 8 === 0).length : 0);
  const touchAddr = (wsh: boolean) => [
    ...[...Array(Math.ceil(UQ / 8)).keys()].map((i) =>
      `sw[wb + (row0 + qt + ((dg / 4u + ${u32(8 * i)}) % ${u32(UQ)}) * ${u32(QS)}) * WPTV + poff]`
    ),
    ...(wsh
      ? js.filter((j) => j % 8 === 0).map((j) =>
        `wqw[(qb + qt + ${u32(j * QS)} + min(sid / 4u, ${u32(Math.min(8, UQ) - 1)}) * ${
          u32(QS)
        }) * 4u + sid % 4u]`
      )
      : []),
  ];
  const touches = (wsh: boolean) =>
    `    let qt = select(q0, q0 + ${u32(d.VTOUCH * QS * UQ)}, q0 + ${u32(d.VTOUCH * QS * UQ)} < nq);
${touchAddr(wsh).map((a, i) => `    tch ^= tp${i}; tp${i} = ${a};`).join("\n")}`;
  const plain = (full: boolean, wsh = false) =>
    `${
      d.VTOUCH && full
        ? [...Array(nTouch(wsh)).keys()].map((i) => `  var tp${i} = 0u;`).join("\n") + "\n"
        : ""
    }  for (var q0 = ${d.VJOIN ? "0u" : "ql"}; q0 < nq; q0 += ${u32(QS * UQ)}) {
${loads("q0", "", "let", full, wsh)}${d.VTOUCH && full ? "\n" + touches(wsh) : ""}
${compute(wsh)}
  }${
      d.VTOUCH && full
        ? "\n  tch ^= " + [...Array(nTouch(wsh)).keys()].map((i) => `tp${i}`).join(" ^ ") + ";"
        : ""
    }`;
  // software pipeline: the next step's loads are issued before this step's gathers and dot products
  const pipelined = (full: boolean) =>
    `  var q0 = ql;
${loads("q0", "c", "var", full)}
  loop {
    let qn = q0 + ${u32(QL * UQ)};
    let qc = select(q0, qn, qn < nq);
${loads("qc", "n", "let", full)}
${names.map((x) => `    let ${x} = c${x};`).join("\n")}
${compute()}
${names.map((x) => `    c${x} = n${x};`).join("\n")}
    q0 = qn;
    if (q0 >= nq) { break; }
  }`;
  // vsum1: subgroups ql > 0 store their shifted sums, the first adds them to its own and writes dims
  // 4·dg … 4·dg + 3 of the split (its lane dg owns them), then the block's (m, Σp)
  const shifted = (
    k: number,
    u: number,
  ) => (vShift(k) ? `ia${k}_${u} >> vec4<u32>(${u32(vShift(k))})` : `ia${k}_${u}`);
  // vcoal: after one more barrier every invocation stores consecutive floats of split x from workgroup memory
  const coalStores = (x: string) => `
  // vcoal: the split's floats from workgroup memory, consecutive per invocation (coalesced stores)
  workgroupBarrier();
  for (var i = lid; i < HPK * D; i += ${u32(WGV)}) {
    part[${splitOf("i / D", x)} * D + i % D] = tr[i];
  }`;
  // vsum1's lane sums of row r, plane k: dim-major (lanes 4 vec4 apart), or plane-major with vcoal (consecutive)
  const redAt = (r: string, k: number) =>
    d.VCOAL ? `((${r}) * D + ${u32(k * DG)} + dg)` : `((${r}) * D + dg * 4u + ${u32(k)})`;
  // vst4: the first row's acc per dim k (vec4 over 4 heads), then one vec4 per head of the 4 dims
  const st4 = us.map((u) =>
    `    {
${
      ks.map((k) =>
        `      var tot${k} = ${shifted(k, u)};
      for (var l = 1u; l < QL; l++) { tot${k} += red[${redAt("l - 1u", k)} * NV + ${u32(u)}]; }
      let acc${k} = vsig * vec4<f32>(tot${k}) - ${d.VSTAT ? `zs${u}` : `bst[bo + ${u32(u)}]`};`
      ).join("\n")
    }
      for (var cc = 0u; cc < 4u; cc++) {
        let hh = ${u32(4 * u)} + cc;
        if (hh < HPK) { partv[(${
      splitOf("hh")
    } * D + dg * 4u) / 4u] = vec4<f32>(acc0[cc], acc1[cc], acc2[cc], acc3[cc]); }
      }
    }`
  ).join("\n");
  const sum1Tail = `  if (ql > 0u) {
${
    ks.flatMap((k) => us.map((u) => `    red[${redAt("ql - 1u", k)} * NV + ${u32(u)}] = ${shifted(k, u)};`))
      .join("\n")
  }
  }
  workgroupBarrier();
  if (ql == 0u) {
    // acc = (S_max/255)·Σ w·c − Σp·z_V (exact u32 lane sums); the split's statistics are the block's (m, Σp)
${
    d.VCOAL || d.VSTAT ? "" : `    let bo = (head * S + blk) * BST;
    let vsig = bst[bo + 3u * NV].x;
`
  }${d.VST4 ? st4 : ""}${
    d.VST4 ? "" : ks.flatMap((k) =>
      us.map((u) =>
        `    {
      var tot = ${shifted(k, u)};
      for (var l = 1u; l < QL; l++) { tot += red[${redAt("l - 1u", k)} * NV + ${u32(u)}]; }
      let acc = vsig * vec4<f32>(tot) - ${d.VCOAL || d.VSTAT ? `zs${u}` : `bst[bo + ${u32(u)}]`};
      for (var cc = 0u; cc < 4u; cc++) {
        let hh = ${u32(4 * u)} + cc;
        ${
          d.VCOAL
            ? `if (hh < HPK) { tr[hh * D + dg * 4u + ${u32(k)}] = acc[cc]; }`
            : `if (hh < HPK) { part[${splitOf("hh")} * D + dg * 4u + ${u32(k)}] = acc[cc]; }`
        }
      }
    }`
      )
    ).join("\n")
  }
${d.VSTAT ? valueStatsPre("    ") : valueStatsLines("    ")}
  }${d.VCOAL ? coalStores("blk") : ""}`;
  // vjoin: each row's block in f32 with its (m, Σp); rows ql > 0 hand them over in workgroup memory (a dead row
  // as zeros and (NEG, 0)), the first row merges: M = max m, acc = Σ e^(m − M)·acc, Σp = Σ e^(m − M)·Σp, and
  // writes dims 4·dg … 4·dg + 3 of split vb (its lane dg owns them) and the split's (M, Σp)
  const jfAt = (r: string, k: number, u: number) => `jf[((${r}) * D + ${u32(k * DG)} + dg) * NV + ${u32(u)}]`;
  const jmAt = (r: string, i: number, u: number) => `jm[((${r}) * 2u + ${u32(i)}) * NV + ${u32(u)}]`;
  const joinTail =
    `  // vjoin: this row's block — acc = (S_max/255)·Σ w·c − Σp·z_V (exact u32 lane sums) and its (m, Σp)
${
      d.VCOAL ? "" : `  let bo = (head * S + blk) * BST;
  let vsig = bst[bo + 3u * NV].x;
`
    }${
      us.map((u) =>
        `  let mb${u} = select(vec4<f32>(NEG), bst[bo + ${u32(NV + u)}], live);
  let lb${u} = select(vec4<f32>(0.0), bst[bo + ${u32(2 * NV + u)}], live);
${
          ks.map((k) =>
            `  let ac${k}_${u} = select(vec4<f32>(0.0), vsig * vec4<f32>(${shifted(k, u)}) - ${
              d.VCOAL ? `zs${u}` : `bst[bo + ${u32(u)}]`
            }, live);`
          ).join("\n")
        }`
      ).join("\n")
    }
  if (ql > 0u) {
${ks.flatMap((k) => us.map((u) => `    ${jfAt("ql - 1u", k, u)} = ac${k}_${u};`)).join("\n")}
    if (dg == 0u) {
${us.map((u) => `      ${jmAt("ql - 1u", 0, u)} = mb${u}; ${jmAt("ql - 1u", 1, u)} = lb${u};`).join("\n")}
    }
  }
  workgroupBarrier();
  if (ql == 0u) {
${
      us.map((u) =>
        `    {
      var mm = mb${u};
      for (var l = 1u; l < QL; l++) { mm = max(mm, ${jmAt("l - 1u", 0, u)}); }
      let e0 = exp(mb${u} - mm);
      var ll = e0 * lb${u};
${ks.map((k) => `      var a${k} = e0 * ac${k}_${u};`).join("\n")}
      for (var l = 1u; l < QL; l++) {
        let el = exp(${jmAt("l - 1u", 0, u)} - mm);
        ll += el * ${jmAt("l - 1u", 1, u)};
${ks.map((k) => `        a${k} += el * ${jfAt("l - 1u", k, u)};`).join("\n")}
      }
      for (var cc = 0u; cc < 4u; cc++) {
        let hh = ${u32(4 * u)} + cc;
        if (hh < HPK) {
${
          ks.map((k) =>
            d.VCOAL
              ? `          tr[hh * D + dg * 4u + ${u32(k)}] = a${k}[cc];`
              : `          part[${splitOf("hh", "vb")} * D + dg * 4u + ${u32(k)}] = a${k}[cc];`
          ).join("\n")
        }
        }
      }
      if (lid < HPK && lid / 4u == ${u32(u)}) {
        let o = p.io.w + ${splitOf("lid", "vb")} * 2u;
        part[o] = mm[lid % 4u]; part[o + 1u] = ll[lid % 4u];
      }
    }`
      ).join("\n")
    }
  }${d.VCOAL ? coalStores("vb") : ""}`;
  // wshfl: the shuffled weights where subgroups have 32 lanes, the vec4 loads elsewhere (same sums); only
  // where a row of lanes is a whole subgroup (D/4 = 32): with fewer (D < 128) a subgroup holds lanes of several
  // rows, each on its own quads, and the shuffles would take the weights of another row's quads
  const body = (full: boolean) =>
    PIPE
      ? pipelined(full)
      : d.WSHFL && DG === 32
      ? `  if (sgs == 32u) {\n${plain(full, true)}\n  } else {\n${plain(full)}\n  }`
      : plain(full);
  return /* wgsl */ `
${consts(d, { BT: d.BT, QB: d.QB, DG, QL, WPTV, BST: 3 * NV + 1 })}
const NEG = -3.0e38;
${valueBindings(d.NCNT)}${
    d.WSHFL
      ? "\n// the weights again, as words (wshfl)\n@group(0) @binding(5) var<storage, read> wqw: array<u32>;"
      : ""
  }${
    d.VST4
      ? `\n// part again, as vec4 (vst4)\n@group(0) @binding(${
        d.WSHFL ? 6 : 5
      }) var<storage, read_write> partv: array<vec4<f32>>;`
      : ""
  }
${
    d.VJOIN
      ? `// vjoin: rows ql > 0's f32 acc [QL − 1, D, NV] (plane-major) and (m, Σp) [QL − 1, 2, NV]
var<workgroup> jf: array<vec4<f32>, ${(QL - 1) * D * NV}>;
var<workgroup> jm: array<vec4<f32>, ${(QL - 1) * 2 * NV}>;`
      : `// lane sums [QL, D, NV] (vsum1: [QL − 1, D, NV], every row ql > 0)
var<workgroup> red: array<vec4<u32>, ${(d.VSUM1 ? QL - 1 : QL) * D * NV}>;`
  }${
    d.VCOAL
      ? `\n// vcoal: the split [HPK, D] before its coalesced stores\nvar<workgroup> tr: array<f32, ${
        d.HPK * D
      }>;`
      : ""
  }
@compute @workgroup_size(${WGV})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32${
    d.WSHFL ? ", @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32" : ""
  }) {
  let ${d.VJOIN ? "vb" : "blk"} = wid.x; let kvh = wid.y; let b = wid.z;
  let S = p.io.x;
  let cnt = p.cnt[b / 4u][b % 4u];
  let head = b * NKV + kvh;
${valueEmptyBlock(WGV, d.VJOIN)}
  let vr = p.vr;
  let dg = lid % DG; let ql = lid / DG;
  let wb = vr.x + ${VB === 4 ? "dg / 2u" : "dg / 4u"};
${
    d.VSHUF
      ? `  // lane pj of each 4 loads token pj of a quad and owns byte pj of the word after the transpose
  let pj = dg % 4u;
  let poff = pj * ${u32(d.QB * WPTV)}; let pq = pj * QB;
  let mA = select(0xffff0000u, 0x0000ffffu, pj < 2u);
  let mB = select(0xff00ff00u, 0x00ff00ffu, (pj & 1u) == 0u);
  let sB = select(8u, 24u, (pj & 1u) == 0u);`
      : `  let off = ${VB === 4 ? "(dg % 2u) * 16u" : "(dg % 4u) * 8u"};`
  }
${valueBlockRange(QS * UQ, d.VJOIN)}${
    d.VSTAT
      ? `
  // vstat: the block's V statistics loaded before the loop, so they arrive during it
  let bo = (head * S + blk) * BST;
  let vsig = bst[bo + 3u * NV].x;
${us.map((u) => `  let zs${u} = bst[bo + ${u32(u)}];`).join("\n")}
  let hs = min(lid, HPK - 1u);
  let sm = bst[bo + NV + hs / 4u][hs % 4u]; let sl = bst[bo + 2u * NV + hs / 4u][hs % 4u];`
      : ""
  }${
    d.VCOAL
      ? `
  // vcoal: the block's V statistics loaded before the loop, so they arrive during it
  let bo = (head * S + blk) * BST;
  let vsig = bst[bo + 3u * NV].x;
${us.map((u) => `  let zs${u} = bst[bo + ${u32(u)}];`).join("\n")}`
      : ""
  }
${ks.flatMap((k) => us.map((u) => `  var ia${k}_${u} = vec4<u32>(0u);`)).join("\n")}${
    d.VTOUCH ? "\n  var tch = 0u; // vtouch: the touched words, XORed" : ""
  }
  if (${d.VJOIN ? "full" : "n == BT"}) {
${body(true)}
  } else {
${body(false)}
  }${
    d.VTOUCH
      ? `
  // vtouch: keeps the touches alive; never taken (lid < WGV ≤ 256, the block count S far below 2^16)
  if (lid == p.io.x + 0xffff0000u) { part[p.io.w] = bitcast<f32>(tch); }`
      : ""
  }
${
    d.VSUB
      ? `  // vsub: plane 3's sums = the unmasked totals − planes 0…2 (exact: every true sum is < 2^27)\n${
        us.map((u) => `  ia3_${u} = ia3_${u} - ia0_${u} - ia1_${u} - ia2_${u};`).join("\n")
      }\n`
      : ""
  }${
    d.VJOIN
      ? joinTail
      : d.VSUM1
      ? sum1Tail
      : `${
        ks.flatMap((k) =>
          us.map((u) => `  red[(ql * D + dg * 4u + ${u32(k)}) * NV + ${u32(u)}] = ${shifted(k, u)};`)
        ).join("\n")
      }
  workgroupBarrier();
  // acc = (S_max/255)·Σ w·c − Σp·z_V (exact u32 lane sums); the split's statistics are the block's (m, Σp)
  let bo = (head * S + blk) * BST;
  let vsig = bst[bo + 3u * NV].x;
  for (var i = lid; i < D * NV; i += ${u32(WGV)}) {
    let dd = i / NV; let u = i % NV;
    var tot = vec4<u32>(0u);
    for (var l = 0u; l < QL; l++) { tot += red[(l * D + dd) * NV + u]; }
    let acc = vsig * vec4<f32>(tot) - bst[bo + u];
    for (var cc = 0u; cc < 4u; cc++) {
      let hh = u * 4u + cc;
      if (hh < HPK) { part[${splitOf("hh")} * D + dd] = acc[cc]; }
    }
  }
${valueStatsLines("  ")}`
  }
}
`;
}

/**
 * WGSL of the value kernel with `vpair` (2-bit V, one head lane: ≤ 4 query heads per KV head): invocation (ql, e)
 * of the workgroup — stream ql = lid / (D/8), lane e = lid % (D/8) — owns word wd = e / 2 of every row and in it
 * bytes {0, 2} (e even, "lane a") or {3, 1} (e odd, "lane b"): dims 16·wd + 4·byte + k at plane k. Per quad
 * (tokens q + i·QB, i < 4) lane a loads rows 0 and 1, lane b rows 2 and 3 of word wd; each splits its two words
 * into the even bytes F1 = [r0.b0, r1.b0, r0.b2, r1.b2] and the odd bytes F2 = [r0.b1, r1.b1, r0.b3, r1.b3],
 * keeps its own and trades the other with its partner (`subgroupShuffleXor` 1), so each holds two words of its
 * bytes of rows 0…3 in token order (the weights' byte order): lane a X0 = byte 0, X1 = byte 2; lane b X0 =
 * byte 1, X1 = byte 3 (its kept word holds rows 2, 3, the traded one rows 0, 1). The dot products, the exact
 * u32 sums at the codes' bit offsets and the epilogue's arithmetic are blockValueWgsl's.
 */
function blockValuePairWgsl(d: Dims): string {
  const { D, QL, UQ, WGV, WPTV } = d;
  const LS = D / 8;
  const js = [...Array(UQ).keys()], ks = [0, 1, 2, 3], xs = [0, 1];
  // the weights as words where subgroups have 32 lanes and a stream is 16 lanes (D 128): lane sid holds head
  // sid % 4 of quad q0 + (4i + (sid % 16) / 4)·QL in wv<i>; quad j's vec4 is four shuffles from its stream's half
  const WSH = LS === 16;
  const mask = (k: number) => u32((0x03030303 << (2 * k)) >>> 0);
  const loads = (full: boolean, wsh: boolean) =>
    [
      ...(wsh
        ? [...Array(UQ / 4).keys()].map((i) =>
          `    let wv${i} = wqw[(qb + q0 + (${u32(4 * i)} + (sid % 16u) / 4u) * ${u32(QL)}) * 4u + sid % 4u];`
        )
        : js.map((j) => `    let W${j} = wq[qb + q0 + ${u32(j * QL)}];`)),
      ...js.map((j) =>
        full
          ? `    let ab${j} = wb + (row0 + q0 + ${u32(j * QL)}) * WPTV;
    let a${j} = sw[ab${j} + poff]; let c${j} = sw[ab${j} + poff + ${u32(d.QB * WPTV)}];`
          : `    let a${j} = sw[wb + min(row0 + q0 + ${u32(j * QL)} + pq, rlast) * WPTV];
    let c${j} = sw[wb + min(row0 + q0 + ${u32(j * QL)} + pq + QB, rlast) * WPTV];`
      ),
    ].join("\n");
  const compute = (wsh: boolean) =>
    js.map((j) =>
      `${
        wsh
          ? `    let W${j} = vec4<u32>(${
            [0, 1, 2, 3].map((h) => `subgroupShuffle(wv${Math.floor(j / 4)}, half + ${u32(4 * (j % 4) + h)})`)
              .join(", ")
          });\n`
          : ""
      }    let F1_${j} = (a${j} & 0x00ff00ffu) | ((c${j} << 8u) & 0xff00ff00u);
    let F2_${j} = ((a${j} >> 8u) & 0x00ff00ffu) | (c${j} & 0xff00ff00u);
    let g${j} = subgroupShuffleXor(select(F1_${j}, F2_${j}, isA), 1u);
    let lo${j} = select(g${j}, F1_${j}, isA); let hi${j} = select(F2_${j}, g${j}, isA);
    let X${j}_0 = (lo${j} & 0xffffu) | (hi${j} << 16u);
    let X${j}_1 = (lo${j} >> 16u) | (hi${j} & 0xffff0000u);
${
        xs.flatMap((x) =>
          ks.map((k) =>
            `    { let xx = ${
              d.VSUB && k === 3 ? `X${j}_${x}` : `X${j}_${x} & ${mask(k)}`
            }; ia${x}_${k} += vec4<u32>(dot4U8Packed(xx, W${j}.x), dot4U8Packed(xx, W${j}.y), dot4U8Packed(xx, W${j}.z), dot4U8Packed(xx, W${j}.w)); }`
          )
        ).join("\n")
      }`
    ).join("\n");
  const plain = (full: boolean, wsh: boolean) =>
    `  for (var q0 = ql; q0 < nq; q0 += ${u32(QL * UQ)}) {
${loads(full, wsh)}
${compute(wsh)}
  }`;
  const body = (full: boolean) =>
    WSH
      ? `  if (sgs == 32u) {\n${plain(full, true)}\n  } else {\n${plain(full, false)}\n  }`
      : plain(full, false);
  const shifted = (x: number, k: number) => (k ? `(ia${x}_${k} >> vec4<u32>(${u32(2 * k)}))` : `ia${x}_${k}`);
  const slot = (x: number, k: number) => `e * 8u + ${u32(4 * x + k)}`;
  return /* wgsl */ `
${consts(d, { BT: d.BT, QB: d.QB, LS, QL, WPTV, BST: 4 })}
const NEG = -3.0e38;
${valueBindings(d.NCNT)}
// the weights again, as words (the shuffled weights)
@group(0) @binding(5) var<storage, read> wqw: array<u32>;
// one stream's lane sums [LS, 2 words, 4 planes]: streams QL − 1 … 1 add theirs in turn, stream 0 last
var<workgroup> red: array<vec4<u32>, ${LS * 8}>;
@compute @workgroup_size(${WGV})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32) {
  let blk = wid.x; let kvh = wid.y; let b = wid.z;
  let S = p.io.x;
  let cnt = p.cnt[b / 4u][b % 4u];
  let head = b * NKV + kvh;
${valueEmptyBlock(WGV)}
  let vr = p.vr;
  let e = lid % LS; let ql = lid / LS;
  let wd = e / 2u; let hb = e % 2u; let isA = hb == 0u;
  let wb = vr.x + wd;
  // this lane's rows of a quad: 2·hb and 2·hb + 1
  let poff = hb * ${u32(2 * d.QB * WPTV)}; let pq = hb * ${u32(2 * d.QB)};
  let half = sid & 16u;
${valueBlockRange(QL * UQ)}
${xs.flatMap((x) => ks.map((k) => `  var ia${x}_${k} = vec4<u32>(0u);`)).join("\n")}
  if (n == BT) {
${body(true)}
  } else {
${body(false)}
  }
${
    d.VSUB
      ? `  // vsub: plane 3's sums = the unmasked totals − planes 0…2 (exact: every true sum is < 2^27)\n${
        xs.map((x) => `  ia${x}_3 = ia${x}_3 - ia${x}_0 - ia${x}_1 - ia${x}_2;`).join("\n")
      }\n`
      : ""
  }  // the streams' exact sums, one stream after the other through workgroup memory
  for (var s = QL - 1u; s > 0u; s--) {
    if (ql == s) {
${
    xs.flatMap((x) =>
      ks.map((k) =>
        `      red[${slot(x, k)}] = ${shifted(x, k)}+ select(vec4<u32>(0u), red[${slot(x, k)}], s < QL - 1u);`
      )
    ).join("\n")
  }
    }
    workgroupBarrier();
  }
  if (ql == 0u) {
    // acc = (S_max/255)·Σ w·c − Σp·z_V; lane a's words are bytes 0 and 2 of word wd, lane b's bytes 1 and 3
    let bo = (head * S + blk) * BST;
    let vsig = bst[bo + 3u].x;
    let zs = bst[bo];
${
    xs.flatMap((x) =>
      ks.map((k) =>
        `    {
      var tot = ${shifted(x, k)};
      if (QL > 1u) { tot += red[${slot(x, k)}]; }
      let acc = vsig * vec4<f32>(tot) - zs;
      let dd = wd * 16u + select(${u32(4 * (2 * x + 1) + k)}, ${u32(4 * (2 * x) + k)}, isA);
      for (var cc = 0u; cc < HPK; cc++) {
        part[${splitOf("cc")} * D + dd] = acc[cc];
      }
    }`
      )
    ).join("\n")
  }
${valueStatsLines("    ")}
  }
}
`;
}

/**
 * Dims per workgroup of the block reduce kernel: the tuning's `rdims`, else {@link DEFAULT_BLOCK_TUNING}`.rdims`
 * (32), or 16 where head_dim is not a multiple of 32. A given `rdims` must divide head_dim.
 *
 * @example
 * ```ts
 * blockReduceDims({ headDim: 128 }); // 32
 * blockReduceDims({ headDim: 48 }); // 16
 * blockReduceDims({ headDim: 128, tuning: { rdims: 64 } }); // 64
 * ```
 */
export function blockReduceDims(s: { headDim: number; tuning?: BlockAttentionTuning }): number {
  const given = s.tuning?.rdims;
  const dc = given ?? DEFAULT_BLOCK_TUNING.rdims;
  if (![16, 32, 64, 128].includes(dc)) {
    throw new QuantConfigError(`block reduce: rdims ${dc} must be 16, 32, 64 or 128`);
  }
  if (s.headDim % dc !== 0) {
    if (given === undefined && s.headDim % 16 === 0) return 16;
    throw new QuantConfigError(`block reduce: head_dim ${s.headDim} is not a multiple of rdims ${dc}`);
  }
  return dc;
}

/**
 * The end of both block reduce kernels: after each invocation's sum went to `red[lid]`, the SL split lanes of
 * dim d are added, the new token's share (`wn`·v_new) joins, and out = a / L (0 where L is 0).
 */
const REDUCE_LANES = `  workgroupBarrier();
  if (sl == 0u) {
    var a = 0.0;
    for (var l = 0u; l < SL; l++) { a += red[l * DC + dl]; }
    if (hasNew) { a += wn * qkv[p.nw.y + b * p.io.y + kvh * D + d]; }
    out[(b * NH + h) * D + d] = select(a / L, 0.0, L == 0.0);
  }
}`;

/**
 * Invocations of a block reduce workgroup (128/rdims split lanes per dim), splits per weight block, and (`rsub`)
 * partials each invocation loads before the statistics are reduced.
 */
export const BLOCK_REDUCE = { threads: 128, splitBlock: 256, pre: 16 } as const;

/**
 * WGSL of the block attention's reduce kernel: the fused kernel's merge (attention.wgsl.ts
 * `attentionReduceWgsl`: out = (Σ_x e^(m_x−M)·acc_x + e^(s_new−M)·v_new) / (Σ_x e^(m_x−M)·l_x + e^(s_new−M)))
 * with the many splits of the block schedule spread over more invocations: grid (nH, B, D/DC), 128
 * invocations with DC = {@link blockReduceDims} (default 32); invocation (lane, d) sums splits lane,
 * lane + 128/DC, … of dim d with 4 independent partial sums, the 128/DC lanes are added in workgroup memory.
 * Same uniform and bindings as the fused reduce.
 *
 * @example
 * ```ts
 * const code = blockReduceWgsl({ numHeads: 32, numKvHeads: 8, headDim: 128 });
 * ```
 */
export function blockReduceWgsl(
  s: { numHeads: number; numKvHeads: number; headDim: number; tuning?: BlockAttentionTuning },
): string {
  const { threads: RW, splitBlock: RB } = BLOCK_REDUCE;
  const DC = blockReduceDims(s);
  if (s.tuning?.rsub) return blockReduceSubWgsl(s, DC);
  return /* wgsl */ `
const DC = ${u32(DC)};
const SL = ${u32(RW / DC)};
${reduceKernelHead(s, RW, RB)}
  let dl = lid % DC; let sl = lid / DC;
  let d = wid.z * DC + dl;
  let ab = (b * NH + h) * S * D + d;
  var a0 = 0.0; var a1 = 0.0; var a2 = 0.0; var a3 = 0.0;
  for (var xb = 0u; xb < S; xb += RB) {
    workgroupBarrier();
    let n = min(RB, S - xb);
    for (var i = lid; i < n; i += RW) { wsh[i] = exp(part[sb + (xb + i) * 2u] - M); }
    workgroupBarrier();
    let base = ab + xb * D;
    var x = sl;
    for (; x + 3u * SL < n; x += 4u * SL) {
      a0 += wsh[x] * part[base + x * D];
      a1 += wsh[x + SL] * part[base + (x + SL) * D];
      a2 += wsh[x + 2u * SL] * part[base + (x + 2u * SL) * D];
      a3 += wsh[x + 3u * SL] * part[base + (x + 3u * SL) * D];
    }
    for (; x < n; x += SL) { a0 += wsh[x] * part[base + x * D]; }
  }
  workgroupBarrier();
  red[lid] = (a0 + a1) + (a2 + a3);
${REDUCE_LANES}
`;
}

/**
 * The `rsub` reduce (same grid, uniform, bindings and formula as {@link blockReduceWgsl}): all loads first —
 * the new token's products q·k_new, the statistics of splits lid, lid + RW, … and the partials of splits
 * sl + k·SL, k < PRE (scalars pv0 … pv15, so they stay in registers) — then M and Σ q·k_new per subgroup
 * (subgroupMax / subgroupAdd) and over the subgroups (`rg`, one barrier), the split weights e^(m_x − M) of the
 * first RB splits into `wsh` with L per subgroup (`rl`, one barrier), the preloaded partials summed, further
 * splits in blocks of RB weights as the tree kernel does, and the SL split lanes of a dim added in `red` (one
 * barrier).
 */
function blockReduceSubWgsl(
  s: { numHeads: number; numKvHeads: number; headDim: number; tuning?: BlockAttentionTuning },
  DC: number,
): string {
  const { threads: RW, splitBlock: RB, pre: PRE } = BLOCK_REDUCE;
  const SL = RW / DC;
  return /* wgsl */ `
const DC = ${u32(DC)};
const SL = ${u32(SL)};
const PRE = ${u32(PRE)};
${reduceDecls(s, RW, RB)}
// split weights e^(m_x − M) of a block of RB splits [RB]; lane sums [RW]; per subgroup (max, Σ q·k_new) and
// Σ e^(m_x − M)·l_x [RW/4: subgroups of ≥ 4 lanes]
var<workgroup> wsh: array<f32, ${RB}>;
var<workgroup> red: array<f32, ${RW}>;
var<workgroup> rg: array<vec2<f32>, ${RW / 4}>;
var<workgroup> rl: array<f32, ${RW / 4}>;
@compute @workgroup_size(${RW})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32) {
  let h = wid.x; let b = wid.y; let kvh = h / HPK;
  let S = p.io.z;
  let hasNew = p.nw.z != 0u;
  let sb = p.io.w + (b * NH + h) * S * 2u;
  let dl = lid % DC; let sl = lid / DC;
  let d = wid.z * DC + dl;
  let ab = (b * NH + h) * S * D + d;
  // every load first: the new token's products, split lid's statistics, the partials of splits sl + k·SL
  var qk = 0.0;
  if (hasNew) {
    for (var e = lid; e < D; e += RW) {
      qk += qkv[p.io.x + b * p.io.y + h * D + e] * qkv[p.nw.x + b * p.io.y + kvh * D + e];
    }
  }
  var m0 = NEG; var l0 = 0.0;
  if (lid < S) { m0 = part[sb + lid * 2u]; l0 = part[sb + lid * 2u + 1u]; }
${
    [...Array(PRE).keys()].map((k) =>
      `  let pv${k} = select(0.0, part[ab + min(sl + ${u32(k * SL)}, S - 1u) * D], sl + ${u32(k * SL)} < S);`
    ).join("\n")
  }
  var mloc = m0;
  for (var x = lid + RW; x < S; x += RW) { mloc = max(mloc, part[sb + x * 2u]); }
  // M and the new token's score: per subgroup, then over the subgroups
  let ns = (RW + sgs - 1u) / sgs;
  let gm = subgroupMax(mloc);
  let gq = subgroupAdd(qk);
  if (sid == 0u) { rg[lid / sgs] = vec2<f32>(gm, gq); }
  workgroupBarrier();
  var M = rg[0].x; var qs = rg[0].y;
  for (var j = 1u; j < ns; j++) { M = max(M, rg[j].x); qs += rg[j].y; }
  let sn = select(NEG, qs * p.sc.x, hasNew);
  M = max(M, sn);
  // L, and the weights of the first RB splits
  var lloc = 0.0;
  if (lid < S) { let w = exp(m0 - M); lloc = w * l0; wsh[lid] = w; }
  for (var x = lid + RW; x < S; x += RW) {
    let w = exp(part[sb + x * 2u] - M);
    lloc += w * part[sb + x * 2u + 1u];
    if (x < RB) { wsh[x] = w; }
  }
  let gl = subgroupAdd(lloc);
  if (sid == 0u) { rl[lid / sgs] = gl; }
  workgroupBarrier();
  var L = rl[0];
  for (var j = 1u; j < ns; j++) { L += rl[j]; }
  let wn = select(0.0, exp(sn - M), hasNew);
  L += wn;
  var a0 = 0.0; var a1 = 0.0;
${
    [...Array(PRE).keys()].map((k) =>
      `  a${k % 2} += select(0.0, wsh[min(sl + ${u32(k * SL)}, RB - 1u)], sl + ${u32(k * SL)} < S) * pv${k};`
    ).join("\n")
  }
  // splits from PRE·SL on (none at S ≤ PRE·SL): blocks of RB weights, the first one's already in wsh
  for (var xb = 0u; xb < S; xb += RB) {
    let n = min(RB, S - xb);
    if (xb > 0u) {
      workgroupBarrier();
      for (var i = lid; i < n; i += RW) { wsh[i] = exp(part[sb + (xb + i) * 2u] - M); }
      workgroupBarrier();
    }
    var x = select(xb + sl, PRE * SL + sl, xb == 0u);
    for (; x < xb + n; x += SL) { a0 += wsh[x - xb] * part[ab + x * D]; }
  }
  red[lid] = a0 + a1;
${REDUCE_LANES}
`;
}
