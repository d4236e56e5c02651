/**
 * Probe: throughput of WGSL `dot4I8Packed` / `dot4U8Packed` against a plain integer multiply-add and an f32
 * FMA on this adapter (do the packed dot products lower to a hardware instruction, e.g. IDP4A, or to an
 * unpack-multiply-add sequence?). Each invocation runs ITER iterations of 4 independent chains; one op per
 * chain per iteration, plus one integer add that keeps the operand loop-variant in every variant. Two references:
 * `dot4x` XORs the dot product into its chain instead of adding it (so it cannot fold into an IDP4A accumulator)
 * and `ixor` is a shift and an XOR per op (two plain integer ops).
 *
 *   deno run -A bench/gpu_dot4_probe.ts
 *
 * Prints ns per op per invocation and warp-instruction estimates (Gops/s of thread-ops).
 *
 * @module
 */
import { acquireGpu } from "../gpu/device.ts";
import { PackedGpu } from "../gpu/packed/util.ts";
import { BenchTimer } from "./timer.ts";

const ITER = 2048, THREADS = 256, GROUPS = 132 * 32;

function kernel(op: string): string {
  const body: Record<string, string> = {
    dot4i:
      "a0 += dot4I8Packed(x0, y); a1 += dot4I8Packed(x1, y); a2 += dot4I8Packed(x2, y); a3 += dot4I8Packed(x3, y);",
    // XOR instead of add: the dot product's result cannot fold into an IDP4A accumulator (if adds are folded,
    // this costs one more integer op per dot product than dot4i; if they are not, the same)
    dot4x:
      "a0 ^= dot4I8Packed(x0, y); a1 ^= dot4I8Packed(x1, y); a2 ^= dot4I8Packed(x2, y); a3 ^= dot4I8Packed(x3, y);",
    ixor: "a0 ^= i32(x0 >> 3u); a1 ^= i32(x1 >> 3u); a2 ^= i32(x2 >> 3u); a3 ^= i32(x3 >> 3u);",
    dot4u:
      "a0 += i32(dot4U8Packed(x0, y)); a1 += i32(dot4U8Packed(x1, y)); a2 += i32(dot4U8Packed(x2, y)); a3 += i32(dot4U8Packed(x3, y));",
    imad: "a0 += i32(x0 * y); a1 += i32(x1 * y); a2 += i32(x2 * y); a3 += i32(x3 * y);",
    fma:
      "f0 = fma(bitcast<f32>(x0 & 0x3fffffffu), fy, f0); f1 = fma(bitcast<f32>(x1 & 0x3fffffffu), fy, f1); f2 = fma(bitcast<f32>(x2 & 0x3fffffffu), fy, f2); f3 = fma(bitcast<f32>(x3 & 0x3fffffffu), fy, f3);",
    none: "",
  };
  return `
@group(0) @binding(0) var<storage, read_write> o: array<i32>;
@compute @workgroup_size(${THREADS})
fn main(@builtin(global_invocation_id) g: vec3u) {
  var x0 = g.x * 2654435761u; var x1 = x0 ^ 0x5bd1e995u; var x2 = x0 + 0x27d4eb2fu; var x3 = x0 * 3u;
  let y = 0x01fe7f80u + g.x; let fy = 1.0001;
  var a0 = 0; var a1 = 0; var a2 = 0; var a3 = 0;
  var f0 = 0.0; var f1 = 0.0; var f2 = 0.0; var f3 = 0.0;
  for (var i = 0u; i < ${ITER}u; i++) {
    ${body[op]}
    x0 += 0x01010101u; x1 += 0x01030101u; x2 += 0x01010501u; x3 += 0x07010101u;
  }
  o[g.x] = a0 + a1 + a2 + a3 + i32(f0 + f1 + f2 + f3) + i32(x0 ^ x1 ^ x2 ^ x3);
}`;
}

/**
 * The score kernel's inner loop in miniature (per iteration: 4 K words, 4 two-bit planes each, 4 heads: 64 packed
 * dot products and 28 plane operations), to see how its accumulation compiles:
 *
 * | op | body |
 * | --- | --- |
 * | `kv` | as block_attention.wgsl.ts: `it += vec4<i32>(dot4I8Packed(pl, q.x), …, dot4I8Packed(pl, q.w))` |
 * | `ks` | the same dot products added per component: `it.x += dot4I8Packed(pl, q.x); …` |
 * | `kd` | `kv` without the plane extraction (the word itself is the plane) |
 * | `kp` | the plane extraction only, XORed into the accumulators |
 *
 * If the vec4 form did not fold its adds into IDP4A's accumulator, `kv` would cost about a third more than `ks`.
 */
export function scoreLike(op: "kv" | "ks" | "kd" | "kp"): string {
  const words = [0, 1, 2, 3], planes = [0, 1, 2, 3];
  const plane = (w: number, s: number) =>
    op === "kd" ? `w${w}` : s === 0 ? `(w${w} & 0x03030303u)` : `((w${w} >> ${2 * s}u) & 0x03030303u)`;
  const lines: string[] = [];
  for (const w of words) {
    for (const s of planes) {
      const pl = plane(w, s), q = `q${s}`;
      if (op === "kv" || op === "kd") {
        lines.push(
          `it${w} += vec4<i32>(dot4I8Packed(${pl}, ${q}.x), dot4I8Packed(${pl}, ${q}.y), dot4I8Packed(${pl}, ${q}.z), dot4I8Packed(${pl}, ${q}.w));`,
        );
      } else if (op === "ks") {
        for (const c of ["x", "y", "z", "w"]) lines.push(`it${w}.${c} += dot4I8Packed(${pl}, ${q}.${c});`);
      } else {
        lines.push(`it${w} ^= vec4<i32>(bitcast<i32>(${pl}));`);
      }
    }
  }
  return `
@group(0) @binding(0) var<storage, read_write> o: array<i32>;
@compute @workgroup_size(${THREADS})
fn main(@builtin(global_invocation_id) g: vec3u) {
  let q0 = vec4<u32>(g.x * 2654435761u, g.x ^ 0x5bd1e995u, g.x + 0x27d4eb2fu, g.x * 3u);
  let q1 = q0.yzwx; let q2 = q0.zwxy; let q3 = q0.wxyz;
  var it0 = vec4<i32>(0); var it1 = vec4<i32>(0); var it2 = vec4<i32>(0); var it3 = vec4<i32>(0);
  var base = g.x * 0x9e3779b9u;
  for (var i = 0u; i < ${ITER / 4}u; i++) {
    let w0 = base; let w1 = base ^ 0x55aa55aau; let w2 = base + 0x01234567u; let w3 = base ^ 0x0f0f0f0fu;
    ${lines.join("\n    ")}
    base += 0x01010101u;
  }
  let t = it0 + it1 + it2 + it3;
  o[g.x] = t.x + t.y + t.z + t.w;
}`;
}

if (import.meta.main) {
  const ctx = await acquireGpu();
  const gpu = new PackedGpu(ctx);
  const dev = gpu.device;
  const out = gpu.storage("o", 4 * THREADS * GROUPS);
  const timer = new BenchTimer(gpu);
  const times: Record<string, number> = {};
  for (const op of ["none", "imad", "fma", "dot4i", "dot4u", "dot4x", "ixor"]) {
    const p = await gpu.pipeline(`probe ${op}`, kernel(op));
    const bg = dev.createBindGroup({
      layout: p.layout,
      entries: [{ binding: 0, resource: { buffer: out } }],
    });
    const best = 1e6 * await timer.time(
      (pass) => {
        pass.setPipeline(p.pipeline);
        pass.setBindGroup(0, bg);
        pass.dispatchWorkgroups(GROUPS);
      },
      1,
      3,
    );
    times[op] = best;
  }
  // the score-like kernels: 64 dot products per iteration of ITER / 4
  const dots = THREADS * GROUPS * (ITER / 4) * 64;
  for (const op of ["kv", "ks", "kd", "kp"] as const) {
    const p = await gpu.pipeline(`probe ${op}`, scoreLike(op));
    const bg = dev.createBindGroup({
      layout: p.layout,
      entries: [{ binding: 0, resource: { buffer: out } }],
    });
    const us = 1e6 * await timer.time(
      (pass) => {
        pass.setPipeline(p.pipeline);
        pass.setBindGroup(0, bg);
        pass.dispatchWorkgroups(GROUPS);
      },
      1,
      3,
    );
    console.log(
      `${op}: ${us.toFixed(1)} us, ${(dots / us / 1e3).toFixed(0)} G dot-product slots/s (64 per iteration${
        op === "kp" ? ", none run" : ""
      })`,
    );
  }
  const ops = THREADS * GROUPS * ITER * 4;
  for (const [op, us] of Object.entries(times)) {
    const net = us - times.none;
    console.log(
      `${op}: ${us.toFixed(1)} us total, ${net.toFixed(1)} us over 'none'; ${
        (ops / net / 1e3).toFixed(0)
      } G thread-ops/s`,
    );
  }
  console.log(ctx.description);
}
