/**
 * The calibration artifact: versioned JSON holding the per-layer smoothing factors λ.
 *
 * ```
 * { "format": "pmkvq-calibration", "version": 1,
 *   "modelFingerprint": "<hex SHA-256 of the BASE model, see src/model/load.ts>",
 *   "settings": { "samples", "length", "stretch", "seed", "kBits", "vBits", "alphaGrid": [...] },
 *   "layers": [ { "alpha", "loss", "lossNoSmoothing", "lambda": [numKvHeads][headDim/2] }, ... ],
 *   "createdAt": "<ISO 8601>",
 *   "checksum": "<hex SHA-256 of the canonical JSON of every other field>" }
 * ```
 * Canonical JSON: object keys sorted at every level, no whitespace, numbers as JSON.stringify writes them.
 * Reading refuses (ArtifactError, naming the file and the field) malformed JSON, another format or version,
 * missing or mistyped fields, non-finite or non-positive λ, a wrong checksum, and — given a model — a
 * fingerprint or shape of another model (naming both fingerprints).
 *
 * @example
 * ```ts
 * const art = sealCalibration({ modelFingerprint: model.fingerprint, settings, layers });
 * await writeCalibration("out/calibration.json", art);
 * const back = await readCalibration("out/calibration.json", model);
 * ```
 * @module
 */
import { createHash } from "node:crypto";
import { dirname } from "node:path";
import type { ModelConfig } from "../src/model/types.ts";
import { ArtifactError } from "../src/errors.ts";
import { baseFingerprint, isCalibratedFingerprint } from "./fingerprint.ts";

/** The `format` field. */
export const CALIBRATION_FORMAT = "pmkvq-calibration";
/** The `version` this code reads and writes. */
export const CALIBRATION_VERSION = 1;

/** How the calibration was made. */
export interface CalibrationSettings {
  /** Calibration windows. */
  samples: number;
  /** Tokens per window. */
  length: number;
  /** Position stretch s (positions 0, s, 2s, …). */
  stretch: number;
  /** Window-selection seed. */
  seed: number;
  /** Key bit-width the α search quantized with (the student's keys). */
  kBits: number;
  /** Value bit-width the α search quantized with (the student's values). */
  vBits: number;
  /** The α grid searched. */
  alphaGrid: number[];
}

/** One layer's result. */
export interface CalibrationLayer {
  /** The chosen α. */
  alpha: number;
  /** α-search loss at the chosen α (Σ over windows of the attention-output MSE). */
  loss: number;
  /** The same loss without smoothing (λ = 1). */
  lossNoSmoothing: number;
  /** λ[KV head][half-channel j]; channels j and j + headDim/2 share it. */
  lambda: number[][];
}

/** A complete, sealed artifact. */
export interface CalibrationArtifact {
  /** Format tag {@link CALIBRATION_FORMAT}. */
  format: typeof CALIBRATION_FORMAT;
  /** Format version {@link CALIBRATION_VERSION}. */
  version: typeof CALIBRATION_VERSION;
  /** Fingerprint of the base (uncalibrated) model it was made for; refused for any other model. */
  modelFingerprint: string;
  /** How the calibration was made. */
  settings: CalibrationSettings;
  /** One result per decoder layer, in order. */
  layers: CalibrationLayer[];
  /** ISO-8601 creation time. */
  createdAt: string;
  /** Hex SHA-256 of the canonical JSON of every other field ({@link calibrationChecksum}). */
  checksum: string;
}

import { canonicalJson } from "../src/util/canonical.ts";
export { canonicalJson };

/**
 * Hex SHA-256 of the canonical JSON of every field except `checksum`.
 *
 * @example
 * ```ts
 * calibrationChecksum(art) === art.checksum; // true for an intact artifact
 * ```
 */
export function calibrationChecksum(
  art: Omit<CalibrationArtifact, "checksum"> | CalibrationArtifact,
): string {
  const { checksum: _drop, ...rest } = art as CalibrationArtifact;
  return createHash("sha256").update(canonicalJson(rest)).digest("hex");
}

/**
 * Builds a sealed artifact (format, version, createdAt = now unless given, checksum). Validates it like a read.
 *
 * @example
 * ```ts
 * const art = sealCalibration({ modelFingerprint: model.fingerprint, settings, layers });
 * ```
 */
export function sealCalibration(fields: {
  modelFingerprint: string;
  settings: CalibrationSettings;
  layers: CalibrationLayer[];
  createdAt?: string;
}): CalibrationArtifact {
  const unsealed = {
    format: CALIBRATION_FORMAT,
    version: CALIBRATION_VERSION,
    modelFingerprint: fields.modelFingerprint,
    settings: fields.settings,
    layers: fields.layers,
    createdAt: fields.createdAt ?? new Date().toISOString(),
  } as const;
  const art: CalibrationArtifact = { ...unsealed, checksum: calibrationChecksum(unsealed) };
  validateFields(art as unknown as Record<string, unknown>, "new calibration");
  return art;
}

function fail(source: string, what: string): never {
  throw new ArtifactError(`calibration ${source}: ${what}`);
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Checks every field but the checksum; throws ArtifactError naming the field. */
function validateFields(
  o: Record<string, unknown>,
  source: string,
): asserts o is Record<string, unknown> & CalibrationArtifact {
  if (o.format !== CALIBRATION_FORMAT) {
    fail(source, `format is ${JSON.stringify(o.format)}, expected "${CALIBRATION_FORMAT}"`);
  }
  if (o.version !== CALIBRATION_VERSION) {
    fail(
      source,
      `version ${
        JSON.stringify(o.version)
      } is not supported (this build reads version ${CALIBRATION_VERSION})`,
    );
  }
  if (typeof o.modelFingerprint !== "string" || o.modelFingerprint === "") {
    fail(source, "modelFingerprint must be a non-empty string");
  }
  if (typeof o.createdAt !== "string") fail(source, "createdAt must be a string");
  if (typeof o.checksum !== "string") fail(source, "checksum must be a string");
  const s = o.settings;
  if (!isObj(s)) fail(source, "settings must be an object");
  for (const key of ["samples", "length", "stretch", "seed", "kBits", "vBits"]) {
    if (typeof s[key] !== "number" || !Number.isFinite(s[key])) {
      fail(source, `settings.${key} must be a finite number`);
    }
  }
  if (!Array.isArray(s.alphaGrid) || s.alphaGrid.some((a) => typeof a !== "number" || !Number.isFinite(a))) {
    fail(source, "settings.alphaGrid must be an array of finite numbers");
  }
  if (!Array.isArray(o.layers) || o.layers.length === 0) fail(source, "layers must be a non-empty array");
  let heads = -1, half = -1;
  o.layers.forEach((L: unknown, l: number) => {
    if (!isObj(L)) fail(source, `layers[${l}] must be an object`);
    for (const key of ["alpha", "loss", "lossNoSmoothing"]) {
      if (typeof L[key] !== "number" || !Number.isFinite(L[key])) {
        fail(source, `layers[${l}].${key} must be a finite number`);
      }
    }
    const lam = L.lambda;
    if (!Array.isArray(lam) || lam.length === 0) {
      fail(source, `layers[${l}].lambda must be a non-empty array (one row per KV head)`);
    }
    if (heads < 0) heads = lam.length;
    if (lam.length !== heads) {
      fail(source, `layers[${l}].lambda has ${lam.length} KV heads, layer 0 has ${heads}`);
    }
    lam.forEach((row: unknown, h: number) => {
      if (!Array.isArray(row) || row.length === 0) {
        fail(source, `layers[${l}].lambda[${h}] must be a non-empty array`);
      }
      if (half < 0) half = row.length;
      if (row.length !== half) {
        fail(source, `layers[${l}].lambda[${h}] has ${row.length} entries, expected ${half}`);
      }
      row.forEach((x: unknown, j: number) => {
        if (typeof x !== "number" || !Number.isFinite(x) || x <= 0) {
          fail(source, `layers[${l}].lambda[${h}][${j}] is ${String(x)}; λ must be a finite positive number`);
        }
      });
    });
  });
}

/**
 * Parses and fully validates artifact text (see the module comment); `source` names it in errors.
 *
 * @example
 * ```ts
 * const art = parseCalibration(await Deno.readTextFile(path), path);
 * ```
 */
export function parseCalibration(text: string, source: string): CalibrationArtifact {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    fail(source, `malformed JSON (${(e as Error).message})`);
  }
  if (!isObj(o)) fail(source, "the file must hold a JSON object");
  validateFields(o, source);
  const want = calibrationChecksum(o);
  if (want !== o.checksum) {
    fail(
      source,
      `checksum mismatch: the file says ${o.checksum}, its content hashes to ${want} (edited or corrupted)`,
    );
  }
  return o;
}

/**
 * Refuses (ArtifactError naming both fingerprints) an artifact made for another model, and one whose λ shape
 * does not fit the model's config. A model that already carries a calibration is refused too.
 *
 * @example
 * ```ts
 * checkCalibrationFor(art, model, "out/calibration.json");
 * ```
 */
export function checkCalibrationFor(
  art: CalibrationArtifact,
  model: { fingerprint: string; config: Pick<ModelConfig, "numLayers" | "numKvHeads" | "headDim"> },
  source = "artifact",
): void {
  if (isCalibratedFingerprint(model.fingerprint)) {
    const base = baseFingerprint(model.fingerprint);
    fail(
      source,
      `the model (fingerprint ${model.fingerprint}) already has a calibration folded in; apply calibrations to the ` +
        `base model (fingerprint ${base})` +
        (base === art.modelFingerprint ? "" : `; this one was made for ${art.modelFingerprint}`),
    );
  }
  if (art.modelFingerprint !== model.fingerprint) {
    fail(
      source,
      `made for model fingerprint ${art.modelFingerprint}, but this model's fingerprint is ${model.fingerprint}`,
    );
  }
  const c = model.config;
  if (art.layers.length !== c.numLayers) {
    fail(source, `has ${art.layers.length} layers, the model has ${c.numLayers}`);
  }
  const L0 = art.layers[0].lambda;
  if (L0.length !== c.numKvHeads || L0[0].length !== c.headDim / 2) {
    fail(
      source,
      `λ is [${L0.length}][${L0[0].length}] per layer, the model needs [${c.numKvHeads}][${c.headDim / 2}]`,
    );
  }
}

/**
 * Reads and validates an artifact; with `model`, also checks it belongs to that model.
 * Throws ArtifactError (also for an unreadable file).
 *
 * @example
 * ```ts
 * const art = await readCalibration("out/calibration.json", model);
 * ```
 */
export async function readCalibration(
  path: string,
  model?: { fingerprint: string; config: Pick<ModelConfig, "numLayers" | "numKvHeads" | "headDim"> },
): Promise<CalibrationArtifact> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ArtifactError(`cannot read calibration ${path}: ${(e as Error).message}`, { cause: e });
  }
  const art = parseCalibration(text, path);
  if (model) checkCalibrationFor(art, model, path);
  return art;
}

/**
 * Validates `art` (checksum included) and writes it as indented JSON, creating the directory.
 *
 * @example
 * ```ts
 * await writeCalibration("out/calibration.json", art);
 * ```
 */
export async function writeCalibration(path: string, art: CalibrationArtifact): Promise<void> {
  const text = JSON.stringify(art, null, 1) + "\n";
  parseCalibration(text, `to be written to ${path}`);
  await Deno.mkdir(dirname(path) || ".", { recursive: true });
  await Deno.writeTextFile(path, text);
}
