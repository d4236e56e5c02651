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
export function accessProbeWgsl(kind: "linear" | "rows" | "words", w: number): string {
  const head = `
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> srw: array<u32>;
@group(0) @binding(2) var<storage, read_write> o: array<u32>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) l: u32) {
  let blk = wid.x + wid.y * 1024u;
  let base = blk * ${ROWS * w}u;
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
  // words: 4·w u32 words per row, and invocation dg (of 32, 4 dims each) reads word dg / (32 / (4·w)), as the
  // value kernel: 2-bit rows (w 2) → word dg/4, 4-bit rows (w 4) → word dg/2
  const wpr = 4 * w, per = 32 / wpr;
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
    const blocks = BYTES / (ROWS * w * 16);
    const out = gpu.storage("o", 4 * blocks * WG);
    for (const kind of ["linear", "rows", "words"] as const) {
      const p = await gpu.pipeline(`probe ${kind} ${w}`, accessProbeWgsl(kind, w));
      // the auto layout holds only the bindings a kernel uses: src (0) or srw (1), and o (2)
      dev.pushErrorScope("validation");
      const bg = dev.createBindGroup({
        layout: p.layout,
        entries: [{ binding: kind === "words" ? 1 : 0, resource: { buffer: src } }, {
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
          pass.dispatchWorkgroups(1024, blocks / 1024);
        },
        1,
        5,
      );
      console.log(`w ${w} ${kind}: ${best.toFixed(1)} us, ${(BYTES / best / 1e3).toFixed(0)} GB/s`);
    }
    out.destroy();
  }
}
