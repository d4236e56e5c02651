/**
 * WGSL of the KIVI **stage** kernel: (re)writes rows of a bf16 store — the key residual or a value FIFO
 * (gpu/packed/kivi_layout.ts) — from the stream "c rows of a bf16 source store, then the new input tokens",
 * exactly as `KiviCache` (src/kv/kivi.ts) fills its residual / shifts its FIFO: destination row r takes stream
 * token pos = pOff + r; pos < c copies the source word, pos < total rounds input token pos − c to bf16 with
 * `bf16_rne_bits` (the CPU's `f32ToBf16RNE`, no flush), other rows are written 0.
 *
 * One invocation per u32 word (two dims) of rows [r0, r0 + nRows) of every (sequence, KV head); word
 * index ((b·nRows + ri)·nKv + h)·D/2 + e.
 *
 * Buffers:
 * | binding | name | type | shape / content |
 * | --- | --- | --- | --- |
 * | 0 | `p` | uniform | `src = (xOff, tokStride, batchStride, c)`, `rows = (r0, nRows, pOff, total)`, `sref = (codesOff, cap, 0, 0)` of the source, `dst = (codesOff, cap, nWords, gridX)` |
 * | 1 | `x` | `array<f32>` read | input element (b, i, h, d) at `xOff + b·batchStride + i·tokStride + h·D + d` |
 * | 2 | `bsrc` | `array<u32>` read | source bf16 store (the old FIFO; any buffer when c = 0 or never read) |
 * | 3 | `st` | `array<u32>` read_write | destination bf16 store |
 * | 4 | `status` | `array<atomic<u32>>` read_write | [1]: OR-ed with 1 for an input value that is NaN, ±Inf or \|x\| ≥ 2^64 |
 *
 * @example
 * ```ts
 * import { kiviStageWgsl } from "./kivi_stage.wgsl.ts";
 * const code = kiviStageWgsl({ numKvHeads: 2, headDim: 64 });
 * ```
 * @module
 */
import { u32 } from "./wgsl_common.ts";

/** Invocations per workgroup of the stage kernel. */
export const KIVI_STAGE_THREADS = 64;

/**
 * The WGSL source (module doc).
 *
 * @example
 * ```ts
 * import { kiviStageWgsl } from "./kivi_stage.wgsl.ts";
 * kiviStageWgsl({ numKvHeads: 1, headDim: 128 }).includes("fn main"); // true
 * ```
 */
export function kiviStageWgsl(s: { numKvHeads: number; headDim: number }): string {
  return /* wgsl */ `
const NKV = ${u32(s.numKvHeads)};
const D = ${u32(s.headDim)};
const HALF = ${u32(s.headDim / 2)};
struct P {
  src: vec4<u32>,
  rows: vec4<u32>,
  sref: vec4<u32>,
  dst: vec4<u32>,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bsrc: array<u32>;
@group(0) @binding(3) var<storage, read_write> st: array<u32>;
@group(0) @binding(4) var<storage, read_write> status: array<atomic<u32>>;
fn bf16_rne_bits(u: u32) -> u32 { return (u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u; }
fn bad_exp(u: u32) -> bool { return ((u >> 23u) & 0xffu) >= 191u; }
@compute @workgroup_size(${KIVI_STAGE_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = (wid.y * p.dst.w + wid.x) * ${u32(KIVI_STAGE_THREADS)} + lid;
  if (idx >= p.dst.z) { return; }
  var r = idx;
  let e = r % HALF; r = r / HALF;
  let h = r % NKV; r = r / NKV;
  let ri = r % p.rows.y; let b = r / p.rows.y;
  let row = p.rows.x + ri;
  let pos = p.rows.z + row;
  var w = 0u;
  if (pos < p.src.w) {
    w = bsrc[p.sref.x + ((b * NKV + h) * p.sref.y + pos) * HALF + e];
  } else if (pos < p.rows.w) {
    let base = p.src.x + b * p.src.z + (pos - p.src.w) * p.src.y + h * D + 2u * e;
    let u0 = bitcast<u32>(x[base]);
    let u1 = bitcast<u32>(x[base + 1u]);
    if (bad_exp(u0) || bad_exp(u1)) { atomicOr(&status[0], 1u); }
    w = bf16_rne_bits(u0) | (bf16_rne_bits(u1) << 16u);
  }
  st[p.dst.x + ((b * NKV + h) * p.dst.y + row) * HALF + e] = w;
}
`;
}
