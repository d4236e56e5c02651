/**
 * Host-only checks of MixedBlockAttention's argument validation (mixed_block_attention.ts): a body segment the
 * block kernels cannot run is a typed error naming the segment and its formats, before any GPU work. The
 * kernels themselves are checked in tests/conformance_packed_test.ts (static int4 / int2 and PM-KVQ images).
 */
import assert from "node:assert/strict";
import {
  MixedBlockAttention,
  type MixedBlockAttentionOptions,
  mixedBlockTuning,
} from "./mixed_block_attention.ts";
import type { PackedGpu } from "./util.ts";
import type { TensorFormat } from "./layout.ts";
import { QuantConfigError, TensorShapeError } from "../../src/errors.ts";

/** PM-KVQ-like options: store 0 = 16-bit sink + window, store 1 = the body in `body` format. */
function pmkvq(bodyK: TensorFormat, bodyV: TensorFormat, over: Partial<MixedBlockAttentionOptions> = {}) {
  return {
    numHeads: 8,
    numKvHeads: 2,
    headDim: 64,
    maxBatch: 1,
    stores: [{ k: "q16" as const, v: "q16" as const }, { k: bodyK, v: bodyV }],
    segments: [0, 1, 0].map((s) => ({
      k: { store: s, tensor: "k" as const },
      v: { store: s, tensor: "v" as const },
    })),
    body: 1,
    maxTokens: 1024,
    ...over,
  };
}

// never touched: every case throws before the first GPU call
const noGpu = {} as PackedGpu;

Deno.test("MixedBlockAttention: a body the block kernels cannot run is a typed error naming it", async () => {
  const cases: [MixedBlockAttentionOptions, RegExp][] = [
    [pmkvq("q16", "q16"), /body segment 1 is q16\/q16/],
    [pmkvq("q4", "q8"), /body segment 1 is q4\/q8/],
    [pmkvq("kc2", "q2"), /body segment 1 is kc2\/q2/],
    [pmkvq("q4", "q4", { body: 0 }), /body segment 0 is q16\/q16/],
  ];
  for (const [o, re] of cases) {
    await assert.rejects(
      () => MixedBlockAttention.create(noGpu, o),
      (e: Error) => e instanceof QuantConfigError && re.test(e.message),
    );
  }
  await assert.rejects(
    () => MixedBlockAttention.create(noGpu, pmkvq("q4", "q4", { body: 3 })),
    (e: Error) => e instanceof TensorShapeError && /body 3 of 3 segments/.test(e.message),
  );
  // K and V of the body in different stores
  const split = pmkvq("q4", "q4");
  split.segments[1] = { k: { store: 1, tensor: "k" }, v: { store: 0, tensor: "v" } };
  await assert.rejects(
    () => MixedBlockAttention.create(noGpu, split),
    (e: Error) => e instanceof QuantConfigError && /stores 1\/0/.test(e.message),
  );
});

Deno.test("mixedBlockTuning: beside fused splits a 4-bit V body keeps the tree reduce and a 2-bit V body the vec4 weights and the 512-token score schedule, unless given", () => {
  assert.deepEqual(mixedBlockTuning("q4", true, undefined), { rsub: false });
  assert.deepEqual(mixedBlockTuning("q4", true, { block: 256 }), { block: 256, rsub: false });
  assert.deepEqual(mixedBlockTuning("q4", true, { rsub: true }), { rsub: true });
  // 2-bit V beside fused splits: no wshfl / vsum1, block 512 with tq 1 and nblk 8, the reduce at 32 dims per
  // workgroup, none of the 32-lane default's score epilogue (stx, sepi, sexp2, sbias), each unless given (rsub
  // from the subgroup defaults)
  const epilogue = { stx: false, sepi: false, sexp2: false, sbias: false };
  const pinned = { wshfl: false, vsum1: false, block: 512, tq: 1, rdims: 32, ...epilogue, nblk: 8 };
  assert.deepEqual(mixedBlockTuning("q2", true, { nblk: 2 }), { ...pinned, nblk: 2 });
  assert.deepEqual(mixedBlockTuning("q2", true, undefined), pinned);
  assert.deepEqual(mixedBlockTuning("q2", true, { wshfl: true, uq: 16 }), {
    ...pinned,
    wshfl: true,
    uq: 16,
  });
  assert.deepEqual(mixedBlockTuning("q2", true, { block: 1024, tq: 2 }), { ...pinned, block: 1024, tq: 2 });
  assert.deepEqual(mixedBlockTuning("q2", true, { rdims: 64 }), { ...pinned, rdims: 64 });
  assert.deepEqual(mixedBlockTuning("q2", true, { sexp2: true, stx: true }), {
    ...pinned,
    sexp2: true,
    stx: true,
  });
  // no nblk where the score kernel's K rows would not stay in registers (kstep, long rows), nor where the
  // schedule is refused (BlockAttention.create names it)
  const { nblk: _, ...loose } = pinned;
  assert.deepEqual(mixedBlockTuning("q2", true, { kstep: 2 }, (t) => !t.kstep), { ...loose, kstep: 2 });
  assert.deepEqual(
    mixedBlockTuning("q2", true, undefined, () => {
      throw new QuantConfigError("refused");
    }),
    loose,
  );
  // any other failure is not swallowed
  assert.throws(
    () =>
      mixedBlockTuning("q2", true, undefined, () => {
        throw new RangeError("bug");
      }),
    RangeError,
  );
  // no fused splits (a static layout): the given schedule as is
  assert.deepEqual(mixedBlockTuning("q2", false, { nblk: 2 }), { nblk: 2 });
  assert.equal(mixedBlockTuning("q4", false, undefined), undefined);
});
