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

/** WGSL of one probe kernel for rows of `w` vec4 words. */
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

/** Rows per workgroup (block) of a probe kernel. */
export function probeRows(kind: ProbeKind): number {
  return ["linear", "rows", "words"].includes(kind) ? ROWS : 512;
}

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
  const n = (ROWS * w) / WG; // vec4 loads per invocation
  if (kind === "linear") {
    const ls = [...Array(n).keys()];
    return `${head}
${ls.map((k) => `  let v${k} = src[base + l + ${k * WG}u];`).join("\n")}
${ls.map((k) => `  a ^= v${k};`).join("\n")}${tail}`;
  }
  if (kind === "rows") {
    const ls = [...Array(4).keys()].flatMap((k) => [...Array(w).keys()].map((j) => [k, j]));
    return `${head}
${ls.map(([k, j]) => `  let v${k}_${j} = src[base + (l + ${k * WG}u) * ${w}u + ${j}u];`).join("\n")}
${ls.map(([k, j]) => `  a ^= v${k}_${j};`).join("\n")}${tail}`;
  }
  const wpr = 4 * w;
  if (kind === "rows512" || kind === "rows512c") {
    const row = (
      k: number,
      i: number,
    ) => (kind === "rows512" ? `(l + ${64 * k + 128 * i}u)` : `(4u * l + ${256 * k + i}u)`);
    const ls = [0, 1].flatMap((k) => [0, 1, 2, 3].flatMap((i) => [...Array(w).keys()].map((j) => [k, i, j])));
    return `${head}
${ls.map(([k, i, j]) => `  let v${k}_${i}_${j} = src[base + ${row(k, i)} * ${w}u + ${j}u];`).join("\n")}
${ls.map(([k, i, j]) => `  a ^= v${k}_${i}_${j};`).join("\n")}${tail}`;
  }
  if (kind === "shuf" || kind === "shufc") {
    if (w !== 2) throw new RangeError(`probe ${kind} is for 2-bit rows (w 2), got w ${w}`);
    const row = (
      j: number,
    ) => (kind === "shuf" ? `(q0 + ${2 * j}u + 128u * pj)` : `(4u * (q0 + ${2 * j}u) + pj)`);
    return `${head}
  let dg = l % 32u; let ql = l / 32u; let pj = dg % 4u;
  let wb = base * 4u + dg / 4u;
  for (var q0 = ql; q0 < 128u; q0 += 16u) {
${[...Array(8).keys()].map((j) => `    let r${j} = srw[wb + ${row(j)} * ${wpr}u];`).join("\n")}
    a.x ^= r0 ^ r1; a.y ^= r2 ^ r3; a.z ^= r4 ^ r5; a.w ^= r6 ^ r7;
  }${tail}`;
  }
  if (kind === "words512" || kind === "words512c") {
    const per = 32 / wpr;
    const row = (j: number, i: number) =>
      kind === "words512" ? `(q0 + ${2 * j + 128 * i}u)` : `(4u * (q0 + ${2 * j}u) + ${i}u)`;
    return `${head}
  let dg = l % 32u; let ql = l / 32u;
  let wb = base * 4u + dg / ${per}u;
  for (var q0 = ql; q0 < 128u; q0 += 16u) {
${
      [...Array(8).keys()].flatMap((j) =>
        [0, 1, 2, 3].map((i) => `    let r${j}_${i} = srw[wb + ${row(j, i)} * ${wpr}u];`)
      )
        .join("\n")
    }
${
      [...Array(8).keys()].map((j) => `    a.${"xyzw"[j % 4]} ^= r${j}_0 ^ r${j}_1 ^ r${j}_2 ^ r${j}_3;`)
        .join("\n")
    }
  }${tail}`;
  }
  // words: 4·w u32 words per row, and invocation dg (of 32, 4 dims each) reads word dg / (32 / (4·w)), as the
  // value kernel: 2-bit rows (w 2) → word dg/4, 4-bit rows (w 4) → word dg/2
  const per = 32 / wpr;
  return `${head}
  let dg = l % 32u; let ql = l / 32u;
  let wb = base * 4u + dg / ${per}u;
  for (var q0 = ql; q0 < 64u; q0 += 8u) {
${
    [0, 1, 2, 3].flatMap((j) =>
      [0, 1, 2, 3].map((i) => `    let r${j}_${i} = srw[wb + (q0 + ${j * 2 + i * 64}u) * ${wpr}u];`)
    ).join("\n")
  }
${[0, 1, 2, 3].map((j) => `    a.${"xyzw"[j]} ^= r${j}_0 ^ r${j}_1 ^ r${j}_2 ^ r${j}_3;`).join("\n")}
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
          binding: ["words", "shuf", "shufc", "words512", "words512c"].includes(kind) ? 1 : 0,
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
