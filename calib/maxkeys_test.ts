import assert from "node:assert/strict";
import { collectMaxKeys, emptyMaxKeys, updateMaxKeys } from "./maxkeys.ts";
import { makeToyModel } from "./toy_model.ts";
import { CpuForward } from "../cpu/forward.ts";
import { createCache, kvShapeOf } from "../src/kv/factory.ts";
import { InputError } from "../src/errors.ts";
import type { LoadedModel } from "../src/model/types.ts";

Deno.test("maxkeys: each RoPE pair (j, j + D/2) shares one max over |k|, per KV head", () => {
  // T = 2 tokens, 2 KV heads, D = 4 → pairs (0, 2) and (1, 3).
  const k = new Float32Array([
    1,
    -5,
    2,
    0.5,
    /* head 1 */ 0,
    0,
    -7,
    1,
    -3,
    1,
    0,
    0.25,
    /* head 1 */ 4,
    -2,
    0,
    0,
  ]);
  const m = new Float32Array(4);
  updateMaxKeys(m, k, 2, 2, 4);
  assert.deepEqual(Array.from(m), [3, 5, 7, 2]);
  // A running max: smaller keys do not lower it, larger ones raise it.
  updateMaxKeys(m, new Float32Array([0, 0, 0, 9, 0, 0, 0, 0]), 1, 2, 4);
  assert.deepEqual(Array.from(m), [3, 9, 7, 2]);
  assert.equal(emptyMaxKeys(3, 2, 8).length, 3);
  assert.equal(emptyMaxKeys(3, 2, 8)[0].length, 8);
});

/** Max keys computed by hand from the forward's post-RoPE keys at the given positions. */
function manual(model: LoadedModel, windows: number[][], positions: (n: number) => number[]): Float32Array[] {
  const c = model.config, half = c.headDim / 2;
  const m = emptyMaxKeys(c.numLayers, c.numKvHeads, c.headDim);
  const fwd = new CpuForward(model);
  for (const ids of windows) {
    fwd.forward(ids, positions(ids.length), createCache({ method: "exact" }, kvShapeOf(c)), {
      logits: "none",
      hooks: {
        onKV: (l, k, _v, T) => {
          for (let t = 0; t < T; t++) {
            for (let h = 0; h < c.numKvHeads; h++) {
              for (let j = 0; j < c.headDim; j++) {
                const x = Math.abs(k[(t * c.numKvHeads + h) * c.headDim + j]);
                const idx = h * half + (j % half);
                m[l][idx] = Math.max(m[l][idx], x);
              }
            }
          }
        },
      },
    });
  }
  return m;
}

Deno.test("maxkeys: stretch s runs the windows at positions 0, s, 2s, … (post-RoPE keys)", () => {
  const model = makeToyModel({ seed: 3 });
  const windows = [[1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45], [
    2,
    4,
    8,
    16,
    32,
    64,
    3,
    6,
    12,
    24,
    48,
    96,
  ]];
  const inputs: string[] = [];
  const got4 = collectMaxKeys(model, windows, {
    stretch: 4,
    onLayerInput: (w, l, _h, T) => inputs.push(`${w}:${l}:${T}`),
  });
  const got1 = collectMaxKeys(model, windows, { stretch: 1 });
  assert.deepEqual(got4, manual(model, windows, (n) => Array.from({ length: n }, (_, i) => 4 * i)));
  assert.deepEqual(got1, manual(model, windows, (n) => Array.from({ length: n }, (_, i) => i)));
  assert.notDeepEqual(got4, got1);
  assert.deepEqual(inputs, ["0:0:12", "0:1:12", "1:0:12", "1:1:12"]);
  // Default stretch is 4.
  assert.deepEqual(collectMaxKeys(model, windows), got4);
  assert.throws(() => collectMaxKeys(model, []), InputError);
  assert.throws(() => collectMaxKeys(model, windows, { stretch: 0 }), InputError);
});
