/**
 * The sensitivity artifact: a versioned JSON file that the profiler writes and the allocator reads.
 *
 * ```json
 * {
 *   "format": "pmkvq-sensitivity", "version": 1,
 *   "modelFingerprint": "<hex sha-256 of the model (src/model/load.ts)>",
 *   "model": { "architecture": "LlamaForCausalLM", "numLayers": 6, "numKvHeads": 2, "headDim": 128 },
 *   "settings": { "samples": 16, "length": 512, "stretch": 4, "seed": 0, "corpus": "...", "bits": [2, 4, 8, 16] },
 *   "kSensitivity": { "2": [s per layer], "4": [...], "8": [...], "16": [...] },
 *   "vSensitivity": { ...same shape... },
 *   "total": { ...kSensitivity + vSensitivity... },
 *   "loss": 2.1,
 *   "createdAt": "2025-01-01T00:00:00.000Z",
 *   "checksum": "<hex sha-256 of the canonical JSON of every other field>"
 * }
 * ```
 * Keys of the sensitivity tables are the bit-widths of `settings.bits` as decimal strings; every array has
 * `model.numLayers` finite, non-negative entries. Canonical JSON: src/profile/canonical.ts.
 *
 * @example
 * ```ts
 * import { makeSensitivityArtifact, readSensitivity, writeSensitivity } from "./artifact.ts";
 * import { randomModel } from "./testing_model.ts";
 * import { profileWindows, resolveSettings } from "./sensitivity.ts";
 * const model = randomModel({ seed: 1 });
 * const settings = resolveSettings({ samples: 1, length: 4, bits: [2, 4] });
 * const result = profileWindows(model, [[3, 14, 15, 9]], settings);
 * const file = await Deno.makeTempFile({ suffix: ".json" });
 * await writeSensitivity(file, await makeSensitivityArtifact(model, settings, result, "my-corpus.txt"));
 * const back = await readSensitivity(file, model.fingerprint); // throws ArtifactError for another model
 * ```
 * @module
 */
import { dirname } from "node:path";
import { ArtifactError } from "../errors.ts";
import type { LoadedModel, ModelConfig } from "../model/types.ts";
import { canonicalJson, sha256Hex } from "../util/canonical.ts";
import type { ProfileSettings, SensitivityResult, SensitivityTable } from "./sensitivity.ts";

/** The `format` field. */
export const SENSITIVITY_FORMAT = "pmkvq-sensitivity";
/** The version this build writes and reads. */
export const SENSITIVITY_VERSION = 1;

/** A sensitivity artifact (see the module comment for the file layout). */
export interface SensitivityArtifact {
  /** Format tag {@link SENSITIVITY_FORMAT}. */
  format: typeof SENSITIVITY_FORMAT;
  /** Format version {@link SENSITIVITY_VERSION}. */
  version: typeof SENSITIVITY_VERSION;
  /** `LoadedModel.fingerprint` of the profiled model; readers refuse the artifact for any other model. */
  modelFingerprint: string;
  /** Shape of the profiled model (checked against the model a plan is made for). */
  model: {
    architecture: ModelConfig["architecture"];
    numLayers: number;
    numKvHeads: number;
    headDim: number;
  };
  /** The {@link ProfileSettings} the profile ran with (`corpus`: a label of the corpus file). */
  settings: {
    samples: number;
    length: number;
    stretch: number;
    seed: number;
    corpus: string;
    bits: number[];
  };
  /** s^K per bit-width (key: the width as a decimal string), `model.numLayers` entries each. */
  kSensitivity: SensitivityTable;
  /** s^V per bit-width, `model.numLayers` entries each. */
  vSensitivity: SensitivityTable;
  /** s^K + s^V per bit-width and layer: the costs the allocator minimizes. */
  total: SensitivityTable;
  /** Mean loss of the profiled windows (nats). */
  loss: number;
  /** ISO-8601 creation time. */
  createdAt: string;
  /** Hex SHA-256 of the canonical JSON of every other field. */
  checksum: string;
}

/**
 * Assembles an artifact (checksum filled in) from a profile result. `corpusLabel` is what `settings.corpus`
 * records (e.g. a repository-relative path rather than an absolute one). Throws ArtifactError naming a
 * non-finite value.
 *
 * @example
 * ```ts
 * import { makeSensitivityArtifact } from "./artifact.ts";
 * import { randomModel } from "./testing_model.ts";
 * import { profileWindows, resolveSettings } from "./sensitivity.ts";
 * const model = randomModel({ seed: 1 });
 * const settings = resolveSettings({ samples: 1, length: 4, bits: [2, 4] });
 * const result = profileWindows(model, [[3, 14, 15, 9]], settings);
 * const art = await makeSensitivityArtifact(model, settings, result, "data/tiny-lm-train-sample.txt.gz");
 * art.checksum; // 64 hex digits
 * ```
 */
export async function makeSensitivityArtifact(
  model: LoadedModel,
  settings: ProfileSettings,
  result: SensitivityResult,
  corpusLabel: string = settings.corpus,
  createdAt: Date = new Date(),
): Promise<SensitivityArtifact> {
  const c = model.config;
  const body: Omit<SensitivityArtifact, "checksum"> = {
    format: SENSITIVITY_FORMAT,
    version: SENSITIVITY_VERSION,
    modelFingerprint: model.fingerprint,
    model: {
      architecture: c.architecture,
      numLayers: c.numLayers,
      numKvHeads: c.numKvHeads,
      headDim: c.headDim,
    },
    settings: {
      samples: settings.samples,
      length: settings.length,
      stretch: settings.stretch,
      seed: settings.seed,
      corpus: corpusLabel,
      bits: [...result.bits],
    },
    kSensitivity: result.k,
    vSensitivity: result.v,
    total: result.total,
    loss: result.loss,
    createdAt: createdAt.toISOString(),
  };
  try {
    return { ...body, checksum: await sensitivityChecksum(body) };
  } catch (e) {
    throw new ArtifactError(`cannot make a sensitivity artifact: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * SHA-256 (hex) of the canonical JSON of every field except `checksum`.
 *
 * @example
 * ```ts
 * import { makeSensitivityArtifact, sensitivityChecksum } from "./artifact.ts";
 * import { randomModel } from "./testing_model.ts";
 * import { profileWindows, resolveSettings } from "./sensitivity.ts";
 * const model = randomModel({ seed: 1 });
 * const settings = resolveSettings({ samples: 1, length: 4, bits: [2, 4] });
 * const result = profileWindows(model, [[3, 14, 15, 9]], settings);
 * const art = await makeSensitivityArtifact(model, settings, result);
 * const ok = (await sensitivityChecksum(art)) === art.checksum; // true
 * ```
 */
export async function sensitivityChecksum(
  art: Omit<SensitivityArtifact, "checksum"> | SensitivityArtifact,
): Promise<string> {
  const { checksum: _ignored, ...rest } = art as SensitivityArtifact;
  return await sha256Hex(canonicalJson(rest));
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const show = (v: unknown) => {
  const s = typeof v === "number" && !Number.isFinite(v) ? String(v) : JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

/**
 * Checks the structure of a parsed artifact (everything but the checksum and the fingerprint) and returns it
 * typed. Throws ArtifactError naming `file` and the first bad field.
 *
 * @example
 * ```ts
 * import { validateSensitivity } from "./artifact.ts";
 * try {
 *   validateSensitivity({ format: "pmkvq-sensitivity", version: 2 }, "s.json");
 * } catch (e) {
 *   (e as Error).message; // "sensitivity artifact s.json: version 2 is not supported (this build reads version 1)"
 * }
 * ```
 */
export function validateSensitivity(v: unknown, file: string): SensitivityArtifact {
  const fail = (msg: string): never => {
    throw new ArtifactError(`sensitivity artifact ${file}: ${msg}`);
  };
  if (!isObj(v)) return fail(`expected a JSON object, got ${show(v)}`);
  if (v.format !== SENSITIVITY_FORMAT) fail(`format is ${show(v.format)}, expected "${SENSITIVITY_FORMAT}"`);
  if (v.version !== SENSITIVITY_VERSION) {
    fail(`version ${show(v.version)} is not supported (this build reads version ${SENSITIVITY_VERSION})`);
  }
  const int = (o: Json, key: string, where: string, min: number) => {
    if (typeof o[key] !== "number" || !Number.isSafeInteger(o[key]) || (o[key] as number) < min) {
      fail(`${where}.${key} is ${show(o[key])}, expected an integer >= ${min}`);
    }
    return o[key] as number;
  };
  const str = (o: Json, key: string, where: string) => {
    if (typeof o[key] !== "string" || (o[key] as string).length === 0) {
      fail(`${where ? where + "." : ""}${key} is ${show(o[key])}, expected a non-empty string`);
    }
    return o[key] as string;
  };
  str(v, "modelFingerprint", "");
  if (!isObj(v.model)) return fail(`model is ${show(v.model)}, expected an object`);
  if (v.model.architecture !== "LlamaForCausalLM" && v.model.architecture !== "Qwen2ForCausalLM") {
    fail(
      `model.architecture is ${show(v.model.architecture)}, expected LlamaForCausalLM or Qwen2ForCausalLM`,
    );
  }
  const layers = int(v.model, "numLayers", "model", 1);
  int(v.model, "numKvHeads", "model", 1);
  int(v.model, "headDim", "model", 1);
  if (!isObj(v.settings)) return fail(`settings is ${show(v.settings)}, expected an object`);
  int(v.settings, "samples", "settings", 1);
  int(v.settings, "length", "settings", 2);
  int(v.settings, "stretch", "settings", 1);
  int(v.settings, "seed", "settings", 0);
  str(v.settings, "corpus", "settings");
  const bits = v.settings.bits;
  if (!Array.isArray(bits) || bits.length === 0 || bits.some((b) => ![2, 4, 8, 16].includes(b as number))) {
    return fail(`settings.bits is ${show(bits)}, expected a non-empty list of 2, 4, 8, 16`);
  }
  if (new Set(bits).size !== bits.length) fail(`settings.bits ${show(bits)} has duplicates`);
  const want = bits.map(String).sort().join(",");
  for (const name of ["kSensitivity", "vSensitivity", "total"]) {
    const t = v[name];
    if (!isObj(t)) return fail(`${name} is ${show(t)}, expected an object keyed by bit-width`);
    if (Object.keys(t).sort().join(",") !== want) {
      fail(`${name} has bit-widths ${Object.keys(t).join(",")}, settings.bits says ${bits.join(",")}`);
    }
    for (const b of bits) {
      const arr = t[String(b)];
      if (!Array.isArray(arr) || arr.length !== layers) {
        fail(`${name}["${b}"] must be a list of ${layers} numbers (one per layer), got ${show(arr)}`);
      }
      (arr as unknown[]).forEach((x, l) => {
        if (typeof x !== "number" || !Number.isFinite(x) || x < 0) {
          fail(`${name}["${b}"][${l}] is ${show(x)}, expected a finite number >= 0`);
        }
      });
    }
  }
  for (const b of bits) {
    const k = (v.kSensitivity as Json)[String(b)] as number[];
    const vv = (v.vSensitivity as Json)[String(b)] as number[];
    const tot = (v.total as Json)[String(b)] as number[];
    tot.forEach((x, l) => {
      const sum = k[l] + vv[l];
      if (Math.abs(x - sum) > 1e-12 * Math.max(Math.abs(sum), 1e-300)) {
        fail(`total["${b}"][${l}] = ${x} is not kSensitivity + vSensitivity = ${sum}`);
      }
    });
  }
  if (typeof v.loss !== "number" || !Number.isFinite(v.loss)) {
    fail(`loss is ${show(v.loss)}, expected a finite number`);
  }
  if (typeof v.createdAt !== "string" || Number.isNaN(Date.parse(v.createdAt))) {
    fail(`createdAt is ${show(v.createdAt)}, expected an ISO date`);
  }
  if (typeof v.checksum !== "string") fail(`checksum is ${show(v.checksum)}, expected a hex string`);
  return v as unknown as SensitivityArtifact;
}

/**
 * Writes `art` as indented JSON (creating the parent directory), with its checksum recomputed. Returns the
 * artifact as written. Throws ArtifactError if the artifact is invalid (e.g. a NaN sensitivity).
 *
 * @example
 * ```ts
 * import { makeSensitivityArtifact, writeSensitivity } from "./artifact.ts";
 * import { randomModel } from "./testing_model.ts";
 * import { profileWindows, resolveSettings } from "./sensitivity.ts";
 * const model = randomModel({ seed: 1 });
 * const settings = resolveSettings({ samples: 1, length: 4, bits: [2, 4] });
 * const result = profileWindows(model, [[3, 14, 15, 9]], settings);
 * const file = await Deno.makeTempFile({ suffix: ".json" });
 * await writeSensitivity(file, await makeSensitivityArtifact(model, settings, result));
 * ```
 */
export async function writeSensitivity(
  file: string,
  art: SensitivityArtifact | Omit<SensitivityArtifact, "checksum">,
): Promise<SensitivityArtifact> {
  const { checksum: _old, ...body } = art as SensitivityArtifact;
  let checksum: string;
  try {
    checksum = await sensitivityChecksum(body);
  } catch (e) {
    throw new ArtifactError(`cannot write sensitivity artifact ${file}: ${(e as Error).message}`);
  }
  const out = validateSensitivity({ ...body, checksum }, file);
  await Deno.mkdir(dirname(file), { recursive: true });
  await Deno.writeTextFile(file, JSON.stringify(out, null, 2) + "\n");
  return out;
}

/**
 * Reads and verifies a sensitivity artifact: JSON, format, version, structure (finite numbers, one per layer
 * and bit-width), checksum, and — when `expectedFingerprint` is given — that it was made for that model.
 * Every failure is an ArtifactError naming the file and the mismatch.
 *
 * @example
 * ```ts
 * import { makeSensitivityArtifact, readSensitivity, writeSensitivity } from "./artifact.ts";
 * import { randomModel } from "./testing_model.ts";
 * import { profileWindows, resolveSettings } from "./sensitivity.ts";
 * const model = randomModel({ seed: 1 });
 * const settings = resolveSettings({ samples: 1, length: 4, bits: [2, 4] });
 * const result = profileWindows(model, [[3, 14, 15, 9]], settings);
 * const file = await Deno.makeTempFile({ suffix: ".json" });
 * await writeSensitivity(file, await makeSensitivityArtifact(model, settings, result));
 * const art = await readSensitivity(file, model.fingerprint);
 * art.total["2"]; // per-layer 2-bit sensitivities
 * ```
 */
export async function readSensitivity(
  file: string,
  expectedFingerprint?: string,
): Promise<SensitivityArtifact> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new ArtifactError(`cannot read sensitivity artifact ${file}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ArtifactError(`sensitivity artifact ${file} is not valid JSON: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const art = validateSensitivity(parsed, file);
  const actual = await sensitivityChecksum(art);
  if (actual !== art.checksum) {
    throw new ArtifactError(
      `sensitivity artifact ${file}: checksum mismatch (file says ${art.checksum}, its content hashes to ${actual}); ` +
        `it was edited or corrupted`,
    );
  }
  if (expectedFingerprint !== undefined && art.modelFingerprint !== expectedFingerprint) {
    throw new ArtifactError(
      `sensitivity artifact ${file} was made for model ${art.modelFingerprint}, not for this model ` +
        `${expectedFingerprint}: profile this model again`,
    );
  }
  return art;
}
