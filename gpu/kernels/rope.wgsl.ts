/**
 * WGSL of `rope` (mirrors src/model/rope.ts `applyRope`, Hugging Face `rotate_half`), in place:
 *   x[i] ← x[i]·cos − x[i+D/2]·sin,  x[i+D/2] ← x[i+D/2]·cos + x[i]·sin
 * with cos/sin read from tables computed on the host by `ropeTable` (so angles equal the CPU's bit for bit).
 * Token t of the step uses table row step.pos0 + t.
 *
 * Bindings (group 0):
 * | binding | buffer | shape | type |
 * |---|---|---|---|
 * | 0 | x | [T, rowStride]; heads 0..heads−1 of D channels start at column 0 | f32 (read_write) |
 * | 1 | cos | [positions, D/2] | f32 (read) |
 * | 2 | sin | [positions, D/2] | f32 (read) |
 * Grid: (ceil(heads·D/2 / 64), step.T).
 *
 * @example
 * ```ts
 * const code = ropeWgsl({ heads: 6, headDim: 128, rowStride: 1024 }); // q and k heads of a fused qkv row
 * ```
 * @module
 */
import { u32Lit } from "./wgsl_util.ts";
import { STEP_WGSL } from "../step.ts";

/** Baked constants of one rope pipeline. */
export interface RopeVariant {
  /** Heads rotated per token (query heads then key heads when x is a fused q|k|v row). */
  heads: number;
  headDim: number;
  /** Floats per token row of x. */
  rowStride: number;
}

/**
 * The rope kernel.
 *
 * @example
 * ```ts
 * ropeWgsl({ heads: 32, headDim: 128, rowStride: 4096 });
 * ```
 */
export function ropeWgsl(v: RopeVariant): string {
  return `${STEP_WGSL}
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> cosT: array<f32>;
@group(0) @binding(2) var<storage, read> sinT: array<f32>;
const HEADS = ${u32Lit(v.heads)};
const D = ${u32Lit(v.headDim)};
const HALF = ${u32Lit(v.headDim / 2)};
const ROW = ${u32Lit(v.rowStride)};

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let t = g.y;
  let e = g.x;
  if (t >= step.T || e >= HEADS * HALF) { return; }
  let h = e / HALF;
  let i = e % HALF;
  let tb = (step.pos0 + t) * HALF + i;
  let c = cosT[tb];
  let s = sinT[tb];
  let base = t * ROW + h * D + i;
  let a = x[base];
  let b = x[base + HALF];
  x[base] = a * c - b * s;
  x[base + HALF] = b * c + a * s;
}
`;
}
