/**
 * WGSL of the **fused decode attention over packed caches** (flash-decoding): one query token per sequence,
 * grouped-query attention, over a cache made of *segments* whose K and V are read straight from packed
 * stores (gpu/packed/layout.ts) of different formats — PM-KVQ's [sink q16 | body q<b> | window q16], the
 * static int-b and all-16-bit layouts (one segment), KIVI's [per-channel K + per-token V | … | bf16
 * residual] — plus, in the reduce kernel, the new token's exact K/V (as cpu/attention.ts does).
 *
 * **Partial kernel** ({@link attentionPartialWgsl}). Grid (totalSplits, nKv, B); one workgroup per
 * (split, KV head, sequence) serves all HPK = nH/nKv query heads of that KV head, so each K/V byte is read
 * once. A split is a token range of one segment, processed in chunks of CH = WG·TPT tokens:
 * 1. K phase (token-parallel): invocation i scores tokens i, i + WG, … of the chunk for all its query heads
 *    (q pre-scaled by 1/√D in workgroup memory, `vec4` = 4 heads). Dequantization is folded:
 *    s = S·Σ_d q_d·c_d − z·Σ_d q_d per group, codes read as `vec4<u32>` and converted exactly in place
 *    (`inplaceCodeExpr`: one mask|exponent op and one exact subtraction give c·2^sh; q is pre-scaled by
 *    2^-sh, and the V accumulators are scaled by 2^-sh at the end — all exact powers of two).
 * 2. Chunk max over the workgroup (two-stage reduction), online-softmax rescale α = exp(m_old − m_new).
 * 3. p phase: p = exp(s − m); each invocation keeps its own running Σp and Σp·z_V (rescaled by α) and
 *    writes p·S_V per (token, V group) to workgroup memory.
 * 4. V phase (dim-parallel): D/vd invocations per token, each owning vd = 16 (or 8, `tuning.vd`) consecutive
 *    dims (at vd 16: one u32 of 2-bit codes, `vec2<u32>` of 4-bit, `vec4<u32>` of 8-bit, 2×`vec4<u32>` of
 *    16-bit or bf16; at vd 8 half of that, two invocations sharing a 2-bit word), WG/(D/vd) tokens in flight;
 *    acc[d][h] += (p·S)·c. At the end of the split the token lanes are summed, Σp·z is
 *    subtracted, and (acc, max, Σp) are written as the split's partial.
 *    With `tuning.vdot` (2/4-bit per-token V): p·S is rounded to 8-bit weights per chunk (scale max S_V/255)
 *    and summed over 4 tokens at a time with `dot4U8Packed` on codes gathered token-major from 4 rows
 *    (`vPhaseVdot`), flushed into acc once per chunk.
 *
 * **Reduce kernel** ({@link attentionReduceWgsl}). Grid (nH, B): merges the partials of all splits and the
 * new token's exact score/value: out = (Σ_x e^(m_x−M)·acc_x + e^(s_new−M)·v_new) / (Σ_x e^(m_x−M)·l_x + e^(s_new−M)).
 *
 * Buffers (partial kernel):
 * | binding | name | type | shape / content |
 * | --- | --- | --- | --- |
 * | 0 | `p` | uniform | `io = (qOff, rowStride, totalSplits, statsOff)`, `sc.x = 1/√D`, `seg[s] = (firstSplit, nSplits, splitLen, 0)`, `kref/vref[s] = (codesOff, szOff, cap, tok0)`, `cnt[(b·NSEG+s)/4][(b·NSEG+s)%4]` = tokens of segment s in sequence b |
 * | 1 | `qkv` | `array<f32>` read | query head h of sequence b at `qOff + b·rowStride + h·D` (e.g. a fused qkv [B, (nH + 2·nKv)·D]) |
 * | 2 | `part` | `array<f32>` read_write | acc [B, nH, totalSplits, D] at 0, then (max, Σp) [B, nH, totalSplits, 2] at `statsOff` |
 * | 3 + i | `s<i>` | `array<vec4<u32>>` read | store i (module table of layout.ts) |
 * | 3 + stores + i | `sw<i>` | `array<u32>` read | store i again, for single-word loads (only with `tuning.wordView`) |
 *
 * Buffers (reduce kernel):
 * | binding | name | type | shape / content |
 * | --- | --- | --- | --- |
 * | 0 | `p` | uniform | `io = (qOff, rowStride, totalSplits, statsOff)`, `nw = (kOff, vOff, hasNew, 0)`, `sc.x = 1/√D` |
 * | 1 | `qkv` | `array<f32>` read | q as above; the new token's k/v head g at `kOff|vOff + b·rowStride + g·D` |
 * | 2 | `part` | `array<f32>` read | partials as above |
 * | 3 | `out` | `array<f32>` read_write | [B, nH, D] |
 *
 * Requirements: D % 16 = 0 (so every format packs whole words per 16 dims), nH % nKv = 0, WG a multiple of
 * D/vd and ≥ 64. Numerics: f32 with folded dequantization and `exp`; within the bound stated in
 * docs/gpu-packed.md of cpu/attention.ts run on the dequantized cache (codes themselves are exact).
 *
 * @example
 * ```ts
 * import { attentionPartialWgsl } from "./attention.wgsl.ts";
 * const code = attentionPartialWgsl({
 *   numHeads: 32, numKvHeads: 8, headDim: 128, maxBatch: 8,
 *   stores: [{ k: "q16", v: "q16" }, { k: "q2", v: "q2" }, { k: "q16", v: "q16" }],
 *   segments: [0, 1, 2].map((i) => ({ k: { store: i, tensor: "k" }, v: { store: i, tensor: "v" } })),
 *   tuning: { wg: 128, tpt: 2 },
 * });
 * ```
 * @module
 */
import { formatFor, groupSizeFor } from "../../src/quant/format.ts";
import { QuantConfigError, TensorShapeError } from "../../src/errors.ts";
import { inplaceCodeExpr, inplaceShift, QUANT_WGSL, u32 } from "./wgsl_common.ts";
import { formatBits, isChannelFormat, type TensorFormat } from "./layout.ts";

/** Workgroup shape of the partial kernel. */
export interface AttentionTuning {
  /** Invocations per workgroup: 64, 128 or 256. */
  wg: number;
  /** Tokens per invocation in the K phase (chunk = wg·tpt tokens): 1, 2 or 4. */
  tpt: number;
  /** Tokens each invocation loads per step of the V phase (more loads in flight): 1, 2 or 4 (default 1). */
  uv?: number;
  /** K rows of at most this many `vec4<u32>` are loaded whole before use (default 4: 2- and 4-bit); longer
   * rows (8-, 16-bit) are streamed in a loop. 16 preloads every format at G = 128. */
  kpre?: number;
  /** Dims each invocation owns in the V phase: 16 (default) or 8 (half the accumulator registers; a 2-bit V
   * word is then shared by two invocations, each taking its half). */
  vd?: number;
  /** Integer K phase for 2-, 4- and 8-bit K (docs/gpu-packed.md §2b): the scaled query of each head is
   * rounded to int8 with a power-of-two scale (cpu/query_int8.ts, identical on every backend) and scored
   * with packed 4×8-bit dot products (`dot4I8Packed`): exact integer sums instead of f32 FMAs per code.
   * Changes the result by the query's rounding (stated bound in the doc); 16-bit segments keep the exact
   * query. Default false. */
  kdot?: boolean;
  /** Integer V phase for 2- and 4-bit per-token V (docs/gpu-packed.md §2c): each chunk's weights p·S_V are
   * rounded to 8 bits against the chunk's largest V scale (w = round(p·S_V·255 / max S_V) ∈ [0, 255]) and
   * summed over 4 tokens at a time with packed 4×8-bit dot products (`dot4U8Packed`) on codes gathered
   * token-major from 4 rows; each chunk's integer sums are flushed once as (max S_V / 255)·Σ w·c. Changes
   * the result by the weights' rounding (bound in the doc). Needs vd 8 or 4, kch 1 and one V group per token
   * (head_dim ≤ 128); other segments keep the f32 V phase. Default false. */
  vdot?: boolean;
  /** One partial pipeline per segment code path (e.g. PM-KVQ's 16-bit sink/window and its body), each
   * dispatched over all splits and returning at once outside its own segments, instead of one kernel holding
   * every path (whose registers are the largest path's). Same arithmetic; default false. */
  perPath?: boolean;
  /** Whole chunks take a V loop without range clamps and weight selects (the last chunk of a split keeps the
   * clamped loop). Same arithmetic; false when absent, on in {@link DEFAULT_ATTENTION_TUNING}. */
  vfull?: boolean;
  /** Bind every store a second time as `array<u32>` (bindings 3 + stores + i) so single words (V codes,
   * scale/zero words) load as one u32 instead of a `vec4<u32>` and a component select. Same arithmetic;
   * needs 2 + 2·stores storage buffers per stage (`FusedAttention.create` drops it on a device allowing
   * fewer); false when absent, on in {@link DEFAULT_ATTENTION_TUNING}. */
  wordView?: boolean;
  /** K blocks per chunk (default 1): a chunk is wg·tpt·kch tokens. With kch > 1 the K phase loops over the
   * chunk's kch blocks of wg·tpt tokens, parking each token's scores in workgroup memory, so the max
   * reduction, the online-softmax rescale and the barriers are paid once per kch blocks and the V phase runs
   * kch times longer between barriers. 1, 2, 4 or 8; same arithmetic per token, the rescale points differ. */
  kch?: number;
  /** Timing diagnostics only — the result is WRONG: `skipV` drops the V phase (accumulators stay 0),
   * `skipK` replaces the K phase by a cheap per-token score, `skipKV` does both. Used with
   * bench/gpu_attention_fresh.ts to split the kernel's time between its phases; never by an engine. */
  diagnostic?: "skipV" | "skipK" | "skipKV";
  /** Timing diagnostic: declare this many extra bytes of workgroup memory (a multiple of 16, touched so it is
   * kept) to see how the kernel's speed depends on workgroup memory per workgroup. Same results. */
  padShared?: number;
}

/** Default tuning (chosen on the H100, docs/gpu-packed.md). */
export const DEFAULT_ATTENTION_TUNING: AttentionTuning = {
  wg: 128,
  tpt: 2,
  uv: 4,
  vd: 8,
  vfull: true,
  wordView: true,
};

/** The default tuning with the integer K phase (int8 query; docs/gpu-packed.md §2b) and one pipeline per
 * segment path (without it PM-KVQ's mixed kernel is slower than the f32 one): the H100's fastest for 2-, 4-
 * and 8-bit caches. Opt-in: it changes the result by the query's rounding. */
export const INT8_QUERY_ATTENTION_TUNING: AttentionTuning = {
  ...DEFAULT_ATTENTION_TUNING,
  kdot: true,
  perPath: true,
};

/** Compile-time description of a fused attention pipeline. */
export interface FusedAttentionConfig {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Largest batch the uniform's count table holds. */
  maxBatch: number;
  /** Formats of the tensors of each bound store (null: the store has no such tensor). */
  stores: { k: TensorFormat | null; v: TensorFormat | null; channelGroup?: number }[];
  /** Chronological segments: which store tensor K and V are read from. */
  segments: { k: { store: number; tensor: "k" | "v" }; v: { store: number; tensor: "k" | "v" } }[];
  tuning: AttentionTuning;
}

/** Dims owned by one invocation in the V phase. */
export const V_DIMS_PER_THREAD = 16;
/** Invocations of the reduce kernel. */
export const REDUCE_THREADS = 64;
/** Splits whose weights the reduce kernel holds in workgroup memory at once. */
const REDUCE_BLOCK = 256;

interface Derived {
  D: number;
  G: number;
  GPH: number;
  HPK: number;
  NV: number;
  WG: number;
  TPT: number;
  KCH: number;
  UV: number;
  KPRE: number;
  CH: number;
  TPW: number;
  LANES: number;
  VD: number;
  NSEG: number;
  NCNT: number;
  PS: number;
  VFULL: boolean;
  WV: boolean;
}

function derive(c: FusedAttentionConfig): Derived {
  const D = c.headDim;
  if (D % 16 !== 0) throw new QuantConfigError(`fused attention needs head_dim % 16 == 0, got ${D}`);
  if (c.numHeads % c.numKvHeads !== 0) {
    throw new TensorShapeError(
      `fused attention: ${c.numHeads} query heads not divisible by ${c.numKvHeads} KV heads`,
    );
  }
  const G = groupSizeFor(D);
  const HPK = c.numHeads / c.numKvHeads;
  const NV = Math.ceil(HPK / 4);
  const WG = c.tuning.wg, TPT = c.tuning.tpt;
  const VD = c.tuning.vd ?? V_DIMS_PER_THREAD;
  if (!(VD === 8 || VD === 16 || (VD === 4 && c.tuning.vdot))) {
    throw new QuantConfigError(`fused attention: vd ${VD} must be 8 or 16 (or 4 with vdot)`);
  }
  const TPW = D / VD;
  if (![64, 128, 256].includes(WG) || WG % TPW !== 0) {
    throw new QuantConfigError(
      `fused attention: workgroup ${WG} must be 64/128/256 and a multiple of D/vd = ${TPW}`,
    );
  }
  if (![1, 2, 4].includes(TPT)) throw new QuantConfigError(`fused attention: tpt ${TPT} must be 1, 2 or 4`);
  const KCH = c.tuning.kch ?? 1;
  if (![1, 2, 4, 8].includes(KCH)) {
    throw new QuantConfigError(`fused attention: kch ${KCH} must be 1, 2, 4 or 8`);
  }
  const UV = c.tuning.uv ?? 1;
  if (![1, 2, 4].includes(UV)) throw new QuantConfigError(`fused attention: uv ${UV} must be 1, 2 or 4`);
  if (c.segments.length === 0) throw new TensorShapeError("fused attention: no segments");
  const NSEG = c.segments.length;
  const CH = WG * TPT * KCH;
  // every segment on the integer V phase: ps only holds the int8 query codes and the lane sums (D·NV vec4s)
  const allVdot = c.segments.every((g) => vdotOk(c, D / G, VD, KCH, tensorFormat(c, g.v)));
  return {
    D,
    G,
    GPH: D / G,
    HPK,
    NV,
    WG,
    TPT,
    KCH,
    UV,
    KPRE: c.tuning.kpre ?? 4,
    CH,
    TPW,
    LANES: WG / TPW,
    VD,
    NSEG,
    NCNT: Math.max(1, Math.ceil((c.maxBatch * NSEG) / 4)),
    PS: (allVdot ? D : Math.max(CH * (D / G), D)) * NV,
    VFULL: c.tuning.vfull ?? false,
    WV: c.tuning.wordView ?? false,
  };
}

/**
 * Workgroup memory (bytes) the partial kernel of `c` declares.
 *
 * @example
 * ```ts
 * import { attentionSharedBytes } from "./attention.wgsl.ts";
 * // attentionSharedBytes(cfg) <= device.limits.maxComputeWorkgroupStorageSize
 * ```
 */
export function attentionSharedBytes(c: FusedAttentionConfig): number {
  const d = derive(c);
  // qsh, qsum, red, red2, ps, zsh, mlsh (+ the timing pad)
  const vec4s = d.D * d.NV + d.GPH * d.NV + d.WG * d.NV + (d.WG / 8) * d.NV + d.PS + d.GPH * d.NV + 2 * d.NV +
    Math.ceil((c.tuning.padShared ?? 0) / 16);
  // integer K phase: qsc, qiv, qis, qp (the int8 query codes borrow ps)
  const kdot = c.segments.some((g) => kdotBits(c, tensorFormat(c, g.k)) > 0)
    ? 2 * d.NV + d.GPH * d.NV + (d.D / 4) * d.NV
    : 0;
  // integer V phase: pq (packed weights) + sred / sred2 (chunk max of S_V)
  const vdot = c.segments.some((g) => vdotSeg(c, d, tensorFormat(c, g.v)))
    ? d.WG * d.NV * 16 + (d.WG + d.WG / 8) * 4
    : 0;
  return (vec4s + kdot) * 16 + vdot;
}

const V = ["x", "y", "z", "w"];

function tensorFormat(c: FusedAttentionConfig, r: { store: number; tensor: "k" | "v" }): TensorFormat {
  const st = c.stores[r.store];
  if (!st) {
    throw new TensorShapeError(`fused attention: segment refers to store ${r.store} of ${c.stores.length}`);
  }
  const f = st[r.tensor];
  if (!f) throw new TensorShapeError(`fused attention: store ${r.store} has no ${r.tensor} tensor`);
  return f;
}

/** Reduction over the workgroup of NV vec4 registers `vars[u]` (op "max" or "add"); result in place. */
function wgReduce(d: Derived, vars: string[], op: "max" | "add", smax?: string): string {
  const f = (a: string, b: string) => (op === "max" ? `max(${a}, ${b})` : `(${a} + ${b})`);
  const NV = d.NV;
  const w: string[] = [];
  vars.forEach((x, u) => w.push(`  red[lid * ${u32(NV)} + ${u32(u)}] = ${x};`));
  if (smax) w.push(`  sred[lid] = ${smax};`);
  w.push("  workgroupBarrier();");
  w.push(`  if (lid < ${u32(d.WG / 8)}) {`);
  if (smax) {
    w.push(`    var rs = sred[lid * 8u];`);
    w.push(`    for (var i = 1u; i < 8u; i++) { rs = max(rs, sred[lid * 8u + i]); }`);
    w.push(`    sred2[lid] = rs;`);
  }
  vars.forEach((_, u) => {
    w.push(`    var ra${u} = red[(lid * 8u) * ${u32(NV)} + ${u32(u)}];`);
    w.push(
      `    for (var i = 1u; i < 8u; i++) { ra${u} = ${
        f(`ra${u}`, `red[(lid * 8u + i) * ${u32(NV)} + ${u32(u)}]`)
      }; }`,
    );
    w.push(`    red2[lid * ${u32(NV)} + ${u32(u)}] = ra${u};`);
  });
  w.push("  }");
  w.push("  workgroupBarrier();");
  if (smax) {
    w.push(`  ${smax} = sred2[0];`);
    w.push(`  for (var i = 1u; i < ${u32(d.WG / 8)}; i++) { ${smax} = max(${smax}, sred2[i]); }`);
  }
  vars.forEach((x, u) => {
    w.push(`  ${x} = red2[${u32(u)}];`);
    w.push(
      `  for (var i = 1u; i < ${u32(d.WG / 8)}; i++) { ${x} = ${f(x, `red2[i * ${u32(NV)} + ${u32(u)}]`)}; }`,
    );
  });
  return w.join("\n");
}

/** K phase for one segment: scores sc{k}_{u} of the TPT tokens tc{k}. */
function kPhase(c: Derived, f: TensorFormat, st: number, channelGroup: number, kd: number): string {
  const { NV, TPT, G, GPH, D } = c;
  const ks = [...Array(TPT).keys()], us = [...Array(NV).keys()];
  const w: string[] = [];
  if (isChannelFormat(f)) {
    const bits = formatBits(f), fmt = formatFor(bits), wpg = fmt.wordsPerGroup(channelGroup);
    for (const k of ks) {
      w.push(`  {
    let ta = kr.w + tc${k};
    let gb = ((b * NKV + kvh) * (kr.z / ${u32(channelGroup)}) + ta / ${u32(channelGroup)}) * D;
    let pos = ta % ${u32(channelGroup)};
    let wsel = pos / ${u32(fmt.codesPerWord)};
    let sh = (pos % ${u32(fmt.codesPerWord)}) * ${u32(bits)};
    for (var d = 0u; d < D; d++) {
      let gi = gb + d;
      let cw = ld${st}(kr.x + gi * ${u32(wpg)} + wsel);
      let szw = ld${st}(kr.y + gi);
      let xh = f32((cw >> sh) & ${u32(fmt.mask)}) * bf16(szw & 0xffffu) - bf16(szw >> 16u);
${us.map((u) => `      sc${k}_${u} += qsh[d * ${u32(NV)} + ${u32(u)}] * xh;`).join("\n")}
    }
  }`);
    }
    return w.join("\n");
  }
  const isBf = f === "bf16";
  const bits = formatBits(f);
  const cpw = isBf ? 2 : formatFor(bits).codesPerWord;
  const gph = isBf ? 1 : GPH;
  const gsz = isBf ? D : G;
  const wpg = gsz / cpw;
  const lu4 = wpg % 4 === 0;
  for (const k of ks) w.push(`  let rowk${k} = (b * NKV + kvh) * kr.z + kr.w + tc${k};`);
  for (let j = 0; j < gph; j++) {
    w.push("  {");
    for (const k of ks) {
      w.push(`    let gi${k} = rowk${k} * ${u32(gph)} + ${u32(j)};`);
      if (!isBf) {
        w.push(`    let szk${k} = ld${st}(kr.y + gi${k});`);
        w.push(`    let Sk${k} = bf16(szk${k} & 0xffffu); let zk${k} = bf16(szk${k} >> 16u);`);
      }
      if (!kd) { for (const u of us) w.push(`    var dt${k}_${u} = vec4<f32>(0.0);`); }
    }
    const decode = (word: string, cc: number) =>
      isBf
        ? (cc === 0 ? `bitcast<f32>(${word} << 16u)` : `bitcast<f32>(${word} & 0xffff0000u)`)
        : inplaceCodeExpr(word, bits, cc);
    // q-format K: qsh was rescaled in place to q[d]·2^-sh(d) at the segment's start (the in-place codes are c·2^sh)
    const qarr = "qsh";
    const body = (words: (k: number, e: number) => string, nWords: number, qbase: string) => {
      const b: string[] = [];
      for (let e = 0; e < nWords; e++) {
        for (let cc = 0; cc < cpw; cc++) {
          const dOff = e * cpw + cc;
          for (const u of us) {
            b.push(`      let q${e}_${cc}_${u} = ${qarr}[${qbase} + ${u32(dOff * NV + u)}];`);
          }
          for (const k of ks) {
            b.push(`      { let f = ${decode(words(k, e), cc)};`);
            for (const u of us) b.push(`        dt${k}_${u} += q${e}_${cc}_${u} * f;`);
            b.push("      }");
          }
        }
      }
      return b.join("\n");
    };
    // kdot: integer sums it = Σ qi·(plane bytes) per head, one dot4I8Packed per (word plane, head)
    const PL = kdotPlanes(kd);
    const planeExpr = (word: string, sp: number) =>
      kd === 8
        ? `(${word} ^ 0x80808080u)`
        : `((${sp === 0 ? word : `(${word} >> ${u32(sp * kd)})`}) & ${
          u32(kd === 4 ? 0x0f0f0f0f : 0x03030303)
        })`;
    const kdotBody = (words: (k: number, e: number) => string, nWords: number, wbase: string) => {
      const b: string[] = [];
      for (let e = 0; e < nWords; e++) {
        for (let sp = 0; sp < PL; sp++) {
          for (const u of us) {
            b.push(
              `      let qv${e}_${sp}_${u} = qp[(${wbase} + ${u32(e)}) * ${u32(PL * NV)} + ${
                u32(sp * NV + u)
              }];`,
            );
          }
          for (const k of ks) {
            b.push(`      { let pl = ${planeExpr(words(k, e), sp)};`);
            for (const u of us) {
              const qv = `qv${e}_${sp}_${u}`;
              b.push(
                `        it${k}_${u} += vec4<i32>(dot4I8Packed(pl, ${qv}.x), dot4I8Packed(pl, ${qv}.y), dot4I8Packed(pl, ${qv}.z), dot4I8Packed(pl, ${qv}.w));`,
              );
            }
            b.push("      }");
          }
        }
      }
      return b.join("\n");
    };
    const bodyFor = (words: (k: number, e: number) => string, nWords: number, qbase: string, wbase: string) =>
      kd ? kdotBody(words, nWords, wbase) : body(words, nWords, qbase);
    if (kd) { for (const k of ks) for (const u of us) w.push(`    var it${k}_${u} = vec4<i32>(0);`); }
    if (lu4 && wpg / 4 <= c.KPRE) {
      // short rows (2- and 4-bit): issue every load of the row first, then compute
      for (const k of ks) w.push(`    let cb${k} = (kr.x + gi${k} * ${u32(wpg)}) >> 2u;`);
      for (let w4 = 0; w4 < wpg / 4; w4++) {
        for (const k of ks) w.push(`    let v${k}_${w4} = s${st}[cb${k} + ${u32(w4)}];`);
      }
      for (let w4 = 0; w4 < wpg / 4; w4++) {
        w.push("    {");
        w.push(
          bodyFor(
            (k, e) => `v${k}_${w4}.${V[e]}`,
            4,
            u32((j * gsz + w4 * 4 * cpw) * NV),
            u32(j * wpg + w4 * 4),
          ),
        );
        w.push("    }");
      }
    } else if (lu4) {
      for (const k of ks) w.push(`    let cb${k} = (kr.x + gi${k} * ${u32(wpg)}) >> 2u;`);
      w.push(`    for (var w4 = 0u; w4 < ${u32(wpg / 4)}; w4++) {`);
      for (const k of ks) w.push(`      let v${k} = s${st}[cb${k} + w4];`);
      w.push(`      let qb = (${u32(j * gsz)} + w4 * ${u32(4 * cpw)}) * ${u32(NV)};`);
      w.push(`      let wq = ${u32(j * wpg)} + w4 * 4u;`);
      w.push(bodyFor((k, e) => `v${k}.${V[e]}`, 4, "qb", "wq"));
      w.push("    }");
    } else {
      w.push(`    for (var wi = 0u; wi < ${u32(wpg)}; wi++) {`);
      for (const k of ks) w.push(`      let v${k} = ld${st}(kr.x + gi${k} * ${u32(wpg)} + wi);`);
      w.push(`      let qb = (${u32(j * gsz)} + wi * ${u32(cpw)}) * ${u32(NV)};`);
      w.push(`      let wq = ${u32(j * wpg)} + wi;`);
      w.push(bodyFor((k) => `v${k}`, 1, "qb", "wq"));
      w.push("    }");
    }
    for (const k of ks) {
      for (const u of us) {
        const qs = `qis[${u32(j * NV + u)}]`;
        w.push(
          isBf
            ? `    sc${k}_${u} += dt${k}_${u};`
            : kd
            ? `    sc${k}_${u} += qsc[${u32(u)}] * (Sk${k} * vec4<f32>(it${k}_${u}${
              kd === 8 ? ` + 128 * ${qs}` : ""
            }) - zk${k} * vec4<f32>(${qs}));`
            : `    sc${k}_${u} += Sk${k} * dt${k}_${u} - zk${k} * qsum[${u32(j * NV + u)}];`,
        );
      }
    }
    w.push("  }");
  }
  return w.join("\n");
}

/** p phase: p = exp(s − m), running sums, and p·S_V into ps. */
function pPhase(c: Derived, f: TensorFormat, st: number, base = "lid"): string {
  const { NV, TPT, GPH, WG } = c;
  const w: string[] = [];
  const isBf = f === "bf16";
  const gph = isBf ? 1 : GPH;
  for (let k = 0; k < TPT; k++) {
    w.push("  {");
    w.push(`    let tl = ${base} + ${u32(k * WG)};`);
    w.push(`    let rowv = (b * NKV + kvh) * vr.z + vr.w + tc${k};`);
    for (let u = 0; u < NV; u++) {
      w.push(`    let p${u} = select(vec4<f32>(0.0), exp(sc${k}_${u} - m${u}), valid${k});`);
      w.push(`    l${u} += p${u};`);
    }
    for (let j = 0; j < gph; j++) {
      if (isBf) {
        for (let u = 0; u < NV; u++) w.push(`    ps[tl * ${u32(NV)} + ${u32(u)}] = p${u};`);
      } else {
        w.push(`    { let szv = ld${st}(vr.y + rowv * ${u32(gph)} + ${u32(j)});`);
        w.push(`      let Sv = bf16(szv & 0xffffu); let zv = bf16(szv >> 16u);`);
        for (let u = 0; u < NV; u++) {
          w.push(`      ps[(tl * ${u32(gph)} + ${u32(j)}) * ${u32(NV)} + ${u32(u)}] = p${u} * Sv;`);
          w.push(`      zs${j}_${u} += p${u} * zv;`);
        }
        w.push("    }");
      }
    }
    w.push("  }");
  }
  return w.join("\n");
}

/** V-phase geometry of format `f`: codes per word, words per invocation and token, half-word mode. */
function vGeom(c: Derived, f: TensorFormat) {
  const isBf = f === "bf16";
  const bits = formatBits(f);
  const cpw = isBf ? 2 : formatFor(bits).codesPerWord;
  const gph = isBf ? 1 : c.GPH;
  // VD 8 with 2-bit codes: half a word per invocation (the word is pre-shifted to bring its half down)
  const half = c.VD < cpw;
  return { isBf, bits, cpw, gph, half, VW: half ? 1 : c.VD / cpw, ncc: half ? c.VD : cpw };
}

/**
 * Loads of the V words of one token of an invocation: `tok` is the token's index inside the chunk (a WGSL
 * expression), `n` a name suffix. Returns the statements (declaring `ok{n}`, `tl{n}` and the words) and the
 * word expressions.
 */
function vLoad(
  c: Derived,
  f: TensorFormat,
  st: number,
  tok: string,
  n: string,
  full: boolean,
): { lines: string[]; words: string[] } {
  const { D, G, VD } = c;
  const { isBf, bits, cpw, gph, half, VW } = vGeom(c, f);
  const w: string[] = [];
  if (full) {
    // a whole chunk: every token of the step is in range
    w.push(`let tl${n} = ${tok};`);
  } else {
    // clamped to a valid row; its weights are zeroed when out of range
    w.push(`let ok${n} = ${tok} < clen;`);
    w.push(`let tl${n} = min(${tok}, clen - 1u);`);
  }
  w.push(`let row${n} = (b * NKV + kvh) * vr.z + vr.w + c0 + tl${n};`);
  if (isBf) w.push(`let wb${n} = vr.x + row${n} * ${u32(D / 2)} + d0 / 2u;`);
  else w.push(`let wb${n} = vr.x + (row${n} * ${u32(gph)} + jv) * ${u32(G / cpw)} + (d0 % G) / ${u32(cpw)};`);
  const ws: string[] = [];
  if (half) {
    w.push(`let w${n}_0 = ld${st}(wb${n}) >> (((d0 / ${u32(VD)}) % ${u32(cpw / VD)}) * ${u32(VD * bits)});`);
    ws.push(`w${n}_0`);
  } else if (VW === 1) {
    w.push(`let w${n}_0 = ld${st}(wb${n});`);
    ws.push(`w${n}_0`);
  } else if (VW === 2 && c.WV) {
    w.push(`let w${n}_0 = ld${st}(wb${n}); let w${n}_1 = ld${st}(wb${n} + 1u);`);
    ws.push(`w${n}_0`, `w${n}_1`);
  } else if (VW === 2) {
    w.push(`let v4_${n} = s${st}[wb${n} >> 2u]; let hi${n} = ((wb${n} >> 1u) & 1u) == 1u;`);
    w.push(
      `let w${n}_0 = select(v4_${n}.x, v4_${n}.z, hi${n}); let w${n}_1 = select(v4_${n}.y, v4_${n}.w, hi${n});`,
    );
    ws.push(`w${n}_0`, `w${n}_1`);
  } else {
    for (let q = 0; q < VW / 4; q++) {
      w.push(`let v${n}_${q} = s${st}[(wb${n} >> 2u) + ${u32(q)}];`);
      for (let e = 0; e < 4; e++) ws.push(`v${n}_${q}.${V[e]}`);
    }
  }
  return { lines: w, words: ws };
}

/** The weight reads and FMAs of one token loaded by {@link vLoad} (suffix `n`). */
function vAccumulate(c: Derived, f: TensorFormat, n: string, words: string[], full: boolean): string[] {
  const { NV } = c;
  const { isBf, bits, cpw, gph, ncc } = vGeom(c, f);
  const w: string[] = [];
  for (let u = 0; u < NV; u++) {
    const idx = `(tl${n} * ${u32(gph)}${isBf ? "" : " + jv"}) * ${u32(NV)} + ${u32(u)}`;
    w.push(
      full
        ? `let pw${n}_${u} = ps[${idx}];`
        : `let pw${n}_${u} = select(vec4<f32>(0.0), ps[${idx}], ok${n});`,
    );
  }
  words.forEach((word, m) => {
    for (let cc = 0; cc < ncc; cc++) {
      const i = m * cpw + cc;
      const dec = isBf
        ? (cc === 0 ? `bitcast<f32>(${word} << 16u)` : `bitcast<f32>(${word} & 0xffff0000u)`)
        : inplaceCodeExpr(word, bits, cc);
      w.push(`{ let f = ${dec};`);
      for (let u = 0; u < NV; u++) w.push(`  a${i}_${u} += pw${n}_${u} * f;`);
      w.push("}");
    }
  });
  return w;
}

/**
 * V phase: dim-parallel accumulation of (p·S)·c into a{i}_{u}, UV tokens' words loaded per loop step.
 */
function vPhase(c: Derived, f: TensorFormat, st: number): string {
  const ind = (l: string[], n: number) => l.map((x) => " ".repeat(n) + x);
  const loop = (full: boolean, pad: number) => {
    const w: string[] = [];
    w.push(`for (var tb = lane; tb < ${full ? "CH" : "clen"}; tb += ${u32(c.LANES * c.UV)}) {`);
    const loads = [...Array(c.UV).keys()].map((k) =>
      vLoad(c, f, st, `tb + ${u32(k * c.LANES)}`, `${k}`, full)
    );
    for (const l of loads) w.push(...ind(l.lines, 2));
    loads.forEach((l, k) => w.push(...ind(vAccumulate(c, f, `${k}`, l.words, full), 2)));
    w.push("}");
    return ind(w, pad);
  };
  if (!c.VFULL) return loop(false, 2).join("\n");
  // whole chunks (every chunk of a split but its last) skip the range clamps and weight selects;
  // CH is a multiple of LANES·UV (CH/(LANES·UV) = TPT·TPW/UV), so the fast loop has no partial step
  return ["  if (clen == CH) {", ...loop(true, 4), "  } else {", ...loop(false, 4), "  }"].join("\n");
}

/** Whether V in format `f` can take the integer V phase (2-/4-bit per-token codes, vd 8 or 4, kch 1, one group). */
function vdotOk(c: FusedAttentionConfig, gph: number, vd: number, kch: number, f: TensorFormat): boolean {
  return !!c.tuning.vdot && (f === "q4" || f === "q2") && gph === 1 && (vd === 8 || vd === 4) && kch === 1;
}

function vdotSeg(c: FusedAttentionConfig, d: Derived, f: TensorFormat): boolean {
  return vdotOk(c, d.GPH, d.VD, d.KCH, f);
}

/**
 * p phase of the integer V phase: p = exp(s − m), running sums, and the 8-bit weights
 * w = round(p·S_V·vinv) of this invocation's TPT tokens packed in one u32 per head: token lid + k·WG of the
 * chunk is byte (lid / (CH/4)) + k·(4/TPT) of quad lid % (CH/4), so quad j's bytes are tokens j + i·CH/4.
 */
function pPhaseVdot(c: Derived): string {
  const { NV, TPT } = c;
  const w: string[] = [];
  for (let u = 0; u < NV; u++) w.push(`  var pk${u} = vec4<u32>(0u);`);
  for (let k = 0; k < TPT; k++) {
    w.push("  {");
    w.push(`    let Sv = bf16(szv${k} & 0xffffu); let zv = bf16(szv${k} >> 16u); let sw = Sv * vinv;`);
    for (let u = 0; u < NV; u++) {
      w.push(`    let p${u} = select(vec4<f32>(0.0), exp(sc${k}_${u} - m${u}), valid${k});`);
      w.push(`    l${u} += p${u};`);
      w.push(`    zs0_${u} += p${u} * zv;`);
      w.push(
        `    pk${u} |= vec4<u32>(min(round(p${u} * sw), vec4<f32>(255.0))) << vec4<u32>(${
          u32(8 * k * (4 / TPT))
        });`,
      );
    }
    w.push("  }");
  }
  for (let u = 0; u < NV; u++) {
    w.push(`  pq[lid * ${u32(NV)} + ${u32(u)}] = pk${u} << vec4<u32>(8u * (lid / ${u32(c.CH / 4)}));`);
  }
  return w.join("\n");
}

/**
 * Integer V phase: per quad j (tokens j + i·CH/4, i = 0..3) the invocation's VD dims of the 4 rows are gathered
 * token-major (X_d byte i = code of dim d0 + d in token i) and ia{d}_{u} += dot4U8Packed(X_d, W_u[h]).
 */
function vPhaseVdot(c: Derived, f: TensorFormat, st: number): string {
  const { NV, TPT, CH, G } = c;
  const Q = CH / 4;
  const bits = formatBits(f), cpw = formatFor(bits).codesPerWord;
  const w: string[] = [];
  w.push(`  for (var jq = lane; jq < min(clen, ${u32(Q)}); jq += LANES) {`);
  for (let i = 0; i < 4; i++) {
    w.push(`    let tl${i} = min(jq + ${u32(i * Q)}, clen - 1u);`);
    w.push(`    let row${i} = (b * NKV + kvh) * vr.z + vr.w + c0 + tl${i};`);
    w.push(`    let w${i} = ld${st}(vr.x + row${i} * ${u32(G / cpw)} + (d0 % G) / ${u32(cpw)});`);
  }
  for (let u = 0; u < NV; u++) {
    const terms = [...Array(4 / TPT).keys()].map((r) => `pq[(jq + ${u32(r * Q)}) * ${u32(NV)} + ${u32(u)}]`);
    w.push(`    let W${u} = ${terms.join(" | ")};`);
  }
  const X: string[] = [];
  // the invocation's VD codes are VD·bits bits of each row's word: 32 (4-bit, vd 8), 16 (4-bit vd 4, 2-bit vd 8)
  // or 8 (2-bit vd 4); X_k must hold code k of rows 0..3 in bytes 0..3
  const span = c.VD * bits, per = 32 / span, M = (1 << bits) - 1;
  if (span === 32) {
    // nibble pairs (k, k + 4) of rows 0|1 and 2|3, then their 16-bit halves
    const M2 = u32(M * 0x00010001);
    for (let k = 0; k < 4; k++) {
      const sh = (x: string) => (k === 0 ? x : `(${x} >> ${u32(4 * k)})`);
      w.push(`    let A${k} = (${sh("w0")} & ${M2}) | ((${sh("w1")} & ${M2}) << 8u);`);
      w.push(`    let B${k} = (${sh("w2")} & ${M2}) | ((${sh("w3")} & ${M2}) << 8u);`);
      w.push(`    let X${k} = (A${k} & 0xffffu) | (B${k} << 16u);`);
      w.push(`    let X${k + 4} = (A${k} >> 16u) | (B${k} & 0xffff0000u);`);
    }
    for (let k = 0; k < 8; k++) X.push(`X${k}`);
  } else if (span === 16) {
    // this invocation's half word of each row; P02 = rows 0|2, P13 = rows 1|3 (16 bits each)
    w.push(`    let hs = ((d0 / ${u32(c.VD)}) % ${u32(per)}) * 16u;`);
    w.push(`    let P02 = ((w0 >> hs) & 0xffffu) | ((w2 >> hs) << 16u);`);
    w.push(`    let P13 = ((w1 >> hs) & 0xffffu) | ((w3 >> hs) << 16u);`);
    const M2 = u32(M * 0x00010001);
    for (let k = 0; k < c.VD; k++) {
      const sh = (x: string) => (k === 0 ? x : `(${x} >> ${u32(bits * k)})`);
      w.push(`    let X${k} = (${sh("P02")} & ${M2}) | ((${sh("P13")} & ${M2}) << 8u);`);
      X.push(`X${k}`);
    }
  } else {
    // this invocation's byte of each row; P = the 4 rows' bytes
    w.push(`    let hs = ((d0 / ${u32(c.VD)}) % ${u32(per)}) * 8u;`);
    w.push(
      `    let P = ((w0 >> hs) & 0xffu) | (((w1 >> hs) & 0xffu) << 8u) | (((w2 >> hs) & 0xffu) << 16u) | ((w3 >> hs) << 24u);`,
    );
    for (let k = 0; k < c.VD; k++) {
      w.push(`    let X${k} = ${k === 0 ? "P" : `(P >> ${u32(bits * k)})`} & ${u32(M * 0x01010101)};`);
      X.push(`X${k}`);
    }
  }
  X.forEach((x, i) => {
    for (let u = 0; u < NV; u++) {
      w.push(
        `    ia${i}_${u} += vec4<u32>(dot4U8Packed(${x}, W${u}.x), dot4U8Packed(${x}, W${u}.y), dot4U8Packed(${x}, W${u}.z), dot4U8Packed(${x}, W${u}.w));`,
      );
    }
  });
  w.push("  }");
  return w.join("\n");
}

/**
 * Whether K in format `f` takes the integer K phase under `kdot` (2-, 4- and 8-bit per-token codes); other
 * formats keep the exact query.
 *
 * @example
 * ```ts
 * import { integerKFormat } from "./attention.wgsl.ts";
 * [integerKFormat("q4"), integerKFormat("q16"), integerKFormat("kc2")]; // [true, false, false]
 * ```
 */
export function integerKFormat(f: TensorFormat): boolean {
  return f === "q2" || f === "q4" || f === "q8";
}

/** Bits of the integer K phase for K format `f` under `cfg`'s tuning (0: the f32 K phase). */
function kdotBits(cfg: FusedAttentionConfig, f: TensorFormat): number {
  return cfg.tuning.kdot && integerKFormat(f) ? formatBits(f) : 0;
}

/** Byte planes of a word of `kd`-bit codes (code i·(32/kd) + j·planes + s sits in byte j of plane s). */
function kdotPlanes(kd: number): number {
  return kd === 8 || kd === 0 ? 1 : 8 / kd;
}

/**
 * Segment code paths of `cfg` (segments reading the same store tensors share one); with `tuning.perPath`
 * each gets its own partial pipeline (`attentionPartialWgsl(cfg, path)`).
 *
 * @example
 * ```ts
 * import { attentionPaths } from "./attention.wgsl.ts";
 * // PM-KVQ [sink | body | window]: sink and window share the 16-bit store → 2 paths
 * ```
 */
export function attentionPaths(cfg: FusedAttentionConfig): number {
  return new Set(cfg.segments.map(comboKey)).size;
}

/** Key of the code path of a segment: segments reading the same store tensors share one WGSL function. */
function comboKey(seg: FusedAttentionConfig["segments"][number]): string {
  return `${seg.k.store}${seg.k.tensor}${seg.v.store}${seg.v.tensor}`;
}

function segmentFn(cfg: FusedAttentionConfig, d: Derived, s: number, name: string): string {
  const seg = cfg.segments[s];
  const kf = tensorFormat(cfg, seg.k), vf = tensorFormat(cfg, seg.v);
  if (isChannelFormat(vf)) throw new QuantConfigError(`fused attention: V cannot be in channel format ${vf}`);
  const { NV, TPT, GPH, WG, D } = d;
  const ks = [...Array(TPT).keys()], us = [...Array(NV).keys()], js = [...Array(GPH).keys()];
  const accs = [...Array(d.VD).keys()];
  const cg = cfg.stores[seg.k.store].channelGroup ?? 128;
  const kq = kf.startsWith("q");
  const kcpw = kq ? formatFor(formatBits(kf)).codesPerWord : 1;
  const kd = kdotBits(cfg, kf);
  const PL = kdotPlanes(kd);
  // kdot: the int8 query packed in the byte order of this format's word planes (qp[(word·PL + plane)·NV + u],
  // byte j of plane sp of word wi = dim wi·CPW + j·PL + sp), one barrier per split
  const qpPrep = `  for (var i = lid; i < ${u32((D / 4) * NV)}; i += WG) {
    let u = i % ${u32(NV)}; let pw = i / ${u32(NV)}; let wi = pw / ${u32(PL)}; let sp = pw % ${u32(PL)};
    var r = vec4<u32>(0u);
    for (var j = 0u; j < 4u; j++) {
      let dd = wi * ${u32(kcpw)} + j * ${u32(PL)} + sp;
      r |= (bitcast<vec4<u32>>(vec4<i32>(ps[dd * ${u32(NV)} + u])) & vec4<u32>(0xffu)) << vec4<u32>(8u * j);
    }
    qp[i] = r;
  }
  workgroupBarrier();`;
  // q·2^-sh for the in-place K codes (exact power-of-two scaling), one barrier per split
  const qkPrep = !kq ? "" : kd ? qpPrep : `  for (var i = lid; i < D * ${u32(NV)}; i += WG) {
    let k = (i / ${u32(NV)}) % ${u32(kcpw)};
    var sh = k * ${u32(formatBits(kf))};
    if (sh + ${u32(formatBits(kf))} > 23u) { sh = sh - ${
    u32(Math.ceil(9 / formatBits(kf)) * formatBits(kf))
  }; }
    qsh[i] = qsh[i] * bitcast<f32>((127u - sh) << 23u);
  }
  workgroupBarrier();`;
  const vdv = vdotSeg(cfg, d, vf);
  const vq = vf.startsWith("q");
  const vcpw = vq ? formatFor(formatBits(vf)).codesPerWord : 1;
  const vscale = (i: number) => (vq ? 2 ** -inplaceShift(formatBits(vf), i % vcpw) : 1);
  const diag = cfg.tuning.diagnostic;
  const skipK = diag === "skipK" || diag === "skipKV", skipV = diag === "skipV" || diag === "skipKV";
  const av = (
    i: number,
    u: number,
  ) => (vdv || vscale(i) === 1 ? `a${i}_${u}` : `(a${i}_${u} * ${vscale(i)})`);
  // tokens of block `kb` (a WGSL expression) of the chunk: invocation lid scores tokens kb + lid + k·WG
  const tokens = (kb: string) =>
    ks.map((k) =>
      `    let tk${k} = c0 + ${kb}lid + ${
        u32(k * WG)
      };\n    let valid${k} = tk${k} < t1;\n    let tc${k} = min(tk${k}, t1 - 1u);`
    ).join("\n");
  const kScores = [
    ks.flatMap((k) => us.map((u) => `    var sc${k}_${u} = vec4<f32>(0.0);`)).join("\n"),
    skipK
      ? ks.flatMap((k) => us.map((u) => `    sc${k}_${u} = vec4<f32>(f32(tc${k}) * 1e-6);`)).join("\n")
      : kPhase(d, kf, seg.k.store, cg, kd),
  ].join("\n");
  const cmDecl = us.map((u) => `    var cm${u} = vec4<f32>(NEG);`).join("\n") +
    (vdv ? "\n    var smx = 0.0;" : "");
  // integer V phase: the V scale/zero words are loaded with the K phase, their chunk max S_V reduced with the scores'
  const szLoads = !vdv
    ? ""
    : ks.map((k) => `    let szv${k} = ld${seg.v.store}(vr.y + (b * NKV + kvh) * vr.z + vr.w + tc${k});`)
      .join("\n");
  const smxTake = !vdv
    ? ""
    : ks.map((k) => `    smx = max(smx, select(0.0, bf16(szv${k} & 0xffffu), valid${k}));`).join("\n");
  const cmTake = ks.flatMap((k) =>
    us.map((u) => `    cm${u} = select(cm${u}, max(cm${u}, sc${k}_${u}), valid${k});`)
  )
    .join("\n");
  const chunkMax = wgReduce(d, us.map((u) => `cm${u}`), "max", vdv ? "smx" : undefined);
  // one block of WG·TPT tokens (kch 1): scores stay in registers
  const oneBlock = [tokens(""), szLoads, kScores, cmDecl, cmTake, smxTake, chunkMax].join("\n");
  // kch > 1: the K loop parks each token's scores in ps (slot of its first V group), the p loop reads them
  // back (each invocation only touches its own tokens' slots, so no barrier between the two loops)
  const vgph = vf === "bf16" ? 1 : GPH;
  const slot = (k: number, u: number) => `ps[(kb + lid + ${u32(k * WG)}) * ${u32(vgph * NV)} + ${u32(u)}]`;
  const blockLoops = [
    cmDecl,
    `    for (var kb = 0u; kb < clen; kb += ${u32(WG * TPT)}) {`,
    tokens("kb + "),
    kScores,
    cmTake,
    ks.flatMap((k) => us.map((u) => `    ${slot(k, u)} = sc${k}_${u};`)).join("\n"),
    "    }",
    chunkMax,
  ].join("\n");
  const pLoop = [
    `    for (var kb = 0u; kb < clen; kb += ${u32(WG * TPT)}) {`,
    tokens("kb + "),
    ks.flatMap((k) => us.map((u) => `    let sc${k}_${u} = ${slot(k, u)};`)).join("\n"),
    pPhase(d, vf, seg.v.store, "kb + lid"),
    "    }",
  ].join("\n");
  return /* wgsl */ `
fn ${name}(s: u32, b: u32, kvh: u32, x: u32, lid: u32) {
  let sp = p.seg[s];
  let ci = b * NSEG + s;
  let cnt = p.cnt[ci / 4u][ci % 4u];
  let t0 = (x - sp.x) * sp.z;
  let t1 = min(t0 + sp.z, cnt);
  let S = p.io.z;
  if (t0 >= t1) {
    for (var i = lid; i < HPK * D; i += WG) {
      part[((b * NH + kvh * HPK + i / D) * S + x) * D + i % D] = 0.0;
    }
    if (lid < HPK) {
      let o = p.io.w + ((b * NH + kvh * HPK + lid) * S + x) * 2u;
      part[o] = NEG; part[o + 1u] = 0.0;
    }
    return;
  }
  let kr = p.kref[s];
  let vr = p.vref[s];
${qkPrep}
  let lane = lid / TPW;
  let d0 = (lid % TPW) * ${u32(d.VD)};
  let jv = d0 / G;
${us.map((u) => `  var m${u} = vec4<f32>(NEG);\n  var l${u} = vec4<f32>(0.0);`).join("\n")}
${js.flatMap((j) => us.map((u) => `  var zs${j}_${u} = vec4<f32>(0.0);`)).join("\n")}
${accs.flatMap((i) => us.map((u) => `  var a${i}_${u} = vec4<f32>(0.0);`)).join("\n")}
  for (var c0 = t0; c0 < t1; c0 += CH) {
    let clen = min(CH, t1 - c0);
${d.KCH === 1 ? oneBlock : blockLoops}
${
    us.map((u) =>
      `    let mn${u} = max(m${u}, cm${u});\n    let al${u} = exp(m${u} - mn${u});\n    m${u} = mn${u};\n    l${u} *= al${u};`
    ).join("\n")
  }
${js.flatMap((j) => us.map((u) => `    zs${j}_${u} *= al${u};`)).join("\n")}
${accs.flatMap((i) => us.map((u) => `    a${i}_${u} *= al${u};`)).join("\n")}
${
    vdv
      ? `    let vinv = select(0.0, 255.0 / smx, smx > 0.0);\n    let vsig = smx * (1.0 / 255.0);\n` +
        accs.flatMap((i) => us.map((u) => `    var ia${i}_${u} = vec4<u32>(0u);`)).join("\n")
      : ""
  }
${vdv ? pPhaseVdot(d) : d.KCH === 1 ? pPhase(d, vf, seg.v.store) : pLoop}
    workgroupBarrier();
${skipV ? "" : vdv ? vPhaseVdot(d, vf, seg.v.store) : vPhase(d, vf, seg.v.store)}${
    vdv && !skipV
      ? "\n" +
        accs.flatMap((i) => us.map((u) => `    a${i}_${u} += vsig * vec4<f32>(ia${i}_${u});`)).join("\n")
      : ""
  }${d.KCH === 1 ? "" : "\n    workgroupBarrier(); // ps is rewritten by the next chunk's K loop"}
  }
${wgReduce(d, us.map((u) => `l${u}`), "add")}
${js.map((j) => wgReduce(d, us.map((u) => `zs${j}_${u}`), "add")).join("\n")}
  if (lid == 0u) {
${us.map((u) => `    mlsh[${u32(u)}] = m${u}; mlsh[${u32(NV + u)}] = l${u};`).join("\n")}
${js.flatMap((j) => us.map((u) => `    zsh[${u32(j * NV + u)}] = zs${j}_${u};`)).join("\n")}
  }
  for (var r = 0u; r < LANES; r++) {
    if (lane == r) {
${
    accs.flatMap((i) =>
      us.map((u) =>
        `      { let o = (d0 + ${u32(i)}) * ${u32(NV)} + ${u32(u)}; let av = ${
          av(i, u)
        }; ps[o] = select(ps[o] + av, av, r == 0u); }`
      )
    ).join("\n")
  }
    }
    workgroupBarrier();
  }
  for (var i = lid; i < HPK * D; i += WG) {
    let hh = i / D; let d = i % D; let u = hh / 4u; let cc = hh % 4u;
    part[((b * NH + kvh * HPK + hh) * S + x) * D + d] = ps[d * ${u32(NV)} + u][cc] - zsh[(d / G) * ${
    u32(NV)
  } + u][cc];
  }
  if (lid < HPK) {
    let u = lid / 4u; let cc = lid % 4u;
    let o = p.io.w + ((b * NH + kvh * HPK + lid) * S + x) * 2u;
    part[o] = mlsh[u][cc]; part[o + 1u] = mlsh[${u32(NV)} + u][cc];
  }
}
`;
}

/**
 * The int8 query of the integer K phase (mirror: cpu/query_int8.ts). Per head: e = the exponent with
 * 127·2^e ≥ max|q| ≥ 63.5·2^e (e ≥ −126; a head with max|q| below 2^-126 gets e = 0 and all-zero codes), and
 * qi = round-half-even(q·2^-e) ∈ [−127, 127] — a multiply by a power of two and a rounding, exact on every
 * adapter. q̂ = qi·2^e.
 */
export const Q8_WGSL = /* wgsl */ `
fn q8_exp(a: f32) -> i32 {
  if (!(a >= bitcast<f32>(0x00800000u))) { return 0; }
  var e = max(i32((bitcast<u32>(a) >> 23u) & 0xffu) - 133, -126);
  if (a > 127.0 * bitcast<f32>(u32(e + 127) << 23u)) { e += 1; }
  return e;
}
fn pow2(e: i32) -> f32 { return bitcast<f32>(u32(e + 127) << 23u); }
`;

/** Main-kernel prologue of the integer K phase: per-head exponents, int8 codes and group sums of the query. */
const KDOT_MAIN = /* wgsl */ `
  if (lid < NV) {
    var mx = vec4<f32>(0.0);
    // 4 independent maxima so the loads overlap (max is exact and order-free; D % 16 == 0)
    var m1 = vec4<f32>(0.0); var m2 = vec4<f32>(0.0); var m3 = vec4<f32>(0.0);
    for (var d = 0u; d < D; d += 4u) {
      let o = d * NV + lid;
      mx = max(mx, abs(qsh[o])); m1 = max(m1, abs(qsh[o + NV]));
      m2 = max(m2, abs(qsh[o + 2u * NV])); m3 = max(m3, abs(qsh[o + 3u * NV]));
    }
    mx = max(max(mx, m1), max(m2, m3));
    let e = vec4<i32>(q8_exp(mx.x), q8_exp(mx.y), q8_exp(mx.z), q8_exp(mx.w));
    qsc[lid] = vec4<f32>(pow2(e.x), pow2(e.y), pow2(e.z), pow2(e.w));
    qiv[lid] = vec4<f32>(pow2(-e.x), pow2(-e.y), pow2(-e.z), pow2(-e.w));
  }
  workgroupBarrier();
  // the int8 codes (exact integers in f32) live in ps until the segment's first chunk
  for (var i = lid; i < D * NV; i += WG) { ps[i] = round(qsh[i] * qiv[i % NV]); }
  workgroupBarrier();
  if (lid < (D / G) * NV) {
    let j = lid / NV; let u = lid % NV;
    var t = vec4<i32>(0);
    for (var e = 0u; e < G; e += 4u) {
      let o = (j * G + e) * NV + u;
      t += (vec4<i32>(ps[o]) + vec4<i32>(ps[o + NV])) + (vec4<i32>(ps[o + 2u * NV]) + vec4<i32>(ps[o + 3u * NV]));
    }
    qis[lid] = t;
  }`;

/**
 * WGSL of the partial (split) kernel of `cfg` (module doc).
 *
 * @example
 * ```ts
 * import { attentionPartialWgsl } from "./attention.wgsl.ts";
 * const code = attentionPartialWgsl({ numHeads: 4, numKvHeads: 2, headDim: 64, maxBatch: 1,
 *   stores: [{ k: "q4", v: "q4" }], segments: [{ k: { store: 0, tensor: "k" }, v: { store: 0, tensor: "v" } }],
 *   tuning: { wg: 64, tpt: 1 } });
 * ```
 */
export function attentionPartialWgsl(cfg: FusedAttentionConfig, path?: number): string {
  const d = derive(cfg);
  const { NV, HPK, NSEG } = d;
  const stores = cfg.stores.map((_, i) =>
    d.WV
      ? `@group(0) @binding(${3 + i}) var<storage, read> s${i}: array<vec4<u32>>;
@group(0) @binding(${3 + cfg.stores.length + i}) var<storage, read> sw${i}: array<u32>;
fn ld${i}(w: u32) -> u32 { return sw${i}[w]; }`
      : `@group(0) @binding(${3 + i}) var<storage, read> s${i}: array<vec4<u32>>;
fn ld${i}(w: u32) -> u32 {
  let v = s${i}[w >> 2u]; let e = w & 3u;
  return select(select(v.x, v.y, e == 1u), select(v.z, v.w, e == 3u), e >= 2u);
}`
  );
  const qload: string[] = [];
  for (let u = 0; u < NV; u++) {
    qload.push(`    if (u == ${u32(u)}) {`);
    for (let cc = 0; cc < 4; cc++) {
      const hh = u * 4 + cc;
      if (hh < HPK) qload.push(`      q.${V[cc]} = qkv[qb + ${u32(hh)} * D + dd] * p.sc.x;`);
    }
    qload.push("    }");
  }
  const combos = [...new Set(cfg.segments.map(comboKey))];
  if (path !== undefined && !(Number.isInteger(path) && path >= 0 && path < combos.length)) {
    throw new TensorShapeError(`fused attention: path ${path} of ${combos.length}`);
  }
  const inPath = (g: FusedAttentionConfig["segments"][number]) =>
    path === undefined || comboKey(g) === combos[path];
  const anyKdot = cfg.segments.some((g) => inPath(g) && kdotBits(cfg, tensorFormat(cfg, g.k)) > 0);
  const anyVdot = cfg.segments.some((g) => inPath(g) && vdotSeg(cfg, d, tensorFormat(cfg, g.v)));
  const fns = combos.map((key, ci) =>
    path !== undefined && ci !== path
      ? ""
      : segmentFn(cfg, d, cfg.segments.findIndex((g) => comboKey(g) === key), `seg_c${ci}`)
  );
  // one path only: workgroups of other segments return before any work (workgroup-uniform: s depends on x)
  const pathGuard = path === undefined ? "" : `  var s = 0u;
  for (var i = 1u; i < NSEG; i++) { if (x >= p.seg[i].x) { s = i; } }
  if (!(${cfg.segments.map((g, i) => (inPath(g) ? `s == ${u32(i)}` : "")).filter((t) => t).join(" || ")})) {
    return;
  }`;
  const dispatch = path !== undefined
    ? `  seg_c${path}(s, b, kvh, x, lid);`
    : combos.length === 1
    ? "  seg_c0(s, b, kvh, x, lid);"
    : combos.map((key, ci) => {
      const members = cfg.segments.map((g, i) => (comboKey(g) === key ? `s == ${u32(i)}` : "")).filter((t) =>
        t
      );
      return ci === combos.length - 1
        ? `  seg_c${ci}(s, b, kvh, x, lid);`
        : `  if (${members.join(" || ")}) { seg_c${ci}(s, b, kvh, x, lid); return; }`;
    }).join("\n");
  return /* wgsl */ `
const D = ${u32(d.D)};
const G = ${u32(d.G)};
const NKV = ${u32(cfg.numKvHeads)};
const NH = ${u32(cfg.numHeads)};
const HPK = ${u32(HPK)};
const WG = ${u32(d.WG)};
const CH = ${u32(d.CH)};
const TPW = ${u32(d.TPW)};
const LANES = ${u32(d.LANES)};
const NSEG = ${u32(NSEG)};
const NV = ${u32(NV)};
const NEG = -3.0e38;
struct P {
  io: vec4<u32>,
  sc: vec4<f32>,
  seg: array<vec4<u32>, ${NSEG}>,
  kref: array<vec4<u32>, ${NSEG}>,
  vref: array<vec4<u32>, ${NSEG}>,
  cnt: array<vec4<u32>, ${d.NCNT}>,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<f32>;
${stores.join("\n")}
var<workgroup> qsh: array<vec4<f32>, ${d.D * NV}>;
var<workgroup> qsum: array<vec4<f32>, ${d.GPH * NV}>;
var<workgroup> red: array<vec4<f32>, ${d.WG * NV}>;
var<workgroup> red2: array<vec4<f32>, ${(d.WG / 8) * NV}>;
var<workgroup> ps: array<vec4<f32>, ${d.PS}>;
var<workgroup> zsh: array<vec4<f32>, ${d.GPH * NV}>;
var<workgroup> mlsh: array<vec4<f32>, ${2 * NV}>;${
    cfg.tuning.padShared
      ? `\nvar<workgroup> padw: array<vec4<f32>, ${Math.ceil(cfg.tuning.padShared / 16)}>;`
      : ""
  }
${
    anyVdot
      ? `var<workgroup> pq: array<vec4<u32>, ${d.WG * NV}>;
var<workgroup> sred: array<f32, ${d.WG}>;
var<workgroup> sred2: array<f32, ${d.WG / 8}>;`
      : ""
  }
${
    anyKdot
      ? `var<workgroup> qsc: array<vec4<f32>, ${NV}>;
var<workgroup> qiv: array<vec4<f32>, ${NV}>;
var<workgroup> qis: array<vec4<i32>, ${d.GPH * NV}>;
var<workgroup> qp: array<vec4<u32>, ${(d.D / 4) * NV}>;
${Q8_WGSL}`
      : ""
  }
${QUANT_WGSL}
${fns.join("\n")}
@compute @workgroup_size(${d.WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let x = wid.x; let kvh = wid.y; let b = wid.z;
${pathGuard}
  let qb = p.io.x + b * p.io.y + kvh * HPK * D;
  for (var i = lid; i < D * ${u32(NV)}; i += WG) {
    let dd = i / ${u32(NV)}; let u = i % ${u32(NV)};
    var q = vec4<f32>(0.0);
${qload.join("\n")}
    qsh[i] = q;${
    cfg.tuning.padShared ? `\n    padw[i % ${u32(Math.ceil(cfg.tuning.padShared / 16))}] = q;` : ""
  }
  }
  workgroupBarrier();
  if (lid < ${u32(d.GPH * NV)}) {
    let j = lid / ${u32(NV)}; let u = lid % ${u32(NV)};
    var s = vec4<f32>(0.0);
    // 4 partial sums so the loads overlap (G % 16 == 0)
    var s1 = vec4<f32>(0.0); var s2 = vec4<f32>(0.0); var s3 = vec4<f32>(0.0);
    for (var e = 0u; e < G; e += 4u) {
      let o = (j * G + e) * ${u32(NV)} + u;
      s += qsh[o]; s1 += qsh[o + ${u32(NV)}]; s2 += qsh[o + ${u32(2 * NV)}]; s3 += qsh[o + ${u32(3 * NV)}];
    }
    s = (s + s1) + (s2 + s3);
    qsum[lid] = s;${
    cfg.tuning.padShared
      ? `\n    if (s.x == 1.2345e-30) { qsum[lid] = padw[${u32(Math.ceil(cfg.tuning.padShared / 16) - 1)}]; }`
      : ""
  }
  }
  workgroupBarrier();
${anyKdot ? KDOT_MAIN : ""}
${
    path === undefined
      ? `  var s = 0u;
  for (var i = 1u; i < NSEG; i++) { if (x >= p.seg[i].x) { s = i; } }`
      : ""
  }
${dispatch}
}
`;
}

/** A WGSL function `name(lid, v)` folding v over the reduce workgroup with `combine` (a tree in `red`). */
function treeFn(name: string, combine: string): string {
  return `fn ${name}(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var st = RW / 2u; st > 0u; st = st / 2u) {
    if (lid < st) { red[lid] = ${combine}; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;
}

/**
 * WGSL of the reduce kernels' tree functions: `tree_add(lid, v)` / `tree_max(lid, v)` fold v over a
 * workgroup of `RW` invocations in `var<workgroup> red: array<f32, RW>` (barriers inside, so called in
 * uniform control flow; `red` is free again on return).
 */
const REDUCE_TREES =
  `// sum / max of v over the workgroup (a tree in red; barriers inside, so called in uniform control flow;
// red is free again on return)
${treeFn("tree_add", "red[lid] + red[lid + st]")}
${treeFn("tree_max", "max(red[lid], red[lid + st])")}`;

/**
 * Statements of the reduce kernels that compute, for query head h of sequence b, the new token's score `sn`
 * (when `hasNew`), the maximum `M` over it and the split maxima, its weight `wn` and the denominator `L`;
 * they expect `h, b, kvh, S, hasNew, lid` and the constants `D, NH, RW, NEG` in scope and declare `sb` (the
 * first statistics float of (b, h)).
 */
const REDUCE_STATS = `  var sn = NEG;
  if (hasNew) {
    var a = 0.0;
    for (var d = lid; d < D; d += RW) {
      a += qkv[p.io.x + b * p.io.y + h * D + d] * qkv[p.nw.x + b * p.io.y + kvh * D + d];
    }
    sn = tree_add(lid, a) * p.sc.x;
  }
  let sb = p.io.w + (b * NH + h) * S * 2u;
  // M and L: every invocation takes splits lid, lid + RW, … (independent loads), then a tree over the group
  var mloc = NEG;
  for (var x = lid; x < S; x += RW) { mloc = max(mloc, part[sb + x * 2u]); }
  let M = max(tree_max(lid, mloc), sn);
  var lloc = 0.0;
  for (var x = lid; x < S; x += RW) { lloc += exp(part[sb + x * 2u] - M) * part[sb + x * 2u + 1u]; }
  let wn = select(0.0, exp(sn - M), hasNew);
  let L = tree_add(lid, lloc) + wn;`;

/**
 * The declarations every reduce kernel shares (this file's, block_attention.wgsl.ts's tree and `rsub` kernels):
 * the shape constants `D, NH, HPK, RW` (= rw), `RB` (= rb), `NEG`, the uniform `p` (io, nw, sc) and the bindings
 * `qkv` (1), `part` (2), `out` (3).
 *
 * @example
 * ```ts
 * const decls = reduceDecls({ numHeads: 32, numKvHeads: 8, headDim: 128 }, 128, 256);
 * ```
 */
export function reduceDecls(
  s: { numHeads: number; numKvHeads: number; headDim: number },
  rw: number,
  rb: number,
): string {
  return `const D = ${u32(s.headDim)};
const NH = ${u32(s.numHeads)};
const HPK = ${u32(s.numHeads / s.numKvHeads)};
const RW = ${u32(rw)};
const RB = ${u32(rb)};
const NEG = -3.0e38;
struct P { io: vec4<u32>, nw: vec4<u32>, sc: vec4<f32> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> part: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;`;
}

/**
 * The common head of both reduce kernels (attentionReduceWgsl, block_attention.wgsl.ts `blockReduceWgsl`):
 * from `const NEG` through the entry point's statistics — uniform and bindings, `red` [rw] and `wsh` [rb],
 * the tree functions, `h, b, kvh, S, hasNew`, then REDUCE_STATS (`sn`, `sb`, `M`, `wn`, `L`) — after the
 * shape constants `D, NH, HPK, RW` (= rw), `RB` (= rb). The caller continues the body after it.
 *
 * @example
 * ```ts
 * const code = `${reduceKernelHead({ numHeads: 32, numKvHeads: 8, headDim: 128 }, 64, 256)}\n}`;
 * ```
 */
export function reduceKernelHead(
  s: { numHeads: number; numKvHeads: number; headDim: number },
  rw: number,
  rb: number,
): string {
  return `${reduceDecls(s, rw, rb)}
var<workgroup> red: array<f32, ${rw}>;
var<workgroup> wsh: array<f32, ${rb}>;
${REDUCE_TREES}
@compute @workgroup_size(${rw})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x; let b = wid.y; let kvh = h / HPK;
  let S = p.io.z;
  let hasNew = p.nw.z != 0u;
${REDUCE_STATS}`;
}

/**
 * WGSL of the reduce kernel (module doc).
 *
 * @example
 * ```ts
 * import { attentionReduceWgsl } from "./attention.wgsl.ts";
 * const code = attentionReduceWgsl({ numHeads: 32, numKvHeads: 8, headDim: 128 });
 * ```
 */
export function attentionReduceWgsl(s: { numHeads: number; numKvHeads: number; headDim: number }): string {
  const RW = REDUCE_THREADS;
  return /* wgsl */ `
const DPT = ${u32(Math.ceil(s.headDim / RW))};
${reduceKernelHead(s, RW, REDUCE_BLOCK)}
  // acc: the split weights e^(m_x − M) of a block of RB splits go to workgroup memory once, then each
  // invocation sums its dims over the block with 4 independent partial sums (loads in flight)
  let ab = (b * NH + h) * S * D;
  var o = array<f32, DPT>();
  for (var xb = 0u; xb < S; xb += RB) {
    workgroupBarrier();
    let n = min(RB, S - xb);
    for (var i = lid; i < n; i += RW) { wsh[i] = exp(part[sb + (xb + i) * 2u] - M); }
    workgroupBarrier();
    for (var k = 0u; k < DPT; k++) {
      let d = lid + k * RW;
      if (d < D) {
        let base = ab + xb * D + d;
        var a0 = 0.0; var a1 = 0.0; var a2 = 0.0; var a3 = 0.0;
        var x = 0u;
        for (; x + 4u <= n; x += 4u) {
          a0 += wsh[x] * part[base + x * D];
          a1 += wsh[x + 1u] * part[base + (x + 1u) * D];
          a2 += wsh[x + 2u] * part[base + (x + 2u) * D];
          a3 += wsh[x + 3u] * part[base + (x + 3u) * D];
        }
        for (; x < n; x++) { a0 += wsh[x] * part[base + x * D]; }
        o[k] += (a0 + a1) + (a2 + a3);
      }
    }
  }
  for (var k = 0u; k < DPT; k++) {
    let d = lid + k * RW;
    if (d < D) {
      var a = o[k];
      if (hasNew) { a += wn * qkv[p.nw.y + b * p.io.y + kvh * D + d]; }
      out[(b * NH + h) * D + d] = select(a / L, 0.0, L == 0.0);
    }
  }
}
`;
}
