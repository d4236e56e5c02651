/**
 * Host-only checks of the block attention's WGSL generators (block_attention.wgsl.ts): bad shapes and
 * schedules are typed errors naming the value, the declared workgroup memory is what `blockSharedBytes`
 * reports, and the schedule knobs change what the kernels contain. The kernels themselves are checked
 * against the int8-query f64 reference in tests/conformance_packed_test.ts.
 */
import assert from "node:assert/strict";
import {
  type BlockAttentionConfig,
  blockQueryRecord,
  blockQueryWgsl,
  blockReduceDims,
  blockReduceWgsl,
  blockRowsInRegisters,
  blockScoreBlocks,
  blockScoreWgsl,
  blockSharedBytes,
  blockSplitBlocks,
  blockTokens,
  blockValueWgsl,
  DEFAULT_BLOCK_TUNING,
  defaultBlockTuning,
  subgroupBlockTuning,
} from "./block_attention.wgsl.ts";
import { QuantConfigError, TensorShapeError } from "../../src/errors.ts";

/** A config with the schedule { block 1024, wgv 128, uq 2, no pipe, tq 1, nblk 1 } unless `over.tuning` sets fields. */
function cfg(over: Partial<BlockAttentionConfig> = {}): BlockAttentionConfig {
  const base = { block: 1024, wgv: 128, uq: 2, pipe: false, tq: 1, nblk: 1 };
  return {
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    maxBatch: 8,
    k: "q4",
    v: "q4",
    ...over,
    tuning: { ...base, ...over.tuning },
  };
}

Deno.test("block attention wgsl: bad shapes and schedules are typed errors naming the value", () => {
  const bad: [Partial<BlockAttentionConfig>, RegExp, typeof QuantConfigError | typeof TensorShapeError][] = [
    [{ headDim: 72 }, /head_dim .* 72/, QuantConfigError],
    [{ headDim: 256 }, /256/, QuantConfigError],
    [{ numHeads: 30 }, /30 query heads/, TensorShapeError],
    [{ k: "q16" as never }, /K format q16/, QuantConfigError],
    [{ v: "q8" as never }, /V format q8/, QuantConfigError],
    [{ tuning: { block: 2048 } }, /block 2048/, QuantConfigError],
    [{ tuning: { wgv: 96 } }, /wgv 96/, QuantConfigError],
    [{ tuning: { uq: 3 } }, /uq 3/, QuantConfigError],
    [{ tuning: { uq: 16 } }, /uq 16/, QuantConfigError],
    [{ tuning: { wgv: 16 } }, /wgv 16/, QuantConfigError],
    [{ tuning: { tq: 3 } }, /tq 3/, QuantConfigError],
    [{ tuning: { kstep: 3 } }, /kstep 3/, QuantConfigError],
    [{ tuning: { block: 256, tq: 4 } }, /= 16 score invocations/, QuantConfigError],
    [{ tuning: { vshuf: true } }, /vshuf needs 2-bit V, got q4/, QuantConfigError],
    // a misspelt knob is not silently ignored
    [{ tuning: { sexp: true } as never }, /unknown tuning field sexp \(known: block, /, QuantConfigError],
    [{ tuning: { stx2: true, foo: 1 } as never }, /unknown tuning fields stx2, foo/, QuantConfigError],
    // D 32: 8 invocations per quad, so wgv 256 has 32 lanes; × uq 4 = 128 quads per step > block 256's 64
    [
      { headDim: 32, tuning: { block: 256, wgv: 256, uq: 4 } },
      /64 quads not a multiple of 128/,
      QuantConfigError,
    ],
  ];
  for (const [over, re, E] of bad) {
    for (const gen of [blockQueryWgsl, blockScoreWgsl, blockValueWgsl]) {
      assert.throws(
        () => gen(cfg(over)),
        (e: Error) => e instanceof E && re.test(e.message),
        JSON.stringify(over),
      );
    }
  }
});

Deno.test("block attention wgsl: workgroup memory counts what each kernel declares", () => {
  const declared = (code: string) =>
    [...code.matchAll(/var<workgroup> \w+: array<(vec4<[fiu]32>|f32), (\d+)>;/g)].reduce(
      (a, m) => a + (m[1] === "f32" ? 4 : 16) * Number(m[2]),
      0,
    );
  for (
    const c of [
      cfg(),
      cfg({
        numHeads: 6,
        numKvHeads: 2,
        headDim: 64,
        k: "q2",
        v: "q2",
        tuning: { block: 256, wgv: 64, uq: 1 },
      }),
      cfg({ numHeads: 40, numKvHeads: 4, k: "q8", v: "q2", tuning: { block: 512, wgv: 256, uq: 2 } }),
      cfg({ k: "q2", v: "q4", tuning: { block: 512, tq: 4, pipe: true } }),
      cfg({ numHeads: 40, numKvHeads: 8, k: "q2", v: "q2", tuning: { block: 256 } }),
      cfg({ k: "q2", v: "q2", tuning: { block: 512, wgv: 64, vjoin: true } }),
      cfg({ k: "q2", v: "q2", tuning: { sred: true, sbar2: true } }),
      cfg({ k: "q2", v: "q2", tuning: { sred: true, sbar1: true, nblk: 4 } }),
      cfg({ k: "q2", v: "q2", tuning: { vshuf: true, vsum1: true, vst4: true, vstat: true, wgv: 64 } }),
      cfg({
        numHeads: 40,
        numKvHeads: 4,
        headDim: 64,
        k: "q4",
        v: "q4",
        tuning: { vjoin: true, vcoal: true },
      }),
    ]
  ) {
    const s = blockSharedBytes(c);
    assert.equal(s.query, declared(blockQueryWgsl(c)));
    assert.equal(s.score, declared(blockScoreWgsl(c)));
    assert.equal(s.value, declared(blockValueWgsl(c)));
  }
  // D 128, 4 heads, block 1024: packed query 512 B + 32 B, two vec4 reductions of 4 KiB + 512 B, V scale 1 KiB + 128 B
  assert.equal(blockSharedBytes(cfg()).score, 512 + 32 + 2 * (4096 + 512) + 1024 + 128);
  // tq 2 halves the score workgroup and its reduction arrays
  assert.equal(blockSharedBytes(cfg({ tuning: { tq: 2 } })).score, 512 + 32 + 2 * (2048 + 256) + 512 + 64);
  // value: 4 lanes × 128 dims × 4 heads of u32 sums
  assert.equal(blockSharedBytes(cfg()).value, 8192);
});

Deno.test("block attention wgsl: records, block size and padded head lanes", () => {
  assert.equal(blockQueryRecord(cfg()), 34); // 32 plane words + 2^e + Σ qi, one vec4 (4 heads) each
  assert.equal(blockQueryRecord(cfg({ numHeads: 40, numKvHeads: 8 })), 68); // 5 heads → 2 vec4 lanes
  assert.equal(blockTokens(cfg()), 1024);
  assert.equal(blockTokens({ ...cfg({ k: "q8" }), tuning: undefined }), 256, "the default block");
  // 2-bit and 4-bit K and V default to 512-token blocks, 2 quads per score invocation one after the other
  // (128 / 2 = 64 invocations), 8 quads per value step (pipelined at 4-bit only)
  const two = { ...cfg({ k: "q2", v: "q2" }), tuning: undefined };
  assert.equal(blockTokens(two), 512);
  assert.match(blockScoreWgsl(two), /@workgroup_size\(64\)/);
  const wide = { block: 512, tq: 2, tseq: true, uq: 8, nblk: 4 };
  assert.deepEqual(defaultBlockTuning("q2", "q2"), { ...DEFAULT_BLOCK_TUNING, ...wide, pipe: false });
  assert.deepEqual(defaultBlockTuning("q4", "q4"), { ...DEFAULT_BLOCK_TUNING, ...wide, pipe: true });
  assert.equal(blockTokens({ ...cfg(), tuning: undefined }), 512, "q4/q4");
  for (const [k, v] of [["q2", "q4"], ["q4", "q2"], ["q8", "q2"], ["q8", "q4"]] as const) {
    assert.deepEqual(defaultBlockTuning(k, v), DEFAULT_BLOCK_TUNING, `${k}/${v}`);
  }
  // a field the caller sets wins over the per-format default
  assert.equal(blockTokens({ ...two, tuning: { block: 256, tq: 1 } }), 256);
  assert.equal(blockTokens(cfg({ tuning: { block: 256 } })), 256);
  // HPK 3: the query kernel loads heads 0..2 only (lane w stays 0)
  const q = blockQueryWgsl(cfg({ numHeads: 6, numKvHeads: 2 }));
  assert.match(q, /q\.z = qkv\[qb \+ 2u \* D/);
  assert.doesNotMatch(q, /q\.w = /);
});

Deno.test("block attention wgsl: tq quads per score invocation, pipe double-buffers the value loads", () => {
  const one = blockScoreWgsl(cfg({ k: "q2", v: "q2" })),
    two = blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: { tq: 2 } }));
  assert.match(one, /@workgroup_size\(256\)/);
  assert.match(two, /@workgroup_size\(128\)/);
  // one weight word per quad and head lane
  assert.equal(one.split("wq[(qo").length - 1, 1);
  assert.equal(two.split("wq[(qo").length - 1, 2);
  // pipelined: the step's loads appear twice (before the loop and for the next step inside it); every loop
  // exists twice, for whole blocks (no row clamps) and for the last, partial block
  const loadsOf = (code: string) => code.split("wq[(qb +").length - 1;
  assert.equal(loadsOf(blockValueWgsl(cfg({ tuning: { uq: 2 } }))), 2 * 2);
  assert.equal(loadsOf(blockValueWgsl(cfg({ tuning: { uq: 2, pipe: true } }))), 2 * 4);
  const v = blockValueWgsl(cfg());
  assert.equal(v.split(", rlast)").length - 1, 2 * 4, "clamped rows only in the partial-block loop");
});

Deno.test("block attention wgsl: kstep loops over the K row in steps of that many vec4 words", () => {
  // int4 D 128: 4 vec4 words per row; 4 tokens per invocation
  const all = blockScoreWgsl(cfg({ tuning: { block: 256 } }));
  assert.doesNotMatch(all, /for \(var w4/, "kstep 0: every word loaded before the barrier, no row loop");
  assert.equal(all.split("st[(kr.x >> 2u)").length - 1, 16);
  for (const [kstep, step] of [[1, 1], [2, 2], [4, 4]]) {
    const code = blockScoreWgsl(cfg({ tuning: { block: 256, kstep } }));
    assert.match(code, new RegExp(`w4 < 4u; w4 \\+= ${step}u`));
    assert.equal(code.split("st[(kr.x >> 2u)").length - 1, 4 * step, `kstep ${kstep}: loads per step`);
  }
  // int2 D 64: 1 vec4 word per row, so every kstep steps by 1
  const k2 = blockScoreWgsl(cfg({ headDim: 64, k: "q2", v: "q2", tuning: { block: 256, kstep: 4 } }));
  assert.match(k2, /w4 < 1u; w4 \+= 1u/);
});

Deno.test("block attention wgsl: tseq scores one quad at a time (its loads after the previous quad's dots)", () => {
  // int4 D 128: 4 vec4 words per row, tq 2 → tokens 0..3 (quad 0) and 4..7 (quad 1)
  const seq = blockScoreWgsl(cfg({ tuning: { block: 512, tq: 2, tseq: true } }));
  const firstLoad = (t: number) => seq.indexOf(`let v${t}_0 = st[`);
  const barrier = seq.indexOf("workgroupBarrier()"),
    dot0 = seq.indexOf("it0_0 +="),
    dot4 = seq.indexOf("it4_0 +=");
  assert.ok(firstLoad(0) > 0 && firstLoad(0) < barrier, "quad 0's rows before the query's barrier");
  assert.ok(firstLoad(4) > dot0, "quad 1's rows after quad 0's dot products");
  assert.ok(firstLoad(4) < dot4, "… and before its own");
  assert.equal(seq.split("st[(kr.x >> 2u)").length - 1, 2 * 4 * 4, "every word of both quads, no row loop");
  assert.doesNotMatch(seq, /for \(var w4/);
  // without tseq the 8 rows of 16 words exceed the 64-word budget: the row loop
  assert.match(blockScoreWgsl(cfg({ tuning: { block: 512, tq: 2, tseq: false } })), /for \(var w4/);
  // tq 1: nothing to sequence, the same kernel as without
  assert.equal(
    blockScoreWgsl(cfg({ tuning: { block: 256, tseq: true } })),
    blockScoreWgsl(cfg({ tuning: { block: 256, tseq: false } })),
  );
});

Deno.test("block attention wgsl: the reduce's dims per workgroup (rdims)", () => {
  assert.equal(blockReduceDims({ headDim: 128 }), 32, "the default");
  assert.equal(blockReduceDims({ headDim: 48 }), 16, "the default where 32 does not divide head_dim");
  assert.equal(blockReduceDims({ headDim: 128, tuning: { rdims: 128 } }), 128);
  assert.throws(() => blockReduceDims({ headDim: 128, tuning: { rdims: 8 } }), /rdims 8/);
  assert.throws(() => blockReduceDims({ headDim: 48, tuning: { rdims: 32 } }), /head_dim 48 .* rdims 32/);
  const heads = { numHeads: 32, numKvHeads: 8, headDim: 128 };
  assert.match(blockReduceWgsl(heads), /const DC = 32u;[^]*const SL = 4u;/);
  assert.match(blockReduceWgsl({ ...heads, tuning: { rdims: 64 } }), /const DC = 64u;[^]*const SL = 2u;/);
});

Deno.test("block attention wgsl: formats pick their planes and gathers; uq unrolls the value loop", () => {
  const k2 = blockScoreWgsl(cfg({ k: "q2", v: "q2" }));
  assert.match(k2, /\b50529027u/); // 0x03030303
  assert.match(k2, />> 6u\) & 50529027u/); // fourth 2-bit plane
  const k8 = blockScoreWgsl(cfg({ k: "q8" }));
  assert.match(k8, /\^ 0x80808080u/); // c − 128
  assert.match(k8, /\+ 128 \* qis\[0u\]/);
  const v4 = blockValueWgsl(cfg());
  assert.match(v4, /0x000f000fu/);
  assert.match(v4, /0x00f000f0u/); // odd dims stay in the high nibble (×16) …
  assert.match(v4, /ia1_0 >> vec4<u32>\(4u\)/); // … undone on the exact sums
  assert.doesNotMatch(v4, /ia0_0 >>/);
  const v2 = blockValueWgsl(cfg({ v: "q2" }));
  // dim k of each byte masked in place (×4^k), no shift per plane; the sums shifted back by 2k
  for (const [k, mask] of [[0, 0x03030303], [1, 0x0c0c0c0c], [2, 0x30303030], [3, 0xc0c0c0c0]]) {
    assert.match(v2, new RegExp(`x0_${k} = y0 & ${mask}u;`));
    if (k) assert.match(v2, new RegExp(`ia${k}_0 >> vec4<u32>\\(${2 * k}u\\)`));
  }
  const count = (code: string) => code.split("dot4U8Packed(").length - 1;
  // 4 dims × 4 heads per quad, uq quads per step, two loops (whole and partial blocks)
  assert.equal(count(blockValueWgsl(cfg({ tuning: { uq: 1 } }))), 2 * 16);
  assert.equal(count(blockValueWgsl(cfg({ tuning: { uq: 4 } }))), 2 * 64);
  assert.equal(count(blockValueWgsl(cfg({ tuning: { uq: 8 } }))), 2 * 128);
});

Deno.test("block attention wgsl: score sums and weights need no int/float conversions", () => {
  const k2 = blockScoreWgsl(cfg({ k: "q2", v: "q2" }));
  // i32 sums start at the bits of 1.5·2^23 and are read back by a bitcast and one subtraction
  assert.match(k2, /var it0_0 = vec4<i32>\(0x4b400000i\);/);
  assert.match(k2, /bitcast<vec4<f32>>\(it0_0\) - 12582912\.0/);
  assert.doesNotMatch(k2, /vec4<f32>\(it\d/);
  // weights: the low byte of min(x, 255) + 2^23, four tokens per u32 by pack4xU8
  assert.match(k2, /min\(pp0_0 \* \(Sv0 \* vinv\), vec4<f32>\(255\.0\)\) \+ 8388608\.0/);
  assert.match(k2, /pack4xU8\(vec4<u32>\(wb0_0\.x, wb1_0\.x, wb2_0\.x, wb3_0\.x\)\)/);
  assert.doesNotMatch(k2, /round\(pp/);
});

Deno.test("block attention wgsl: nblk loops over blocks and prefetches the next block's first rows", () => {
  const c = cfg({ k: "q2", v: "q2", tuning: { block: 512, tq: 2, tseq: true, nblk: 4 } });
  assert.equal(blockScoreBlocks(c), 4);
  assert.equal(
    blockScoreBlocks({ ...cfg({ k: "q8" }), tuning: undefined }),
    1,
    "q8/q4: DEFAULT_BLOCK_TUNING",
  );
  assert.equal(blockScoreBlocks({ ...cfg(), tuning: undefined }), 4, "q4/q4 default");
  const w = blockScoreWgsl(c);
  assert.match(w, /let blk0 = wid\.x \* 4u;/);
  assert.match(w, /for \(var jb = 0u; jb < 4u; jb\+\+\)/);
  // the prefetch of block jb + 1 comes after this block's scores and before its first reduction barrier
  const pre = w.indexOf("if (jb + 1u < 4u && t0 + BT < cnt)");
  assert.ok(pre > w.indexOf("let s7_0 =") && pre < w.indexOf("rv[lid * NV + 0u]"));
  // tseq: only the first quad's rows are prefetched (pv0…pv3), the second quad's are loaded in the loop
  assert.match(w, /var pv3_1: vec4<u32>;/);
  assert.doesNotMatch(w, /var pv4_0/);
  // one block per workgroup: no loop
  assert.doesNotMatch(blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: { nblk: 1 } })), /jb/);
  assert.throws(() => blockScoreWgsl(cfg({ tuning: { nblk: 3 } })), /nblk 3 must be 1, 2, 4, 8 or 16/);
  // 16 blocks per workgroup
  assert.match(
    blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: { tq: 1, nblk: 16 } })),
    /for \(var jb = 0u; jb < 16u; jb\+\+\)/,
  );
  assert.throws(
    () => blockScoreWgsl(cfg({ tuning: { block: 256, nblk: 2, kstep: 1 } })),
    /nblk 2 needs the score kernel's K rows in registers/,
  );
  // the 2-bit default's nblk 4 falls back to 1 where the rows are not in registers (kstep 1)
  const k1 = { ...cfg({ k: "q2", v: "q2" }), tuning: { kstep: 1 } };
  assert.equal(blockScoreBlocks(k1), 1);
  assert.equal(blockScoreBlocks({ ...k1, tuning: { kstep: 0 } }), 4);
});

Deno.test("block attention wgsl: vshuf loads one V word per quad and transposes it with two subgroup shuffles", () => {
  const count = (code: string, x: string) => code.split(x).length - 1;
  for (const uq of [1, 4, 8]) {
    for (const pipe of [false, true]) {
      const tuning = { uq, pipe };
      const plain = blockValueWgsl(cfg({ v: "q2", tuning: { ...tuning, vshuf: false } }));
      const shuf = blockValueWgsl(cfg({ v: "q2", tuning: { ...tuning, vshuf: true } }));
      const loops = 2 * (pipe ? 2 : 1); // whole / partial blocks, × (prologue + loop) when pipelined
      // four row loads per quad against one; the same dot products
      assert.equal(count(plain, "sw["), 4 * uq * loops, JSON.stringify(tuning));
      assert.equal(count(shuf, "sw["), uq * loops, JSON.stringify(tuning));
      assert.equal(count(shuf, "dot4U8Packed("), count(plain, "dot4U8Packed("));
      // per quad: halves with lane ^ 2, bytes with lane ^ 1, no gather
      assert.equal(count(shuf, "subgroupShuffleXor("), 2 * uq * 2, JSON.stringify(tuning));
      assert.match(shuf, /subgroupShuffleXor\(\(r0 >> 16u\) \| \(r0 << 16u\), 2u\)/);
      assert.match(shuf, /subgroupShuffleXor\(\(h0 << sB\) \| \(h0 >> \(32u - sB\)\), 1u\)/);
      assert.doesNotMatch(shuf, /0xffu\) << 8u/);
      assert.doesNotMatch(plain, /subgroup/);
    }
  }
  // lane pj loads token pj of the quad (QB·WPTV words further per token); masks and rotation per lane
  const s = blockValueWgsl(cfg({ v: "q2", tuning: { vshuf: true, block: 512 } }));
  assert.match(s, /let poff = pj \* 1024u; let pq = pj \* QB;/); // QB 128 quads × 8 words
  assert.match(s, /let mA = select\(0xffff0000u, 0x0000ffffu, pj < 2u\);/);
  assert.match(s, /let sB = select\(8u, 24u, \(pj & 1u\) == 0u\);/);
});

Deno.test("block attention wgsl: sred reduces within subgroups first (two barriers per reduction)", () => {
  const count = (code: string, x: string) => code.split(x).length - 1;
  for (const nblk of [1, 4]) {
    const base = { k: "q2", v: "q2", tuning: { block: 512, tq: 2, tseq: true, nblk } } as const;
    const plain = blockScoreWgsl(cfg(base));
    const sred = blockScoreWgsl(cfg({ ...base, tuning: { ...base.tuning, sred: true } }));
    assert.equal(count(plain, "workgroupBarrier()"), 7); // the query's + three per reduction
    assert.equal(count(sred, "workgroupBarrier()"), 5); // the query's + two per reduction
    assert.match(sred, /@builtin\(subgroup_invocation_id\) sid: u32, @builtin\(subgroup_size\) sgs: u32/);
    assert.match(sred, /let gm0 = subgroupMax\(/);
    assert.match(sred, /let gsmx = subgroupMax\(/);
    assert.match(sred, /let gL0 = subgroupAdd\(l0\);/);
    assert.match(sred, /rv\[\(lid \/ sgs\) \* NV \+ 0u\] = gm0;/);
    assert.match(sred, /for \(var j = 1u; j < WQ \/ sgs; j\+\+\)/);
    assert.doesNotMatch(sred, /rv2\[lid/);
    assert.doesNotMatch(plain, /subgroup/);
  }
});

Deno.test("block attention wgsl: qsub computes the int8 query in the score kernel (qkv bound, no records, no extra barrier)", () => {
  const count = (code: string, x: string) => code.split(x).length - 1;
  for (const [k, nblk, numHeads] of [["q2", 1, 32], ["q4", 4, 32], ["q8", 1, 40]] as const) {
    const base = { k, v: "q4", numHeads, tuning: { block: 512, nblk } } as const;
    const plain = blockScoreWgsl(cfg(base));
    const qsub = blockScoreWgsl(cfg({ ...base, tuning: { ...base.tuning, qsub: true } }));
    assert.match(plain, /var<storage, read> qrec: array<vec4<u32>>;/);
    assert.match(qsub, /@group\(0\) @binding\(1\) var<storage, read> qkv: array<f32>;/);
    assert.doesNotMatch(qsub, /qrec/);
    // the same barriers: the query's barrier is the one the dot products already waited for
    assert.equal(count(qsub, "workgroupBarrier()"), count(plain, "workgroupBarrier()"));
    // subgroup-uniform loops over the D/4 plane words, maxima and sums over the subgroup, one writer subgroup
    assert.equal(count(qsub, "for (var k = 0u; k < D / 4u; k += sgs)"), 2);
    assert.match(qsub, /let lead = subgroupAny\(lid == 0u\);/);
    assert.match(qsub, /let qx0 = subgroupMax\(qm0\);/);
    assert.match(qsub, /let qt0 = subgroupAdd\(qn0\);/);
    assert.match(qsub, /let dd = wi \* KCPW \+ j \* PL \+ sp;/); // the query kernel's byte order
    assert.match(qsub, /if \(lead\) \{\n\s+qp\[pw \* NV \+ 0u\] = r0;/);
    // 40 heads over 8 KV heads: 5 per KV head, two head lanes; lane 1 holds head 4 and zeros
    if (numHeads === 40) {
      assert.match(qsub, /let qt1 = subgroupAdd\(qn1\);/);
      assert.match(qsub, /qkv\[qb \+ 4u \* D \+ dd\] \* qscale, 0\.0, 0\.0, 0\.0\)/);
    }
  }
});

Deno.test("block attention wgsl: rsub — every load before the reductions, three barriers, subgroup folds", () => {
  const count = (code: string, x: string) => code.split(x).length - 1;
  const heads = { numHeads: 32, numKvHeads: 8, headDim: 128 };
  const trees = blockReduceWgsl({ ...heads, tuning: { rdims: 32 } });
  const rsub = blockReduceWgsl({ ...heads, tuning: { rdims: 32, rsub: true } });
  assert.match(trees, /let M = max\(tree_max\(lid, mloc\), sn\);/); // barrier trees (7 barriers each)
  assert.doesNotMatch(trees, /subgroup/);
  // three barriers at one weight block; two more per further block, inside a uniform `xb > 0` branch
  assert.equal(count(rsub, "workgroupBarrier()"), 5);
  assert.match(rsub, /if \(xb > 0u\) \{\n\s+workgroupBarrier\(\);/);
  assert.match(rsub, /const SL = 4u;\nconst PRE = 16u;/);
  // the partials are loaded before the first reduction
  const pre = rsub.indexOf("let pv15 = "), first = rsub.indexOf("subgroupMax(mloc)");
  assert.ok(pre > 0 && first > pre, "partials loaded before the maximum");
  assert.match(rsub, /let gq = subgroupAdd\(qk\);/);
  assert.match(rsub, /let gl = subgroupAdd\(lloc\);/);
  assert.match(rsub, /@builtin\(subgroup_invocation_id\) sid: u32, @builtin\(subgroup_size\) sgs: u32/);
  // the same uniform and bindings as the tree kernel
  for (
    const x of [
      "struct P { io: vec4<u32>, nw: vec4<u32>, sc: vec4<f32> }",
      "@binding(1) var<storage, read> qkv",
      "@binding(2) var<storage, read> part",
      "@binding(3) var<storage, read_write> out",
    ]
  ) {
    assert.ok(trees.includes(x) && rsub.includes(x), x);
  }
});

Deno.test("block attention wgsl: subgroup defaults — qsub and rsub always; vshuf for 2-bit V; sred and nblk 2 for {q2, q2} (block 1024, tq 2, nblk 4 on 32 lanes)", () => {
  assert.deepEqual(subgroupBlockTuning("q2", "q2"), {
    qsub: true,
    rsub: true,
    vshuf: true,
    sred: true,
    nblk: 2,
  });
  // where the probe saw subgroups of 32 lanes, {q2, q2} also takes the shuffled weights at 16 quads per step and
  // 1024-token blocks, 2 quads per score invocation, 4 blocks per score workgroup, the score reductions without
  // their leading barriers, the split's vec4 stores, 64 dims per reduce workgroup and the score epilogue (stx,
  // sepi, sexp2, sbias)
  assert.deepEqual(subgroupBlockTuning("q2", "q2", 32), {
    qsub: true,
    rsub: true,
    vshuf: true,
    sred: true,
    nblk: 4,
    wshfl: true,
    uq: 16,
    vsum1: true,
    block: 1024,
    tq: 2,
    sbar2: true,
    vst4: true,
    rdims: 64,
    stx: true,
    sepi: true,
    sexp2: true,
    sbias: true,
  });
  // merged over the format's default it is 128 score invocations taking their 2 quads one after the other
  const dflt = {
    k: "q2",
    v: "q2",
    tuning: { ...defaultBlockTuning("q2", "q2"), ...subgroupBlockTuning("q2", "q2", 32) },
  } as const;
  assert.match(blockScoreWgsl(cfg(dflt)), /@workgroup_size\(128\)/);
  assert.equal(blockScoreBlocks(cfg(dflt)), 4);
  assert.equal(blockTokens(cfg(dflt)), 1024);
  assert.deepEqual(subgroupBlockTuning("q2", "q2", 8), subgroupBlockTuning("q2", "q2"));
  assert.deepEqual(subgroupBlockTuning("q4", "q4", 32), { qsub: true, rsub: true });
  assert.deepEqual(subgroupBlockTuning("q4", "q2"), { qsub: true, rsub: true, vshuf: true });
  assert.deepEqual(subgroupBlockTuning("q8", "q2"), { qsub: true, rsub: true, vshuf: true });
  assert.deepEqual(subgroupBlockTuning("q4", "q4"), { qsub: true, rsub: true });
  assert.deepEqual(subgroupBlockTuning("q2", "q4"), { qsub: true, rsub: true });
  // merged over the format's default: {q2, q2} scores 2 blocks per workgroup instead of 4
  const merged = { k: "q2", v: "q2", tuning: { ...subgroupBlockTuning("q2", "q2") } } as const;
  assert.equal(
    blockScoreBlocks(cfg({ ...merged, tuning: { ...merged.tuning, block: 512, tq: 2, tseq: true } })),
    2,
  );
  // the generators themselves never turn them on (BlockAttention.create does, after probing the device)
  assert.equal(DEFAULT_BLOCK_TUNING.vshuf, false);
  assert.equal(DEFAULT_BLOCK_TUNING.sred, false);
  assert.equal(DEFAULT_BLOCK_TUNING.qsub, false);
  assert.equal(DEFAULT_BLOCK_TUNING.rsub, false);
  assert.equal(DEFAULT_BLOCK_TUNING.wshfl, false);
  assert.equal(DEFAULT_BLOCK_TUNING.vsum1, false);
  assert.doesNotMatch(blockReduceWgsl({ numHeads: 32, numKvHeads: 8, headDim: 128 }), /subgroup/);
  assert.doesNotMatch(blockValueWgsl(cfg({ k: "q2", v: "q2", tuning: {} })), /subgroup/);
  assert.doesNotMatch(blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: {} })), /subgroup/);
});

Deno.test("block attention wgsl: blockRowsInRegisters — false with a row loop (kstep, 8-bit K at D 128)", () => {
  assert.equal(blockRowsInRegisters(cfg({ k: "q2", v: "q2", tuning: {} })), true);
  assert.equal(blockRowsInRegisters(cfg({ k: "q2", v: "q2", tuning: { kstep: 1 } })), false);
  assert.equal(blockRowsInRegisters(cfg({ k: "q8", v: "q4", tuning: { block: 256 } })), false);
  assert.equal(blockRowsInRegisters(cfg({ k: "q8", v: "q4", headDim: 32, tuning: { block: 256 } })), true);
});

Deno.test("block attention wgsl: wshfl — one weights word per lane per step, each quad's vec4 by four shuffles where subgroups have 32 lanes, the vec4 loads elsewhere", () => {
  const base = {
    k: "q2",
    v: "q2",
    tuning: { block: 512, wgv: 64, vshuf: true, uq: 16, wshfl: true },
  } as const;
  const w = blockValueWgsl(cfg(base));
  assert.match(w, /@binding\(5\) var<storage, read> wqw: array<u32>;/);
  assert.match(w, /@builtin\(subgroup_size\) sgs: u32/);
  // both paths, chosen by the subgroup size (uniform)
  assert.match(w, /if \(sgs == 32u\) \{/);
  // uq 16: two words per lane (quads 0–7, 8–15 of the step), lane 4j + h holds quad j's head h
  assert.match(w, /let wv0 = wqw\[\(qb \+ q0 \+ 0u \+ min\(sid \/ 4u, 7u\) \* 2u\) \* 4u \+ sid % 4u\];/);
  assert.match(w, /let wv1 = wqw\[\(qb \+ q0 \+ 16u \+ min\(sid \/ 4u, 7u\) \* 2u\) \* 4u \+ sid % 4u\];/);
  assert.ok(
    w.includes(
      "let W9_0 = vec4<u32>(subgroupShuffle(wv1, 4u), subgroupShuffle(wv1, 5u), subgroupShuffle(wv1, 6u), subgroupShuffle(wv1, 7u));",
    ),
  );
  // the fallback path loads every quad's vec4 (16 of them per step)
  assert.equal(w.match(/= wq\[\(qb \+ q0 \+ \d+u\) \* NV \+ 0u\];/g)?.length, 2 * 16);
  // uq 4: one word per lane, lanes past the step's quads clamped to its last
  const w4 = blockValueWgsl(cfg({ ...base, tuning: { ...base.tuning, uq: 4 } }));
  assert.match(w4, /min\(sid \/ 4u, 3u\)/);
  assert.doesNotMatch(w4, /wv1/);
  // uq 16 only with wshfl; wshfl needs vshuf, ≤ 4 heads per KV head and no pipe
  assert.throws(
    () => blockValueWgsl(cfg({ k: "q2", v: "q2", tuning: { uq: 16 } })),
    /uq 16 must be 1, 2, 4 or 8/,
  );
  assert.throws(
    () => blockValueWgsl(cfg({ k: "q2", v: "q2", tuning: { wshfl: true } })),
    /wshfl needs vshuf, ≤ 4 query heads per KV head \(got 4\) and no pipe/,
  );
  assert.throws(
    () => blockValueWgsl(cfg({ ...base, tuning: { ...base.tuning, uq: 8, pipe: true } })),
    /wshfl needs vshuf/,
  );
  assert.throws(
    () => blockValueWgsl(cfg({ ...base, numHeads: 40, tuning: { ...base.tuning, uq: 8 } })),
    /\(got 5\)/,
  );
  assert.doesNotMatch(blockValueWgsl(cfg({ k: "q2", v: "q2", tuning: { vshuf: true } })), /wqw|sgs/);
  // D < 128: a row of lanes (D/4) is less than a 32-lane subgroup, which then holds lanes of two rows on different
  // quads — the shuffles would take the other row's weights — so only the vec4 loads are generated
  const w64 = blockValueWgsl(cfg({ ...base, headDim: 64, numHeads: 16, numKvHeads: 4 }));
  assert.doesNotMatch(w64, /subgroupShuffle\(wv|sgs == 32u/);
  assert.equal(w64.match(/= wq\[\(qb \+ q0 \+ \d+u\) \* NV \+ 0u\];/g)?.length, 2 * 16);
});

Deno.test("block attention wgsl: vsum1 — the first subgroup adds the others' lane sums and writes the split; half the workgroup memory at wgv 64", () => {
  const t = { block: 512, wgv: 64, uq: 8 };
  const two = cfg({ k: "q2", v: "q2", tuning: t });
  const one = cfg({ k: "q2", v: "q2", tuning: { ...t, vsum1: true } });
  assert.match(blockValueWgsl(two), /var<workgroup> red: array<vec4<u32>, 256>;/);
  assert.match(blockValueWgsl(one), /var<workgroup> red: array<vec4<u32>, 128>;/);
  assert.equal(blockSharedBytes(one).value * 2, blockSharedBytes(two).value);
  const w = blockValueWgsl(one);
  assert.match(
    w,
    /if \(ql > 0u\) \{\n {4}red\[\(\(ql - 1u\) \* D \+ dg \* 4u \+ 0u\) \* NV \+ 0u\] = ia0_0;/,
  );
  assert.match(w, /if \(ql == 0u\) \{/);
  assert.ok(w.includes("var tot = ia3_0 >> vec4<u32>(6u);"));
  // one subgroup's worth of invocations per workgroup (wgv 32 at D 128): nothing to add, the plain epilogue
  assert.doesNotMatch(
    blockValueWgsl(cfg({ k: "q2", v: "q2", tuning: { ...t, wgv: 32, vsum1: true } })),
    /ql > 0u/,
  );
  // the first subgroup's lanes write the heads' statistics: more heads per KV head than D/4 is an error
  assert.throws(
    () => blockValueWgsl(cfg({ k: "q2", v: "q2", headDim: 16, numHeads: 40, tuning: { ...t, vsum1: true } })),
    /vsum1 needs ≤ D\/4 = 4 query heads per KV head, got 5/,
  );
});

Deno.test("block attention wgsl: vpair — 8 dims per value invocation, one xor-1 shuffle per quad, weights shuffled from one word per lane where subgroups have 32 lanes", () => {
  const base = {
    k: "q2",
    v: "q2",
    tuning: { block: 1024, wgv: 64, vshuf: true, uq: 8, vpair: true },
  } as const;
  const w = blockValueWgsl(cfg(base));
  // D/8 = 16 invocations per quad, so wgv 64 is 4 streams; each lane loads two rows' word per quad
  assert.match(w, /const LS = 16u;\nconst QL = 4u;/);
  assert.equal(
    w.match(/let a\d+ = sw\[ab\d+ \+ poff\]; let c\d+ = sw\[ab\d+ \+ poff \+ 2048u\];/g)?.length,
    8 * 2,
  );
  // one trade per quad (both paths, full blocks and partial blocks: 4 × 8), no vshuf transposes
  assert.equal(w.match(/subgroupShuffleXor\(select\(F1_\d+, F2_\d+, isA\), 1u\)/g)?.length, 4 * 8);
  assert.doesNotMatch(w, /subgroupShuffleXor\([^)]*, 2u\)/);
  // 32 dot products per quad: 2 words × 4 planes × 4 heads (8 accumulators)
  assert.equal(w.match(/var ia\d_\d = vec4<u32>\(0u\);/g)?.length, 8);
  assert.equal(w.match(/dot4U8Packed\(xx, W3\.x\)/g)?.length, 8 * 4);
  // where subgroups have 32 lanes: uq / 4 weight words per lane, each quad's vec4 from its stream's half
  assert.match(w, /if \(sgs == 32u\) \{/);
  assert.match(w, /let wv1 = wqw\[\(qb \+ q0 \+ \(4u \+ \(sid % 16u\) \/ 4u\) \* 4u\) \* 4u \+ sid % 4u\];/);
  assert.ok(w.includes("let W5 = vec4<u32>(subgroupShuffle(wv1, half + 4u),"));
  // elsewhere the vec4 loads
  assert.match(w, /let W7 = wq\[qb \+ q0 \+ 28u\];/);
  // lane b's words are bytes 1 and 3: dims 16·wd + 4 + k / 12 + k
  assert.ok(w.includes("let dd = wd * 16u + select(7u, 3u, isA);"));
  assert.ok(w.includes("let dd = wd * 16u + select(15u, 11u, isA);"));
  // one stream's sums in workgroup memory: 2 KB at D 128
  assert.match(w, /var<workgroup> red: array<vec4<u32>, 128>;/);
  assert.equal(blockSharedBytes(cfg(base)).value, 2048);
  // D 64: 8-lane streams, the vec4 weights only
  const w64 = blockValueWgsl(cfg({ ...base, headDim: 64, numHeads: 16, numKvHeads: 4 }));
  assert.match(w64, /const LS = 8u;\nconst QL = 8u;/);
  assert.doesNotMatch(w64, /sgs == 32u|subgroupShuffle\(wv/);
  // uq 16 is allowed with vpair; its conditions are a typed error naming the value
  assert.doesNotThrow(() => blockValueWgsl(cfg({ ...base, tuning: { ...base.tuning, uq: 16 } })));
  const bad: [Partial<BlockAttentionConfig>, RegExp][] = [
    [{ tuning: { ...base.tuning, vshuf: false } }, /vpair needs vshuf/],
    [{ v: "q4" }, /2-bit V \(got q4\)/],
    [{ numHeads: 40 }, /≤ 4 query heads per KV head \(got 5\)/],
    [{ tuning: { ...base.tuning, pipe: true } }, /no pipe/],
    [{ tuning: { ...base.tuning, uq: 2 } }, /uq 4, 8 or 16 \(got 2\)/],
  ];
  for (const [over, re] of bad) {
    assert.throws(
      () => blockValueWgsl(cfg({ ...base, ...over })),
      (e: Error) => e instanceof QuantConfigError && re.test(e.message),
      JSON.stringify(over),
    );
  }
});

Deno.test("block attention wgsl: vsub — plane 3 from the unmasked bytes, recovered once after the loop", () => {
  // the plane masks 0x03030303 << 2k, as the generator prints them (decimal)
  const masks = (w: string) => w.match(/ & (?:50529027|202116108|808464432|3233857728)u/g)?.length ?? 0;
  const base = { k: "q2", v: "q2" } as const;
  for (
    const tuning of [
      { uq: 2 }, // the byte gather
      { uq: 2, pipe: true }, // … software-pipelined
      { block: 1024, wgv: 64, vshuf: true, wshfl: true, uq: 16, vsum1: true }, // the {q2, q2} default's shape
      { block: 1024, wgv: 64, vshuf: true, uq: 8, vpair: true },
    ]
  ) {
    const off = blockValueWgsl(cfg({ ...base, tuning }));
    const on = blockValueWgsl(cfg({ ...base, tuning: { ...tuning, vsub: true } }));
    // three ANDs per gathered word instead of four, so 3/4 of the masks; plane 3 takes the word itself
    assert.equal(masks(on) * 4, masks(off) * 3, JSON.stringify(tuning));
    assert.ok(masks(on) > 0, JSON.stringify(tuning));
    assert.doesNotMatch(on, / & 3233857728u/);
    assert.doesNotMatch(off, /vsub/);
    // the subtraction once per accumulator of plane 3, before the shifts (x 0/1 with vpair, heads u otherwise)
    const subs = on.match(
      /ia(\d)_3 = ia\1_3 - ia\1_0 - ia\1_1 - ia\1_2;|ia3_(\d) = ia3_\2 - ia0_\2 - ia1_\2 - ia2_\2;/g,
    );
    assert.equal(subs?.length, tuning.vpair ? 2 : 1, JSON.stringify(tuning));
    assert.ok(on.indexOf("- ia") < on.indexOf(">> vec4<u32>(6u)"), JSON.stringify(tuning));
  }
  // 4-bit V has no fourth plane: a typed error naming the format
  assert.throws(
    () => blockValueWgsl(cfg({ k: "q4", v: "q4", tuning: { vsub: true } })),
    (e: Error) => e instanceof QuantConfigError && /vsub needs 2-bit V, got q4/.test(e.message),
  );
});

Deno.test("block attention wgsl: kacc2 — 2-bit K planes from the word and one shift, the ×4 planes folded in f32", () => {
  const base = { k: "q2", v: "q2" } as const;
  const count = (w: string, re: RegExp) => w.match(re)?.length ?? 0;
  for (
    const [tuning, folds] of [
      [{ block: 1024, tq: 2, tseq: true, nblk: 4 }, 2], // one quad's rows at a time: a fold after each quad
      [{ block: 512, tq: 1 }, 1], // every row before the dot products
      [{ block: 512, tq: 1, kstep: 1 }, 1], // the row loop
    ] as const
  ) {
    const off = blockScoreWgsl(cfg({ ...base, tuning }));
    const on = blockScoreWgsl(cfg({ ...base, tuning: { ...tuning, kacc2: true } }));
    const what = JSON.stringify(tuning);
    // the same dot products; no shift by 2 or 6 (planes 1 and 3 keep their ×4), only by 4
    assert.equal(count(on, /dot4I8Packed/g), count(off, /dot4I8Packed/g), what);
    assert.doesNotMatch(on, />> [26]u\) & 50529027u/, what);
    assert.match(off, />> 2u\) & 50529027u/, what);
    assert.ok(count(on, / & 202116108u/g) > 0 && count(on, / >> 4u\) & 202116108u/g) > 0, what);
    // half the planes go to iu (from the same 1.5·2^23 bits), folded into it once per token per fold point
    assert.equal(count(on, /iu\d+_0 \+= /g) * 2, count(on, /(?:it|iu)\d+_0 \+= /g), what);
    assert.match(on, /var iu0_0 = vec4<i32>\(0x4b400000i\);/, what);
    const fold =
      /it(\d+)_0 = bitcast<vec4<i32>>\(bitcast<vec4<f32>>\(it\1_0\) \+ 0\.25 \* \(bitcast<vec4<f32>>\(iu\1_0\) - 12582912\.0\)\);/g;
    assert.equal(count(on, /kacc2: it \+= iu/g), folds, what);
    assert.equal(count(on, fold), 4 * (tuning.tq ?? 1), what);
    assert.doesNotMatch(off, /iu0_0/, what);
  }
  // 4- and 8-bit K: a typed error naming the format
  for (const k of ["q4", "q8"] as const) {
    assert.throws(
      () => blockScoreWgsl(cfg({ k, v: "q4", tuning: { kacc2: true } })),
      (e: Error) =>
        e instanceof QuantConfigError && new RegExp(`kacc2 needs 2-bit K, got ${k}`).test(e.message),
    );
  }
});

Deno.test("block attention wgsl: sbar2 — the score reductions without their leading barriers, sums in their own arrays", () => {
  const count = (w: string, re: RegExp) => w.match(re)?.length ?? 0;
  for (
    const tuning of [
      { block: 1024, tq: 2, tseq: true, nblk: 4, sred: true }, // {q2, q2}'s default with 32-lane subgroups
      { block: 512, tq: 1, nblk: 8, sred: true },
      { block: 256, sred: true, qsub: true }, // one block per workgroup, the query in the prologue
    ] as const
  ) {
    const off = blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning }));
    const on = blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: { ...tuning, sbar2: true } }));
    const what = JSON.stringify(tuning);
    // two barriers fewer per block (the loop body holds one block), the rest of the kernel the same
    assert.equal(count(on, /workgroupBarrier\(\)/g), count(off, /workgroupBarrier\(\)/g) - 2, what);
    assert.equal(count(on, /dot4I8Packed/g), count(off, /dot4I8Packed/g), what);
    // the sums go through rl (declared), the maxima still through rv; without sbar2 there is no rl
    assert.match(on, /var<workgroup> rl: array<vec4<f32>, \d+>;/, what);
    assert.match(on, /rl\[\(lid \/ sgs\) \* NV \+ 0u\] = gL0;/, what);
    assert.match(on, /rv\[\(lid \/ sgs\) \* NV \+ 0u\] = gm0;/, what);
    assert.doesNotMatch(off, /\brl\[/, what);
    // after the sums' barrier nothing reads rv (the next block's maxima may write it with no barrier first)
    const sums = on.slice(on.indexOf("rl[(lid / sgs)"));
    assert.doesNotMatch(sums.slice(0, sums.indexOf("bst[bo")), /\brv\[/, what);
  }
  assert.ok(
    blockSharedBytes(cfg({ k: "q2", v: "q2", tuning: { sred: true, sbar2: true } })).score >
      blockSharedBytes(cfg({ k: "q2", v: "q2", tuning: { sred: true } })).score,
  );
  // without sred (the barrier trees) a typed error naming the value
  assert.throws(
    () => blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: { sbar2: true, sred: false } })),
    (e: Error) => e instanceof QuantConfigError && /sbar2 needs sred \(got false\)/.test(e.message),
  );
});

Deno.test("block attention wgsl: sbar1 — one barrier per score block, the sums folded after the next block's", () => {
  const count = (w: string, re: RegExp) => w.match(re)?.length ?? 0;
  for (
    const [tuning, nb] of [
      [{ block: 1024, tq: 2, tseq: true, nblk: 4, sred: true }, 4],
      [{ block: 512, tq: 1, nblk: 8, sred: true }, 8],
      [{ block: 256, sred: true, nblk: 1 }, 1],
    ] as const
  ) {
    const two = blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: { ...tuning, sbar2: true } }));
    const one = blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: { ...tuning, sbar1: true } }));
    const what = JSON.stringify(tuning);
    // textually the same count: the loop body (one block) loses one barrier, one more follows the loop
    assert.equal(count(one, /workgroupBarrier\(\)/g), count(two, /workgroupBarrier\(\)/g), what);
    // the maxima at the block's parity offset, the sums written with no barrier, folded by invocation 0 (after
    // the next block's barrier, and once after the loop) in subgroup order
    assert.match(one, /rv\[\(rpo \+ \(lid \/ sgs\)\) \* NV \+ 0u\] = gm0;/, what);
    assert.match(one, /rl\[\(rpo \+ lid \/ sgs\) \* NV \+ 0u\] = gL0;/, what);
    assert.equal(count(one, /var L0 = rl\[\((rpp|ppo) \+ 0u\) \* NV \+ 0u\];/g), nb > 1 ? 2 : 1, what);
    assert.match(one, /\/\/ sbar1: the last block's sums\n {2}workgroupBarrier\(\);/, what);
    assert.equal(count(one, /dot4I8Packed/g), count(two, /dot4I8Packed/g), what);
  }
  // per block: the loop body of the nblk 4 schedule has 1 barrier with sbar1, 2 with sbar2
  const body = (w: string) =>
    w.slice(
      w.indexOf("for (var jb"),
      w.indexOf("// sbar1: the last") > 0 ? w.indexOf("// sbar1: the last") : w.length,
    );
  const t4 = { block: 1024, tq: 2, tseq: true, nblk: 4, sred: true };
  assert.equal(
    count(
      body(blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: { ...t4, sbar1: true } }))),
      /workgroupBarrier/g,
    ),
    1,
  );
  assert.equal(
    count(
      body(blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: { ...t4, sbar2: true } }))),
      /workgroupBarrier/g,
    ),
    2,
  );
  assert.throws(
    () => blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: { sbar1: true, sred: false } })),
    (e: Error) => e instanceof QuantConfigError && /sbar1 needs sred \(got false\)/.test(e.message),
  );
});

Deno.test("block attention wgsl: stouch — one word of each line of the next block's K rows and sz words, consumed after the dot products", () => {
  const count = (w: string, re: RegExp) => w.match(re)?.length ?? 0;
  for (
    const [k, tuning, kt, zt] of [
      // 2-bit K at D 128: 8-word rows, 4 tokens a line; 1024 tokens = 256 K lines + 64 sz lines over 128 lanes
      ["q2", { block: 1024, tq: 2, tseq: true, nblk: 4 }, 2, 1],
      // 4-bit K: 16-word rows, 2 tokens a line; 512 tokens = 256 K lines + 32 sz lines over 128 lanes
      ["q4", { block: 512, tq: 1, nblk: 8 }, 2, 1],
      // 2-bit K, 256 tokens over 64 lanes: 64 K lines (one each), 16 sz lines
      ["q2", { block: 256, tq: 1, nblk: 2 }, 1, 1],
    ] as const
  ) {
    const off = blockScoreWgsl(cfg({ k, v: k, tuning }));
    const on = blockScoreWgsl(cfg({ k, v: k, tuning: { ...tuning, stouch: true } }));
    const what = JSON.stringify(tuning);
    assert.equal(count(on, /tk\d+ = sw\[kr\.x \+/g), kt, what);
    assert.equal(count(on, /tz\d+ = sw\[select\(kr\.y/g), zt, what);
    // issued at the block's start for the next block only, consumed after the dot products, kept by a dead store
    assert.match(on, /if \(jb \+ 1u < \d+u && t0 \+ BT < cnt\) \{\n {4}let nt = t0 \+ BT;/, what);
    const use = on.indexOf("tch ^= tk0");
    assert.ok(use > on.lastIndexOf("dot4I8Packed") && use < on.indexOf("let Sk0"), what);
    assert.match(
      on,
      /if \(lid == p\.io\.x \+ 0xffff0000u\) \{ bst\[0\] = vec4<f32>\(bitcast<f32>\(tch\)\); \}/,
      what,
    );
    // nothing else changes: the same dot products and stores
    assert.equal(count(on, /dot4I8Packed/g), count(off, /dot4I8Packed/g), what);
    assert.equal(count(on, /wq\[/g), count(off, /wq\[/g), what);
    assert.doesNotMatch(off, /tch/, what);
  }
  assert.throws(
    () => blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: { stouch: true, nblk: 1 } })),
    (e: Error) =>
      e instanceof QuantConfigError &&
      /stouch needs more than one block per score workgroup \(nblk 1, 1 /.test(e.message),
  );
  // the default nblk (not given) falls back to 1 where the K rows do not stay in registers (2-bit K at D 32 takes
  // the word loop): stouch is refused there too, naming both (the H100 conformance caught it compiling to WGSL
  // that named the never-declared touch register)
  assert.throws(
    () =>
      blockScoreWgsl({
        numHeads: 8,
        numKvHeads: 2,
        headDim: 32,
        maxBatch: 1,
        k: "q2",
        v: "q2",
        tuning: { stouch: true },
      }),
    (e: Error) => e instanceof QuantConfigError && /\(nblk 4, 1 with these K rows\)/.test(e.message),
  );
});

Deno.test("block attention wgsl: sbias — one select per token, the NEG of a past-the-count score as an fma addend", () => {
  const count = (w: string, re: RegExp) => w.match(re)?.length ?? 0;
  for (
    const tuning of [
      { block: 1024, tq: 2, tseq: true, nblk: 4, sred: true, sbar2: true },
      { block: 256, tq: 1, nblk: 1 },
    ]
  ) {
    const off = blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning }));
    const on = blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: { ...tuning, sbias: true } }));
    const what = JSON.stringify(tuning);
    const scores = count(off, /let s\d+_0 = select\(vec4<f32>\(NEG\), qsc\[0u\] \* /g);
    assert.ok(scores > 0, what);
    assert.equal(count(on, /let s\d+_0 = select/g), 0, what);
    assert.equal(
      count(on, /let s\d+_0 = fma\(qsc\[0u\], \(Sk\d+ \* .* - zk\d+ \* qf0\), nb\d+\);/g),
      scores,
      what,
    );
    assert.equal(count(on, /let nb\d+ = vec4<f32>\(select\(NEG, 0\.0, ok\d+\)\);/g), scores, what);
  }
  // the arithmetic in f32: fma(a, b, 0) = a·b; fma(a, b, NEG) = NEG for |a·b| below half NEG's ulp (2^104)
  const NEG = Math.fround(-3.0e38);
  for (const [a, b] of [[0.5, 123.25], [2 ** -7, -3e4], [1.4426950408889634, 7.1e5]]) {
    const ab = Math.fround(Math.fround(a) * Math.fround(b));
    assert.equal(Math.fround(Math.fround(a) * Math.fround(b) + 0), ab);
    assert.equal(Math.fround(Math.fround(a) * Math.fround(b) + NEG), NEG);
  }
});

Deno.test("block attention wgsl: sexp2 — scores in log2 units, exp2, the block maximum stored in natural units", () => {
  const count = (w: string, re: RegExp) => w.match(re)?.length ?? 0;
  for (
    const tuning of [
      { block: 1024, tq: 2, tseq: true, nblk: 4, sred: true, sbar2: true, qsub: true },
      { block: 256, tq: 1, nblk: 1, sred: true, sbar1: true },
      { block: 512, tq: 1, nblk: 8 },
    ]
  ) {
    const off = blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning }));
    const on = blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: { ...tuning, sexp2: true } }));
    const what = JSON.stringify(tuning);
    // every exp becomes an exp2, one per score and head
    assert.equal(count(on, /\bexp\(/g), 0, what);
    assert.ok(count(off, /\bexp\(/g) > 0, what);
    assert.equal(count(on, /\bexp2\(/g), count(off, /\bexp\(/g), what);
    // the query's scales (qsub's pow2 or the records') carry log2 e, once
    assert.equal(count(on, /qsc\[[^\]]+\] = [^;]+ \* 1\.4426950408889634;/g), 1, what);
    assert.equal(count(off, /1\.4426950408889634/g), 0, what);
    // every stored block maximum goes back to natural units; nothing else changes
    const stores = count(off, /bst\[bo \+ NV \+ 0u\] = p?m0;/g);
    assert.ok(stores > 0, what);
    assert.equal(count(on, /bst\[bo \+ NV \+ 0u\] = \(p?m0 \* 0\.6931471805599453\);/g), stores, what);
    const strip = (w: string) =>
      w.replaceAll("exp2(", "exp(").replaceAll(" * 1.4426950408889634", "").replace(
        /\((p?m0) \* 0\.6931471805599453\)/g,
        "$1",
      );
    assert.equal(strip(on), off, what);
  }
  // ln 2 · log2 e rounds to 1 in f32, and the two constants are the f64 values of log2 e and ln 2
  assert.equal(Math.fround(Math.fround(1.4426950408889634) * Math.fround(0.6931471805599453)), 1);
  assert.equal(1.4426950408889634, Math.LOG2E);
  assert.equal(0.6931471805599453, Math.LN2);
});

Deno.test("block attention wgsl: sepi — weights packed by shifts and adds, the block sums folded by invocation 0 alone", () => {
  const count = (w: string, re: RegExp) => w.match(re)?.length ?? 0;
  for (
    const tuning of [
      { block: 1024, tq: 2, tseq: true, nblk: 4, sred: true, sbar2: true },
      { block: 256, tq: 1, nblk: 1, sred: true },
      { block: 512, tq: 1, nblk: 8 },
    ]
  ) {
    const off = blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning }));
    const on = blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: { ...tuning, sepi: true } }));
    const what = JSON.stringify(tuning);
    assert.equal(count(on, /pack4xU8/g), 0, what);
    assert.equal(count(off, /pack4xU8/g), 4 * count(off, /wq\[/g), what);
    // one packed vec4 (the 4 heads' words) per quad: w0 − 2^23's bits + w1 << 8 + w2 << 16 + w3 << 24
    assert.equal(
      count(
        on,
        /= \(wb\d+_0 - vec4<u32>\(0x4b000000u\)\) \+ \(wb\d+_0 << vec4<u32>\(8u\)\) \+ \(wb\d+_0 << vec4<u32>\(16u\)\) \+ \(wb\d+_0 << vec4<u32>\(24u\)\);/g,
      ),
      count(off, /wq\[/g),
      what,
    );
    // with sred the sums' fold sits inside invocation 0's `if`; without, the tree's fold is unchanged
    const fold = on.slice(on.indexOf("// block sums"));
    if (tuning.sred) {
      assert.ok(fold.indexOf("if (lid == 0u) {") < fold.indexOf("var L0 = "), what);
    } else {
      assert.equal(fold, off.slice(off.indexOf("// block sums")), what);
    }
  }
  // the arithmetic: (0x4b000000 + w0) − 0x4b000000 + ((0x4b000000 + wi) << 8i) = pack4xU8(w) for every byte
  for (const w of [[0, 0, 0, 0], [255, 255, 255, 255], [1, 128, 7, 200], [17, 0, 255, 3]]) {
    const b = w.map((x) => 0x4b000000 + x);
    const packed =
      ((b[0] - 0x4b000000) + ((b[1] << 8) >>> 0) + ((b[2] << 16) >>> 0) + ((b[3] << 24) >>> 0)) >>> 0;
    assert.equal(packed, (w[0] | (w[1] << 8) | (w[2] << 16) | (w[3] << 24)) >>> 0, String(w));
  }
});

Deno.test("block attention wgsl: stx — transposing butterflies for the score kernel's block max and sums", () => {
  const count = (w: string, re: RegExp) => w.match(re)?.length ?? 0;
  const tuning = { block: 1024, tq: 2, tseq: true, nblk: 4, sred: true, sbar2: true };
  const on = blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: { ...tuning, stx: true } }));
  // per reduction: 4 + 2 + 1 exchanges then the loop's butterfly (one shuffle in the text), twice
  assert.equal(count(on, /subgroupShuffleXor\(select\(/g), 2 * 7);
  assert.equal(count(on, /subgroupShuffleXor\(xv, o\)/g), 2);
  // the fallback below 8 lanes: one built-in per value (8 + 8); the qsub-free config has no other subgroup max
  assert.equal(count(on, /subgroupMax\(/g), 8);
  assert.equal(count(on, /subgroupAdd\(/g), 8);
  assert.match(on, /rmx\[\(lid \/ sgs\) \* 8u \+ sid \/ \(sgs >> 3u\)\] = xv;/);
  assert.match(on, /var smx = rmx\[4u\];/);
  assert.match(on, /var<workgroup> rmx: array<f32, 256>;/); // 8 · (WQ / 4) at WQ 128
  assert.equal(
    blockSharedBytes(cfg({ k: "q2", v: "q2", tuning: { ...tuning, stx: true } })).score -
      blockSharedBytes(cfg({ k: "q2", v: "q2", tuning })).score,
    2 * 4 * 8 * 32,
  );
  for (
    const [bad, re] of [
      [{ sred: false, sbar2: false }, /stx needs sred and sbar2 \(got false, false\)/],
      [{ sbar1: true }, /no sbar1 \(got true\)/],
    ] as const
  ) {
    assert.throws(
      () => blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning: { ...tuning, ...bad, stx: true } })),
      (e: Error) => e instanceof QuantConfigError && re.test(e.message),
    );
  }
  assert.throws(
    () =>
      blockScoreWgsl(
        cfg({ numHeads: 40, numKvHeads: 8, k: "q2", v: "q2", tuning: { ...tuning, stx: true } }),
      ),
    (e: Error) => e instanceof QuantConfigError && /≤ 4 query heads per KV head \(got 5\)/.test(e.message),
  );
});

/**
 * stx's transposing butterfly, simulated in TypeScript on 32 and 8 lanes exactly as the kernel's text orders it
 * (lane bits pick the kept half, xor sgs/2 … then the plain butterflies): every group's writing lane ends with the
 * maximum and the sum of its value over all lanes.
 */
Deno.test("block attention wgsl: stx — the transposing butterfly reduces every value over the subgroup", () => {
  for (const sgs of [32, 16, 8]) {
    const vals = [...Array(sgs)].map((_, lane) => [...Array(8)].map((_, i) => (lane * 37 + i * 11) % 23 - 7));
    const ops: ((a: number, b: number) => number)[] = [(a, b) => Math.max(a, b), (a, b) => a + b];
    for (const op of ops) {
      let cur = vals.map((v) => v.slice());
      for (let j = 0; j < 3; j++) {
        const o = sgs >> (j + 1), half = cur[0].length / 2;
        cur = cur.map((v, lane) => {
          // kept: select(v[i], v[i + half], b); received: the partner's select(p[i + half], p[i], its own bit)
          const b = (lane & o) !== 0, p = cur[lane ^ o], pb = ((lane ^ o) & o) !== 0;
          return [...Array(half)].map((_, i) => op(b ? v[i + half] : v[i], pb ? p[i] : p[i + half]));
        });
      }
      let x = cur.map((v) => v[0]);
      for (let o = sgs >> 4; o > 0; o >>= 1) x = x.map((v, lane) => op(v, x[lane ^ o]));
      for (let lane = 0; lane < sgs; lane += sgs >> 3) {
        const idx = lane / (sgs >> 3);
        assert.equal(
          x[lane],
          vals.map((v) => v[idx]).reduce((a, b) => op(a, b)),
          `${sgs} lanes, value ${idx}`,
        );
      }
    }
  }
});

Deno.test("block attention wgsl: vtouch — the next step's V rows and weight words loaded one step early, consumed a step later", () => {
  const count = (w: string, re: RegExp) => w.match(re)?.length ?? 0;
  for (
    const [tuning, rows, words] of [
      // the {q2, q2} default of 32-lane subgroups: 16 quads per step, 2 row touches per lane; its wshfl path
      // also touches the 2 weight words, its vec4 fallback only the rows
      [{ block: 1024, wgv: 64, vshuf: true, wshfl: true, uq: 16, vsum1: true }, 2, 2],
      [{ block: 512, wgv: 64, vshuf: true, uq: 4 }, 1, 0], // 4 quads per step: one row touch (rows dg/4 mod 4)
      [{ block: 512, wgv: 64, vshuf: true, wshfl: true, uq: 16, vjoin: true }, 2, 2],
    ] as const
  ) {
    const off = blockValueWgsl(cfg({ k: "q2", v: "q2", tuning }));
    const on = blockValueWgsl(cfg({ k: "q2", v: "q2", tuning: { ...tuning, vtouch: 1 } }));
    const what = JSON.stringify(tuning);
    // the same dot products; touches only in whole blocks' loops (one per path), each into its own register
    // that is consumed (XORed) before it is loaded again
    assert.equal(count(on, /dot4U8Packed/g), count(off, /dot4U8Packed/g), what);
    const paths = tuning.wshfl ? 2 : 1;
    assert.equal(count(on, /tch \^= tp\d+; tp\d+ = sw\[/g), rows * paths, what);
    assert.equal(count(on, /tch \^= tp\d+; tp\d+ = wqw\[/g), words, what);
    assert.equal(count(on, /let qt = select\(q0, q0 \+ \d+u, q0 \+ \d+u < nq\);/g), paths, what);
    // the next step: q0 + one step's quads (QL = 2 rows × uq at wgv 64, or uq with vjoin)
    const step = (tuning.vjoin ? 1 : 2) * tuning.uq;
    assert.match(on, new RegExp(`q0 \\+ ${step}u < nq`), what);
    // kept alive by a store no invocation takes, before the epilogue
    assert.match(
      on,
      /if \(lid == p\.io\.x \+ 0xffff0000u\) \{ part\[p\.io\.w\] = bitcast<f32>\(tch\); \}/,
      what,
    );
    assert.doesNotMatch(off, /tch/, what);
    // two steps ahead
    const two = blockValueWgsl(cfg({ k: "q2", v: "q2", tuning: { ...tuning, vtouch: 2 } }));
    assert.match(two, new RegExp(`q0 \\+ ${2 * step}u < nq`), what);
  }
  // 4-bit V (no vshuf), pipe or vpair: a typed error naming the value
  for (
    const [k, v, tuning, re] of [
      ["q4", "q4", { vtouch: 1 }, /vtouch needs vshuf \(got false\)/],
      ["q2", "q2", { vshuf: true, pipe: true, vtouch: 1 }, /no pipe \(got true\)/],
      ["q2", "q2", { vshuf: true, vpair: true, uq: 8, vtouch: 2 }, /no vpair \(got true\)/],
      ["q2", "q2", { vshuf: true, vtouch: 3 }, /vtouch 3 must be 0, 1 or 2/],
    ] as const
  ) {
    assert.throws(
      () => blockValueWgsl(cfg({ k, v, tuning })),
      (e: Error) => e instanceof QuantConfigError && re.test(e.message),
      JSON.stringify(tuning),
    );
  }
});

Deno.test("block attention wgsl: vst4 and vstat — vsum1's split as one vec4 per head, its statistics loaded before the loop", () => {
  const count = (w: string, re: RegExp) => w.match(re)?.length ?? 0;
  const tuning = { block: 1024, wgv: 64, vshuf: true, wshfl: true, uq: 16, vsum1: true };
  const base = { k: "q2", v: "q2", tuning } as const;
  const off = blockValueWgsl(cfg(base));
  const st4 = blockValueWgsl(cfg({ ...base, tuning: { ...tuning, vst4: true } }));
  const pre = blockValueWgsl(cfg({ ...base, tuning: { ...tuning, vstat: true } }));
  // vst4: a vec4 view of part at binding 6 (after wshfl's words), one vec4 store per head instead of four
  // scalar stores per head; the same dot products
  assert.match(st4, /@group\(0\) @binding\(6\) var<storage, read_write> partv: array<vec4<f32>>;/);
  assert.equal(count(st4, /partv\[/g), 1);
  assert.match(st4, /= vec4<f32>\(acc0\[cc\], acc1\[cc\], acc2\[cc\], acc3\[cc\]\);/);
  assert.equal(count(off, /part\[\(\(b \* NH/g) - count(st4, /part\[\(\(b \* NH/g), 4);
  assert.equal(count(st4, /dot4U8Packed/g), count(off, /dot4U8Packed/g));
  assert.doesNotMatch(off, /partv/);
  // without wshfl the view is binding 5
  assert.match(
    blockValueWgsl(cfg({ ...base, tuning: { ...tuning, wshfl: false, uq: 8, vst4: true } })),
    /@binding\(5\) var<storage, read_write> partv/,
  );
  // vstat: the statistics read once, before the loop (the first `for`), none after it
  const first = pre.indexOf("for (var q0");
  assert.ok(pre.indexOf("let vsig = bst[") < first && pre.indexOf("let sm = bst[") < first);
  assert.doesNotMatch(pre.slice(first), /bst\[/);
  assert.match(pre, /part\[o\] = sm; part\[o \+ 1u\] = sl;/);
  assert.match(off.slice(off.indexOf("for (var q0")), /bst\[/);
  // not vsum1, or vcoal / vjoin: a typed error naming the values
  for (
    const t of [
      { ...tuning, vsum1: false, vst4: true },
      { ...tuning, vcoal: true, vstat: true },
      { block: 512, wgv: 64, vshuf: true, vjoin: true, vst4: true },
    ]
  ) {
    assert.throws(
      () => blockValueWgsl(cfg({ ...base, tuning: t })),
      (e: Error) =>
        e instanceof QuantConfigError && /(vst4|vstat) needs vsum1 with more than one row/.test(e.message),
      JSON.stringify(t),
    );
  }
});

Deno.test("block attention wgsl: dacc — each packed dot product added to its accumulator component on its own", () => {
  const count = (w: string, re: RegExp) => w.match(re)?.length ?? 0;
  for (const [k, v] of [["q2", "q2"], ["q4", "q4"], ["q8", "q2"]] as const) {
    const tuning = { block: 512, tq: 1 };
    const off = cfg({ k, v, tuning }), on = cfg({ k, v, tuning: { ...tuning, dacc: true } });
    for (const gen of [blockScoreWgsl, blockValueWgsl]) {
      const a = gen(off), b = gen(on), what = `${k}/${v} ${gen.name}`;
      const re = gen === blockScoreWgsl ? /dot4I8Packed/g : /dot4U8Packed/g;
      assert.equal(count(b, re), count(a, re), what);
      assert.equal(count(b, /\+= vec4<[iu]32>\(dot4/g), 0, what);
      assert.equal(count(b, /\.[xyzw] \+= dot4[IU]8Packed/g), count(b, re), what);
    }
  }
});

Deno.test("block attention wgsl: vcoal — vsum1's split staged in workgroup memory, written with coalesced stores", () => {
  const tuning = { block: 1024, wgv: 64, vshuf: true, wshfl: true, uq: 16, vsum1: true };
  const base = { k: "q2", v: "q2", tuning } as const;
  const off = blockValueWgsl(cfg(base));
  const on = blockValueWgsl(cfg({ ...base, tuning: { ...tuning, vcoal: true } }));
  // without: the first subgroup's lanes store their own dims (4 floats apart); with: every invocation stores
  // consecutive floats from the staged split [HPK, D] after one more barrier
  assert.match(off, /\* D \+ dg \* 4u \+ 3u\] = acc\[cc\]; \}/);
  assert.doesNotMatch(on, /part\[[^\]]*dg \* 4u[^\]]*\] = acc/);
  assert.match(on, /var<workgroup> tr: array<f32, 512>;/);
  assert.match(on, /if \(hh < HPK\) \{ tr\[hh \* D \+ dg \* 4u \+ 3u\] = acc\[cc\]; \}/);
  assert.match(
    on,
    /for \(var i = lid; i < HPK \* D; i \+= 64u\) \{\n {4}part\[\(\(b \* NH \+ kvh \* HPK \+ i \/ D\) \* p\.io\.z \+ p\.io\.y \+ blk\) \* D \+ i % D\] = tr\[i\];/,
  );
  assert.equal(on.match(/workgroupBarrier\(\);/g)?.length, off.match(/workgroupBarrier\(\);/g)!.length + 1);
  // the other rows' lane sums plane-major: consecutive lanes at consecutive vec4s
  assert.match(on, /red\[\(\(ql - 1u\) \* D \+ 96u \+ dg\) \* NV \+ 0u\] = ia3_0 >> vec4<u32>\(6u\);/);
  assert.match(off, /red\[\(\(ql - 1u\) \* D \+ dg \* 4u \+ 3u\) \* NV \+ 0u\] = ia3_0 >> vec4<u32>\(6u\);/);
  // the block's V statistics loaded before the loop (before the first dot product), not after the barrier
  assert.ok(on.indexOf("let zs0 = bst[bo + 0u];") < on.indexOf("dot4U8Packed"));
  assert.match(on, /let acc = vsig \* vec4<f32>\(tot\) - zs0;/);
  assert.ok(off.indexOf("let vsig = bst[bo + 3u * NV].x;") > off.lastIndexOf("dot4U8Packed"));
  // 2 KB more workgroup memory (HPK · D floats)
  assert.equal(
    blockSharedBytes(cfg({ ...base, tuning: { ...tuning, vcoal: true } })).value,
    blockSharedBytes(cfg(base)).value + 4 * 4 * 128,
  );
  // it needs vsum1 (or vjoin) with more than one row of lanes and no vpair: a typed error naming the value
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ vsum1: false }, /vcoal needs vsum1 or vjoin \(got false, false\)/],
    [{ wgv: 32 }, /wgv > D\/4 = 32 \(got 32\)/],
    [{ wshfl: false, uq: 8, vpair: true }, /no vpair \(got true\)/],
  ];
  for (const [over, re] of bad) {
    assert.throws(
      () => blockValueWgsl(cfg({ ...base, tuning: { ...tuning, ...over, vcoal: true } })),
      (e: Error) => e instanceof QuantConfigError && re.test(e.message),
      JSON.stringify(over),
    );
  }
});

Deno.test("block attention wgsl: uq 32 with wshfl — four weight words per lane, each quad's vec4 from eight lanes' words", () => {
  const tuning = { block: 1024, wgv: 64, vshuf: true, wshfl: true, uq: 32, vsum1: true };
  const w = blockValueWgsl(cfg({ k: "q2", v: "q2", tuning }));
  // quads 8i … 8i + 7 of the step in wv<i> (i < 4), lane 4j + h holding quad 8i + j's head h
  assert.match(w, /let wv3 = wqw\[\(qb \+ q0 \+ 48u \+ min\(sid \/ 4u, 7u\) \* 2u\) \* 4u \+ sid % 4u\];/);
  assert.ok(w.includes("let W31_0 = vec4<u32>(subgroupShuffle(wv3, 28u), subgroupShuffle(wv3, 29u),"));
  // 32 quads of 16 dot products per step
  assert.equal(w.match(/ia0_0 \+= vec4<u32>\(dot4U8Packed\(x31_0, W31_0\.x\)/g)?.length, 2 * 2);
  // without wshfl (or with vpair) 32 is a typed error naming the value
  for (const over of [{ wshfl: false }, { wshfl: false, vpair: true }]) {
    assert.throws(
      () => blockValueWgsl(cfg({ k: "q2", v: "q2", tuning: { ...tuning, ...over } })),
      (e: Error) =>
        e instanceof QuantConfigError &&
        /uq 32 must be 1, 2, 4 or 8 \(16 with wshfl or vpair, 32 with wshfl\)/.test(e.message),
      JSON.stringify(over),
    );
  }
});

Deno.test("block attention wgsl: vjoin — each row of value lanes on its own block, the rows merged in f32 into one split", () => {
  const tuning = { block: 512, wgv: 64, tq: 1, nblk: 8, vshuf: true, wshfl: true, uq: 16 };
  const c = cfg({ k: "q2", v: "q2", tuning: { ...tuning, vjoin: true } });
  const w = blockValueWgsl(c);
  // one workgroup per split vb; row ql on block vb·QL + ql (a row past the tokens re-runs the first block)
  assert.match(w, /let vb = wid\.x;/);
  assert.match(w, /let live = \(vb \* QL \+ ql\) \* BT < cnt;/);
  assert.match(w, /let blk = select\(vb \* QL, vb \* QL \+ ql, live\);/);
  // the row's quads are consecutive (stride 1, not QL), from 0 in steps of uq; the fast path needs every row whole
  assert.match(w, /for \(var q0 = 0u; q0 < nq; q0 \+= 16u\)/);
  assert.match(w, /let wv0 = wqw\[\(qb \+ q0 \+ 0u \+ min\(sid \/ 4u, 7u\) \* 1u\) \* 4u \+ sid % 4u\];/);
  assert.match(w, /let full = \(vb \+ 1u\) \* QL \* BT <= cnt;/);
  assert.match(w, /if \(full\) \{/);
  // the merge: rows > 0 in workgroup memory, e^(m − M) weights, the split's (M, Σp) written by row 0
  assert.match(w, /var<workgroup> jf: array<vec4<f32>, 128>;/);
  assert.match(w, /let el = exp\(jm\[/);
  assert.match(w, /part\[o\] = mm\[lid % 4u\]; part\[o \+ 1u\] = ll\[lid % 4u\];/);
  assert.doesNotMatch(w, /var<workgroup> red/);
  // the score kernel does not change; splits are QL blocks
  assert.equal(blockScoreWgsl(c), blockScoreWgsl(cfg({ k: "q2", v: "q2", tuning })));
  assert.equal(blockSplitBlocks(c), 2);
  assert.equal(
    blockSplitBlocks(cfg({ k: "q2", v: "q2", tuning: { ...tuning, wgv: 128, uq: 8, vjoin: true } })),
    4,
  );
  assert.equal(blockSplitBlocks(cfg({ k: "q2", v: "q2", tuning })), 1);
  // without vjoin the rows interleave over one block
  assert.match(blockValueWgsl(cfg({ k: "q2", v: "q2", tuning })), /for \(var q0 = ql; q0 < nq; q0 \+= 32u\)/);
  // schedules it cannot take are typed errors naming the value
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ wgv: 32 }, /vjoin needs wgv > D\/4 = 32 \(got 32\)/],
    [{ uq: 8, pipe: true }, /no pipe \(got true\)/],
    [{ wshfl: false, vpair: true, uq: 8 }, /no vpair \(got true\)/],
  ];
  for (const [over, re] of bad) {
    assert.throws(
      () => blockValueWgsl(cfg({ k: "q2", v: "q2", tuning: { ...tuning, vjoin: true, ...over } })),
      (e: Error) => e instanceof QuantConfigError && re.test(e.message),
      JSON.stringify(over),
    );
  }
  // more heads per KV head than lanes in a row (D 32: 8 lanes, 10 heads)
  assert.throws(
    () =>
      blockValueWgsl(
        cfg({
          numHeads: 20,
          numKvHeads: 2,
          headDim: 32,
          k: "q2",
          v: "q2",
          tuning: { block: 256, vjoin: true },
        }),
      ),
    (e: Error) => e instanceof QuantConfigError && /per KV head \(got 10\)/.test(e.message),
  );
  // the quads of a step are one row's: block/4 must be a multiple of uq, not of QL·uq
  assert.doesNotThrow(() =>
    blockValueWgsl(
      cfg({
        k: "q2",
        v: "q2",
        tuning: { block: 256, wgv: 128, uq: 32, vshuf: true, wshfl: true, vjoin: true },
      }),
    )
  );
  assert.throws(
    () =>
      blockValueWgsl(
        cfg({ k: "q2", v: "q2", tuning: { block: 256, wgv: 128, uq: 32, vshuf: true, wshfl: true } }),
      ),
    /64 quads not a multiple of 128/,
  );
});
