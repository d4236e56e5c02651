/**
 * CPU throughput of the KV caches on one Llama-3-8B-like layer (8 KV heads, head_dim 128, 32 query heads).
 * Run: `deno bench -A bench/cache_bench.ts` (or `deno task bench --filter cache`).
 *
 * Every bench name states the bytes one iteration moves (MB = 10^6 bytes), so
 * GB/s = (MB in the name) / (avg time in ms), since 1 MB per 1 ms = 1 GB/s:
 * - quantize: append 128 tokens (f32 K+V in; includes the incremental refresh of the f32 view);
 * - dequantize: full view refresh of a 4,096-token body (f32 K+V out);
 * - ERS: shrink a 4,096-token body one step (packed code bytes in, K+V);
 * - decode attention: view() + attention() of one query over a 1,024-token cache (f32 view bytes read);
 *   the view is maintained incrementally, so this is the same for every method: the difference between
 *   methods is in `decode step`, which adds the append of the new token.
 * @module
 */
import { createCache } from "../src/kv/factory.ts";
import type { CacheSpec, KVCache, KVShape } from "../src/kv/cache.ts";
import type { GroupedCache } from "../src/kv/grouped.ts";
import { ersCodes } from "../src/kv/qstore.ts";
import { planToCacheSpec, uniformPlan } from "../src/kv/plan.ts";
import { attention } from "../cpu/attention.ts";
import { mulberry32 } from "../src/sampling.ts";

const SHAPE: KVShape = { numLayers: 1, numKvHeads: 8, headDim: 128 };
const NUM_HEADS = 32;
const ROW = SHAPE.numKvHeads * SHAPE.headDim;
const rng = mulberry32(1);
const randn = (n: number) => Float32Array.from({ length: n }, () => (rng() + rng() + rng() - 1.5) * 2);
const POOL = randn(4096 * ROW);
const POOL_V = randn(4096 * ROW);
const mb = (bytes: number) => (bytes / 1e6).toFixed(3);

const INT4: CacheSpec = { method: "static", bits: 4, sink: 0, window: 0 };
const PMKVQ = planToCacheSpec(uniformPlan(SHAPE, "bench", 8192, 4)); // 16-bit for the first ~2k tokens
const EXACT: CacheSpec = { method: "exact" };

function filled(spec: CacheSpec, tokens: number): KVCache {
  const c = createCache(spec, SHAPE);
  c.append(0, POOL, POOL_V, tokens);
  return c;
}

// --- quantize: append 128 tokens ---
for (
  const [name, spec] of [
    ["int4", INT4],
    ["pmkvq (16-bit window, flushes, shrinks past 2177 tokens)", PMKVQ],
    ["exact-f32", EXACT],
  ] as const
) {
  const cache = createCache(spec, SHAPE);
  const T = 128;
  Deno.bench({
    name: `quantize ${name}: append ${T} tokens [${mb(2 * T * ROW * 4)} MB f32 K+V in; GB/s = MB / avg ms]`,
    group: "quantize",
    fn(b) {
      if (cache.length(0) + T > 4096) cache.reset();
      const at = cache.length(0) * ROW;
      b.start();
      cache.append(0, POOL.subarray(at), POOL_V.subarray(at), T);
      b.end();
    },
  });
}

// --- dequantize: full view refresh of a 4,096-token body ---
for (const bits of [16, 8, 4, 2] as const) {
  const cache = filled({ method: "static", bits, sink: 0, window: 0 }, 4096) as GroupedCache;
  Deno.bench({
    name: `dequantize int${bits}: refresh the view of a 4096-token body [${
      mb(2 * 4096 * ROW * 4)
    } MB f32 out; GB/s = MB / avg ms]`,
    group: "dequantize",
    fn() {
      cache.rebuildView(0);
    },
  });
}

// --- ERS: shrink a 4,096-token body one step (16 → 8, 8 → 4, 4 → 2) ---
for (const from of [16, 8, 4] as const) {
  const cache = filled({ method: "static", bits: from, sink: 0, window: 0 }, 4096) as GroupedCache;
  const ex = cache.exportLayer(0);
  const scratch = new Uint16Array(ex.chunkTokens * ex.groupsPerToken);
  const inBytes = ex.body.reduce((s, c) => s + c.k.codes.byteLength + c.v.codes.byteLength, 0);
  Deno.bench({
    name: `ERS ${from}->${from / 2}: shrink a 4096-token body [${
      mb(inBytes)
    } MB codes in; GB/s = MB / avg ms]`,
    group: "ers",
    fn() {
      const n = ex.chunkTokens * ex.groupsPerToken;
      for (const c of ex.body) {
        ersCodes(c.k, from, from / 2, n, ex.groupSize, n, scratch);
        ersCodes(c.v, from, from / 2, n, ex.groupSize, n, scratch);
      }
    },
  });
}

// --- decode attention over a 1,024-token cache ---
for (const [name, spec] of [["exact-f32", EXACT], ["int4", INT4], ["pmkvq", PMKVQ]] as const) {
  const CTX = 1024;
  const q = randn(NUM_HEADS * SHAPE.headDim);
  const kNew = randn(ROW), vNew = randn(ROW);
  const out = new Float32Array(NUM_HEADS * SHAPE.headDim);
  const scores = new Float64Array(CTX + 256);
  const cache = filled(spec, CTX);
  const viewBytes = 2 * CTX * ROW * 4;
  Deno.bench({
    name: `decode attention ${name} @${CTX} ctx [${mb(viewBytes)} MB f32 view read; GB/s = MB / avg ms]`,
    group: "attention",
    fn() {
      attention(out, q, cache.view(0), kNew, vNew, 1, NUM_HEADS, SHAPE.numKvHeads, SHAPE.headDim, scores);
    },
  });
  const stepCache = filled(spec, CTX);
  Deno.bench({
    name: `decode step ${name} @${CTX} ctx: attention + append 1 token [${
      mb(viewBytes)
    } MB f32 view read; GB/s = MB / avg ms]`,
    group: "decode-step",
    fn(b) {
      if (stepCache.length(0) >= CTX + 128) {
        stepCache.reset();
        stepCache.append(0, POOL, POOL_V, CTX);
      }
      b.start();
      attention(out, q, stepCache.view(0), kNew, vNew, 1, NUM_HEADS, SHAPE.numKvHeads, SHAPE.headDim, scores);
      stepCache.append(0, kNew, vNew, 1);
      b.end();
    },
  });
}
