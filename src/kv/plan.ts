/**
 * PM-KVQ memory plans: per-layer final bit-widths and byte budgets for a model and a maximum sequence length,
 * stored as a checksummed JSON artifact.
 *
 * A plan's budgets count every byte the grouped cache holds ({@link layerBytesAt}: codes, scales, zeros, 16-bit
 * sink and window). The checksum is the hex SHA-256 of the canonical body: the plan without `checksum`,
 * serialized as JSON with keys in sorted order and no whitespace ({@link canonicalPlanBody}).
 *
 * | field              | meaning                                                                 |
 * | ------------------ | ----------------------------------------------------------------------- |
 * | `format`           | `"pmkvq-plan"`                                                          |
 * | `version`          | `1`                                                                     |
 * | `modelFingerprint` | `LoadedModel.fingerprint` of the model it was made for                  |
 * | `maxLen`           | tokens (prompt + generated) the budgets hold                           |
 * | `sink`, `window`   | the cache layout the budgets were computed with                         |
 * | `finalBits`        | per-layer floor width (16, 8, 4 or 2)                                   |
 * | `budgets`          | per-layer byte budgets (integers)                                       |
 * | `source`           | `"uniform"`, `"budget"` (from a total) or `"allocator"`                 |
 * | `createdAt`        | ISO-8601 time                                                           |
 * | `checksum`         | hex SHA-256 of the canonical body                                       |
 *
 * @example
 * ```ts
 * import { uniformPlan, writePlan, readPlan } from "./plan.ts";
 * const shape = { numLayers: 6, numKvHeads: 2, headDim: 128 };
 * const plan = uniformPlan(shape, "ab12…", 4096, 4, { sink: 1, window: 128 });
 * const file = await Deno.makeTempFile({ suffix: ".json" });
 * await writePlan(file, plan);
 * const again = await readPlan(file, "ab12…"); // ArtifactError for another model's fingerprint
 * ```
 * @module
 */
import { createHash } from "node:crypto";
import type { CacheSpec, KVShape } from "./cache.ts";
import { layerBytesAt } from "./accounting.ts";
import { QUANT_BITS } from "../quant/format.ts";
import { ArtifactError, BudgetError, InputError } from "../errors.ts";

/**
 * Plan format tag.
 *
 * @example
 * ```ts
 * import { PLAN_FORMAT, uniformPlan } from "./plan.ts";
 * uniformPlan({ numLayers: 1, numKvHeads: 1, headDim: 64 }, "fp", 256, 4).format === PLAN_FORMAT; // true
 * ```
 */
export const PLAN_FORMAT = "pmkvq-plan";
/**
 * Plan format version.
 *
 * @example
 * ```ts
 * import { PLAN_VERSION } from "./plan.ts";
 * PLAN_VERSION; // 1
 * ```
 */
export const PLAN_VERSION = 1;
/**
 * Default sink tokens of a plan (paper setting).
 *
 * @example
 * ```ts
 * import { PLAN_DEFAULT_SINK, uniformPlan } from "./plan.ts";
 * uniformPlan({ numLayers: 1, numKvHeads: 1, headDim: 64 }, "fp", 256, 4).sink === PLAN_DEFAULT_SINK; // true
 * ```
 */
export const PLAN_DEFAULT_SINK = 1;
/**
 * Default window of a plan (paper setting).
 *
 * @example
 * ```ts
 * import { PLAN_DEFAULT_WINDOW, uniformPlan } from "./plan.ts";
 * uniformPlan({ numLayers: 1, numKvHeads: 1, headDim: 64 }, "fp", 256, 4).window === PLAN_DEFAULT_WINDOW; // true
 * ```
 */
export const PLAN_DEFAULT_WINDOW = 128;

/**
 * A PM-KVQ memory plan (see the module table).
 *
 * @example
 * ```ts
 * import { type KvPlan, uniformPlan } from "./plan.ts";
 * const plan: KvPlan = uniformPlan({ numLayers: 2, numKvHeads: 2, headDim: 128 }, "fp", 1024, 2);
 * ```
 */
export interface KvPlan {
  /** Format tag {@link PLAN_FORMAT}. */
  format: "pmkvq-plan";
  /** Format version {@link PLAN_VERSION}. */
  version: 1;
  /** `LoadedModel.fingerprint` of the model the plan was made for. */
  modelFingerprint: string;
  /** Tokens (prompt + generated) the budgets hold. */
  maxLen: number;
  /** 16-bit sink tokens of the cache layout the budgets were computed with. */
  sink: number;
  /** 16-bit window capacity (tokens) of the cache layout the budgets were computed with. */
  window: number;
  /** Per-layer floor bit-width (16, 8, 4 or 2), one entry per layer. */
  finalBits: number[];
  /** Per-layer byte budgets (integers), one entry per layer. */
  budgets: number[];
  /** How the plan was made: one width for all layers, from a total budget, or by the allocator. */
  source: "uniform" | "budget" | "allocator";
  /** ISO-8601 creation time. */
  createdAt: string;
  /** Hex SHA-256 of the canonical body ({@link canonicalPlanBody}). */
  checksum: string;
}

/**
 * Everything of a plan but its checksum.
 *
 * @example
 * ```ts
 * import { type KvPlanBody, planChecksum, uniformPlan } from "./plan.ts";
 * const { checksum, ...body } = uniformPlan({ numLayers: 1, numKvHeads: 1, headDim: 64 }, "fp", 256, 4);
 * planChecksum(body as KvPlanBody) === checksum; // true
 * ```
 */
export type KvPlanBody = Omit<KvPlan, "checksum">;

/**
 * Cache layout options of the plan builders.
 *
 * @example
 * ```ts
 * import { type PlanOptions, uniformPlan } from "./plan.ts";
 * const opts: PlanOptions = { sink: 0, window: 0 };
 * uniformPlan({ numLayers: 1, numKvHeads: 1, headDim: 64 }, "fp", 256, 4, opts);
 * ```
 */
export interface PlanOptions {
  /** Sink tokens (default 1). */
  sink?: number;
  /** Window capacity (default 128). */
  window?: number;
  /** Creation time (default now). */
  createdAt?: string;
}

function sortedJson(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(sortedJson).join(",")}]`;
  if (x !== null && typeof x === "object") {
    const o = x as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${sortedJson(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(x);
}

/**
 * The canonical serialization the checksum is computed over: the plan without `checksum`, keys sorted, no
 * whitespace.
 *
 * @example
 * ```ts
 * import { canonicalPlanBody } from "./plan.ts";
 * // canonicalPlanBody(plan).startsWith('{"budgets":[')
 * ```
 */
export function canonicalPlanBody(plan: KvPlanBody | KvPlan): string {
  const { checksum: _c, ...body } = plan as KvPlan;
  return sortedJson(body);
}

/**
 * Hex SHA-256 of {@link canonicalPlanBody}.
 *
 * @example
 * ```ts
 * import { planChecksum } from "./plan.ts";
 * // planChecksum(plan) === plan.checksum for an intact plan
 * ```
 */
export function planChecksum(plan: KvPlanBody | KvPlan): string {
  return createHash("sha256").update(canonicalPlanBody(plan)).digest("hex");
}

/** Problems with a plan body, or [] when it is well-formed. */
function planProblems(p: Record<string, unknown>): string[] {
  const bad: string[] = [];
  const isInt = (x: unknown, min: number) => typeof x === "number" && Number.isSafeInteger(x) && x >= min;
  if (p.format !== PLAN_FORMAT) bad.push(`format is ${JSON.stringify(p.format)}, expected "${PLAN_FORMAT}"`);
  if (p.version !== PLAN_VERSION) {
    bad.push(`unknown version ${JSON.stringify(p.version)} (this build reads ${PLAN_VERSION})`);
  }
  if (typeof p.modelFingerprint !== "string" || p.modelFingerprint === "") {
    bad.push("modelFingerprint is missing");
  }
  if (!isInt(p.maxLen, 1)) bad.push(`maxLen ${JSON.stringify(p.maxLen)} is not a positive integer`);
  if (!isInt(p.sink, 0)) bad.push(`sink ${JSON.stringify(p.sink)} is not a non-negative integer`);
  if (!isInt(p.window, 0)) bad.push(`window ${JSON.stringify(p.window)} is not a non-negative integer`);
  const fb = p.finalBits, bu = p.budgets;
  if (
    !Array.isArray(fb) || fb.length === 0 || fb.some((b) => !(QUANT_BITS as readonly unknown[]).includes(b))
  ) {
    bad.push(`finalBits ${JSON.stringify(fb)} must be a non-empty list of 16, 8, 4 or 2`);
  }
  if (!Array.isArray(bu) || bu.some((b) => !isInt(b, 0))) {
    bad.push(`budgets ${JSON.stringify(bu)} must be a list of non-negative integers (bytes)`);
  } else if (Array.isArray(fb) && bu.length !== fb.length) {
    bad.push(`budgets has ${bu.length} entries but finalBits ${fb.length}`);
  }
  if (p.source !== "uniform" && p.source !== "budget" && p.source !== "allocator") {
    bad.push(`source ${JSON.stringify(p.source)} is not uniform, budget or allocator`);
  }
  if (typeof p.createdAt !== "string") bad.push("createdAt is missing");
  return bad;
}

/**
 * Builds a plan from its fields (format, version and createdAt filled in) and checksums it. Throws
 * InputError naming every malformed field.
 *
 * @example
 * ```ts
 * import { createPlan } from "./plan.ts";
 * const plan = createPlan({ modelFingerprint: "ab", maxLen: 1024, sink: 1, window: 128,
 *   finalBits: [4, 2], budgets: [400000, 300000], source: "allocator" });
 * ```
 */
export function createPlan(
  fields: Omit<KvPlanBody, "format" | "version" | "createdAt"> & { createdAt?: string },
): KvPlan {
  const body: KvPlanBody = {
    format: PLAN_FORMAT,
    version: PLAN_VERSION,
    modelFingerprint: fields.modelFingerprint,
    maxLen: fields.maxLen,
    sink: fields.sink,
    window: fields.window,
    finalBits: [...fields.finalBits],
    budgets: [...fields.budgets],
    source: fields.source,
    createdAt: fields.createdAt ?? new Date().toISOString(),
  };
  const bad = planProblems(body as unknown as Record<string, unknown>);
  if (bad.length) throw new InputError(`invalid plan: ${bad.join("; ")}`);
  return { ...body, checksum: planChecksum(body) };
}

function checkMaxLen(maxLen: number): void {
  if (!Number.isSafeInteger(maxLen) || maxLen < 1) {
    throw new InputError(`max-len ${maxLen} must be a positive integer (tokens)`);
  }
}

/**
 * Every layer at final width `bits`, budget_l = layerBytesAt(bits, maxLen) (the paper's uniform setting).
 *
 * @example
 * ```ts
 * import { uniformPlan } from "./plan.ts";
 * const p = uniformPlan({ numLayers: 6, numKvHeads: 2, headDim: 128 }, "ab", 4096, 4);
 * p.budgets[0]; // 1040 + 133120 + 31·128·272 = 1213456
 * ```
 */
export function uniformPlan(
  shape: KVShape,
  fingerprint: string,
  maxLen: number,
  bits: number,
  opts: PlanOptions = {},
): KvPlan {
  checkMaxLen(maxLen);
  const sink = opts.sink ?? PLAN_DEFAULT_SINK, window = opts.window ?? PLAN_DEFAULT_WINDOW;
  const budget = layerBytesAt(shape, { bits, sink, window }, maxLen);
  return createPlan({
    modelFingerprint: fingerprint,
    maxLen,
    sink,
    window,
    finalBits: Array(shape.numLayers).fill(bits),
    budgets: Array(shape.numLayers).fill(budget),
    source: "uniform",
    createdAt: opts.createdAt,
  });
}

/**
 * Per-layer final widths from an allocator (e.g. src/alloc), budget_l = layerBytesAt(finalBits_l, maxLen).
 *
 * @example
 * ```ts
 * import { planFromFinalBits } from "./plan.ts";
 * const p = planFromFinalBits({ numLayers: 2, numKvHeads: 2, headDim: 128 }, "ab", 4096, [4, 2]);
 * p.source; // "allocator"
 * ```
 */
export function planFromFinalBits(
  shape: KVShape,
  fingerprint: string,
  maxLen: number,
  finalBits: number[],
  opts: PlanOptions = {},
): KvPlan {
  checkMaxLen(maxLen);
  if (finalBits.length !== shape.numLayers) {
    throw new InputError(`finalBits has ${finalBits.length} entries for ${shape.numLayers} layers`);
  }
  const sink = opts.sink ?? PLAN_DEFAULT_SINK, window = opts.window ?? PLAN_DEFAULT_WINDOW;
  return createPlan({
    modelFingerprint: fingerprint,
    maxLen,
    sink,
    window,
    finalBits: [...finalBits],
    budgets: finalBits.map((b) => layerBytesAt(shape, { bits: b, sink, window }, maxLen)),
    source: "allocator",
    createdAt: opts.createdAt,
  });
}

/**
 * Splits a total byte budget evenly: budget_l = floor(total / numLayers); final width = the widest of
 * 16/8/4/2 whose bytes at maxLen fit that budget. BudgetError for a zero/negative/non-integer total, or a
 * total below the 2-bit minimum (the message gives the minimum feasible total).
 *
 * @example
 * ```ts
 * import { planFromTotalBudget } from "./plan.ts";
 * const p = planFromTotalBudget({ numLayers: 6, numKvHeads: 2, headDim: 128 }, "ab", 4096, 8_000_000);
 * p.finalBits; // [4, 4, 4, 4, 4, 4]: 1,333,333 bytes per layer fit 4-bit (1,213,456) but not 8-bit
 * ```
 */
export function planFromTotalBudget(
  shape: KVShape,
  fingerprint: string,
  maxLen: number,
  totalBytes: number,
  opts: PlanOptions = {},
): KvPlan {
  checkMaxLen(maxLen);
  if (!Number.isSafeInteger(totalBytes) || totalBytes <= 0) {
    throw new BudgetError(`KV budget ${totalBytes} bytes must be a positive integer`);
  }
  const sink = opts.sink ?? PLAN_DEFAULT_SINK, window = opts.window ?? PLAN_DEFAULT_WINDOW;
  const per = Math.floor(totalBytes / shape.numLayers);
  const fit = QUANT_BITS.find((b) => layerBytesAt(shape, { bits: b, sink, window }, maxLen) <= per);
  if (fit === undefined) {
    const min2 = layerBytesAt(shape, { bits: 2, sink, window }, maxLen);
    throw new BudgetError(
      `KV budget ${totalBytes} bytes (${per} per layer) cannot hold ${maxLen} tokens even at 2 bits: the minimum ` +
        `feasible total is ${
          min2 * shape.numLayers
        } bytes (${shape.numLayers} layers × ${min2} bytes, sink ${sink}, ` +
        `window ${window})`,
    );
  }
  return createPlan({
    modelFingerprint: fingerprint,
    maxLen,
    sink,
    window,
    finalBits: Array(shape.numLayers).fill(fit),
    budgets: Array(shape.numLayers).fill(per),
    source: "budget",
    createdAt: opts.createdAt,
  });
}

/**
 * Parses and verifies plan JSON text read from `file`: ArtifactError (naming the file and the mismatch) for
 * malformed content, an unknown format/version, a bad checksum, or a plan made for another model.
 *
 * @example
 * ```ts
 * import { parsePlan } from "./plan.ts";
 * // const plan = parsePlan(await Deno.readTextFile("plan.json"), "plan.json", model.fingerprint);
 * ```
 */
export function parsePlan(text: string, file: string, fingerprint: string): KvPlan {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ArtifactError(`plan ${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ArtifactError(`plan ${file} must hold a JSON object`);
  }
  const p = raw as Record<string, unknown>;
  if (p.format !== PLAN_FORMAT) {
    throw new ArtifactError(`${file} is not a PM-KVQ plan (format ${JSON.stringify(p.format)})`);
  }
  if (p.version !== PLAN_VERSION) {
    throw new ArtifactError(
      `plan ${file} has unknown version ${JSON.stringify(p.version)} (this build reads ${PLAN_VERSION})`,
    );
  }
  const bad = planProblems(p);
  if (typeof p.checksum !== "string") bad.push("checksum is missing");
  if (bad.length) throw new ArtifactError(`plan ${file} is malformed: ${bad.join("; ")}`);
  const plan = p as unknown as KvPlan;
  const sum = planChecksum(plan);
  if (sum !== plan.checksum) {
    throw new ArtifactError(
      `plan ${file} is corrupted: checksum ${plan.checksum} does not match its content (${sum})`,
    );
  }
  if (plan.modelFingerprint !== fingerprint) {
    throw new ArtifactError(
      `plan ${file} was made for another model: fingerprint ${plan.modelFingerprint}, this model ${fingerprint}`,
    );
  }
  return plan;
}

/**
 * Reads and verifies a plan file (see {@link parsePlan}); an unreadable file is an ArtifactError too.
 *
 * @example
 * ```ts
 * import { readPlan } from "./plan.ts";
 * // const plan = await readPlan("plan.json", model.fingerprint);
 * ```
 */
export async function readPlan(file: string, fingerprint: string): Promise<KvPlan> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new ArtifactError(`cannot read plan ${file}: ${(e as Error).message}`);
  }
  return parsePlan(text, file, fingerprint);
}

/**
 * Writes `plan` as pretty JSON (after checking its checksum, so a modified plan is never written).
 *
 * @example
 * ```ts
 * import { writePlan } from "./plan.ts";
 * // await writePlan("plan.json", plan);
 * ```
 */
export async function writePlan(file: string, plan: KvPlan): Promise<void> {
  if (planChecksum(plan) !== plan.checksum) {
    throw new ArtifactError(`refusing to write plan ${file}: its checksum does not match its content`);
  }
  await Deno.writeTextFile(file, JSON.stringify(plan, null, 2) + "\n");
}

/**
 * BudgetError before generation when a run needs more tokens than the plan holds.
 * `parts` (prompt and new tokens) only refines the message.
 *
 * @example
 * ```ts
 * import { checkPlanFits } from "./plan.ts";
 * // checkPlanFits(plan, 5000, { prompt: 904, newTokens: 4096 })
 * //   BudgetError "plan holds 4096 tokens, this run needs 5000 = prompt 904 + new 4096"
 * ```
 */
export function checkPlanFits(
  plan: Pick<KvPlan, "maxLen">,
  neededLen: number,
  parts?: { prompt: number; newTokens: number },
): void {
  if (neededLen <= plan.maxLen) return;
  const how = parts ? ` = prompt ${parts.prompt} + new ${parts.newTokens}` : " tokens";
  throw new BudgetError(
    `plan holds ${plan.maxLen} tokens, this run needs ${neededLen}${how}: make a plan with a larger max-len`,
  );
}

/**
 * The PM-KVQ cache spec of a plan.
 *
 * @example
 * ```ts
 * import { planToCacheSpec, uniformPlan } from "./plan.ts";
 * const spec = planToCacheSpec(uniformPlan({ numLayers: 2, numKvHeads: 2, headDim: 128 }, "ab", 1024, 2));
 * spec.method; // "pmkvq"
 * ```
 */
export function planToCacheSpec(plan: KvPlan): CacheSpec & { method: "pmkvq" } {
  return {
    method: "pmkvq",
    finalBits: [...plan.finalBits],
    budgets: [...plan.budgets],
    maxLen: plan.maxLen,
    sink: plan.sink,
    window: plan.window,
  };
}
