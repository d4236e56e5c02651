/**
 * Probe: read bandwidth of the block attention kernels' load patterns with no arithmetic (are the score and
 * value kernels held back by HOW they read, not by how much?). Every kernel reads the same 256 MiB once,
 * cut into blocks of 256 rows (the default block) of W vec4 words each (W = 2: a 2-bit row of 128 dims, 4: a
 * 4-bit row), one 64-invocation workgroup per block, and folds what it read with XOR into one word per
 * invocation (so nothing is optimised away):
 *
 * | kernel | pattern | as in |
 * | --- | --- | --- |
 * | `linear` | invocation l reads vec4 l + 64·k of the block: every warp instruction covers 512 contiguous bytes | the bandwidth reference |
 * | `rows` | invocation l reads the whole rows l + 64·k (k < 4), all 4·W vec4 loads issued first | block_attention.wgsl.ts score kernel (tq 1, every K load before the barrier) |
 * | `words` | invocation (dg, lane) reads the one u32 word of its 4 dims (2-bit: word dg/4) of rows q, q+64, q+128, q+192 for its quads q, 4 quads per step | the value kernel (uq 4, no pipe) |
 *
 * Today's schedules use 512-row blocks (quad q of a block: rows q + 128·i, i < 4). The `…c` kernels read
 * consecutive quads instead (rows 4q + i): the `qcon` experiment of 2026-12-06, reverted
 * (docs/measurements/h100-block-attention-2026-12-06i.md, `qcon.patch`):
 *
 * | kernel | pattern | as in |
 * | --- | --- | --- |
 * | `rows512` | invocation l reads the whole rows of its quads l and l + 64 (8 rows), all loads first | the score kernel (tq 2) |
 * | `rows512c` | the same with consecutive quads: rows 4·(l + 64·k) + i, 128 contiguous bytes per quad | the score kernel under `qcon` |
 * | `shuf` (2-bit) | invocation (dg, ql) reads ONE word per quad: word dg/4 of row q + 128·(dg % 4); quads q0 + 2j, j < 8 per step | the value kernel with `vshuf` (uq 8) |
 * | `shufc` (2-bit) | the same, row 4q + dg % 4: a warp's load is one 128-byte line | the value kernel with `vshuf` under `qcon` |
 * | `words512` (4-bit) | invocation (dg, ql) reads word dg/2 of rows q + 128·i (i < 4) per quad; quads q0 + 2j, j < 8 per step | the 4-bit value kernel (uq 8) |
 * | `words512c` (4-bit) | the same, rows 4q + i | the 4-bit value kernel under `qcon` |
 *
 *   deno run -A bench/gpu_access_probe.ts [--mib 256]
 *
 * Prints µs and GB/s per kernel and W (best of 5 passes, bench/timer.ts).
 *
 * @module
 */
import { acquireGpu } from "../gpu/device.ts";
import { PackedGpu } from "../gpu/packed/util.ts";
import { BenchTimer } from "./timer.ts";

const ROWS = 256, WG = 64;
/** Bytes read per kernel: 256 MiB, or `--mib N`. */
const MIB = Number(Deno.args[Deno.args.indexOf("--mib") + 1] ?? 256);
const BYTES = (Deno.args.includes("--mib") ? MIB : 256) * 1024 * 1024;

/** The probe kernels (module doc). */
export type ProbeKind =
  | "linear"
  | "rows"
  | "words"
  | "rows512"
  | "rows512c"
  | "shuf"
  | "shufc"
  | "words512"
  | "words512c";

/**
 * The quad structure of each kernel but `linear`: quads of QB = rows/4 (quad q = rows q + QB·i, or with `con`
 * rows 4q + i). Row kernels: invocation l holds quads l + 64·k for k < tq. Word kernels: invocation (dg, ql)
 * visits quads ql + 2j + step·QB/8 (QB/16 quads per step) and reads one word of each quad row (`shuf`: only
 * row dg % 4 of the quad).
 */
const QUADS: Record<
  Exclude<ProbeKind, "linear">,
  { rows: number; con: boolean; tq?: number; shuf?: boolean }
> = {
  rows: { rows: 256, con: false, tq: 1 },
  rows512: { rows: 512, con: false, tq: 2 },
  rows512c: { rows: 512, con: true, tq: 2 },
  words: { rows: 256, con: false },
  words512: { rows: 512, con: false },
  words512c: { rows: 512, con: true },
  shuf: { rows: 512, con: false, shuf: true },
  shufc: { rows: 512, con: true, shuf: true },
};

/** Rows per workgroup (block) of a probe kernel. */
export function probeRows(kind: ProbeKind): number {
  return kind === "linear" ? ROWS : QUADS[kind].rows;
}

/** Whether a probe kernel reads single words (`srw`, binding 1) rather than vec4 words (`src`, binding 0). */
export function probeReadsWords(kind: ProbeKind): boolean {
  return kind !== "linear" && QUADS[kind].tq === undefined;
}

/** WGSL of one probe kernel for rows of `w` vec4 words. */
export function accessProbeWgsl(kind: ProbeKind, w: number): string {
  const head = `
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> srw: array<u32>;
@group(0) @binding(2) var<storage, read_write> o: array<u32>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let blk = wid.x + wid.y * 1024u;
  let base = blk * ${probeRows(kind) * w}u;
  var a = vec4<u32>(0u);`;
  const tail = `
  o[blk * ${WG}u + l] = a.x ^ a.y ^ a.z ^ a.w;
}`;
  if (kind === "linear") {
    const ls = [...Array((ROWS * w) / WG).keys()]; // vec4 loads per invocation
    return `${head}
${ls.map((k) => `  let v${k} = src[base + l + ${k * WG}u];`).join("\n")}
${ls.map((k) => `  a ^= v${k};`).join("\n")}${tail}`;
  }
  const { rows, con, tq, shuf } = QUADS[kind];
  const QB = rows / 4;
  // row i of quad `q` (a WGSL expression)
  const row = (q: string, i: string) => (con ? `4u * (${q}) + ${i}` : `${q} + ${QB}u * ${i}`);
  if (tq !== undefined) {
    // rows: every vec4 word of the invocation's quads, all loads issued first
    const ls = [...Array(tq).keys()].flatMap((k) =>
      [0, 1, 2, 3].flatMap((i) => [...Array(w).keys()].map((j) => [k, i, j]))
    );
    return `${head}
${
      ls.map(([k, i, j]) =>
        `  let v${k}_${i}_${j} = src[base + (${row(`l + ${64 * k}u`, `${i}u`)}) * ${w}u + ${j}u];`
      ).join("\n")
    }
${ls.map(([k, i, j]) => `  a ^= v${k}_${i}_${j};`).join("\n")}${tail}`;
  }
  // words: 4·w u32 words per row, and invocation dg (of 32, 4 dims each) reads word dg / (32 / (4·w)), as the
  // value kernel: 2-bit rows (w 2) → word dg/4, 4-bit rows (w 4) → word dg/2; with shuf (2-bit only) one word
  // per quad, row dg % 4's
  if (shuf && w !== 2) throw new RangeError(`probe ${kind} is for 2-bit rows (w 2), got w ${w}`);
  const wpr = 4 * w, uq = QB / 16, js = [...Array(uq).keys()];
  const its = shuf ? ["p"] : [0, 1, 2, 3];
  return `${head}
  let dg = l % 32u; let ql = l / 32u;${shuf ? " let pj = dg % 4u;" : ""}
  let wb = base * 4u + dg / ${32 / wpr}u;
  for (var q0 = ql; q0 < ${QB}u; q0 += ${2 * uq}u) {
${
    js.flatMap((j) =>
      its.map((i) =>
        `    let r${j}_${i} = srw[wb + (${row(`q0 + ${2 * j}u`, shuf ? "pj" : `${i}u`)}) * ${wpr}u];`
      )
    ).join("\n")
  }
${js.map((j) => `    a.${"xyzw"[j % 4]} ^= ${its.map((i) => `r${j}_${i}`).join(" ^ ")};`).join("\n")}
  }${tail}`;
}

if (import.meta.main) {
  const ctx = await acquireGpu();
  const gpu = new PackedGpu(ctx);
  const dev = gpu.device;
  const src = gpu.storage("src", BYTES);
  const timer = new BenchTimer(gpu);
  console.log(`${ctx.description}; timing: ${timer.method}`);
  for (const w of [2, 4]) {
    const kinds: ProbeKind[] = w === 2
      ? ["linear", "rows", "words", "rows512", "rows512c", "shuf", "shufc"]
      : ["linear", "rows", "words", "rows512", "rows512c", "words512", "words512c"];
    for (const kind of kinds) {
      const blocks = BYTES / (probeRows(kind) * w * 16);
      if (blocks > 1024 && blocks % 1024 !== 0) {
        throw new RangeError(`--mib gives ${blocks} blocks of ${kind}, not a multiple of 1024`);
      }
      const out = gpu.storage("o", 4 * blocks * WG);
      const p = await gpu.pipeline(`probe ${kind} ${w}`, accessProbeWgsl(kind, w));
      // the auto layout holds only the bindings a kernel uses: src (0) or srw (1), and o (2)
      dev.pushErrorScope("validation");
      const bg = dev.createBindGroup({
        layout: p.layout,
        entries: [{
          binding: probeReadsWords(kind) ? 1 : 0,
          resource: { buffer: src },
        }, {
          binding: 2,
          resource: { buffer: out },
        }],
      });
      const bad = await dev.popErrorScope();
      if (bad) throw new Error(`probe ${kind} w ${w}: ${bad.message}`);
      const best = 1e6 * await timer.time(
        (pass) => {
          pass.setPipeline(p.pipeline);
          pass.setBindGroup(0, bg);
          pass.dispatchWorkgroups(Math.min(blocks, 1024), Math.ceil(blocks / 1024));
        },
        1,
        5,
      );
      console.log(`w ${w} ${kind}: ${best.toFixed(1)} us, ${(BYTES / best / 1e3).toFixed(0)} GB/s`);
      out.destroy();
    }
  }
}
