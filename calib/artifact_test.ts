import assert from "node:assert/strict";
import {
  type CalibrationArtifact,
  calibrationChecksum,
  canonicalJson,
  checkCalibrationFor,
  parseCalibration,
  readCalibration,
  sealCalibration,
  writeCalibration,
} from "./artifact.ts";
import { ArtifactError } from "../src/errors.ts";

const model = { fingerprint: "f".repeat(64), config: { numLayers: 2, numKvHeads: 2, headDim: 4 } };

function sample(): CalibrationArtifact {
  return sealCalibration({
    modelFingerprint: model.fingerprint,
    settings: { samples: 2, length: 16, stretch: 4, seed: 0, kBits: 4, vBits: 4, alphaGrid: [1, 0.5] },
    layers: [0, 1].map((l) => ({
      alpha: 0.5,
      loss: 0.25 + l,
      lossNoSmoothing: 0.5 + l,
      lambda: [[1.5, 2], [0.125, Math.fround(3.3)]],
    })),
    createdAt: "2026-01-01T00:00:00.000Z",
  });
}

/** Re-seals an edited object (so only the intended defect remains) and returns its JSON text. */
function resealed(edit: (o: Record<string, any>) => void): string {
  const o: Record<string, any> = structuredClone(sample());
  edit(o);
  o.checksum = calibrationChecksum(o as CalibrationArtifact);
  return JSON.stringify(o);
}

const rejects = (text: string, re: RegExp) =>
  assert.throws(
    () => parseCalibration(text, "x.json"),
    (e: Error) => e instanceof ArtifactError && re.test(e.message) && /x\.json/.test(e.message),
  );

Deno.test("artifact: canonical JSON and checksum", () => {
  assert.equal(
    canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }], u: undefined }),
    '{"a":[2,{"c":4,"d":3}],"b":1}',
  );
  const art = sample();
  assert.match(art.checksum, /^[0-9a-f]{64}$/);
  assert.equal(calibrationChecksum(art), art.checksum);
  // Key order does not matter.
  const shuffled = Object.fromEntries(Object.entries(art).reverse()) as unknown as CalibrationArtifact;
  assert.equal(calibrationChecksum(shuffled), art.checksum);
});

Deno.test("artifact: write/read round trip, checked against the model", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/sub/cal.json`;
    await writeCalibration(path, sample());
    assert.deepEqual(await readCalibration(path, model), sample());
    await assert.rejects(
      () => readCalibration(`${dir}/none.json`),
      (e: Error) => e instanceof ArtifactError && /none\.json/.test(e.message),
    );
    const bad = {
      ...sample(),
      layers: [{ ...sample().layers[0], lambda: [[NaN, 1], [1, 1]] }, sample().layers[1]],
    };
    await assert.rejects(() => writeCalibration(`${dir}/bad.json`, bad), ArtifactError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("artifact: malformed, wrong format or version, bad fields", () => {
  rejects("{not json", /malformed JSON/);
  rejects("[1, 2]", /JSON object/);
  rejects(resealed((o) => (o.format = "pmkvq-plan")), /format is "pmkvq-plan"/);
  rejects(resealed((o) => (o.version = 2)), /version 2 is not supported/);
  rejects(resealed((o) => delete o.modelFingerprint), /modelFingerprint/);
  rejects(resealed((o) => (o.settings.stretch = "4")), /settings\.stretch/);
  rejects(resealed((o) => (o.settings.alphaGrid = [1, null])), /alphaGrid/);
  rejects(resealed((o) => (o.layers = [])), /layers must be a non-empty array/);
  rejects(resealed((o) => delete o.layers[1].lossNoSmoothing), /layers\[1\]\.lossNoSmoothing/);
  rejects(resealed((o) => o.layers[1].lambda.pop()), /layers\[1\]\.lambda has 1 KV heads/);
  rejects(resealed((o) => o.layers[0].lambda[1].pop()), /layers\[0\]\.lambda\[1\] has 1 entries/);
});

Deno.test("artifact: non-finite or non-positive λ", () => {
  // JSON cannot write Infinity, but 1e999 parses to it.
  const text = JSON.stringify(sample()).replace("1.5", "1e999");
  rejects(text, /layers\[0\]\.lambda\[0\]\[0\] is Infinity/);
  rejects(resealed((o) => (o.layers[1].lambda[0][1] = null)), /layers\[1\]\.lambda\[0\]\[1\] is null/);
  rejects(
    resealed((o) => (o.layers[1].lambda[1][0] = 0)),
    /lambda\[1\]\[0\] is 0; λ must be a finite positive number/,
  );
  rejects(resealed((o) => (o.layers[1].lambda[1][0] = -2)), /is -2/);
});

Deno.test("artifact: checksum mismatch", () => {
  const o = structuredClone(sample());
  o.layers[0].lambda[0][0] = 1.75; // edited without resealing
  rejects(JSON.stringify(o), /checksum mismatch/);
  rejects(JSON.stringify({ ...sample(), checksum: "0".repeat(64) }), /checksum mismatch: the file says 0000/);
});

Deno.test("artifact: another model's fingerprint or shape", () => {
  const art = sample();
  const other = { ...model, fingerprint: "a".repeat(64) };
  assert.throws(
    () => checkCalibrationFor(art, other, "cal.json"),
    (e: Error) =>
      e instanceof ArtifactError && e.message.includes("a".repeat(64)) &&
      e.message.includes("f".repeat(64)) && /cal\.json/.test(e.message),
  );
  assert.throws(
    () => checkCalibrationFor(art, { ...model, config: { ...model.config, numLayers: 3 } }),
    /has 2 layers, the model has 3/,
  );
  assert.throws(
    () => checkCalibrationFor(art, { ...model, config: { ...model.config, headDim: 8 } }),
    /λ is \[2\]\[2\] per layer, the model needs \[2\]\[4\]/,
  );
  assert.throws(
    () => checkCalibrationFor(art, { ...model, fingerprint: `${model.fingerprint}:calib:0123456789abcdef` }),
    (e: Error) => e instanceof ArtifactError && /already has a calibration folded in/.test(e.message),
  );
});
