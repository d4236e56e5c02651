import assert from "node:assert/strict";
import { DEFAULT_ATTENTION_TUNING, fitStorageBuffers, type FusedAttentionConfig } from "./attention.ts";
import { GpuError } from "../../src/errors.ts";

/** A config with `n` stores (KIVI has 4), tuned as the default (word view on). */
function withStores(n: number): FusedAttentionConfig {
  return {
    numHeads: 8,
    numKvHeads: 2,
    headDim: 64,
    maxBatch: 1,
    stores: Array.from({ length: n }, () => ({ k: "q4" as const, v: "q4" as const })),
    segments: [{ k: { store: 0, tensor: "k" }, v: { store: 0, tensor: "v" } }],
    tuning: DEFAULT_ATTENTION_TUNING,
  };
}

Deno.test("fitStorageBuffers keeps the word view when 2 + 2·stores fit", () => {
  const c = withStores(4);
  assert.equal(fitStorageBuffers(c, 10, "dev"), c);
  assert.equal(fitStorageBuffers(withStores(2), 8, "dev").tuning.wordView, true);
});

Deno.test("fitStorageBuffers drops only the word view when it does not fit", () => {
  const c = withStores(4);
  const f = fitStorageBuffers(c, 8, "dev");
  assert.equal(f.tuning.wordView, false);
  assert.deepEqual({ ...f.tuning, wordView: true }, c.tuning);
  assert.equal(c.tuning.wordView, true, "the caller's config is not modified");
});

Deno.test("fitStorageBuffers: too few storage buffers even without the word view is a GpuError", () => {
  assert.throws(
    () => fitStorageBuffers(withStores(7), 8, "tiny adapter"),
    (e: unknown) => e instanceof GpuError && /needs 9 storage buffers.*tiny adapter allows 8/.test(e.message),
  );
});
