/**
 * WGSL of the exact cache's append (mirrors `ExactCache.append` of src/kv/exact.ts for f32): copies the
 * post-RoPE keys and the values of the step's T new tokens from the fused q|k|v activation into the cache at
 * positions [step.P, step.P + T).
 *
 * Bindings (group 0):
 * | binding | buffer | shape | type |
 * |---|---|---|---|
 * | 0 | qkv | [T, (nH + 2·nKv)·D] | f32 (read) |
 * | 1 | cacheK | [nKv, capacity, D] | f32 (write) |
 * | 2 | cacheV | [nKv, capacity, D] | f32 (write) |
 * Grid: (ceil(nKv·D / 64), step.T).
 *
 * @example
 * ```ts
 * const code = kvAppendWgsl({ numHeads: 4, numKvHeads: 2, headDim: 128, capacity: 4096 });
 * ```
 * @module
 */
import { u32Lit } from "./wgsl_util.ts";
import { STEP_WGSL } from "../step.ts";

/** Baked constants of one kv_append pipeline. */
export interface KvAppendShape {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  capacity: number;
}

/**
 * The kv_append kernel.
 *
 * @example
 * ```ts
 * kvAppendWgsl({ numHeads: 32, numKvHeads: 8, headDim: 128, capacity: 8192 });
 * ```
 */
export function kvAppendWgsl(s: KvAppendShape): string {
  const D = s.headDim;
  return `${STEP_WGSL}
@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read_write> cacheK: array<f32>;
@group(0) @binding(2) var<storage, read_write> cacheV: array<f32>;
const D = ${u32Lit(D)};
const NKVD = ${u32Lit(s.numKvHeads * D)};
const QKV = ${u32Lit((s.numHeads + 2 * s.numKvHeads) * D)};
const KOFF = ${u32Lit(s.numHeads * D)};
const VOFF = ${u32Lit((s.numHeads + s.numKvHeads) * D)};
const CAP = ${u32Lit(s.capacity)};

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let t = g.y;
  let e = g.x;
  let pos = step.P + t;
  if (t >= step.T || e >= NKVD || pos >= CAP) { return; }
  let kvh = e / D;
  let d = e % D;
  let dst = (kvh * CAP + pos) * D + d;
  cacheK[dst] = qkv[t * QKV + KOFF + e];
  cacheV[dst] = qkv[t * QKV + VOFF + e];
}
`;
}
