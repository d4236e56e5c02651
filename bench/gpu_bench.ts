/**
 * WebGPU kernel throughput (`deno bench -A bench/gpu_bench.ts`): a vec4 copy kernel as the bandwidth
 * reference, the decode matmul (matrix-vector, bf16 weights) and decode attention over the exact f32 cache.
 * Each iteration times one pass of `reps` dispatches with timestamp queries when available (else the wall
 * clock around onSubmittedWorkDone); the summary printed at the end gives GB/s (best iteration) and the
 * fraction of the copy kernel's GB/s measured in the same run.
 *
 * Bytes counted:
 * | kernel | bytes per dispatch |
 * |---|---|
 * | copy | 2 · size (read + write) |
 * | matmul | N·K·2 (bf16 weights) + K·4 + N·4 |
 * | decode attention | 2·nKv·n·D·4 (K and V) + partials |
 * Shapes are large on GPUs (1 GiB copy, Llama-3-8B-like matmul 4096→14336, 32 q / 8 KV heads × 32,768 tokens)
 * and small on software adapters (llvmpipe) so the bench finishes; `PMKVQ_BENCH_SCALE=small|large` forces one.
 *
 * @example
 * ```ts
 * // deno bench -A bench/gpu_bench.ts
 * ```
 * @module
 */
import { acquireGpu, type GpuContext } from "../gpu/device.ts";
import { registryFor } from "../gpu/registry.ts";
import { isSoftwareAdapter } from "../gpu/tuning.ts";
import { StepBuffer } from "../gpu/step.ts";
import { storageBuffer } from "../gpu/buffers.ts";
import { PassTimer } from "../gpu/timer.ts";
import { CopyKernel } from "../gpu/kernels/copy.ts";
import { MatmulKernel } from "../gpu/kernels/matmul.ts";
import { AttentionKernels, decodeSplit } from "../gpu/kernels/attention.ts";
import { MAX_SPLITS } from "../gpu/cache/exact.ts";

let ctx: GpuContext | null = null;
let reason = "";
try {
  ctx = await acquireGpu();
} catch (e) {
  reason = (e as Error).message;
  console.warn(`SKIPPED: WebGPU benches are ignored: ${reason}`);
}

const scaleEnv = Deno.env.get("PMKVQ_BENCH_SCALE");
const small = scaleEnv ? scaleEnv === "small" : ctx === null || isSoftwareAdapter(ctx);
const REPS = small ? 4 : 20;

/** Best GB/s seen per bench. */
const best = new Map<string, { gbps: number; method: string }>();

function record(name: string, bytes: number, seconds: number, method: string): void {
  const gbps = bytes / seconds / 1e9;
  const prev = best.get(name);
  if (!prev || gbps > prev.gbps) best.set(name, { gbps, method });
}

interface Case {
  name: string;
  bytes: number;
  encode: (pass: GPUComputePassEncoder) => void;
  step: StepBuffer;
}

async function setup(): Promise<{ cases: Case[]; timer: PassTimer } | null> {
  if (!ctx) return null;
  const reg = registryFor(ctx);
  const timer = new PassTimer(ctx);
  const cases: Case[] = [];
  const step1 = new StepBuffer(reg, 1);
  step1.set(0, { T: 1, P: 0, pos0: 0, idBase: 0, idOut: 0, split: 64, nSplits: 1 });
  step1.flush();

  // copy: size limited by the binding limit
  const copyBytes = Math.min(small ? 16 << 20 : 1 << 30, ctx.limits.maxStorageBufferBindingSize & ~15);
  const copy = await CopyKernel.create(reg);
  const src = storageBuffer(ctx, `copy src [${copyBytes / 16}] vec4<f32>`, copyBytes);
  const dst = storageBuffer(ctx, `copy dst [${copyBytes / 16}] vec4<f32>`, copyBytes);
  const copyBind = copy.bind(src, dst);
  cases.push({
    name: `copy ${copyBytes >> 20} MiB`,
    bytes: 2 * copyBytes,
    step: step1,
    encode: (p) => copy.encode(p, copyBind, copyBytes / 16),
  });

  // decode matmul shapes (bf16 weights)
  const shapes: [number, number, string][] = small
    ? [[384, 2048, "tiny-lm gate|up"], [1024, 4096, "1024→4096"]]
    : [[384, 2048, "tiny-lm gate|up"], [4096, 14336, "4096→14336 (8B MLP)"], [4096, 128256, "8B LM head"]];
  for (const [K, N, label] of shapes) {
    const mm = await MatmulKernel.create(reg, { K, N, weights: "bf16", bias: false, residual: false });
    const bind = mm.bind({
      x: storageBuffer(ctx, `x [${K}] f32`, 4 * K),
      w: storageBuffer(ctx, `w [${N}, ${K}] bf16x2`, 2 * N * K),
      out: storageBuffer(ctx, `out [${N}] f32`, 4 * N),
    });
    cases.push({
      name: `matmul decode ${label} ${K}x${N}`,
      bytes: 2 * N * K + 4 * (K + N),
      step: step1,
      encode: (p) => mm.encode(p, bind, 1),
    });
  }

  // decode attention over the f32 cache
  const [nH, nKv, D, n] = small ? [4, 2, 128, 4096] : [32, 8, 128, 32768];
  const maxSplits = MAX_SPLITS;
  const att = await AttentionKernels.create(reg, {
    numHeads: nH,
    numKvHeads: nKv,
    headDim: D,
    capacity: n,
    maxSplits,
  });
  const QKV = (nH + 2 * nKv) * D;
  const binds = att.bind({
    qkv: storageBuffer(ctx, `qkv [1, ${QKV}] f32`, 4 * QKV),
    cacheK: storageBuffer(ctx, `K [${nKv}, ${n}, ${D}] f32`, 4 * nKv * n * D),
    cacheV: storageBuffer(ctx, `V [${nKv}, ${n}, ${D}] f32`, 4 * nKv * n * D),
    out: storageBuffer(ctx, `out [${nH * D}] f32`, 4 * nH * D),
    partAcc: storageBuffer(ctx, `partAcc [${nH}, ${maxSplits}, ${D}] f32`, 4 * nH * maxSplits * D),
    partStats: storageBuffer(ctx, `partStats [${nH}, ${maxSplits}, 2] f32`, 8 * nH * maxSplits),
  });
  const sp = decodeSplit(n, maxSplits);
  const stepAtt = new StepBuffer(reg, 1);
  stepAtt.set(0, { T: 1, P: n - 1, pos0: n - 1, idBase: 0, idOut: 0, ...sp });
  stepAtt.flush();
  cases.push({
    name: `decode attention ${nH}q/${nKv}kv heads × ${n} tokens (f32 cache)`,
    bytes: 2 * nKv * n * D * 4 + 4 * nH * sp.nSplits * (D + 2) * 2,
    step: stepAtt,
    encode: (p) => att.encodeDecode(p, binds, sp.nSplits),
  });
  return { cases, timer };
}

const env = await setup();
const names = env?.cases.map((c) => c.name) ??
  ["copy", "matmul decode tiny-lm gate|up", "decode attention"];

for (const name of names) {
  Deno.bench({
    name,
    group: "gpu kernels",
    ignore: !env,
    n: small ? 3 : 20,
    warmup: 1,
    fn: async () => {
      const c = env!.cases.find((x) => x.name === name)!;
      const seconds = await env!.timer.time((pass) => {
        for (let i = 0; i < REPS; i++) c.encode(pass);
      }, c.step.bindGroup);
      record(name, c.bytes * REPS, seconds, env!.timer.method);
    },
  });
}

globalThis.addEventListener("unload", () => {
  if (!ctx || best.size === 0) return;
  const copy = [...best.entries()].find(([k]) => k.startsWith("copy"))?.[1].gbps ?? NaN;
  const lines = [
    `\nWebGPU kernel throughput on ${ctx.description} (${REPS} dispatches per pass, best pass):`,
  ];
  lines.push("| kernel | GB/s | fraction of copy | timing |", "|---|---|---|---|");
  for (const [name, r] of best) {
    lines.push(`| ${name} | ${r.gbps.toFixed(1)} | ${(r.gbps / copy).toFixed(2)} | ${r.method} |`);
  }
  console.log(lines.join("\n"));
});
