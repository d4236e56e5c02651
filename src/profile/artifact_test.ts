import assert from "node:assert/strict";
import { join } from "node:path";
import { ArtifactError } from "../errors.ts";
import { randomModel } from "./testing_model.ts";
import {
  makeSensitivityArtifact,
  readSensitivity,
  sensitivityChecksum,
  writeSensitivity,
} from "./artifact.ts";
import { canonicalJson, sha256Hex } from "../util/canonical.ts";
import { resolveSettings, type SensitivityResult } from "./sensitivity.ts";

const FP_A = "a".repeat(64);
const FP_B = "b".repeat(64);

function fakeResult(): SensitivityResult {
  const k = { "2": [3e-3, 1e-3], "4": [5e-4, 2e-4] };
  const v = { "2": [1e-3, 2e-3], "4": [2e-4, 3e-4] };
  const total = {
    "2": [k["2"][0] + v["2"][0], k["2"][1] + v["2"][1]],
    "4": [k["4"][0] + v["4"][0], k["4"][1] + v["4"][1]],
  };
  return { bits: [2, 4], k, v, total, loss: 2.5, windows: 2, seconds: 1 };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function fixture(dir: string): Promise<{ file: string; json: Record<string, unknown> }> {
  const model = { ...randomModel({ seed: 1 }), fingerprint: FP_A };
  const art = await makeSensitivityArtifact(
    model,
    resolveSettings({ samples: 2, length: 8, bits: [2, 4] }),
    fakeResult(),
    "corpus.txt",
    new Date(0),
  );
  const file = join(dir, "sub", "s.json");
  await writeSensitivity(file, art);
  return { file, json: JSON.parse(await Deno.readTextFile(file)) };
}

/** Writes `json` with a freshly computed (valid) checksum, so only the tested defect remains. */
async function rewrite(file: string, json: Record<string, unknown>, text?: string): Promise<void> {
  const { checksum: _c, ...rest } = json;
  let body: string;
  try {
    body = JSON.stringify({ ...rest, checksum: await sha256Hex(canonicalJson(rest)) });
  } catch {
    body = JSON.stringify(json);
  }
  await Deno.writeTextFile(file, text ?? body);
}

const rejects = async (file: string, pattern: RegExp, fp?: string) => {
  await assert.rejects(() => readSensitivity(file, fp), (e: Error) => {
    assert.ok(e instanceof ArtifactError, `expected ArtifactError, got ${e}`);
    assert.ok(e.message.includes(file), `message names the file: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
};

Deno.test("artifact: write → read round trip; checksum is SHA-256 of canonical JSON without it", async () => {
  await withDir(async (dir) => {
    const { file, json } = await fixture(dir);
    const art = await readSensitivity(file, FP_A);
    assert.equal(art.format, "pmkvq-sensitivity");
    assert.equal(art.version, 1);
    assert.deepEqual(art.model, {
      architecture: "Qwen2ForCausalLM",
      numLayers: 2,
      numKvHeads: 2,
      headDim: 8,
    });
    assert.deepEqual(art.settings, {
      samples: 2,
      length: 8,
      stretch: 4,
      seed: 0,
      corpus: "corpus.txt",
      bits: [2, 4],
    });
    assert.deepEqual(art.kSensitivity, fakeResult().k);
    assert.equal(art.createdAt, "1970-01-01T00:00:00.000Z");
    const { checksum, ...rest } = json;
    assert.equal(checksum, await sha256Hex(canonicalJson(rest)));
    assert.equal(checksum, await sensitivityChecksum(art));
    assert.match(String(checksum), /^[0-9a-f]{64}$/);
    // Without an expected fingerprint any model's artifact is read.
    assert.equal((await readSensitivity(file)).modelFingerprint, FP_A);
  });
});

Deno.test("artifact: malformed JSON, wrong format, wrong version → ArtifactError", async () => {
  await withDir(async (dir) => {
    const { file, json } = await fixture(dir);
    await rewrite(file, json, '{"format": "pmkvq-sensitivity", ');
    await rejects(file, /not valid JSON/);
    await rewrite(file, { ...json, format: "pmkvq-plan" });
    await rejects(file, /format is "pmkvq-plan", expected "pmkvq-sensitivity"/);
    await rewrite(file, { ...json, version: 2 });
    await rejects(file, /version 2 is not supported/);
    await rejects(join(dir, "missing.json"), /cannot read/);
  });
});

Deno.test("artifact: a bad checksum (edited value) → ArtifactError with both hashes", async () => {
  await withDir(async (dir) => {
    const { file, json } = await fixture(dir);
    const k = structuredClone(json.kSensitivity) as Record<string, number[]>;
    const total = structuredClone(json.total) as Record<string, number[]>;
    k["2"][0] *= 2;
    total["2"][0] = k["2"][0] + (json.vSensitivity as Record<string, number[]>)["2"][0];
    await Deno.writeTextFile(file, JSON.stringify({ ...json, kSensitivity: k, total }));
    await rejects(
      file,
      new RegExp(`checksum mismatch \\(file says ${json.checksum}, its content hashes to [0-9a-f]{64}\\)`),
    );
  });
});

Deno.test("artifact: NaN, Infinity, null, negative or missing values → ArtifactError naming the field", async () => {
  await withDir(async (dir) => {
    const { file, json } = await fixture(dir);
    const text = JSON.stringify(json);
    // NaN cannot be written as JSON; a hand-edited file may hold it as a bare token, null, a string or 1e999.
    await Deno.writeTextFile(file, text.replace(/"loss":[^,]+/, '"loss":NaN'));
    await rejects(file, /not valid JSON/);
    for (
      const [bad, shown] of [[null, "null"], ["NaN", '"NaN"'], ["1e999", "Infinity"], [-1, "-1"]] as const
    ) {
      const v = structuredClone(json.vSensitivity) as Record<string, unknown[]>;
      v["4"][1] = bad;
      await rewrite(file, { ...json, vSensitivity: v });
      // 1e999 parses to Infinity: write it as a bare number token.
      if (bad === "1e999") {
        await Deno.writeTextFile(file, (await Deno.readTextFile(file)).replace('"1e999"', "1e999"));
      }
      await rejects(
        file,
        new RegExp(`vSensitivity\\["4"\\]\\[1\\] is ${shown}, expected a finite number >= 0`),
      );
    }
    await rewrite(file, { ...json, loss: null });
    await rejects(file, /loss is null/);
    const short = structuredClone(json.total) as Record<string, number[]>;
    short["2"].pop();
    await rewrite(file, { ...json, total: short });
    await rejects(file, /total\["2"\] must be a list of 2 numbers/);
    await rewrite(file, { ...json, settings: { ...(json.settings as object), bits: [2, 3] } });
    await rejects(file, /settings.bits/);
  });
});

Deno.test("artifact: a fingerprint for another model → ArtifactError naming both fingerprints", async () => {
  await withDir(async (dir) => {
    const { file } = await fixture(dir);
    await rejects(file, new RegExp(`made for model ${FP_A}, not for this model ${FP_B}`), FP_B);
  });
});

Deno.test("artifact: writing NaN is refused", async () => {
  await withDir(async (dir) => {
    const model = { ...randomModel({ seed: 1 }), fingerprint: FP_A };
    const r = fakeResult();
    r.k["2"][1] = NaN;
    await assert.rejects(
      () => makeSensitivityArtifact(model, resolveSettings({ bits: [2, 4] }), r),
      (e: Error) => e instanceof ArtifactError && /kSensitivity\.2\[1\] is NaN/.test(e.message),
    );
    const { checksum: _c, ...body } = await makeSensitivityArtifact(
      model,
      resolveSettings({ bits: [2, 4] }),
      fakeResult(),
    );
    body.loss = NaN;
    await assert.rejects(
      () => writeSensitivity(join(dir, "x.json"), body),
      (e: Error) => e instanceof ArtifactError && /x\.json/.test(e.message),
    );
  });
});

Deno.test("canonical JSON: sorted keys at every level, refuses non-finite numbers", () => {
  assert.equal(
    canonicalJson({ b: { d: 1, c: [true, null] }, a: "é" }),
    '{"a":"é","b":{"c":[true,null],"d":1}}',
  );
  assert.throws(() => canonicalJson({ a: [1, Infinity] }), /\$\.a\[1\] is Infinity/);
});
