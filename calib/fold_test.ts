import assert from "node:assert/strict";
import { applyCalibration, scaleRows } from "./fold.ts";
import { sealCalibration } from "./artifact.ts";
import { baseFingerprint, isCalibratedFingerprint } from "./fingerprint.ts";
import { collectMaxKeys } from "./maxkeys.ts";
import { lambdaFor } from "./search.ts";
import { projectQKV } from "./layer_attention.ts";
import { makeToyModel } from "./toy_model.ts";
import { CpuForward } from "../cpu/forward.ts";
import { rmsnorm } from "../cpu/ops.ts";
import { createCache, kvShapeOf } from "../src/kv/factory.ts";
import { loadModel } from "../src/model/load.ts";
import type { LoadedModel } from "../src/model/types.ts";
import { ArtifactError } from "../src/errors.ts";
import { mulberry32 } from "../src/sampling.ts";
import { requireFixture, SHARED_RANDOM, TINY_LM } from "../tests/support/paths.ts";

const U = 2 ** -24; // f32 unit roundoff

/** An artifact with λ = max|K|^0.5 from a short stretched window, times a random factor in [1/4, 4]. */
function artifactFor(model: LoadedModel, ids: number[]) {
  const c = model.config, half = c.headDim / 2;
  const mk = collectMaxKeys(model, [ids], { stretch: 4 });
  const rand = mulberry32(9);
  return sealCalibration({
    modelFingerprint: model.fingerprint,
    settings: { samples: 1, length: ids.length, stretch: 4, seed: 0, kBits: 4, vBits: 4, alphaGrid: [0.5] },
    layers: mk.map((m) => {
      const lam = lambdaFor(m, 0.5).map((x) => x * 4 ** (2 * rand() - 1));
      return {
        alpha: 0.5,
        loss: 0,
        lossNoSmoothing: 0,
        lambda: Array.from(
          { length: c.numKvHeads },
          (_, h) => Array.from(lam.subarray(h * half, (h + 1) * half)),
        ),
      };
    }),
  });
}

/** Σ_i |x_i·w_ri| + |b_r| per output row: the magnitude that bounds the rounding error of a projection row. */
function magnitudes(
  x: Float32Array,
  T: number,
  H: number,
  w: Float32Array,
  bias: Float32Array | null,
): Float64Array {
  const rows = w.length / H;
  const out = new Float64Array(T * rows);
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < rows; r++) {
      let s = bias ? Math.abs(bias[r]) : 0;
      for (let i = 0; i < H; i++) s += Math.abs(x[t * H + i] * w[r * H + i]);
      out[t * rows + r] = s;
    }
  }
  return out;
}

/**
 * Checks every causal score q_t·k_j of every layer, head and token (inputs from the ORIGINAL model):
 *   |s' − s| ≤ 12·u·Σ_c Pq_c·Pk_c,   P_c = M_c + M_{pair(c)},  M_r = Σ_i |xn_i·w_ri| + |b_r|
 * (derivation in docs/calibration.md: ≤ 5u·P per rotated q or k channel on each side, 10u for the product,
 * 12u leaves room for the f64 accumulations). Returns the largest |s' − s| relative to max |s|.
 */
function checkScores(model: LoadedModel, folded: LoadedModel, ids: number[]): number {
  const c = model.config, H = c.hiddenSize, D = c.headDim, half = D / 2, nH = c.numHeads, nKv = c.numKvHeads;
  const T = ids.length, positions = ids.map((_, i) => 3 * i);
  const inputs: Float32Array[] = [];
  new CpuForward(model).forward(ids, positions, createCache({ method: "exact" }, kvShapeOf(c)), {
    logits: "none",
    hooks: { onLayerInput: (l, h) => (inputs[l] = h.slice()) },
  });
  let worst = 0;
  for (let l = 0; l < c.numLayers; l++) {
    const a = projectQKV(model, l, inputs[l], T, positions);
    const b = projectQKV(folded, l, inputs[l], T, positions);
    const L = model.weights.layers[l];
    const xn = new Float32Array(T * H);
    rmsnorm(xn, inputs[l], T, H, L.inputNorm, c.rmsNormEps);
    const mq = magnitudes(xn, T, H, L.q, L.qBias), mk = magnitudes(xn, T, H, L.k, L.kBias);
    let maxS = 0, maxD = 0;
    for (let t = 0; t < T; t++) {
      for (let j = 0; j <= t; j++) {
        for (let hq = 0; hq < nH; hq++) {
          const hk = Math.floor(hq / (nH / nKv));
          let s = 0, s2 = 0, bound = 0;
          for (let ch = 0; ch < D; ch++) {
            const qi = (t * nH + hq) * D + ch, ki = (j * nKv + hk) * D + ch;
            s += a.q[qi] * a.k[ki];
            s2 += b.q[qi] * b.k[ki];
            const pc = (ch + half) % D;
            const pq = mq[t * nH * D + hq * D + ch] + mq[t * nH * D + hq * D + pc];
            const pk = mk[j * nKv * D + hk * D + ch] + mk[j * nKv * D + hk * D + pc];
            bound += pq * pk;
          }
          const d = Math.abs(s2 - s);
          assert.ok(d <= 12 * U * bound, `layer ${l} q ${t} k ${j} head ${hq}: |Δ| ${d} > ${12 * U * bound}`);
          maxS = Math.max(maxS, Math.abs(s));
          maxD = Math.max(maxD, d);
        }
      }
    }
    worst = Math.max(worst, maxD / maxS);
  }
  return worst;
}

/** Largest |Δlogit| over all positions, and the largest |logit|. */
function logitChange(model: LoadedModel, folded: LoadedModel, ids: number[]): { d: number; max: number } {
  const run = (m: LoadedModel) =>
    new CpuForward(m).forward(
      ids,
      ids.map((_, i) => i),
      createCache({ method: "exact" }, kvShapeOf(m.config)),
      { logits: "all" },
    );
  const a = run(model), b = run(folded);
  let d = 0, max = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    max = Math.max(max, Math.abs(a[i]));
  }
  return { d, max };
}

function checkFold(model: LoadedModel, name: string): void {
  const rand = mulberry32(4);
  const ids = Array.from({ length: 24 }, () => Math.floor(rand() * model.config.vocabSize));
  const art = artifactFor(model, ids);
  const qBefore = model.weights.layers[0].q.slice();
  const fpBefore = model.fingerprint;
  const folded = applyCalibration(model, art);
  // The original is untouched; the new model names its calibration.
  assert.deepEqual(model.weights.layers[0].q, qBefore);
  assert.equal(model.fingerprint, fpBefore);
  assert.equal(folded.fingerprint, `${fpBefore}:calib:${art.checksum.slice(0, 16)}`);
  assert.equal(baseFingerprint(folded.fingerprint), fpBefore);
  assert.ok(isCalibratedFingerprint(folded.fingerprint));
  assert.notDeepEqual(folded.weights.layers[0].k, model.weights.layers[0].k);
  assert.equal(folded.weights.layers[0].v, model.weights.layers[0].v);
  const rel = checkScores(model, folded, ids);
  const { d, max } = logitChange(model, folded, ids);
  console.log(
    `${name}: max |Δscore| / max |score| = ${rel.toExponential(2)}, max |Δlogit| = ${
      d.toExponential(2)
    } (max |logit| ${max.toFixed(2)})`,
  );
  // Stated bound: logits move by at most 1e-5 · max(1, max |logit|).
  assert.ok(d <= 1e-5 * Math.max(1, max), `${name}: |Δlogit| ${d}`);
  // A calibrated model cannot be calibrated again.
  assert.throws(
    () => applyCalibration(folded, art),
    (e: Error) => e instanceof ArtifactError && /already has a calibration/.test(e.message),
  );
}

Deno.test("fold: scaleRows", () => {
  assert.deepEqual(Array.from(scaleRows(new Float32Array([1, 2, 3, 4]), 2, (r) => r + 1)), [1, 2, 6, 8]);
});

Deno.test("fold: scores unchanged within the f32 bound, logits nearly unchanged (toy Llama and Qwen2 with biases)", () => {
  checkFold(makeToyModel({ seed: 2 }), "toy llama");
  checkFold(makeToyModel({ seed: 3, biases: true }), "toy qwen2 (biases)");
});

Deno.test("fold: tiny-lm", async () => {
  checkFold(await loadModel(TINY_LM), "tiny-lm");
});

Deno.test({
  name: "fold: qwen2-random (q/k biases, 1e6 theta)",
  ignore: requireFixture(`${SHARED_RANDOM}/qwen2-random`),
  fn: async () => checkFold(await loadModel(`${SHARED_RANDOM}/qwen2-random`), "qwen2-random"),
});

Deno.test("fold: refuses an artifact of another model or shape, naming both fingerprints", () => {
  const a = makeToyModel({ seed: 2 }), b = makeToyModel({ seed: 5 });
  const art = artifactFor(a, [1, 2, 3, 4, 5, 6]);
  assert.throws(
    () => applyCalibration(b, art),
    (e: Error) =>
      e instanceof ArtifactError && e.message.includes(a.fingerprint) && e.message.includes(b.fingerprint),
  );
  const wide = makeToyModel({ seed: 2, headDim: 32 });
  assert.throws(
    () => applyCalibration({ ...wide, fingerprint: a.fingerprint }, art),
    (e: Error) => e instanceof ArtifactError && /λ is \[2\]\[8\]/.test(e.message),
  );
});
