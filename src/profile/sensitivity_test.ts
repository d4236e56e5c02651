import assert from "node:assert/strict";
import { join } from "node:path";
import { kvGradients, kvLoss } from "../../cpu/grad.ts";
import { fakeQuantize } from "../quant/quantizer.ts";
import { InputError } from "../errors.ts";
import { mulberry32 } from "../sampling.ts";
import { randomModel } from "./testing_model.ts";
import {
  type ProfileProgress,
  profileSensitivity,
  profileWindows,
  resolveSettings,
  windowSensitivity,
} from "./sensitivity.ts";

const ids = (n: number, seed: number) => {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => Math.floor(r() * 50));
};

Deno.test("sensitivity: window terms are mean |(Q_b(X) − X)·dL/dX| of the SAME layer, decreasing in bits", () => {
  // head_dim 16 → G = 16: one group per (token, KV head). 3 layers, so a reversed layer pairing would differ.
  const model = randomModel({ seed: 7, headDim: 16, numHeads: 2, numKvHeads: 1, numLayers: 3 });
  const x = ids(13, 1);
  const g = kvGradients(model, x, x.map((_, i) => 4 * i));
  const bits = [2, 4, 8, 16];
  const w = windowSensitivity(g, 16, bits);
  for (let l = 0; l < 3; l++) {
    for (const [j, b] of bits.entries()) {
      const k32 = Float32Array.from(g.k[l]);
      const q = fakeQuantize(k32, 16, b);
      let s = 0;
      for (let i = 0; i < q.length; i++) s += Math.abs(q[i] - k32[i]) * Math.abs(g.dk[l][i]);
      assert.ok(Math.abs(w.k[j][l] - s / q.length) <= 1e-15 * s);
    }
    assert.ok(w.k[0][l] > w.k[1][l] && w.k[1][l] > w.k[2][l] && w.k[2][l] > w.k[3][l] && w.k[3][l] >= 0);
    assert.ok(w.v[0][l] > w.v[1][l] && w.v[1][l] > w.v[2][l] && w.v[2][l] > w.v[3][l] && w.v[3][l] >= 0);
  }
});

Deno.test("sensitivity: dL/dX of layer l is the derivative along layer l's own quantization error", () => {
  // Whole-tensor check of the pairing: move layer l's K (or V) along its 8-bit quantization error Δ and compare
  // the central difference of the loss with Σ Δ·dL/dX. (The plain first-order prediction of quantizing is not
  // testable this way: the signed sum cancels and the second-order term dominates at 8 bits.)
  const model = randomModel({ seed: 8, headDim: 16, numHeads: 4, numKvHeads: 2 });
  const x = ids(12, 2);
  const pos = x.map((_, i) => 4 * i);
  const g = kvGradients(model, x, pos);
  for (let l = 0; l < model.config.numLayers; l++) {
    for (const kind of ["k", "v"] as const) {
      const t = kind === "k" ? g.k[l] : g.v[l];
      const grad = kind === "k" ? g.dk[l] : g.dv[l];
      const q = fakeQuantize(Float32Array.from(t), 16, 8);
      const err = Float64Array.from(q, (v, i) => v - t[i]);
      let predicted = 0;
      for (let i = 0; i < t.length; i++) predicted += err[i] * grad[i];
      const eps = 0.05;
      const along = (e: number) =>
        kvLoss(model, x, pos, { perturb: { layer: l, kind, deltas: err.map((d) => e * d) } });
      const fd = (along(eps) - along(-eps)) / (2 * eps);
      assert.ok(
        Math.abs(fd - predicted) < 1e-4 * Math.abs(predicted),
        `layer ${l} ${kind}: directional derivative ${fd}, Σ Δ·dL/dX ${predicted}`,
      );
    }
  }
});

Deno.test("sensitivity: profileWindows averages windows and reports progress", () => {
  const model = randomModel({ seed: 9 });
  const wins = [ids(10, 3), ids(10, 4), ids(10, 5)];
  const seen: ProfileProgress[] = [];
  const r = profileWindows(model, wins, { stretch: 2, bits: [2, 8] }, (p) => seen.push(p));
  assert.deepEqual(seen.map((p) => [p.window, p.windows]), [[1, 3], [2, 3], [3, 3]]);
  assert.equal(seen[2].etaSeconds, 0);
  const per = wins.map((w) => windowSensitivity(kvGradients(model, w, w.map((_, i) => 2 * i)), 8, [2, 8]));
  for (let l = 0; l < 2; l++) {
    const mean = (per[0].k[1][l] + per[1].k[1][l] + per[2].k[1][l]) / 3;
    assert.ok(Math.abs(r.k["8"][l] - mean) <= 1e-15 * mean);
    assert.equal(r.total["2"][l], r.k["2"][l] + r.v["2"][l]);
  }
  assert.ok(Math.abs(r.loss - seen.reduce((s, p) => s + p.loss, 0) / 3) < 1e-12);
});

Deno.test("sensitivity: profileSensitivity cuts windows from a corpus file; bad settings are refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const corpus = join(dir, "c.txt");
    await Deno.writeTextFile(corpus, "the quick brown fox jumps over the lazy dog. ".repeat(20));
    const enc = { encode: (s: string) => Array.from(s, (ch) => ch.charCodeAt(0) % 50) };
    const model = randomModel({ seed: 10 });
    const r = await profileSensitivity(model, enc, { samples: 2, length: 16, corpus, bits: [4, 2] });
    assert.deepEqual(r.bits, [2, 4]);
    assert.equal(r.windows, 2);
    assert.ok(r.total["2"].every((x, l) => x > r.total["4"][l]));
    await assert.rejects(
      () => profileSensitivity(model, enc, { samples: 1000, length: 16, corpus }),
      InputError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.throws(
    () => resolveSettings({ bits: [3] }),
    (e: Error) => e instanceof InputError && /3/.test(e.message),
  );
  assert.throws(() => resolveSettings({ bits: [2, 2] }), InputError);
  assert.throws(() => resolveSettings({ samples: 0 }), InputError);
  assert.throws(() => resolveSettings({ length: 1 }), InputError);
  assert.throws(() => resolveSettings({ stretch: 1.5 }), InputError);
  assert.deepEqual(resolveSettings().bits, [2, 4, 8, 16]);
});
