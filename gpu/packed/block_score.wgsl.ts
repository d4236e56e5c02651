/**
 * WGSL of the block attention's query and score kernels (the kernels' module doc, buffer tables and numerics:
 * block_attention.wgsl.ts; the schedule: block_schedule.ts).
 *
 * @example
 * ```ts
 * import { blockScoreWgsl } from "./block_score.wgsl.ts";
 * const code = blockScoreWgsl({ numHeads: 32, numKvHeads: 8, headDim: 128, maxBatch: 8, k: "q2", v: "q2" });
 * ```
 * @module
 */
import {
  type BlockAttentionConfig,
  consts,
  type Dims,
  dims,
  each,
  lanes,
  MAGIC_F,
  MAGIC_I,
  QUERY_THREADS,
} from "./block_schedule.ts";
import { QUANT_WGSL, u32 } from "./wgsl_common.ts";
import { Q8_WGSL } from "./attention.wgsl.ts";

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

/** `op` of two WGSL expressions. */
/** `sexp2`: the factor that puts the query's scales, so the scores, in log2 units (empty without it). */
const l2e = (d: Dims) => (d.SEXP2 ? " * 1.4426950408889634" : "");
/** `sexp2`: a block maximum in log2 units back in natural units, as the value and reduce kernels read it. */
const natural = (d: Dims, m: string) => (d.SEXP2 ? `(${m} * 0.6931471805599453)` : m);

const combine =
  (op: "max" | "add") => (a: string, b: string) => (op === "max" ? `max(${a}, ${b})` : `(${a} + ${b})`);

/**
 * `vec4<f32>` of four consecutive floats of a flat `[subgroups, 8]` workgroup array (`stx`): row `j` (a WGSL
 * expression; none: row 0), columns off … off + 3.
 */
const vec4At = (arr: string, j: string | null, off: number) =>
  `vec4<f32>(${
    [0, 1, 2, 3].map((i) =>
      `${arr}[${j ? (off + i ? `${j} * 8u + ${u32(off + i)}` : `${j} * 8u`) : u32(off + i)}]`
    )
      .join(", ")
  })`;

/** A two-stage workgroup reduction of `vals` (names of per-invocation values) with `op`; result in `out<i>`. */
function reduce2(
  d: Dims,
  vals: { v: string; arr: string; arr2: string; idx: string; idx2: (j: string) => string }[],
  op: "max" | "add",
  outs: string[],
  foldIf = "",
): string {
  const f = combine(op);
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
    // foldIf (sepi): the fold only where the condition holds, in an `if` the caller closes
    if (foldIf) w.push(`  if (${foldIf}) {`);
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
 * `stx`: the 8 per-invocation values `vals` reduced with `op` within each subgroup by a transposing butterfly —
 * three exchanges of half the remaining values (xor sgs/2, sgs/4, sgs/8; lane bits pick which half a lane keeps)
 * leave lane `sid` with value sid / (sgs/8) reduced over its 8 exchange partners, then plain butterflies over
 * the low lanes (xor sgs/16 … 1) — and the first lane of each group of sgs/8 writes it to `arr[(lid / sgs) · 8 +
 * sid / (sgs/8)]`. Subgroups of fewer than 8 lanes use the subgroup built-ins and write the same layout.
 */
function transposed(vals: string[], op: "max" | "add", arr: string): string {
  const f = combine(op);
  const sg = op === "max" ? "subgroupMax" : "subgroupAdd";
  const w: string[] = ["  if (sgs >= 8u) {"];
  let cur = vals.map((v) => `(${v})`);
  for (let j = 0; j < 3; j++) {
    const half = cur.length / 2, o = `(sgs >> ${u32(j + 1)})`;
    w.push(`    let xb${j} = (sid & ${o}) != 0u;`);
    const next: string[] = [];
    for (let i = 0; i < half; i++) {
      w.push(
        `    let xt${j}_${i} = ${
          f(
            `select(${cur[i]}, ${cur[i + half]}, xb${j})`,
            `subgroupShuffleXor(select(${cur[i + half]}, ${cur[i]}, xb${j}), ${o})`,
          )
        };`,
      );
      next.push(`xt${j}_${i}`);
    }
    cur = next;
  }
  w.push(`    var xv = ${cur[0]};`);
  w.push(`    for (var o = sgs >> 4u; o > 0u; o >>= 1u) { xv = ${f("xv", "subgroupShuffleXor(xv, o)")}; }`);
  w.push(`    if ((sid & ((sgs >> 3u) - 1u)) == 0u) { ${arr}[(lid / sgs) * 8u + sid / (sgs >> 3u)] = xv; }`);
  w.push("  } else {");
  vals.forEach((v, i) => w.push(`    let xg${i} = ${sg}(${v});`));
  w.push(`    if (sid == 0u) {`);
  vals.forEach((_, i) => w.push(`      ${arr}[(lid / sgs) * 8u + ${u32(i)}] = xg${i};`));
  w.push("    }");
  w.push("  }");
  w.push("  workgroupBarrier();");
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
      `    qsc[${u32(u)}] = vec4<f32>(pow2(qe${u}.x), pow2(qe${u}.y), pow2(qe${u}.z), pow2(qe${u}.w))${
        l2e(d)
      };
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
  // sepi / stx: the sums folded by invocation 0 alone, inside the `if` that stores them
  const sum0 = (d.SEPI || d.STX) && d.SRED;
  const stxSum = `${
    transposed(
      us.flatMap((u) => [..."xyzw"].map((c) => `l${u}.${c}`).concat([..."xyzw"].map((c) => `z${u}.${c}`))),
      "add",
      "rsm",
    )
  }
  if (lid == 0u) {
  var L0 = ${vec4At("rsm", null, 0)};
  var Z0 = ${vec4At("rsm", null, 4)};
  for (var j = 1u; j < WQ / sgs; j++) {
    L0 = (L0 + ${vec4At("rsm", "j", 0)});
    Z0 = (Z0 + ${vec4At("rsm", "j", 4)});
  }`;
  const bigSum = d.SBAR1 ? lazySum : `${
    d.STX ? stxSum : reduce2(
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
      sum0 ? "lid == 0u" : "",
    )
  }
  let bo = (head * S + blk) * BST;${sum0 ? "" : "\n  if (lid == 0u) {"}
${
    us.map((u) =>
      `    bst[bo + ${u32(u)}] = Z${u}; bst[bo + NV + ${u32(u)}] = ${
        natural(d, `m${u}`)
      }; bst[bo + 2u * NV + ${u32(u)}] = L${u};`
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
  let Sv${t} = bf16(szv${t} & 0xffffu); let zv${t} = bf16(szv${t} >> 16u);${
        d.SBIAS ? `\n  let nb${t} = vec4<f32>(select(NEG, 0.0, ok${t}));` : ""
      }
${
        us.map((u) => {
          const x = `(Sk${t} * (bitcast<vec4<f32>>(it${t}_${u}${
            qisTerm(u)
          }) - ${MAGIC_F}) - zk${t} * qf${u})`;
          // sbias: fma(qsc, x, 0) rounds as qsc·x; fma(qsc, x, NEG) is NEG (|qsc·x| is far below NEG's ulp)
          return d.SBIAS
            ? `  let s${t}_${u} = fma(qsc[${u32(u)}], ${x}, nb${t});`
            : `  let s${t}_${u} = select(vec4<f32>(NEG), qsc[${u32(u)}] * ${x}, ok${t});`;
        }).join("\n")
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
        `    bst[bo + ${u32(u)}] = Z${u}; bst[bo + NV + ${u32(u)}] = ${
          natural(d, `pm${u}`)
        }; bst[bo + 2u * NV + ${u32(u)}] = L${u};`
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
    d.STX
      ? `  let gs = ${fold((t) => `s${t}_0`)};
${
        transposed(
          [..."xyzw"].map((c) => `gs.${c}`).concat([fold((t) => `Sv${t}`), "NEG", "NEG", "NEG"]),
          "max",
          "rmx",
        )
      }
  var m0 = ${vec4At("rmx", null, 0)};
  var smx = rmx[4u];
  for (var j = 1u; j < WQ / sgs; j++) {
    m0 = max(m0, ${vec4At("rmx", "j", 0)});
    smx = max(smx, rmx[j * 8u + 4u]);
  }`
      : reduce2(
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
              return `  let pp${t}_${u} = ${d.SEXP2 ? "exp2" : "exp"}(s${t}_${u} - m${u});
  l${u} += pp${t}_${u}; z${u} += pp${t}_${u} * zv${t};
  let wb${t}_${u} = bitcast<vec4<u32>>(min(pp${t}_${u} * (Sv${t} * vinv), vec4<f32>(255.0)) + 8388608.0);`;
            }).join("\n")
          }
  wq[(qo + ${u32(k * WQ)}) * NV + ${u32(u)}] = ${
            d.SEPI
              ? `(wb${4 * k}_${u} - vec4<u32>(0x4b000000u)) + (wb${4 * k + 1}_${u} << vec4<u32>(8u)) + (wb${
                4 * k + 2
              }_${u} << vec4<u32>(16u)) + (wb${4 * k + 3}_${u} << vec4<u32>(24u))`
              : `vec4<u32>(${
                lanes.map((l) =>
                  `pack4xU8(vec4<u32>(${[0, 1, 2, 3].map((i) => `wb${4 * k + i}_${u}.${l}`).join(", ")}))`
                )
                  .join(", ")
              })`
          };`
        ).join("\n")
      }`
    ).join("\n")
  }
  // block sums Σp and Σp·z_V (per head)`;
  // the packed query (and its scale, code sums) in workgroup memory, then the barrier the dot products wait for
  const queryLoad = d.QSUB ? qsubLoad(d) : `  let rb = (b * NKV + kvh) * REC;
  for (var i = lid; i < (D / 4u) * NV; i += WQ) { qp[i] = qrec[rb + i]; }
  if (lid < NV) {
    qsc[lid] = bitcast<vec4<f32>>(qrec[rb + (D / 4u) * NV + lid])${l2e(d)};
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
  // stouch: one word of each 128-byte line of the next block — its K rows (TPL tokens a line) and its K and V
  // sz words (32 tokens a line) — per invocation its share, at the start of this block
  const TPL = Math.max(1, 32 / WPTK), kLines = (d.BT * WPTK) / 32, zLines = (2 * d.BT) / 32;
  const kTouch = [...Array(Math.ceil(kLines / WQ)).keys()],
    zTouch = [...Array(Math.ceil(zLines / WQ)).keys()];
  const touchNames = [...kTouch.map((i) => `tk${i}`), ...zTouch.map((i) => `tz${i}`)];
  const touches = `  // stouch: the next block's lines, consumed after this block's dot products
${touchNames.map((n) => `  var ${n} = 0u;`).join("\n")}
  if (jb + 1u < ${u32(NB)} && t0 + BT < cnt) {
    let nt = t0 + BT;
${
    kTouch.map((i) => {
      const j = `lid + ${u32(i * WQ)}`;
      const load = `tk${i} = sw[kr.x + (head * kr.z + kr.w + min(nt + (${j}) * ${u32(TPL)}, cnt - 1u)) * ${
        u32(WPTK)
      }];`;
      return (i + 1) * WQ <= kLines ? `    ${load}` : `    if (${j} < ${u32(kLines)}) { ${load} }`;
    }).join("\n")
  }
${
    zTouch.map((i) => {
      const j = `lid + ${u32(i * WQ)}`;
      return `    { let j = ${j};
      if (j < ${u32(zLines)}) {
        let zt = min(nt + (j % ${u32(zLines / 2)}) * 32u, cnt - 1u);
        tz${i} = sw[select(kr.y + head * kr.z + kr.w, vr.y + head * vr.z + vr.w, j >= ${
        u32(zLines / 2)
      }) + zt];
      }
    }`;
    }).join("\n")
  }
  }`;
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
${qfLines}${pendingVars}${d.STOUCH ? "\n  var tch = 0u; // stouch: the touched words, XORed" : ""}
  for (var jb = 0u; jb < ${u32(NB)}; jb++) {
  let blk = blk0 + jb;
  let t0 = blk * BT;
  if (t0 >= cnt) { break; }
  let tq = t0 + lid;${d.STOUCH ? "\n" + touches : ""}
${tokenRows(false)}
${itInit}
${ts.map((t) => `  let szk${t} = pk${t}; let szv${t} = pz${t};`).join("\n")}
${w4s.flatMap((w4) => pts.map((t) => `  let v${t}_${w4} = pv${t}_${w4};`)).join("\n")}
${kAll ? kAll.dots : ""}${d.STOUCH ? `\n  tch ^= ${touchNames.join(" ^ ")};` : ""}
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
  }${
    d.STX
      ? `\n// stx: each subgroup's 8 maxima and 8 sums [WQ/sgs, 8] (subgroups of ≥ 4 lanes)\nvar<workgroup> rmx: array<f32, ${
        8 * (WQ / 4)
      }>;\nvar<workgroup> rsm: array<f32, ${8 * (WQ / 4)}>;`
      : ""
  }
${QUANT_WGSL}${d.QSUB ? Q8_WGSL : ""}
@compute @workgroup_size(${WQ})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32${
    d.SRED || d.QSUB ? ", @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32" : ""
  }) {
${NB === 1 ? oneBlock : manyBlocks}
${bigSum}${NB === 1 ? "" : "\n  }"}${
    d.STOUCH
      ? `
  // stouch: keeps the touches alive; never taken (lid < WQ ≤ 256, the block count S far below 2^16)
  if (lid == p.io.x + 0xffff0000u) { bst[0] = vec4<f32>(bitcast<f32>(tch)); }`
      : ""
  }${
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
