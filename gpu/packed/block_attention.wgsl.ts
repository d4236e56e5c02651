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
export {
  type BlockAttentionConfig,
  type BlockAttentionTuning,
  type BlockKFormat,
  blockQueryRecord,
  blockRowsInRegisters,
  blockScoreBlocks,
  blockSharedBytes,
  blockSplitBlocks,
  blockTokens,
  type BlockVFormat,
  DEFAULT_BLOCK_TUNING,
  defaultBlockTuning,
  subgroupBlockTuning,
} from "./block_schedule.ts";
export { blockQueryWgsl, blockScoreWgsl } from "./block_score.wgsl.ts";
export { blockValueWgsl } from "./block_value.wgsl.ts";
export { BLOCK_REDUCE, blockReduceDims, blockReduceWgsl } from "./block_reduce.wgsl.ts";
