/**
 * Reference kernels for bandwidth baselines and store filling (used by bench/gpu_packed_bench.ts):
 *
 * | kernel | bindings | what it does |
 * | --- | --- | --- |
 * | {@link copyVec4Wgsl} | 0: `src` `array<vec4<f32>>` read, 1: `dst` read_write | `dst[i] = src[i]`, one vec4 per invocation (the "naive vec4 copy") |
 * | {@link readVec4Wgsl} | 0: `src` read, 1: `out` `array<vec4<f32>>` read_write [threads] | each invocation sums `ITER` vec4s at a grid stride and writes its sum (read-only stream) |
 * | {@link fillStoreWgsl} | 0: uniform `(codesBegin, codesEnd, szBegin, szEnd)`, `(szWord, seed, gridX, 0)`; 1: `st` `array<u32>` read_write | pseudo-random code words in [codesBegin, codesEnd), a constant sz word in [szBegin, szEnd) |
 *
 * Grids are 2-D (`wid.y · gridX + wid.x`) so any size fits the 65,535-workgroup limit.
 *
 * @example
 * ```ts
 * import { copyVec4Wgsl } from "./bandwidth.wgsl.ts";
 * const code = copyVec4Wgsl();
 * ```
 * @module
 */

/** Invocations per workgroup of the bandwidth kernels. */
export const BW_THREADS = 256;

/**
 * The vec4 copy kernel.
 *
 * @example
 * ```ts
 * import { copyVec4Wgsl } from "./bandwidth.wgsl.ts";
 * copyVec4Wgsl().includes("dst[i] = src[i]"); // true
 * ```
 */
export function copyVec4Wgsl(): string {
  return /* wgsl */ `
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@compute @workgroup_size(${BW_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nw.x + wid.x) * ${BW_THREADS}u + lid;
  if (i < arrayLength(&dst)) { dst[i] = src[i]; }
}
`;
}

/**
 * The read-only streaming kernel: `threads` invocations each sum `iter` vec4s at stride `threads`.
 *
 * @example
 * ```ts
 * import { readVec4Wgsl } from "./bandwidth.wgsl.ts";
 * const code = readVec4Wgsl(16);
 * ```
 */
export function readVec4Wgsl(iter: number): string {
  return /* wgsl */ `
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
@compute @workgroup_size(${BW_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nw: vec3u, @builtin(local_invocation_index) lid: u32) {
  let n = arrayLength(&out);
  let i = (wid.y * nw.x + wid.x) * ${BW_THREADS}u + lid;
  if (i >= n) { return; }
  var s = vec4<f32>(0.0);
  for (var k = 0u; k < ${iter}u; k++) { s += src[i + k * n]; }
  out[i] = s;
}
`;
}

/**
 * The store filler.
 *
 * @example
 * ```ts
 * import { fillStoreWgsl } from "./bandwidth.wgsl.ts";
 * const code = fillStoreWgsl();
 * ```
 */
export function fillStoreWgsl(): string {
  return /* wgsl */ `
struct P { r: vec4<u32>, s: vec4<u32> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> st: array<u32>;
fn hash(x: u32) -> u32 {
  var h = x * 0x9E3779B1u;
  h = (h ^ (h >> 16u)) * 0x85EBCA6Bu;
  h = (h ^ (h >> 13u)) * 0xC2B2AE35u;
  return h ^ (h >> 16u);
}
@compute @workgroup_size(${BW_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * p.s.z + wid.x) * ${BW_THREADS}u + lid;
  if (i >= p.r.x && i < p.r.y) { st[i] = hash(i ^ p.s.y); }
  if (i >= p.r.z && i < p.r.w) { st[i] = p.s.x; }
}
`;
}
