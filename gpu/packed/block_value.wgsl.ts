/**
 * WGSL of the block attention's value kernels: the quad-gather kernel and, with `vpair`, the lane-pair one (the
 * kernels' module doc, buffer tables and numerics: block_attention.wgsl.ts; the schedule: block_schedule.ts).
 *
 * @example
 * ```ts
 * import { blockValueWgsl } from "./block_value.wgsl.ts";
 * const code = blockValueWgsl({ numHeads: 32, numKvHeads: 8, headDim: 128, maxBatch: 8, k: "q2", v: "q2" });
 * ```
 * @module
 */
import { type BlockAttentionConfig, consts, type Dims, dims } from "./block_schedule.ts";
import { u32 } from "./wgsl_common.ts";

/** The value kernels' split index of head `h` of the KV head's group: (sequence, head, split) in `part`. */
function splitOf(h: string, x = "blk"): string {
  return `((b * NH + kvh * HPK + ${h}) * p.io.z + p.io.y + ${x})`;
}

/**
 * The value kernels' prologue after `head`: block blk is split split0 + blk, acc [D] and (max, Σp) of each head;
 * an empty block writes 0 and (NEG, 0) and returns. `join` (vjoin): the workgroup's split is vb, its first block
 * vb·QL.
 */
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
      d.VTOUCH && full ? touchAddr(wsh).map((_, i) => `  var tp${i} = 0u;`).join("\n") + "\n" : ""
    }  for (var q0 = ${d.VJOIN ? "0u" : "ql"}; q0 < nq; q0 += ${u32(QS * UQ)}) {
${loads("q0", "", "let", full, wsh)}${d.VTOUCH && full ? "\n" + touches(wsh) : ""}
${compute(wsh)}
  }${d.VTOUCH && full ? "\n  tch ^= " + touchAddr(wsh).map((_, i) => `tp${i}`).join(" ^ ") + ";" : ""}`;
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
  // the first row's dim k of head lanes u: its shifted lane sum plus the other rows' (`tot`), then in f32 (`acc`)
  const accLines = (k: number, u: number, tot: string, acc: string) =>
    `      var ${tot} = ${shifted(k, u)};
      for (var l = 1u; l < QL; l++) { ${tot} += red[${redAt("l - 1u", k)} * NV + ${u32(u)}]; }
      let ${acc} = vsig * vec4<f32>(${tot}) - ${d.VCOAL || d.VSTAT ? `zs${u}` : `bst[bo + ${u32(u)}]`};`;
  const st4 = us.map((u) =>
    `    {
${ks.map((k) => accLines(k, u, `tot${k}`, `acc${k}`)).join("\n")}
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
${accLines(k, u, "tot", "acc")}
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
