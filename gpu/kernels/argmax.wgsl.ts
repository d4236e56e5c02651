/**
 * WGSL of `argmax` (mirrors src/sampling.ts `argmax`: the largest logit, lowest index on ties) that also
 * counts non-finite logits, so greedy decoding reads back 8 bytes instead of the logits and still reports
 * NaN/Inf like the CPU's NonFiniteError check.
 *
 * Bindings (group 0):
 * | binding | buffer | shape | type |
 * |---|---|---|---|
 * | 0 | logits | [vocab] | f32 (read) |
 * | 1 | ids | [slots] | u32 (read_write): ids[step.idOut] ← argmax |
 * | 2 | flags | [slots] | u32 (read_write): flags[step.idOut] ← number of non-finite logits |
 * Grid: 1 workgroup of 256 threads.
 *
 * @example
 * ```ts
 * const code = argmaxWgsl({ vocab: 4096 });
 * ```
 * @module
 */
import { u32Lit } from "./wgsl_util.ts";
import { STEP_WGSL } from "../step.ts";

/** Baked constants of one argmax pipeline. */
export interface ArgmaxVariant {
  vocab: number;
}

/**
 * The argmax kernel.
 *
 * @example
 * ```ts
 * argmaxWgsl({ vocab: 128256 });
 * ```
 */
export function argmaxWgsl(v: ArgmaxVariant): string {
  return `${STEP_WGSL}
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> flags: array<u32>;
const V = ${u32Lit(v.vocab)};
var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;
var<workgroup> bad: array<u32, 256>;

fn better(v: f32, i: u32, w: f32, j: u32) -> bool {
  // (v, i) beats (w, j): larger value, lower index on ties; index 0xffffffff marks "none yet".
  return j == 0xffffffffu || (i != 0xffffffffu && (v > w || (v == w && i < j)));
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
  var best = 0.0;
  var besti = 0xffffffffu;
  var nonfinite = 0u;
  for (var i = li; i < V; i += 256u) {
    let x = logits[i];
    if ((bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u) {
      nonfinite += 1u;
    } else if (besti == 0xffffffffu || x > best) {
      best = x;
      besti = i;
    }
  }
  bv[li] = best;
  bi[li] = besti;
  bad[li] = nonfinite;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s = s / 2u) {
    if (li < s) {
      if (better(bv[li + s], bi[li + s], bv[li], bi[li])) {
        bv[li] = bv[li + s];
        bi[li] = bi[li + s];
      }
      bad[li] = bad[li] + bad[li + s];
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    ids[step.idOut] = select(bi[0], 0u, bi[0] == 0xffffffffu);
    flags[step.idOut] = bad[0];
  }
}
`;
}
