/**
 * WGSL of `embed` (mirrors the embedding gather of cpu/forward.ts): h[t] = table[ids[step.idBase + t]].
 * Ids are read from a GPU buffer so a greedy step can embed the token the previous step's `argmax` wrote.
 *
 * Bindings (group 0):
 * | binding | buffer | shape | type |
 * |---|---|---|---|
 * | 0 | ids | [slots] | u32 (read) |
 * | 1 | table | [vocab, hidden] | bf16 pairs in u32 (hidden/2 words per row) or f32 (read) |
 * | 2 | out | [T, hidden] | f32 (write) |
 * Grid: (ceil(hidden/2 / 64), step.T) for bf16 (one word = two values per thread), (ceil(hidden / 64), step.T) for f32.
 *
 * @example
 * ```ts
 * const code = embedWgsl({ hidden: 384, weights: "bf16" });
 * ```
 * @module
 */
import { BF16_WGSL, u32Lit, type WeightFormat } from "./wgsl_util.ts";
import { STEP_WGSL } from "../step.ts";

/** Baked constants of one embed pipeline. */
export interface EmbedVariant {
  hidden: number;
  weights: WeightFormat;
}

/**
 * The embed kernel.
 *
 * @example
 * ```ts
 * embedWgsl({ hidden: 4096, weights: "f32" });
 * ```
 */
export function embedWgsl(v: EmbedVariant): string {
  const body = v.weights === "bf16"
    ? `if (e >= H / 2u) { return; }
  let p = table[id * (H / 2u) + e];
  out[t * H + 2u * e] = bf16lo(p);
  out[t * H + 2u * e + 1u] = bf16hi(p);`
    : `if (e >= H) { return; }
  out[t * H + e] = table[id * H + e];`;
  return `${STEP_WGSL}${BF16_WGSL}
@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> table: array<${v.weights === "bf16" ? "u32" : "f32"}>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
const H = ${u32Lit(v.hidden)};

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let t = g.y;
  let e = g.x;
  if (t >= step.T) { return; }
  let id = ids[step.idBase + t];
  ${body}
}
`;
}
