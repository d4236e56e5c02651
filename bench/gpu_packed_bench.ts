/**
 * Packed-cache WebGPU kernels at a Llama-3-8B-like decode shape (32 query / 8 KV heads, head_dim 128,
 * 32,768 cached tokens, batch 8): fused decode attention over 16-bit (fp16-equivalent), int8, int4, int2 and
 * PM-KVQ mixed layouts (sink 1 @16 + body @2 or @4 + window 127 @16), each over a sweep of workgroup
 * tunings and split counts (the best is reported); a vec4 copy kernel and a read-only vec4 stream measured
 * in the same run as bandwidth references; ERS (whole body) and quantize_append (prefill and one decode
 * token) throughput.
 *
 * Run as a script (prints a Markdown table, then JSON):
 *
 *   deno run -A bench/gpu_packed_bench.ts [--small] [--quick] [--budget SECONDS] [--json FILE] [--md FILE]
 *                                         [--tunings JSON] [--targets 8,16,32] [--layouts int4,PM-KVQ]
 *                                         [--no-ers] [--qbits 16,8,4,2] [--tokens N] [--batch N]
 *
 * `--small` uses a shape llvmpipe finishes in seconds (B 2, 8 / 2 heads, 2,048 tokens); `--quick` sweeps
 * only two tunings; `--tokens` / `--batch` replace the shape's cached tokens per sequence (> 128: PM-KVQ keeps
 * 128 at 16 bits) and batch (a RangeError names any other value). Under `deno bench` it registers one case per
 * layout (default tuning; small shape on software adapters).
 *
 * Timing: timestamp queries around a pass of `iters` calls when the device has `timestamp-query` (else
 * the wall clock around onSubmittedWorkDone of the same pass); best of 3 passes; µs per call.
 *
 * Bytes counted:
 * | kernel | bytes |
 * | --- | --- |
 * | fused attention | K + V bytes of every cached token read: codes + 4-byte sz word per group (= the CPU accounting) |
 * | copy | 2 · size (read + write) |
 * | read stream | size |
 * | ers | source codes + sz read, destination codes + sz written |
 * | quantize_append | f32 input read + codes + sz written |
 *
 * @example
 * ```ts
 * // deno run -A bench/gpu_packed_bench.ts --small --quick
 * import { runPackedBench } from "./gpu_packed_bench.ts";
 * ```
 * @module
 */
import { acquireGpu, type GpuContext } from "../gpu/device.ts";
import { grid2d, PackedGpu, packUniform, type Pipeline } from "../gpu/packed/util.ts";
import { BenchTimer } from "./timer.ts";
import { type StoreLayout, storeLayout, type TensorFormat, unpackTokenTensor } from "../gpu/packed/layout.ts";
import {
  type AttentionTuning,
  DEFAULT_ATTENTION_TUNING,
  FusedAttention,
  type FusedAttentionConfig,
  INT8_QUERY_ATTENTION_TUNING,
  integerKFormat,
  type SegmentRefs,
} from "../gpu/packed/attention.ts";
import { ErsKernel } from "../gpu/packed/ers.ts";
import {
  BlockAttention,
  type BlockAttentionTuning,
  defaultBlockTuning,
} from "../gpu/packed/block_attention.ts";
import { MixedBlockAttention } from "../gpu/packed/mixed_block_attention.ts";
import { quantizeAppendBytes, QuantizeAppendKernel } from "../gpu/packed/quantize_append.ts";
import { BW_THREADS, copyVec4Wgsl, fillStoreWgsl, readVec4Wgsl } from "../gpu/packed/bandwidth.wgsl.ts";
import { formatFor } from "../src/quant/format.ts";
import { dequantizeRows } from "../src/quant/quantizer.ts";
import { attention } from "../cpu/attention.ts";
import { mulberry32 } from "../src/sampling.ts";

/** Shape and sweep of one bench run. */
export interface BenchOptions {
  batch: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  tokens: number;
  tunings: AttentionTuning[];
  /** Split targets per (sequence, KV head). */
  targets: number[];
  iters: number;
  /** Bytes of the copy / read reference buffers. */
  copyBytes: number;
  /** Tokens per sequence of the quantize_append prefill case. */
  prefillTokens: number;
  /** Seconds after which the remaining layouts only run the default tuning at one split target. */
  budgetSeconds?: number;
  /** Only layouts whose name starts with one of these (default: all). */
  layouts?: string[];
  /** Skip the ERS section (`--no-ers`). */
  noErs?: boolean;
  /** quantize_append widths, in this order (`--qbits 2,16`; default 16, 8, 4, 2). */
  qbits?: number[];
  /**
   * BlockAttention schedules run on the layouts with a 2/4-bit body (`--block JSON`; default none); an entry
   * may also carry `fused` (the tuning of MixedBlockAttention's fused kernel for the other segments, e.g.
   * PM-KVQ's sink and window, over DEFAULT_ATTENTION_TUNING) and `target` (its splits per sequence and KV head).
   */
  blockTunings?: BlockRun[];
}

/** A `--block` entry: the block schedule, plus the fused kernel's tuning and split target for other segments. */
export type BlockRun = BlockAttentionTuning & { fused?: AttentionTuning; target?: number };

/** One timed attention configuration. */
export interface AttentionRow {
  layout: string;
  /**
   * The fused kernel's tuning, or `{ block }` for a BlockAttention row (`others`: the fused kernel's tuning and
   * split target for the non-body segments, when the run set them).
   */
  tuning: AttentionTuning | {
    block: BlockAttentionTuning;
    others?: { fused?: AttentionTuning; target?: number };
  };
  target: number;
  splits: number;
  us: number;
  partialUs: number;
  kvBytes: number;
  gbps: number;
}

/** Everything the bench measured. */
export interface BenchReport {
  adapter: string;
  timing: "timestamp" | "wall";
  date: string;
  options: BenchOptions;
  copyGBps: number;
  readGBps: number;
  best: (AttentionRow & { copyFraction: number; readFraction: number; speedup: number; maxDiff: number })[];
  sweep: AttentionRow[];
  cpuCheck: { layout: string; maxAbsErr: number; maxAbsV: number } | null;
  ers: { step: string; us: number; bytes: number; gbps: number; copyFraction: number }[];
  quantize: {
    bits: number;
    tokens: number;
    batch: number;
    us: number;
    bytes: number;
    gbps: number;
    copyFraction: number;
  }[];
}

/** The issue's shape (Llama-3-8B-like) and sweep. */
export const LARGE: BenchOptions = {
  batch: 8,
  numHeads: 32,
  numKvHeads: 8,
  headDim: 128,
  tokens: 32768,
  tunings: [
    { wg: 64, tpt: 1, uv: 1 },
    { wg: 64, tpt: 2, uv: 2 },
    { wg: 128, tpt: 1, uv: 1 },
    { wg: 128, tpt: 2, uv: 1 },
    { wg: 128, tpt: 2, uv: 2 },
    { wg: 128, tpt: 2, uv: 4 },
    { wg: 128, tpt: 4, uv: 2 },
    { wg: 256, tpt: 1, uv: 2 },
    { wg: 256, tpt: 2, uv: 2 },
    { wg: 128, tpt: 1, uv: 2, kpre: 16 },
    { wg: 128, tpt: 2, uv: 2, kpre: 16 },
    { wg: 256, tpt: 1, uv: 4, kpre: 16 },
    { wg: 128, tpt: 2, uv: 4, vd: 8 },
    { wg: 128, tpt: 2, uv: 2, vd: 8 },
    { wg: 64, tpt: 2, uv: 2, vd: 8 },
    INT8_QUERY_ATTENTION_TUNING,
    { wg: 128, tpt: 2, uv: 4, vd: 8, kpre: 1, kdot: true },
  ],
  targets: [8, 16, 32],
  iters: 20,
  copyBytes: 1 << 30,
  prefillTokens: 4096,
};

/** A shape llvmpipe finishes quickly. */
export const SMALL: BenchOptions = {
  batch: 2,
  numHeads: 8,
  numKvHeads: 2,
  headDim: 128,
  tokens: 2048,
  tunings: [{ wg: 64, tpt: 1, uv: 1 }, DEFAULT_ATTENTION_TUNING],
  targets: [4],
  iters: 2,
  copyBytes: 1 << 24,
  prefillTokens: 64,
};

function dispatch2d(pass: GPUComputePassEncoder, p: Pipeline, bg: GPUBindGroup, groups: number): void {
  const [x, y] = grid2d(groups);
  pass.setPipeline(p.pipeline);
  pass.setBindGroup(0, bg);
  pass.dispatchWorkgroups(x, y);
}

/** Fills a store with random codes and a constant sz word (S = 6/qmax rounded up to bf16, z = 3). */
async function fillStore(gpu: PackedGpu, buf: GPUBuffer, L: StoreLayout, seed: number): Promise<void> {
  const pipe = await gpu.pipeline("fill store", fillStoreWgsl());
  const parts = [L.k, L.v].filter((t) => t !== null);
  const codesBegin = Math.min(...parts.map((t) => t!.codesOff));
  const codesEnd = Math.max(...parts.map((t) => t!.codesOff + t!.codeWords));
  const szBegin = Math.min(...parts.map((t) => t!.szOff));
  const szEnd = Math.max(...parts.map((t) => t!.szOff + t!.szWords));
  const bits = formatFor(Number(parts[0]!.format.slice(1))).bits;
  const f32 = new Float32Array(1), u = new Uint32Array(f32.buffer);
  f32[0] = 6 / formatFor(bits).qmax;
  const sb = (u[0] >>> 16) + 1;
  const zb = 0x4040; // 3.0
  const groups = Math.ceil(L.words / BW_THREADS);
  const [gx] = grid2d(groups);
  const uni = gpu.uniform(
    "fill",
    packUniform([codesBegin, codesEnd, szBegin, szEnd, (sb | (zb << 16)) >>> 0, seed, gx, 0]),
  );
  const bg = gpu.device.createBindGroup({
    layout: pipe.layout,
    entries: [{ binding: 0, resource: { buffer: uni } }, { binding: 1, resource: { buffer: buf } }],
  });
  await gpu.submit((pass) => dispatch2d(pass, pipe, bg, groups));
}

interface LayoutSpec {
  name: string;
  /** Stores: [format, capacity]. */
  stores: [TensorFormat, number][];
  /** Segments: store index, tok0, tokens. */
  segments: [number, number, number][];
}

function layoutsFor(T: number): LayoutSpec[] {
  const sink = 1, win = 127, body = T - sink - win;
  return [
    { name: "int16 (fp16-equiv.)", stores: [["q16", T]], segments: [[0, 0, T]] },
    { name: "int8", stores: [["q8", T]], segments: [[0, 0, T]] },
    { name: "int4", stores: [["q4", T]], segments: [[0, 0, T]] },
    { name: "int2", stores: [["q2", T]], segments: [[0, 0, T]] },
    {
      name: "PM-KVQ 1@16 + body@4 + 127@16",
      stores: [["q16", sink + win + 1], ["q4", body]],
      segments: [[0, 0, sink], [1, 0, body], [0, sink + 1, win]],
    },
    {
      name: "PM-KVQ 1@16 + body@2 + 127@16",
      stores: [["q16", sink + win + 1], ["q2", body]],
      segments: [[0, 0, sink], [1, 0, body], [0, sink + 1, win]],
    },
  ];
}

function kvBytesOf(spec: LayoutSpec, o: BenchOptions): number {
  let bytes = 0;
  for (const [store, , n] of spec.segments) {
    const bits = Number(spec.stores[store][0].slice(1));
    const G = Math.min(128, o.headDim);
    bytes += 2 * o.batch * o.numKvHeads * n * (o.headDim / G) * formatFor(bits).bytesPerGroup(G);
  }
  return bytes;
}

/**
 * Runs the whole bench (see the module doc) and returns the report; `log` receives progress lines.
 *
 * @example
 * ```ts
 * const report = await runPackedBench(ctx, SMALL);
 * console.log(benchMarkdown(report));
 * ```
 */
export async function runPackedBench(
  ctx: GpuContext,
  o: BenchOptions,
  log: (s: string) => void = (s) => console.error(s),
): Promise<BenchReport> {
  const gpu = new PackedGpu(ctx);
  const timer = new BenchTimer(gpu);
  const dev = gpu.device;
  const start = performance.now();
  const lim = ctx.limits;
  log(
    `${ctx.description}: features ${
      [...ctx.features].join(",")
    }; workgroup storage ${lim.maxComputeWorkgroupStorageSize}, ` +
      `storage buffers/stage ${lim.maxStorageBuffersPerShaderStage}, binding ${lim.maxStorageBufferBindingSize}`,
  );
  // ---- bandwidth references
  const n4 = o.copyBytes / 16;
  const a = gpu.storage("copy src", o.copyBytes), bb = gpu.storage("copy dst", o.copyBytes);
  const copy = await gpu.pipeline("copy", copyVec4Wgsl());
  const copyBg = dev.createBindGroup({
    layout: copy.layout,
    entries: [{ binding: 0, resource: { buffer: a } }, { binding: 1, resource: { buffer: bb } }],
  });
  const copyS = await timer.time(
    (p) => dispatch2d(p, copy, copyBg, Math.ceil(n4 / BW_THREADS)),
    Math.max(2, o.iters / 2),
  );
  const copyGBps = (2 * o.copyBytes) / copyS / 1e9;
  const ITER = 16;
  const readOut = gpu.storage("read out", o.copyBytes / ITER);
  const read = await gpu.pipeline("read", readVec4Wgsl(ITER));
  const readBg = dev.createBindGroup({
    layout: read.layout,
    entries: [{ binding: 0, resource: { buffer: a } }, { binding: 1, resource: { buffer: readOut } }],
  });
  const readS = await timer.time(
    (p) => dispatch2d(p, read, readBg, Math.ceil(n4 / ITER / BW_THREADS)),
    Math.max(2, o.iters / 2),
  );
  const readGBps = o.copyBytes / readS / 1e9;
  log(`copy ${copyGBps.toFixed(0)} GB/s (read+write), read ${readGBps.toFixed(0)} GB/s`);
  a.destroy();
  bb.destroy();
  readOut.destroy();

  // ---- fused attention
  const { batch: B, numHeads: nH, numKvHeads: nKv, headDim: D } = o;
  const row = (nH + 2 * nKv) * D;
  const r = mulberry32(1);
  const qkvHost = new Float32Array(B * row).map(() => (r() * 2 - 1) * 0.5);
  const qkv = gpu.upload("qkv", qkvHost);
  const out = gpu.storage("out", B * nH * D * 4);
  const sweep: AttentionRow[] = [];
  const best: BenchReport["best"] = [];
  let cpuCheck: BenchReport["cpuCheck"] = null;
  const maxPart = B * nH * (Math.max(...o.targets) + 8) * (D + 2) * 4;
  const part = gpu.storage("part", maxPart);
  for (const spec of layoutsFor(o.tokens)) {
    if (o.layouts && !o.layouts.some((l) => spec.name.startsWith(l))) continue;
    const layouts = spec.stores.map(([f, cap]) =>
      storeLayout({ batch: B, numKvHeads: nKv, headDim: D, capacity: cap, k: f, v: f })
    );
    const bufs = layouts.map((L, i) => gpu.storage(`${spec.name} store ${i}`, L.words * 4));
    for (let i = 0; i < bufs.length; i++) await fillStore(gpu, bufs[i], layouts[i], 17 + i);
    const refs: SegmentRefs[] = spec.segments.map(([s, tok0]) => ({
      k: { t: layouts[s].k!, tok0 },
      v: { t: layouts[s].v!, tok0 },
    }));
    const counts = spec.segments.map(([, , n]) => new Array(B).fill(n));
    const kvBytes = kvBytesOf(spec, o);
    // kdot tunings score 2/4/8-bit K with the int8 query (a different result): their own best row and reference
    const intK = spec.stores.some(([f]) => integerKFormat(f));
    // vdot tunings round the V weights of 2/4-bit V to 8 bits (another result again): their own variant too
    const intV = spec.stores.some(([f]) => f === "q4" || f === "q2");
    const variantOf = (t: AttentionTuning) =>
      (t.kdot && intK ? " (int8 query)" : "") + (t.vdot && intV ? " (int8 weights)" : "");
    const bestRow = new Map<string, AttentionRow>();
    const refOut = new Map<string, Float32Array>();
    const maxDiff = new Map<string, number>();
    // the layout's shape, stores and segments as both attention configs take them
    const shape = {
      numHeads: nH,
      numKvHeads: nKv,
      headDim: D,
      maxBatch: B,
      stores: spec.stores.map(([f]) => ({ k: f, v: f })),
      segments: spec.segments.map(([st]) => ({
        k: { store: st, tensor: "k" as const },
        v: { store: st, tensor: "v" as const },
      })),
    };
    /**
     * Books one timed run of variant `vk`: max diff against the variant's first output (or `fallbackRef`'s),
     * the sweep row, the log line (`what` describes the run) and the variant's best row.
     */
    const record = (
      vk: string,
      got: Float32Array,
      row: Omit<AttentionRow, "layout" | "kvBytes" | "gbps">,
      what: string,
      fallbackRef?: string,
    ) => {
      const ref = refOut.get(vk) ?? (fallbackRef ? refOut.get(fallbackRef) : undefined);
      let md = maxDiff.get(vk) ?? 0;
      if (!ref) refOut.set(vk, got);
      else for (let i = 0; i < got.length; i++) md = Math.max(md, Math.abs(got[i] - ref[i]) || 0);
      if (got.some((x) => !Number.isFinite(x))) md = Infinity;
      maxDiff.set(vk, md);
      const rowR: AttentionRow = {
        ...row,
        layout: spec.name + vk,
        kvBytes,
        gbps: kvBytes / (row.us * 1e-6) / 1e9,
      };
      sweep.push(rowR);
      log(
        `  ${spec.name} ${what} (${rowR.splits} splits): ${rowR.us.toFixed(1)} us (partial ${
          rowR.partialUs.toFixed(1)
        }), ${rowR.gbps.toFixed(0)} GB/s, max diff ${md.toExponential(1)} [${
          ((performance.now() - start) / 1000).toFixed(0)
        } s]`,
      );
      if (!bestRow.has(vk) || rowR.us < bestRow.get(vk)!.us) bestRow.set(vk, rowR);
    };
    const late = o.budgetSeconds !== undefined && (performance.now() - start) / 1000 > o.budgetSeconds;
    if (late) log(`  over the ${o.budgetSeconds} s budget: default tuning only`);
    for (const tuning of late ? [DEFAULT_ATTENTION_TUNING] : o.tunings) {
      const cfg: FusedAttentionConfig = { ...shape, tuning };
      let att: FusedAttention;
      try {
        att = await FusedAttention.create(gpu, cfg);
      } catch (e) {
        log(`  ${spec.name} ${JSON.stringify(tuning)}: skipped (${(e as Error).message.slice(0, 120)})`);
        continue;
      }
      for (const target of late ? [16] : o.targets) {
        const d = att.prepare({ qkv, part, out, stores: bufs }, {
          batch: B,
          q: { off: 0, rowStride: row },
          newKV: { k: nH * D, v: (nH + nKv) * D },
          refs,
          counts,
          splits: { target },
        });
        const s = await timer.time((p) => att.encode(p, d), o.iters);
        const sp = await timer.time((p) => att.encodePartial(p, d), o.iters);
        const got = new Float32Array(await gpu.read(out, 0, B * nH * D * 4));
        record(
          variantOf(tuning),
          got,
          { tuning, target, splits: d.plan.total, us: s * 1e6, partialUs: sp * 1e6 },
          `${JSON.stringify(tuning)} target ${target}`,
        );
        for (const u of d.uniforms) u.destroy();
      }
    }
    // BlockAttention (int8 query + 8-bit weights, block schedule) on the 2/4-bit body; PM-KVQ's 16-bit sink and
    // window on the fused kernel (MixedBlockAttention), one reduce
    const body = spec.segments.findIndex(([st]) => ["q4", "q2"].includes(spec.stores[st][0]));
    for (const run of body >= 0 ? o.blockTunings ?? [] : []) {
      const { fused: ft, target: ftarget, ...bt } = run;
      const fsplits = ftarget ? { target: ftarget } : undefined;
      let att: MixedBlockAttention;
      try {
        att = await MixedBlockAttention.create(gpu, {
          ...shape,
          body,
          maxTokens: o.tokens,
          block: bt,
          fused: ft ? { ...DEFAULT_ATTENTION_TUNING, ...ft } : undefined,
        });
      } catch (e) {
        // a schedule this device cannot run (e.g. workgroup memory over its limit): say so, measure the rest
        log(`  ${spec.name} block ${JSON.stringify(run)}: skipped (${(e as Error).message})`);
        continue;
      }
      const total = att.splits(B, counts, fsplits);
      const bpart = gpu.storage("block part", 4 * att.partialFloats(B, total));
      const d = att.prepare({ qkv, part: bpart, out, stores: bufs }, {
        batch: B,
        q: { off: 0, rowStride: row },
        newKV: { k: nH * D, v: (nH + nKv) * D },
        refs,
        counts,
        splits: fsplits,
      });
      const s = await timer.time((p) => att.encode(p, d), o.iters);
      // cumulative stages: the fused splits (PM-KVQ sink / window), then the block query, score, value kernels
      // (with qsub there is no query kernel: its stage records nothing)
      const stage = (n: 0 | 1 | 2 | 3) => (p: GPUComputePassEncoder) => {
        if (att.fused && d.fused) att.fused.encodePartial(p, d.fused);
        if (n > 0) att.block.encodePartial(p, d.block, n as 1 | 2 | 3);
      };
      const s0 = att.fused ? await timer.time(stage(0), o.iters) : 0;
      const s1 = await timer.time(stage(1), o.iters);
      const s2 = await timer.time(stage(2), o.iters);
      const sp = await timer.time(stage(3), o.iters);
      log(
        `  block stages: ${att.fused ? `fused ${(s0 * 1e6).toFixed(1)} us, + ` : ""}${
          att.block.config.tuning?.qsub ? "query (none: qsub)" : "query"
        } ${(s1 * 1e6).toFixed(1)} us, + score ${(s2 * 1e6).toFixed(1)}, + value ${
          (sp * 1e6).toFixed(1)
        }, + reduce ${(s * 1e6).toFixed(1)}`,
      );
      const got = new Float32Array(await gpu.read(out, 0, B * nH * D * 4));
      // the schedule that ran: the format's default under the device's subgroup defaults and the given fields
      const tuning = {
        block: { ...defaultBlockTuning(att.block.config.k, att.block.config.v), ...att.block.config.tuning },
        ...(ft || ftarget ? { others: { fused: ft, target: ftarget } } : {}),
      };
      // compared with the fused int8-query + vdot result when it ran (same arithmetic up to the weights' scale)
      record(
        " (block)",
        got,
        { tuning, target: 0, splits: d.splits, us: s * 1e6, partialUs: sp * 1e6 },
        `block ${JSON.stringify(tuning.block)}${
          ft || ftarget ? `, others fused ${JSON.stringify(ft ?? {})} target ${ftarget ?? "default"}` : ""
        }`,
        " (int8 query) (int8 weights)",
      );
      for (const u of d.uniforms) u.destroy();
      bpart.destroy();
      att.destroy();
    }
    // CPU check of sequence 0 for the int4 layout (dequantized on the host from the GPU store)
    if (spec.name === "int4" && refOut.size > 0) {
      const L = layouts[0];
      const words = new Uint32Array(await gpu.read(bufs[0], 0, L.words * 4));
      const n = Math.min(o.tokens, 4096);
      const view = (t: "k" | "v") => {
        const q = unpackTokenTensor(L, L[t]!, 0, 0, n, words);
        return dequantizeRows(q, n * nKv * (D / Math.min(128, D)), Math.min(128, D), 4);
      };
      const kv = { k: view("k"), v: view("v"), length: n };
      // compare with a GPU run restricted to the first n tokens
      const att = await FusedAttention.create(gpu, {
        numHeads: nH,
        numKvHeads: nKv,
        headDim: D,
        maxBatch: B,
        stores: [{ k: "q4", v: "q4" }],
        segments: [{ k: { store: 0, tensor: "k" }, v: { store: 0, tensor: "v" } }],
        tuning: DEFAULT_ATTENTION_TUNING,
      });
      const d = att.prepare({ qkv, part, out, stores: bufs }, {
        batch: B,
        q: { off: 0, rowStride: row },
        newKV: { k: nH * D, v: (nH + nKv) * D },
        refs,
        counts: [new Array(B).fill(n)],
        splits: { target: 4 },
      });
      await gpu.submit((p) => att.encode(p, d));
      const got = new Float32Array(await gpu.read(out, 0, nH * D * 4));
      const want = new Float32Array(nH * D);
      attention(
        want,
        qkvHost.subarray(0, nH * D),
        kv,
        qkvHost.subarray(nH * D, (nH + nKv) * D),
        qkvHost.subarray((nH + nKv) * D, row),
        1,
        nH,
        nKv,
        D,
        new Float64Array(n + 1),
      );
      let err = 0, mv = 0;
      for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]) || 0);
      for (const x of kv.v) mv = Math.max(mv, Math.abs(x));
      cpuCheck = { layout: `int4, sequence 0, first ${n} tokens`, maxAbsErr: err, maxAbsV: mv };
      log(`  cpu check: max abs err ${err.toExponential(2)} (max |v| ${mv})`);
    }
    for (const b of bufs) b.destroy();
    for (const [vk, row] of bestRow) {
      best.push({
        ...row,
        copyFraction: row.gbps / copyGBps,
        readFraction: row.gbps / readGBps,
        speedup: 0,
        maxDiff: maxDiff.get(vk) ?? 0,
      });
    }
  }
  const base = best.find((x) => x.layout.startsWith("int16"));
  for (const x of best) x.speedup = base ? base.us / x.us : 0;

  // ---- ERS of a whole body (B × nKv × tokens)
  const ers: BenchReport["ers"] = [];
  for (const [bIn, bOut] of o.noErs ? [] : [[16, 8], [8, 4], [4, 2], [16, 2]] as const) {
    const LS = storeLayout({
      batch: B,
      numKvHeads: nKv,
      headDim: D,
      capacity: o.tokens,
      k: `q${bIn}` as TensorFormat,
      v: null,
    });
    const LD = storeLayout({
      batch: B,
      numKvHeads: nKv,
      headDim: D,
      capacity: o.tokens,
      k: `q${bOut}` as TensorFormat,
      v: null,
    });
    const src = gpu.storage("ers src", LS.words * 4), dst = gpu.storage("ers dst", LD.words * 4);
    await fillStore(gpu, src, LS, 5);
    const k = await ErsKernel.create(gpu, { numKvHeads: nKv, headDim: D, bitsIn: bIn, bitsOut: bOut });
    const d = k.prepare({ src, dst }, {
      batch: B,
      tokens: o.tokens,
      src: { t: LS.k!, tok0: 0 },
      dst: { t: LD.k!, tok0: 0 },
    });
    const s = await timer.time((p) => k.encode(p, d), Math.max(2, o.iters / 2));
    const bytes = 4 * (LS.k!.codeWords + LS.k!.szWords + LD.k!.codeWords + LD.k!.szWords);
    ers.push({
      step: `${bIn}→${bOut}`,
      us: s * 1e6,
      bytes,
      gbps: bytes / s / 1e9,
      copyFraction: bytes / s / 1e9 / copyGBps,
    });
    log(`  ers ${bIn}->${bOut}: ${(s * 1e6).toFixed(1)} us, ${(bytes / s / 1e9).toFixed(0)} GB/s`);
    src.destroy();
    dst.destroy();
  }

  // ---- quantize_append: prefill (t tokens) and one decode token, K and V
  const quantize: BenchReport["quantize"] = [];
  for (const bits of o.qbits ?? [16, 8, 4, 2]) {
    for (const t of [o.prefillTokens, 1]) {
      const L = storeLayout({
        batch: B,
        numKvHeads: nKv,
        headDim: D,
        capacity: t,
        k: `q${bits}` as TensorFormat,
        v: `q${bits}` as TensorFormat,
      });
      const st = gpu.storage("qa store", L.words * 4), status = gpu.storage("status", 16);
      const xr = mulberry32(3);
      const x = gpu.upload("qa x", new Float32Array(2 * B * t * nKv * D).map(() => xr() * 2 - 1));
      const k = await QuantizeAppendKernel.create(gpu, { numKvHeads: nKv, headDim: D, bits, maxBatch: B });
      const d = k.prepare({ x, store: st, status }, {
        batch: B,
        tokens: t,
        src: { k: 0, v: B * t * nKv * D, tokStride: nKv * D, batchStride: t * nKv * D },
        dst: { k: L.k!, v: L.v! },
        pos: new Array(B).fill(0),
      });
      const s = await timer.time((p) => k.encode(p, d), t === 1 ? o.iters * 5 : Math.max(2, o.iters / 2));
      const bytes = quantizeAppendBytes(B * t, nKv, 2, D, bits);
      quantize.push({
        bits,
        tokens: t,
        batch: B,
        us: s * 1e6,
        bytes,
        gbps: bytes / s / 1e9,
        copyFraction: bytes / s / 1e9 / copyGBps,
      });
      log(
        `  quantize_append b${bits} t${t}: ${(s * 1e6).toFixed(1)} us, ${(bytes / s / 1e9).toFixed(0)} GB/s`,
      );
      st.destroy();
      status.destroy();
      x.destroy();
    }
  }
  return {
    adapter: ctx.description,
    timing: timer.method,
    date: new Date().toISOString(),
    options: o,
    copyGBps,
    readGBps,
    best,
    sweep,
    cpuCheck,
    ers,
    quantize,
  };
}

/**
 * The report as Markdown tables.
 *
 * @example
 * ```ts
 * console.log(benchMarkdown(await runPackedBench(ctx, SMALL)));
 * ```
 */
export function benchMarkdown(r: BenchReport): string {
  const o = r.options;
  const gb = (x: number) => (x >= 100 ? x.toFixed(0) : x.toPrecision(2));
  const t = (y: AttentionRow["tuning"]) => {
    if ("block" in y) return `block ${JSON.stringify(y.block)}`;
    const x = y as AttentionTuning;
    return `wg ${x.wg}, tpt ${x.tpt}, uv ${x.uv ?? 1}, kpre ${x.kpre ?? 4}, vd ${x.vd ?? 16}${
      x.kdot ? ", kdot" : ""
    }`;
  };
  const lines = [
    `- Adapter: ${r.adapter}; timing: ${r.timing}; ${r.date}`,
    `- Shape: batch ${o.batch}, ${o.numHeads} query / ${o.numKvHeads} KV heads, head_dim ${o.headDim}, ${o.tokens} cached tokens + 1 new`,
    `- vec4 copy: ${gb(r.copyGBps)} GB/s (read + write); vec4 read stream: ${gb(r.readGBps)} GB/s`,
    "",
    "| layout | µs / call | partial µs | KV MB read | GB/s | of copy BW | of read BW | speed-up vs 16-bit | best tuning | splits | max diff across tunings |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ...r.best.map((b) =>
      `| ${b.layout} | ${b.us.toFixed(1)} | ${b.partialUs.toFixed(1)} | ${(b.kvBytes / 1e6).toFixed(1)} | ${
        gb(b.gbps)
      } | ${(100 * b.copyFraction).toFixed(0)}% | ${(100 * b.readFraction).toFixed(0)}% | ${
        b.speedup.toFixed(2)
      }× | ${t(b.tuning)} | ${b.splits} | ${b.maxDiff.toExponential(1)} |`
    ),
    "",
    r.cpuCheck
      ? `CPU check (${r.cpuCheck.layout}): max abs err ${
        r.cpuCheck.maxAbsErr.toExponential(2)
      }, max |v̂| ${r.cpuCheck.maxAbsV}`
      : "",
    "",
    "| ERS (whole body) | µs | MB moved | GB/s | of copy BW |",
    "| --- | ---: | ---: | ---: | ---: |",
    ...r.ers.map((e) =>
      `| ${e.step} | ${e.us.toFixed(1)} | ${(e.bytes / 1e6).toFixed(1)} | ${gb(e.gbps)} | ${
        (100 * e.copyFraction).toFixed(0)
      }% |`
    ),
    "",
    "| quantize_append (K and V) | µs | MB moved | GB/s | of copy BW |",
    "| --- | ---: | ---: | ---: | ---: |",
    ...r.quantize.map((q) =>
      `| b${q.bits}, batch ${q.batch} × ${q.tokens} token(s) | ${q.us.toFixed(1)} | ${
        (q.bytes / 1e6).toFixed(2)
      } | ${gb(q.gbps)} | ${(100 * q.copyFraction).toFixed(0)}% |`
    ),
  ];
  return lines.join("\n");
}

function isSoftware(ctx: GpuContext): boolean {
  const info = ctx.adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  return info.isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader/i.test(ctx.description);
}

if (import.meta.main) {
  const args = [...Deno.args];
  const flag = (f: string) => args.includes(f);
  const val = (f: string) => {
    const i = args.indexOf(f);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const ctx = await acquireGpu();
  const opts: BenchOptions = { ...(flag("--small") || isSoftware(ctx) && !flag("--large") ? SMALL : LARGE) };
  if (flag("--quick")) opts.tunings = [{ wg: 64, tpt: 1, uv: 1 }, DEFAULT_ATTENTION_TUNING];
  if (val("--budget")) opts.budgetSeconds = Number(val("--budget"));
  if (val("--tunings")) opts.tunings = JSON.parse(val("--tunings")!) as AttentionTuning[];
  if (val("--targets")) opts.targets = val("--targets")!.split(",").map(Number);
  if (val("--layouts")) opts.layouts = val("--layouts")!.split(",");
  if (flag("--no-ers")) opts.noErs = true;
  if (val("--qbits")) opts.qbits = val("--qbits")!.split(",").map(Number);
  if (val("--block")) opts.blockTunings = JSON.parse(val("--block")!) as BlockRun[];
  // the checks of src/cli/kv_flags.ts `intFlag` (a bench error is a RangeError, as in gpu_attention_fresh.ts);
  // a flag given without a value is an error too, not ignored
  const intArg = (f: string, least: number) => {
    if (!flag(f)) return undefined;
    const v = val(f) ?? "";
    const n = Number(v);
    if (v.trim() === "" || !(Number.isSafeInteger(n) && n >= least)) {
      throw new RangeError(`${f} ${JSON.stringify(v)}: must be an integer ≥ ${least}`);
    }
    return n;
  };
  opts.tokens = intArg("--tokens", 129) ?? opts.tokens;
  opts.batch = intArg("--batch", 1) ?? opts.batch;
  const t0 = performance.now();
  const report = await runPackedBench(ctx, opts);
  const md = benchMarkdown(report);
  console.log(md);
  console.log(JSON.stringify(report));
  console.error(`bench took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const jf = val("--json"), mf = val("--md");
  if (jf) Deno.writeTextFileSync(jf, JSON.stringify(report, null, 1));
  if (mf) Deno.writeTextFileSync(mf, md + "\n");
  ctx.destroy();
} else {
  // `deno bench`: one case per layout, default tuning.
  let ctx: GpuContext | null = null;
  try {
    ctx = await acquireGpu();
  } catch (e) {
    console.warn(`SKIPPED: packed GPU benches are ignored: ${(e as Error).message}`);
  }
  if (ctx) {
    const o = isSoftware(ctx) ? SMALL : LARGE;
    const gpu = new PackedGpu(ctx);
    const { batch: B, numHeads: nH, numKvHeads: nKv, headDim: D } = o;
    const row = (nH + 2 * nKv) * D;
    for (
      const [spec, tuning] of layoutsFor(o.tokens).flatMap((sp) =>
        sp.stores.some(([f]) => integerKFormat(f))
          ? [[sp, DEFAULT_ATTENTION_TUNING], [sp, INT8_QUERY_ATTENTION_TUNING]] as const
          : [[sp, DEFAULT_ATTENTION_TUNING]] as const
      )
    ) {
      let run: (() => Promise<void>) | null = null;
      Deno.bench({
        name: `fused decode attention ${spec.name}${
          tuning.kdot ? " (int8 query)" : ""
        } (B ${B}, ${o.tokens} tokens)`,
        group: "packed attention",
        async fn() {
          if (!run) {
            const layouts = spec.stores.map(([f, cap]) =>
              storeLayout({ batch: B, numKvHeads: nKv, headDim: D, capacity: cap, k: f, v: f })
            );
            const bufs = layouts.map((L) => gpu.storage("store", L.words * 4));
            for (let i = 0; i < bufs.length; i++) await fillStore(gpu, bufs[i], layouts[i], i);
            const att = await FusedAttention.create(gpu, {
              numHeads: nH,
              numKvHeads: nKv,
              headDim: D,
              maxBatch: B,
              tuning,
              stores: spec.stores.map(([f]) => ({ k: f, v: f })),
              segments: spec.segments.map(([s]) => ({
                k: { store: s, tensor: "k" },
                v: { store: s, tensor: "v" },
              })),
            });
            const qkv = gpu.storage("qkv", B * row * 4), out = gpu.storage("out", B * nH * D * 4);
            const part = gpu.storage("part", B * nH * 64 * (D + 2) * 4);
            const d = att.prepare({ qkv, part, out, stores: bufs }, {
              batch: B,
              q: { off: 0, rowStride: row },
              newKV: { k: nH * D, v: (nH + nKv) * D },
              refs: spec.segments.map(([s, tok0]) => ({
                k: { t: layouts[s].k!, tok0 },
                v: { t: layouts[s].v!, tok0 },
              })),
              counts: spec.segments.map(([, , n]) => new Array(B).fill(n)),
              splits: { target: 16 },
            });
            run = () => gpu.submit((p) => att.encode(p, d));
          }
          await run();
        },
      });
    }
    // BlockAttention (int8 query + 8-bit weights, block schedule) on the one-segment 2/4-bit layouts
    for (const f of ["q4", "q2"] as const) {
      let run: (() => Promise<void>) | null = null;
      Deno.bench({
        name: `block decode attention int${f.slice(1)} (B ${B}, ${o.tokens} tokens)`,
        group: "packed attention",
        async fn() {
          if (!run) {
            const L = storeLayout({ batch: B, numKvHeads: nKv, headDim: D, capacity: o.tokens, k: f, v: f });
            const store = gpu.storage("store", L.words * 4);
            await fillStore(gpu, store, L, 3);
            const att = await BlockAttention.create(gpu, {
              numHeads: nH,
              numKvHeads: nKv,
              headDim: D,
              maxBatch: B,
              maxTokens: o.tokens,
              k: f,
              v: f,
            });
            const counts = new Array(B).fill(o.tokens);
            const qkv = gpu.storage("qkv", B * row * 4), out = gpu.storage("out", B * nH * D * 4);
            const part = gpu.storage("part", 4 * att.partialFloats(B, att.splits(counts)));
            const d = att.prepare({ qkv, part, out, store }, {
              batch: B,
              q: { off: 0, rowStride: row },
              newKV: { k: nH * D, v: (nH + nKv) * D },
              ref: { k: { t: L.k!, tok0: 0 }, v: { t: L.v!, tok0: 0 } },
              counts,
            });
            run = () => gpu.submit((p) => att.encode(p, d));
          }
          await run();
        },
      });
    }
  }
}
