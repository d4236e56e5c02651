/**
 * WGSL of `ers`: Equivalent Right Shift of stored groups from bitsIn to bitsOut = bitsIn / 2^k (k ≥ 1 steps
 * of 2n → n bits, n ∈ {8, 4, 2}), byte-identical to `ersRows` applied k times (src/quant/ers.ts); with
 * k = 0 it copies groups unchanged between two stores (a re-layout, e.g. growing a body's capacity):
 *
 *   per step: q' = (q·M + C) >> 3n in u32 (M = 2^(2n) − 2^n + 1, C = M·2^(n−1); q·M + C < 2^32),
 *             S' = bf16RNE(S·(2^n + 1)) (the product is exact in f32; RNE by integer ops), z' = z.
 *
 * One invocation per (group, output word): it reads the 2^k input words that hold its codes, shifts every
 * code through all steps in registers and writes one word; the invocation of word 0 also rewrites the sz
 * word. Integer-only except one exact f32 product per step, so any device gives the same bits.
 *
 * Buffers:
 * | binding | name | type | shape / content |
 * | --- | --- | --- | --- |
 * | 0 | `p` | uniform | `dims = (B, n, nThreads, gridX)`, `src`/`dst = (codesOff, szOff, cap, tok0)` |
 * | 1 | `src` | `array<u32>` read | store holding q<bitsIn> groups [B, nKv, cap, D/G, wpgIn] + sz [B, nKv, cap, D/G] |
 * | 2 | `dst` | `array<u32>` read_write | store receiving q<bitsOut> groups (another buffer: a whole body is reallocated at the new width; a window flush writes into the body) |
 *
 * Tokens [src.tok0, src.tok0 + n) of every (b, h) are written to tokens [dst.tok0, dst.tok0 + n).
 *
 * @example
 * ```ts
 * import { ersWgsl } from "./ers.wgsl.ts";
 * const code = ersWgsl({ numKvHeads: 8, headDim: 128, bitsIn: 16, bitsOut: 2 });
 * ```
 * @module
 */
import { formatFor, groupSizeFor } from "../../src/quant/format.ts";
import { QuantConfigError } from "../../src/errors.ts";
import { codeExpr, QUANT_WGSL, u32 } from "./wgsl_common.ts";

/** Compile-time constants of an ERS pipeline. */
export interface ErsShape {
  numKvHeads: number;
  headDim: number;
  bitsIn: number;
  bitsOut: number;
}

/** Invocations per ERS workgroup. */
export const ERS_THREADS = 64;

/**
 * The ERS step widths n from bitsIn down to bitsOut, e.g. 16 → 2 gives [8, 4, 2]; none when the widths are
 * equal (the kernel then copies groups between layouts, e.g. to grow a store). QuantConfigError when bitsOut
 * is wider.
 *
 * @example
 * ```ts
 * import { ersSteps } from "./ers.wgsl.ts";
 * ersSteps(16, 4); // [8, 4]
 * ersSteps(4, 4);  // [] (a same-width re-layout copy)
 * ```
 */
export function ersSteps(bitsIn: number, bitsOut: number): number[] {
  const a = formatFor(bitsIn).bits as number, b = formatFor(bitsOut).bits as number;
  if (b > a) throw new QuantConfigError(`ERS cannot widen ${bitsIn} → ${bitsOut} bits`);
  const steps: number[] = [];
  for (let n = a / 2; n >= b; n /= 2) steps.push(n);
  return steps;
}

/**
 * The WGSL source (module doc).
 *
 * @example
 * ```ts
 * import { ersWgsl } from "./ers.wgsl.ts";
 * ersWgsl({ numKvHeads: 2, headDim: 128, bitsIn: 8, bitsOut: 4 }).includes("fn main"); // true
 * ```
 */
export function ersWgsl(s: ErsShape): string {
  const fin = formatFor(s.bitsIn), fout = formatFor(s.bitsOut);
  const steps = ersSteps(s.bitsIn, s.bitsOut);
  const G = groupSizeFor(s.headDim);
  const ratio = 2 ** steps.length; // input words per output word
  const wpgIn = fin.wordsPerGroup(G), wpgOut = fout.wordsPerGroup(G);
  const chain = steps.map((n) => {
    const M = 2 ** (2 * n) - 2 ** n + 1;
    return `q = (q * ${u32(M)} + ${u32(M * 2 ** (n - 1))}) >> ${u32(3 * n)};`;
  }).join(" ");
  const scale = steps.map((n) => `sb = bf16_rne_bits(bitcast<u32>(bf16(sb) * ${2 ** n + 1}.0));`).join(
    "\n    ",
  );
  const lines: string[] = [];
  for (let m = 0; m < ratio; m++) {
    lines.push(`  var w${m} = 0u;
  if (wo * ${u32(ratio)} + ${u32(m)} < WPGIN) { w${m} = src[ib + wo * ${u32(ratio)} + ${u32(m)}]; }`);
  }
  const codes: string[] = [];
  for (let pIdx = 0; pIdx < fout.codesPerWord; pIdx++) {
    const m = Math.floor(pIdx / fin.codesPerWord), k = pIdx % fin.codesPerWord;
    codes.push(
      `  if (wo * ${u32(fout.codesPerWord)} + ${u32(pIdx)} < G) { var q = ${
        codeExpr(`w${m}`, fin.bits, k)
      }; ${chain} w = w | (q << ${u32(pIdx * fout.bits)}); }`,
    );
  }
  return /* wgsl */ `
const NKV = ${u32(s.numKvHeads)};
const G = ${u32(G)};
const GPH = ${u32(s.headDim / G)};
const WPGIN = ${u32(wpgIn)};
const WPGOUT = ${u32(wpgOut)};
struct P { dims: vec4<u32>, src: vec4<u32>, dst: vec4<u32> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
${QUANT_WGSL}
@compute @workgroup_size(${ERS_THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let id = (wid.y * p.dims.w + wid.x) * ${u32(ERS_THREADS)} + lid;
  if (id >= p.dims.z) { return; }
  let n = p.dims.y;
  let wo = id % WPGOUT;
  var r = id / WPGOUT;
  let j = r % GPH; r = r / GPH;
  let t = r % n; r = r / n;
  let h = r % NKV; let b = r / NKV;
  let gs = ((b * NKV + h) * p.src.z + p.src.w + t) * GPH + j;
  let gd = ((b * NKV + h) * p.dst.z + p.dst.w + t) * GPH + j;
  let ib = p.src.x + gs * WPGIN;
${lines.join("\n")}
  var w = 0u;
${codes.join("\n")}
  dst[p.dst.x + gd * WPGOUT + wo] = w;
  if (wo == 0u) {
    let sz = src[p.src.y + gs];
    var sb = sz & 0xffffu;
    ${scale}
    dst[p.dst.y + gd] = sb | (sz & 0xffff0000u);
  }
}
`;
}
