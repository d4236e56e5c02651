import assert from "node:assert/strict";
import { calibrateModel } from "./calibrate.ts";
import { collectMaxKeys } from "./maxkeys.ts";
import { LayerAlphaSearch } from "./search.ts";
import { checkCalibrationFor, parseCalibration, readCalibration } from "./artifact.ts";
import { stretchedPositions } from "./corpus.ts";
import { makeToyModel } from "./toy_model.ts";
import { main } from "../src/cli/calibrate.ts";
import { loadModel } from "../src/model/load.ts";
import { InputError, QuantConfigError } from "../src/errors.ts";
import { TINY_LM } from "../tests/support/paths.ts";

Deno.test("calibrate: both passes agree with maxkeys + search run by hand; artifact is valid", () => {
  const model = makeToyModel({ seed: 6 });
  const windows = [[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8], [2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5]];
  const passes: string[] = [];
  const run = calibrateModel(model, windows, {
    stretch: 2,
    kBits: 2,
    vBits: 8,
    seed: 5,
    onProgress: (p) => passes.push(`${p.pass}`),
  });
  assert.deepEqual(run.maxKeys, collectMaxKeys(model, windows, { stretch: 2 }));
  const inputs: Float32Array[][] = [[], []];
  collectMaxKeys(model, windows, { stretch: 2, onLayerInput: (w, l, h) => (inputs[w][l] = h.slice()) });
  run.searches.forEach((r, l) => {
    const s = new LayerAlphaSearch(model, l, run.maxKeys[l], { kBits: 2, vBits: 8 });
    for (const w of inputs) s.addWindow(w[l], stretchedPositions(12, 2));
    assert.deepEqual(r, s.result());
    assert.equal(run.artifact.layers[l].alpha, r.alpha);
    assert.deepEqual(run.artifact.layers[l].lambda.flat(), Array.from(r.lambda));
  });
  assert.deepEqual(run.artifact.settings, {
    samples: 2,
    length: 12,
    stretch: 2,
    seed: 5,
    kBits: 2,
    vBits: 8,
    alphaGrid: run.searches[0].grid,
  });
  assert.equal(passes.filter((p) => p === "1").length, 4);
  assert.equal(passes.filter((p) => p === "2").length, 4);
  parseCalibration(JSON.stringify(run.artifact), "run");
  checkCalibrationFor(run.artifact, model);
  assert.throws(() => calibrateModel(model, []), InputError);
  assert.throws(() => calibrateModel(model, [[1, 2, 3], [1, 2]]), InputError);
});

Deno.test("calibrate CLI: small run on tiny-lm writes an artifact for its fingerprint", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const text = (await Deno.readTextFile(`${TINY_LM}/heldout.txt`)).slice(0, 4000);
    await Deno.writeTextFile(`${dir}/corpus.txt`, text);
    const out = `${dir}/cal.json`;
    const code = await main([
      "--samples",
      "2",
      "--length",
      "24",
      "--stretch",
      "8",
      "--corpus",
      `${dir}/corpus.txt`,
      "--out",
      out,
      "--k-bits",
      "2",
    ]);
    assert.equal(code, 0);
    const model = await loadModel(TINY_LM);
    const art = await readCalibration(out, model);
    assert.equal(art.settings.stretch, 8);
    assert.equal(art.settings.kBits, 2);
    assert.equal(art.layers.length, 6);
    await assert.rejects(() => main(["--samples", "0"]), InputError);
    await assert.rejects(() => main(["--k-bits", "3"]), QuantConfigError);
    await assert.rejects(() => main(["--bogus"]));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
