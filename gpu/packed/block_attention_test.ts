/**
 * BlockAttention's tuning merge on subgroup devices (`subgroupTuningFor`): the subgroup defaults under the given
 * fields, less the defaults a shape or the given fields cannot take. Pure: no adapter needed.
 */
import assert from "node:assert/strict";
import { subgroupTuningFor } from "./block_attention.ts";
import { blockScoreWgsl, blockValueWgsl } from "./block_attention.wgsl.ts";
import type { BlockAttentionConfig } from "./block_attention.wgsl.ts";

const base: BlockAttentionConfig = {
  numHeads: 32,
  numKvHeads: 8,
  headDim: 128,
  maxBatch: 8,
  k: "q2",
  v: "q2",
};

Deno.test("subgroupTuningFor: the {q2, q2} default of 32-lane subgroups, and what a shape or given field drops", () => {
  const full = subgroupTuningFor(base, 32);
  for (
    const [k, v] of Object.entries({
      sbar2: true,
      vst4: true,
      rdims: 64,
      wshfl: true,
      vsum1: true,
      block: 1024,
      stx: true,
      sepi: true,
      sexp2: true,
      sbias: true,
    })
  ) {
    assert.equal(full[k as keyof typeof full], v, k);
  }
  // PM-KVQ's body beside fused splits gives vsum1 and wshfl false: vst4 goes, sbar2 stays (sred is on)
  const mixed = subgroupTuningFor({ ...base, tuning: { vsum1: false, wshfl: false, block: 512, tq: 1 } }, 32);
  assert.equal(mixed.vst4, undefined);
  assert.equal(mixed.sbar2, true);
  // sred given false: sbar2 goes; vcoal or vjoin given: vst4 goes
  assert.equal(subgroupTuningFor({ ...base, tuning: { sred: false } }, 32).sbar2, undefined);
  assert.equal(subgroupTuningFor({ ...base, tuning: { vcoal: true } }, 32).vst4, undefined);
  assert.equal(
    subgroupTuningFor({ ...base, tuning: { vjoin: true, block: 512, tq: 1 } }, 32).vst4,
    undefined,
  );
  // stx goes without sred (so sbar2), with sbar1, or with more than 4 query heads per KV head; sepi, sexp2
  // and sbias stay; a given stx stays (the kernels' typed error then names it)
  const noSred = subgroupTuningFor({ ...base, tuning: { sred: false } }, 32);
  assert.equal(noSred.stx, undefined);
  assert.equal(noSred.sepi, true);
  assert.equal(subgroupTuningFor({ ...base, tuning: { sbar2: false } }, 32).stx, undefined);
  assert.equal(subgroupTuningFor({ ...base, tuning: { sbar1: true } }, 32).stx, undefined);
  assert.equal(subgroupTuningFor({ ...base, tuning: { sred: false, stx: true } }, 32).stx, true);
  // 5 query heads per KV head at D 64: no wshfl, no stx; vsum1 and vst4 stay (5 ≤ D/4 = 16); rdims 64 divides 64
  const d64 = subgroupTuningFor({ ...base, numHeads: 40, headDim: 64 }, 32);
  assert.equal(d64.wshfl, undefined);
  assert.equal(d64.stx, undefined);
  assert.equal(d64.sexp2, true);
  assert.equal(d64.vst4, true);
  assert.equal(d64.rdims, 64);
  // head_dim 32: rdims 64 goes (the reduce takes its own 32); 9 heads per KV head > D/4 = 8: vsum1 and vst4 go
  const d32 = subgroupTuningFor({ ...base, numHeads: 72, headDim: 32 }, 32);
  assert.equal(d32.rdims, undefined);
  assert.equal(d32.vsum1, undefined);
  assert.equal(d32.vst4, undefined);
  // D 32 (8 rows of value lanes at wgv 64): uq 16 goes where 8 × 16 quads do not divide the block's (256-token
  // blocks: 64 quads), stays at the default 1024-token blocks (256 quads)
  const short = { ...base, headDim: 32, tuning: { block: 256 } };
  assert.equal(subgroupTuningFor(short, 32).uq, undefined);
  assert.equal(subgroupTuningFor({ ...base, headDim: 32 }, 32).uq, 16);
  blockValueWgsl({ ...short, tuning: subgroupTuningFor(short, 32) });
  // a given field is never dropped
  assert.equal(subgroupTuningFor({ ...base, tuning: { rdims: 32 } }, 32).rdims, 32);
  // other subgroup sizes: none of the 32-lane defaults
  assert.equal(subgroupTuningFor(base, 8).vst4, undefined);
  assert.equal(subgroupTuningFor(base).sbar2, undefined);
  // every merged tuning above generates (no knob left without its prerequisite)
  for (
    const c of [
      { ...base, tuning: full },
      { ...base, tuning: mixed },
      { ...base, numHeads: 40, headDim: 64, tuning: d64 },
      { ...base, numHeads: 72, headDim: 32, tuning: d32 },
      { ...base, tuning: noSred },
      { ...base, tuning: subgroupTuningFor({ ...base, tuning: { sbar1: true } }, 32) },
    ]
  ) {
    blockScoreWgsl(c);
    blockValueWgsl(c);
  }
});
