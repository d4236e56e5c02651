/**
 * Host-only checks of the fused attention's WGSL generator (attention.wgsl.ts): every bad tuning or shape is
 * a typed error naming the value, and the V-phase width `vd` changes what the kernel declares. The kernels
 * themselves are checked against the CPU in tests/conformance_packed_test.ts.
 */
import assert from "node:assert/strict";
import {
  attentionPartialWgsl,
  attentionPaths,
  attentionSharedBytes,
  type AttentionTuning,
  DEFAULT_ATTENTION_TUNING,
  type FusedAttentionConfig,
} from "./attention.wgsl.ts";
import { QuantConfigError, TensorShapeError } from "../../src/errors.ts";

function cfg(tuning: AttentionTuning, over: Partial<FusedAttentionConfig> = {}): FusedAttentionConfig {
  return {
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    maxBatch: 8,
    stores: [{ k: "q16", v: "q16" }, { k: "q2", v: "q2" }],
    segments: [0, 1, 0].map((i) => ({ k: { store: i, tensor: "k" }, v: { store: i, tensor: "v" } })),
    tuning,
    ...over,
  };
}

Deno.test("attention wgsl: bad tunings and shapes are typed errors naming the value", () => {
  const bad: [AttentionTuning, RegExp][] = [
    [{ wg: 96, tpt: 2 }, /workgroup 96/],
    [{ wg: 128, tpt: 3 }, /tpt 3/],
    [{ wg: 128, tpt: 2, uv: 8 }, /uv 8/],
    [{ wg: 128, tpt: 2, vd: 4 }, /vd 4/],
    [{ wg: 128, tpt: 2, vd: 32 }, /vd 32/],
    [{ wg: 128, tpt: 2, kch: 3 }, /kch 3/],
  ];
  for (const [t, re] of bad) {
    assert.throws(
      () => attentionPartialWgsl(cfg(t)),
      (e: Error) => e instanceof QuantConfigError && re.test(e.message),
    );
  }
  assert.throws(
    () => attentionPartialWgsl(cfg(DEFAULT_ATTENTION_TUNING, { headDim: 72 })),
    (e: Error) => e instanceof QuantConfigError && /72/.test(e.message),
  );
  assert.throws(
    () => attentionPartialWgsl(cfg(DEFAULT_ATTENTION_TUNING, { numHeads: 30 })),
    (e: Error) => e instanceof TensorShapeError && /30/.test(e.message),
  );
  // D/vd invocations per token must divide the workgroup: D 1024, vd 8 → 128 per token, more than wg 64
  assert.throws(
    () => attentionPartialWgsl(cfg({ wg: 64, tpt: 1, vd: 8 }, { headDim: 1024, numHeads: 8, numKvHeads: 8 })),
    (e: Error) => e instanceof QuantConfigError && /D\/vd = 128/.test(e.message),
  );
});

Deno.test("attention wgsl: vd 8 halves the V accumulators and shares 2-bit words between two invocations", () => {
  const v16 = attentionPartialWgsl(cfg({ wg: 128, tpt: 2, uv: 4, vd: 16 }));
  const v8 = attentionPartialWgsl(cfg({ wg: 128, tpt: 2, uv: 4, vd: 8 }));
  const accs = (code: string) => new Set(code.match(/var a\d+_0 = /g)).size;
  assert.equal(accs(v16), 16);
  assert.equal(accs(v8), 8);
  assert.match(v8, /let d0 = \(lid % TPW\) \* 8u;/);
  assert.match(v8, /const TPW = 16u;/);
  // the 2-bit body: each invocation shifts its half of the shared word down
  assert.match(v8, />> \(\(\(d0 \/ 8u\) % 2u\) \* 16u\)/);
  assert.doesNotMatch(v16, /% 2u\) \* 16u\)/);
});

Deno.test("attention wgsl: kdot puts 2/4/8-bit K segments on dot4I8Packed, 16-bit ones stay f32", () => {
  const plain = attentionPartialWgsl(cfg(DEFAULT_ATTENTION_TUNING));
  const kd = attentionPartialWgsl(cfg({ ...DEFAULT_ATTENTION_TUNING, kdot: true }));
  assert.doesNotMatch(plain, /dot4I8Packed|q8_exp/);
  // the q2 body: 4 planes of 0x03030303 per word, one dot product per (plane, head)
  assert.match(kd, /& 50529027u\)/); // 0x03030303
  assert.match(kd, /q8_exp\(mx\.x\)/);
  assert.equal((kd.match(/dot4I8Packed\(pl, qv\d+_\d+_0\.x\)/g) ?? []).length > 0, true);
  // the q16 sink/window segment keeps the in-place f32 path (q rescaled in place by 2^-sh) in the same kernel
  assert.match(kd, /qsh\[i\] = qsh\[i\] \* bitcast<f32>/);
  // the int8 query codes are parked in ps (exact integers in f32) instead of their own array
  assert.match(kd, /ps\[i\] = round\(qsh\[i\] \* qiv\[i % NV\]\)/);
  assert.doesNotMatch(kd, /var<workgroup> (qk|qi8):/);
  const k4 = attentionPartialWgsl(
    cfg({ ...DEFAULT_ATTENTION_TUNING, kdot: true }, {
      stores: [{ k: "q4", v: "q4" }],
      segments: [{ k: { store: 0, tensor: "k" }, v: { store: 0, tensor: "v" } }],
    }),
  );
  assert.match(k4, /& 252645135u\)/); // 0x0f0f0f0f
  assert.doesNotMatch(k4, /qsh\[i\] = qsh\[i\] \*/);
  // only 16-bit stores: kdot changes nothing
  const k16 = attentionPartialWgsl(
    cfg({ ...DEFAULT_ATTENTION_TUNING, kdot: true }, {
      stores: [{ k: "q16", v: "q16" }],
      segments: [{ k: { store: 0, tensor: "k" }, v: { store: 0, tensor: "v" } }],
    }),
  );
  assert.doesNotMatch(k16, /dot4I8Packed/);
});

Deno.test("attention wgsl: perPath compiles one segment path per kernel, others return before any work", () => {
  const c = cfg(DEFAULT_ATTENTION_TUNING); // [q16 | q2 | q16]: paths 0 (q16) and 1 (q2)
  assert.equal(attentionPaths(c), 2);
  const p0 = attentionPartialWgsl(c, 0), p1 = attentionPartialWgsl(c, 1);
  assert.match(p0, /fn seg_c0\(/);
  assert.doesNotMatch(p0, /fn seg_c1\(/);
  assert.match(p0, /if \(!\(s == 0u \|\| s == 2u\)\) \{\s*return;/);
  assert.match(p1, /fn seg_c1\(/);
  assert.doesNotMatch(p1, /fn seg_c0\(/);
  assert.match(p1, /if \(!\(s == 1u\)\) \{\s*return;/);
  // the guard comes before the query prologue's barriers
  assert.ok(p1.indexOf("return;\n  }") < p1.indexOf("workgroupBarrier();\n  if (lid <"));
  assert.throws(
    () => attentionPartialWgsl(c, 2),
    (e: Error) => e instanceof TensorShapeError && /path 2/.test(e.message),
  );
});

Deno.test("attention wgsl: vfull adds an unclamped whole-chunk V loop, wordView a u32 view of every store", () => {
  const plain = attentionPartialWgsl(cfg({ wg: 128, tpt: 2, uv: 4, vd: 8 }));
  const fast = attentionPartialWgsl(cfg(DEFAULT_ATTENTION_TUNING));
  assert.ok(!plain.includes("clen == CH") && !plain.includes("sw0"));
  // one fast and one clamped V loop per segment path (2 paths)
  assert.equal(fast.split("if (clen == CH) {").length - 1, 2);
  const fastLoop = fast.slice(
    fast.indexOf("if (clen == CH) {"),
    fast.indexOf("} else {", fast.indexOf("clen == CH")),
  );
  assert.ok(fastLoop.includes("tb < CH") && !fastLoop.includes("select(") && !fastLoop.includes("min("));
  // word views at bindings 3 + stores + i, and single-word loads through them
  assert.match(fast, /@binding\(5\) var<storage, read> sw0: array<u32>;/);
  assert.match(fast, /@binding\(6\) var<storage, read> sw1: array<u32>;/);
  assert.match(fast, /fn ld1\(w: u32\) -> u32 \{ return sw1\[w\]; \}/);
});

Deno.test("attention wgsl: timing diagnostics drop the V phase, the K phase or both", () => {
  const t = { ...DEFAULT_ATTENTION_TUNING, kdot: true };
  const full = attentionPartialWgsl(cfg(t));
  const noV = attentionPartialWgsl(cfg({ ...t, diagnostic: "skipV" }));
  const noK = attentionPartialWgsl(cfg({ ...t, diagnostic: "skipK" }));
  const none = attentionPartialWgsl(cfg({ ...t, diagnostic: "skipKV" }));
  assert.ok(full.includes("clen == CH") && !noV.includes("clen == CH") && !none.includes("clen == CH"));
  assert.ok(full.includes("dot4I8Packed") && !noK.includes("dot4I8Packed(") && noK.includes("clen == CH"));
  assert.ok(noK.includes("* 1e-6)") && none.includes("* 1e-6)") && !full.includes("* 1e-6)"));
});

Deno.test("attention wgsl: kch > 1 loops the K phase over kch blocks, parking scores in ps, one max reduction per chunk", () => {
  const one = attentionPartialWgsl(cfg(DEFAULT_ATTENTION_TUNING));
  const four = attentionPartialWgsl(cfg({ ...DEFAULT_ATTENTION_TUNING, kch: 4 }));
  assert.match(one, /const CH = 256u;/);
  assert.match(four, /const CH = 1024u;/);
  assert.doesNotMatch(one, /for \(var kb = 0u;/);
  // per segment path: one K loop and one p loop over blocks of wg·tpt = 256 tokens
  assert.equal(four.split("for (var kb = 0u; kb < clen; kb += 256u) {").length - 1, 4);
  assert.match(four, /ps\[\(kb \+ lid \+ 128u\) \* 1u \+ 0u\] = sc1_0;/);
  assert.match(four, /let sc1_0 = ps\[\(kb \+ lid \+ 128u\) \* 1u \+ 0u\];/);
  // the max reduction (two barriers) once per chunk in both: count its second stage per path
  const maxes = (code: string) => code.split("ra0 = max(ra0,").length - 1;
  assert.equal(maxes(one), maxes(four));
});

Deno.test("attention wgsl: workgroup memory counts what the kernel declares (no q copy, int8 codes in ps)", () => {
  const q4 = {
    stores: [{ k: "q4" as const, v: "q4" as const }],
    segments: [{ k: { store: 0, tensor: "k" as const }, v: { store: 0, tensor: "v" as const } }],
  };
  const declared = (code: string) =>
    [...code.matchAll(/var<workgroup> \w+: array<(vec4<[fiu]32>|f32), (\d+)>;/g)].reduce(
      (a, m) => a + (m[1] === "f32" ? 4 : 16) * Number(m[2]),
      0,
    );
  for (
    const t of [
      DEFAULT_ATTENTION_TUNING,
      { ...DEFAULT_ATTENTION_TUNING, kdot: true },
      {
        ...DEFAULT_ATTENTION_TUNING,
        kch: 2,
      },
      { ...DEFAULT_ATTENTION_TUNING, kdot: true, vdot: true },
      { ...DEFAULT_ATTENTION_TUNING, vd: 4, vdot: true },
    ]
  ) {
    for (const over of [{}, q4]) {
      const c = cfg(t, over);
      assert.equal(attentionSharedBytes(c), declared(attentionPartialWgsl(c)), JSON.stringify(t));
    }
  }
  // D 128, 4 heads, wg 128 × tpt 2: q 2 KiB, reductions 2.25 KiB, ps 4 KiB, small arrays; + 0.5 KiB packed query
  assert.equal(attentionSharedBytes(cfg({ ...DEFAULT_ATTENTION_TUNING, kdot: true }, q4)), 9072);
  assert.equal(attentionSharedBytes(cfg({ ...DEFAULT_ATTENTION_TUNING, padShared: 1024 }, q4)), 8512 + 1024);
  // integer V phase: ps shrinks to D·NV (2 KiB less), packed weights 2 KiB + the S_V max reduction 576 B
  assert.equal(
    attentionSharedBytes(cfg({ ...DEFAULT_ATTENTION_TUNING, kdot: true, vdot: true }, q4)),
    9072 + 576,
  );
});
