/**
 * Packed-cache engine conformance (webgpu `static` / `pmkvq` through gpu/cache/packed.ts), the CPU backend
 * being the specification. Without a WebGPU adapter every case is IGNORED with a printed reason.
 *
 * | case | spec | check |
 * |---|---|---|
 * | PackedGpuCache fed K/V through the engine's `qkv` activation (prefill-sized then ragged appends) | pmkvq (uniform 2-bit plan, shrinks 16→8→4→2), static int4 | every layer's sink / window / body codes, scales and zeros byte-identical to GroupedCache.exportLayer after every append; same events, widths, bytes, peak |
 * | tiny-lm: prefill + N greedy steps (decodeGreedyMany chains) vs the CPU engine, same spec | pmkvq (uniform 2-bit plan at maxLen = prompt + N: shrinks during the run), static int4 | tokens identical (first divergence reported with the CPU's top-2 logit gap); prefill logits max abs ≤ 2e-4; cacheStats events / layers / bytes / peak identical |
 * | engine contract | pmkvq | BudgetError before anything is recorded (position and stats unchanged); stop ids; multi-token prefill after cached tokens rejected; reset reproduces the run |
 *
 * N = PMKVQ_CONFORMANCE_STEPS or 96 (fits ~60 s on llvmpipe for both specs; 256 is the issue's full run).
 * Static int4 runs at most STATIC_STEPS = 200 steps, and on hardware adapters its tokens must agree over the
 * first HW_STATIC_ASSERT = 64 steps only (the rest is run and its first divergence printed). The packed stores
 * are byte-identical for identical K/V (first case), but the two engines' forward passes are float (GPU f32
 * sums in its own order, CPU f64 sums), and static int4 — no 16-bit window, no smoothing — amplifies their
 * last-bit differences: on llvmpipe the K of token 469 in layer 1 lands on the other side of a bf16 rounding
 * boundary of its group's min (zero 16616 vs 16617), the logits then move by 1.5 and greedy tokens diverge at
 * step 241; on the H100 (inexact division, fused multiply-add, and a different attention summation order per
 * kernel tuning) the first divergence was at step 146 with the default tuning of 2026-11-23 (docs/gpu-packed.md
 * §7). PM-KVQ (16-bit sink and window) passes all 256 steps on both adapters.
 */
import assert from "node:assert/strict";
import { loadModel } from "../src/model/load.ts";
import type { LoadedModel } from "../src/model/types.ts";
import type { CacheSpec } from "../src/kv/cache.ts";
import { createCache, kvShapeOf } from "../src/kv/factory.ts";
import type { GroupedCache } from "../src/kv/grouped.ts";
import { planToCacheSpec, uniformPlan } from "../src/kv/plan.ts";
import { argmax, mulberry32 } from "../src/sampling.ts";
import { BudgetError, GpuError } from "../src/errors.ts";
import { createCpuEngine } from "../cpu/engine.ts";
import { createGpuEngine } from "../gpu/engine.ts";
import { registryFor } from "../gpu/registry.ts";
import { storageBuffer } from "../gpu/buffers.ts";
import { createPackedGpuCache, type PackedGpuCache } from "../gpu/cache/packed.ts";
import { unpackTokenTensor } from "../gpu/packed/layout.ts";
import type { QuantBuffers } from "../src/quant/quantizer.ts";
import { TINY_LM } from "./support/paths.ts";
import { conformanceSteps, gpuAvailability, maxAbsDiff, once } from "./conformance_support.ts";

const gpu = await gpuAvailability();
const noGpu = gpu.ctx === null;
const STEPS = conformanceSteps(96);
const STATIC_STEPS = Math.min(STEPS, 200);
const software = gpu.ctx !== null && /llvmpipe|lavapipe|swiftshader/i.test(gpu.ctx.description);
/** Steps whose tokens must agree for static int4 on a hardware adapter (module doc). */
const HW_STATIC_ASSERT = 64;
const ALL_STEPS = STEPS;

const model = () => once("packed-model", () => loadModel(TINY_LM));
const prompt = () =>
  once(
    "packed-prompt",
    async () =>
      (JSON.parse(await Deno.readTextFile(`${TINY_LM}/recitation-examples.json`)) as {
        prompt_ids: number[];
      }[])[0]
        .prompt_ids,
  );

/** The specs under test for a model and plan length. */
function specsFor(m: LoadedModel, maxLen: number): [string, CacheSpec][] {
  return [
    ["pmkvq kv-bits 2", planToCacheSpec(uniformPlan(kvShapeOf(m.config), m.fingerprint, maxLen, 2))],
    ["static int4", { method: "static", bits: 4 }],
  ];
}

function firstDiff(a: Uint32Array, b: Uint32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

function u32(a: Uint16Array): Uint32Array {
  return Uint32Array.from(a);
}

/** Asserts every layer's GPU stores equal the CPU cache's export (codes, scales, zeros of every region). */
async function assertSameStores(cache: PackedGpuCache, cpu: GroupedCache, when: string): Promise<void> {
  for (let l = 0; l < cache.layers.length; l++) {
    const layer = cache.layers[l];
    const ex = cpu.exportLayer(l);
    assert.equal(layer.bits, ex.bits, `layer ${l} width ${when}`);
    assert.deepEqual(layer.counts(), { sink: ex.sinkTokens, body: ex.bodyTokens, window: ex.windowTokens });
    const st = layer.stores();
    const sw = st.sinkWindow
      ? new Uint32Array(await cache.gpu.read(st.sinkWindow.buffer, 0, st.sinkWindow.layout.words * 4))
      : null;
    const body = new Uint32Array(await cache.gpu.read(st.body.buffer, 0, st.body.layout.words * 4));
    const gpt = ex.groupsPerToken, G = ex.groupSize;
    const same = (what: string, got: QuantBuffers, want: QuantBuffers, cnt: number, bits: number) => {
      const wpg = G * bits / 32;
      const msg = `layer ${l} ${what} ${when}`;
      assert.equal(firstDiff(got.codes, want.codes.subarray(0, cnt * gpt * wpg)), -1, `${msg}: codes`);
      assert.equal(firstDiff(u32(got.scales), u32(want.scales.subarray(0, cnt * gpt))), -1, `${msg}: scales`);
      assert.equal(firstDiff(u32(got.zeros), u32(want.zeros.subarray(0, cnt * gpt))), -1, `${msg}: zeros`);
    };
    for (const tn of ["k", "v"] as const) {
      if (ex.sinkTokens > 0) {
        const L = st.sinkWindow!.layout;
        same(
          `sink ${tn}`,
          unpackTokenTensor(L, L[tn]!, 0, 0, ex.sinkTokens, sw!),
          ex.sink![tn],
          ex.sinkTokens,
          16,
        );
      }
      if (ex.windowTokens > 0) {
        const L = st.sinkWindow!.layout;
        same(
          `window ${tn}`,
          unpackTokenTensor(L, L[tn]!, 0, ex.sinkCapacity, ex.windowTokens, sw!),
          ex.window![tn],
          ex.windowTokens,
          16,
        );
      }
      let at = 0;
      for (const c of ex.body) {
        const L = st.body.layout;
        same(`body ${tn}`, unpackTokenTensor(L, L[tn]!, 0, at, c.tokens, body), c[tn], c.tokens, ex.bits);
        at += c.tokens;
      }
    }
  }
}

for (const [name, maxLen] of [["pmkvq kv-bits 2", 420], ["static int4", 420]] as const) {
  Deno.test({
    name:
      `packed-engine[webgpu] ${name}: PackedGpuCache fed through the qkv activation is byte-identical to GroupedCache after every append`,
    ignore: noGpu,
    fn: async () => {
      const m = await model();
      const c = m.config;
      const spec = specsFor(m, maxLen).find(([n]) => n === name)![1];
      const ctx = gpu.ctx!;
      const nH = c.numHeads, nKv = c.numKvHeads, D = c.headDim, QKV = (nH + 2 * nKv) * D;
      const Tmax = 200;
      const qkv = storageBuffer(ctx, "test qkv", 4 * Tmax * QKV);
      const out = storageBuffer(ctx, "test out", 4 * Tmax * nH * D);
      const cache = await createPackedGpuCache({
        reg: registryFor(ctx),
        shape: { numLayers: c.numLayers, numHeads: nH, numKvHeads: nKv, headDim: D },
        capacity: maxLen,
        io: { qkv, out },
      }, spec);
      const cpu = createCache(spec, kvShapeOf(c)) as GroupedCache;
      const r = mulberry32(7);
      const row = nKv * D;
      try {
        let n = 0;
        while (n < maxLen) {
          const t = Math.min(maxLen - n, n === 0 ? Tmax : 1 + Math.floor(r() * 45));
          const x = new Float32Array(t * QKV).map(() => (r() * 2 - 1) * (1 + 3 * r()));
          ctx.device.queue.writeBuffer(qkv, 0, x);
          const enc = ctx.device.createCommandEncoder();
          const pass = enc.beginComputePass();
          for (let l = 0; l < c.numLayers; l++) {
            cache.encodeAppend(pass, l, t, n);
            const k = new Float32Array(t * row), v = new Float32Array(t * row);
            for (let i = 0; i < t; i++) {
              k.set(x.subarray(i * QKV + nH * D, i * QKV + (nH + nKv) * D), i * row);
              v.set(x.subarray(i * QKV + (nH + nKv) * D, (i + 1) * QKV), i * row);
            }
            cpu.append(l, k, v, t);
          }
          pass.end();
          cache.flush();
          ctx.device.queue.submit([enc.finish()]);
          cache.commit(t);
          n += t;
          await assertSameStores(cache, cpu, `after ${n} tokens`);
        }
        const g = cache.stats(), w = cpu.stats();
        assert.deepEqual(g.events, w.events);
        assert.deepEqual(g.layers, w.layers);
        assert.equal(g.bytes, w.bytes);
        assert.equal(g.peakBytes, w.peakBytes);
        assert.equal(g.method, w.method);
        if (spec.method === "pmkvq") {
          assert.ok(g.events.length >= 3 * c.numLayers, `expected shrinks, got ${JSON.stringify(g.events)}`);
        }
        console.log(
          `  ${name}: ${n} tokens, ${g.events.length} shrink events, ${g.bytes} bytes (as the CPU)`,
        );
      } finally {
        cache.destroy();
        qkv.destroy();
        out.destroy();
      }
    },
  });
}

for (const name of ["pmkvq kv-bits 2", "static int4"]) {
  Deno.test({
    name: `packed-engine[webgpu] tiny-lm ${name}: prefill + ${
      name === "static int4" ? STATIC_STEPS : STEPS
    } greedy steps identical to the CPU engine`,
    ignore: noGpu,
    fn: async () => {
      const m = await model();
      const ids = await prompt();
      const STEPS = name === "static int4" ? STATIC_STEPS : ALL_STEPS;
      const maxLen = ids.length + STEPS;
      const spec = specsFor(m, maxLen).find(([n]) => n === name)![1];
      const t0 = performance.now();
      const cpu = createCpuEngine(m, spec);
      const cpuLogits = [await cpu.prefill(ids)];
      const want = [argmax(cpuLogits[0])];
      while (want.length < STEPS) {
        const l = await cpu.decode(want[want.length - 1]);
        cpuLogits.push(l);
        want.push(argmax(l));
      }
      const t1 = performance.now();
      const engine = await createGpuEngine(m, spec, { maxLen, context: gpu.ctx! });
      try {
        const prefill = await engine.prefill(ids);
        const err = maxAbsDiff(prefill, cpuLogits[0]);
        console.log(`  prefill logits vs cpu, max abs ${err.toExponential(2)} (bound 2e-4)`);
        assert.ok(err <= 2e-4);
        const got = [argmax(prefill)];
        got.push(...await engine.decodeGreedyMany(got[0], STEPS - 1));
        const t2 = performance.now();
        const div = got.findIndex((t, i) => t !== want[i]);
        if (div >= 0) {
          const l = cpuLogits[div];
          const sorted = [...l].sort((a, b) => b - a);
          console.log(
            `  FIRST DIVERGENCE at step ${div}: gpu ${got[div]}, cpu ${want[div]}; cpu top-2 gap ${
              (sorted[0] - sorted[1]).toExponential(2)
            }`,
          );
        } else console.log(`  ${STEPS} tokens identical`);
        const g = engine.cacheStats(), w = cpu.cacheStats();
        console.log(
          `  cpu ${((t1 - t0) / 1000).toFixed(1)} s, webgpu ${
            ((t2 - t1) / 1000).toFixed(1)
          } s (incl. compile); ` +
            `${g.events.length} shrink events, ${g.bytes} bytes`,
        );
        const must = name === "static int4" && !software ? HW_STATIC_ASSERT : STEPS;
        if (must < STEPS) console.log(`  asserted: the first ${must} tokens (hardware adapter, static int4)`);
        assert.deepEqual(got.slice(0, must), want.slice(0, must), "greedy tokens vs the CPU engine");
        assert.deepEqual(g.events, w.events);
        assert.deepEqual(g.layers, w.layers);
        assert.equal(g.bytes, w.bytes);
        assert.equal(g.peakBytes, w.peakBytes);
        assert.equal(g.tokens, w.tokens);
        if (spec.method === "pmkvq") {
          const late = g.events.filter((e) => e.step > ids.length).length;
          console.log(`  shrink events during decode (after the ${ids.length}-token prompt): ${late}`);
          assert.ok(late > 0, `the plan shrinks during the decode run: ${JSON.stringify(g.events)}`);
        }
      } finally {
        engine.dispose();
      }
    },
  });
}

Deno.test({
  name:
    "packed-engine[webgpu] contract: BudgetError before recording, stop ids, prefill after cached tokens, reset",
  ignore: noGpu,
  fn: async () => {
    const m = await model();
    const ids = (await prompt()).slice(0, 40);
    const maxLen = 48;
    const spec = planToCacheSpec(uniformPlan(kvShapeOf(m.config), m.fingerprint, maxLen, 2, { window: 16 }));
    // the CPU decodes until the plan's budget raises BudgetError
    const cpu = createCpuEngine(m, spec);
    const want = [argmax(await cpu.prefill(ids))];
    let cpuError: unknown = null;
    while (want.length < 64 && cpuError === null) {
      try {
        want.push(argmax(await cpu.decode(want[want.length - 1])));
      } catch (e) {
        cpuError = e;
      }
    }
    assert.ok(cpuError instanceof BudgetError, `the CPU should outgrow its plan, got ${cpuError}`);
    const engine = await createGpuEngine(m, spec, { maxLen: 128, context: gpu.ctx! });
    try {
      for (let round = 0; round < 2; round++) {
        engine.reset();
        const got = [argmax(await engine.prefill(ids))];
        await assert.rejects(engine.prefill([5, 6]), GpuError); // multi-token prefill after cached tokens
        assert.equal(engine.position, ids.length);
        got.push(...await engine.decodeGreedyMany(got[0], want.length - 1));
        assert.deepEqual(got, want, `round ${round}: greedy tokens vs the CPU engine`);
        const before = engine.cacheStats();
        const pos = engine.position;
        await assert.rejects(engine.decodeGreedyMany(got[got.length - 1], 1), BudgetError);
        await assert.rejects(engine.decode(got[got.length - 1]), BudgetError);
        assert.equal(engine.position, pos);
        assert.deepEqual(engine.cacheStats(), before);
        const w = cpu.cacheStats();
        assert.deepEqual(before.events, w.events);
        assert.deepEqual(before.layers, w.layers);
      }
      // stop ids: steps are recorded one at a time, nothing past the stop token is stored
      engine.reset();
      const first = argmax(await engine.prefill(ids));
      const stopAt = want.indexOf(want[3], 1) === 3 ? 3 : -1;
      if (stopAt > 0) {
        const out = await engine.decodeGreedyMany(first, 6, { stopIds: [want[stopAt]] });
        assert.deepEqual(out, want.slice(1, stopAt + 1));
        assert.equal(engine.position, ids.length + stopAt);
        assert.equal(engine.cacheStats().tokens, ids.length + stopAt);
        const rest = await engine.decodeGreedyMany(out[out.length - 1], 2);
        assert.deepEqual(rest, want.slice(stopAt + 1, stopAt + 3));
      } else console.log("  stop-id check skipped: token 3 repeats an earlier one");
    } finally {
      engine.dispose();
    }
  },
});
