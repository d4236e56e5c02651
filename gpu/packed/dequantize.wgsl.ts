/**
 * WGSL of `dequantize`: x̂ = q·S − z for stored groups, bit-identical to `dequantizeGroup`
 * (src/quant/quantizer.ts): q·S is exact in f32 (≤ 16-bit integer × 8-bit significand), so the single
 * rounding of the subtraction is the same whether or not the device contracts it into an FMA.
 *
 * One invocation per (group, code word); it writes that word's codesPerWord values.
 *
 * Buffers:
 * | binding | name | type | shape / content |
 * | --- | --- | --- | --- |
 * | 0 | `p` | uniform | `dims = (B, n, nThreads, gridX)`, `src = (codesOff, szOff, cap, tok0)`, `dst = (outBase, outCap, outTok0, 0)` |
 * | 1 | `src` | `array<u32>` read | store with q<bits> groups [B, nKv, cap, D/G, wpg] + sz [B, nKv, cap, D/G] |
 * | 2 | `out` | `array<f32>` read_write | token-major [B, outCap, nKv, D] (the CPU caches' `view()` layout): token src.tok0 + t → row outTok0 + t |
 *
 * @example
 * ```ts
 * import { dequantizeWgsl } from "./dequantize.wgsl.ts";
 * const code = dequantizeWgsl({ numKvHeads: 8, headDim: 128, bits: 4 });
 * ```
 * @module
 */
import { formatFor, groupSizeFor } from "../../src/quant/format.ts";
import { codeExpr, QUANT_WGSL, u32 } from "./wgsl_common.ts";

/** Compile-time constants of a dequantize pipeline. */
export interface DequantizeShape {
  numKvHeads: number;
  headDim: number;
  bits: number;
}

/** Invocations per dequantize workgroup. */
export const DEQ_THREADS = 64;

/**
 * The WGSL source (module doc).
 *
 * @example
 * ```ts
 * import { dequantizeWgsl } from "./dequantize.wgsl.ts";
 * dequantizeWgsl({ numKvHeads: 2, headDim: 64, bits: 2 }).includes("fn main"); // true
 * ```
 */
export function dequantizeWgsl(s: DequantizeShape): string {
  const fmt = formatFor(s.bits);
  const G = groupSizeFor(s.headDim);
  const lines: string[] = [];
  for (let k = 0; k < fmt.codesPerWord; k++) {
    lines.push(
      `  if (e0 + ${u32(k)} < G) { out[ob + ${u32(k)}] = f32(${codeExpr("w", fmt.bits, k)}) * S - z; }`,
    );
  }
  return /* wgsl */ `
const NKV = ${u32(s.numKvHeads)};
const D = ${u32(s.headDim)};
const G = ${u32(G)};
const GPH = ${u32(s.headDim / G)};
const CPW = ${u32(fmt.codesPerWord)};
const WPG = ${u32(fmt.wordsPerGroup(G))};
struct P { dims: vec4<u32>, src: vec4<u32>, dst: vec4<u32> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${QUANT_WGSL}
@compute @workgroup_size(${DEQ_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let id = (wid.y * p.dims.w + wid.x) * ${u32(DEQ_THREADS)} + lid;
  if (id >= p.dims.z) { return; }
  let n = p.dims.y;
  let wi = id % WPG;
  var r = id / WPG;
  let j = r % GPH; r = r / GPH;
  let t = r % n; r = r / n;
  let h = r % NKV; let b = r / NKV;
  let gi = ((b * NKV + h) * p.src.z + p.src.w + t) * GPH + j;
  let w = src[p.src.x + gi * WPG + wi];
  let sz = src[p.src.y + gi];
  let S = bf16(sz & 0xffffu);
  let z = bf16(sz >> 16u);
  let e0 = wi * CPW;
  let ob = p.dst.x + ((b * p.dst.y + p.dst.z + t) * NKV + h) * D + j * G + e0;
${lines.join("\n")}
}
`;
}
