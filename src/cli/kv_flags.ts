/**
 * Turns the CLI's KV-cache flags into a {@link CacheSpec}.
 *
 * | `--kv`            | cache                                    | other flags allowed                              |
 * | ----------------- | ---------------------------------------- | ------------------------------------------------ |
 * | `exact` (default) | f32                                      | none                                             |
 * | `bf16`            | exact, stored as bf16                    | none                                             |
 * | `int8/int4/int2`  | static uniform groups, sink 0, window 0  | `--sink`, `--window`                             |
 * | `kivi2/kivi4`     | KIVI, group 128, residual 128            | none                                             |
 * | `pmkvq`           | progressive 16→8→4→2, sink 1, window 128 | one of `--kv-budget`/`--kv-bits`/`--plan`; `--max-len`, `--sink`, `--window` |
 *
 * `--kv pmkvq` with none of `--kv-budget`, `--kv-bits`, `--plan` is a uniform 4-bit plan at max-len.
 * `--max-len` defaults to the run's prompt + new tokens; a plan that holds fewer tokens than the run needs is
 * refused (BudgetError) before generation.
 *
 * @example
 * ```ts
 * import { cacheSpecFromFlags } from "./kv_flags.ts";
 * // const spec = await cacheSpecFromFlags({ kv: "pmkvq", "kv-budget": "8000000" }, model, 4096);
 * ```
 * @module
 */
import type { CacheSpec } from "../kv/cache.ts";
import type { LoadedModel } from "../model/types.ts";
import { ArtifactError, InputError } from "../errors.ts";
import { kvShapeOf } from "../kv/factory.ts";
import {
  checkPlanFits,
  type KvPlan,
  planFromTotalBudget,
  planToCacheSpec,
  readPlan,
  uniformPlan,
} from "../kv/plan.ts";

/**
 * Help text for the KV flags.
 *
 * @example
 * ```ts
 * import { KV_FLAGS_HELP } from "./kv_flags.ts";
 * console.log(KV_FLAGS_HELP);
 * ```
 */
export const KV_FLAGS_HELP =
  `  --kv METHOD            exact (default, f32) | bf16 | int8 | int4 | int2 | kivi2 | kivi4 | pmkvq | mixkvq
                           int8/4/2: static groups of 128, every token quantized after its own step
                           (sink 0, window 0 unless --sink/--window); kivi2/4: keys per channel, values
                           per token, 128-token bf16 residual; pmkvq: progressive 16->8->4->2 (sink 1,
                           window 128) under per-layer byte budgets; mixkvq: query-aware
                           per-channel key precision (bf16/4/2) + 2-bit per-token values
  --kv-budget BYTES      pmkvq: total KV budget in bytes (all layers, every stored byte)
  --kv-bits B            pmkvq: uniform final bits 16|8|4|2 (default 4 when no budget/plan)
  --plan FILE            pmkvq: per-layer plan file (pmkvq-plan JSON)
  --max-len N            pmkvq: tokens the budgets must hold (default: prompt + new tokens)
  --sink N               int*/pmkvq: 16-bit sink tokens
  --window N             int*/pmkvq: 16-bit window tokens (0 = quantize at once)
  --tau16 T, --tau4 T    mixkvq: salience thresholds for bf16 and 4-bit key channels (defaults:
                           2.5 average key bits on tiny-lm, docs/mixkvq.md)
`;

/**
 * Flags relevant to the cache.
 *
 * @example
 * ```ts
 * import type { KvFlagValues } from "./kv_flags.ts";
 * const flags: KvFlagValues = { kv: "pmkvq", "kv-bits": "2", "max-len": "4096" };
 * ```
 */
export interface KvFlagValues {
  kv?: string;
  "kv-budget"?: string;
  "kv-bits"?: string;
  plan?: string;
  "max-len"?: string;
  sink?: string;
  window?: string;
  tau16?: string;
  tau4?: string;
}

const METHODS = ["exact", "bf16", "int8", "int4", "int2", "kivi2", "kivi4", "pmkvq", "mixkvq"];

/** MixKVQ thresholds calibrated on tiny-lm for about 2.5 average key bits (docs/mixkvq.md). */
export const MIXKVQ_CLI_DEFAULTS = { tau16: 6, tau4: 1.15 } as const;

function floatFlag(v: string | undefined, name: string, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (v.trim() === "" || Number.isNaN(n) || n < 0) {
    throw new InputError(`--${name} ${JSON.stringify(v)} must be a number >= 0`);
  }
  return n;
}

function intFlag(values: KvFlagValues, name: keyof KvFlagValues, min: number): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isSafeInteger(n) || n < min) {
    throw new InputError(`--${name} ${JSON.stringify(raw)} must be an integer >= ${min}`);
  }
  return n;
}

function rejectFlags(values: KvFlagValues, kv: string, names: (keyof KvFlagValues)[]): void {
  for (const name of names) {
    if (values[name] !== undefined) {
      throw new InputError(`--${name} ${JSON.stringify(values[name])} does not apply to --kv ${kv}`);
    }
  }
}

/**
 * Builds the cache spec for a run of `plannedLen` tokens (prompt + new). `parts` only refines the message
 * of a plan that is too short. InputError names a bad flag and value; BudgetError an infeasible budget or a
 * plan too short for the run; ArtifactError a bad plan file.
 *
 * @example
 * ```ts
 * import { cacheSpecFromFlags } from "./kv_flags.ts";
 * // await cacheSpecFromFlags({ kv: "int4" }, model, 256) // { method: "static", bits: 4, sink: 0, window: 0 }
 * ```
 */
export async function cacheSpecFromFlags(
  values: KvFlagValues,
  model: LoadedModel,
  plannedLen: number,
  parts?: { prompt: number; newTokens: number },
): Promise<CacheSpec> {
  const kv = values.kv ?? "exact";
  if (!METHODS.includes(kv)) {
    throw new InputError(`--kv ${JSON.stringify(kv)} is not supported: use one of ${METHODS.join(", ")}`);
  }
  const pmOnly: (keyof KvFlagValues)[] = ["kv-budget", "kv-bits", "plan", "max-len"];
  if (kv === "mixkvq") {
    rejectFlags(values, kv, [...pmOnly, "sink", "window"]);
    const tau16 = floatFlag(values.tau16, "tau16", MIXKVQ_CLI_DEFAULTS.tau16);
    const tau4 = floatFlag(values.tau4, "tau4", MIXKVQ_CLI_DEFAULTS.tau4);
    if (tau16 < tau4) throw new InputError(`--tau16 ${tau16} must be >= --tau4 ${tau4}`);
    return { method: "mixkvq", tau16, tau4, numHeads: model.config.numHeads };
  }
  rejectFlags(values, kv, ["tau16", "tau4"]);
  if (kv === "exact" || kv === "bf16" || kv === "kivi2" || kv === "kivi4") {
    rejectFlags(values, kv, [...pmOnly, "sink", "window"]);
    if (kv === "exact") return { method: "exact", dtype: "f32" };
    if (kv === "bf16") return { method: "exact", dtype: "bf16" };
    return { method: "kivi", bits: kv === "kivi2" ? 2 : 4, group: 128, residual: 128 };
  }
  const sink = intFlag(values, "sink", 0);
  const window = intFlag(values, "window", 0);
  if (kv !== "pmkvq") {
    rejectFlags(values, kv, pmOnly);
    return { method: "static", bits: Number(kv.slice(3)) as 8 | 4 | 2, sink: sink ?? 0, window: window ?? 0 };
  }
  const given = (["kv-budget", "kv-bits", "plan"] as const).filter((n) => values[n] !== undefined);
  if (given.length > 1) {
    throw new InputError(
      `give only one of --kv-budget, --kv-bits, --plan (got ${given.map((n) => `--${n}`).join(", ")})`,
    );
  }
  const maxLenFlag = intFlag(values, "max-len", 1);
  const shape = kvShapeOf(model.config);
  let plan: KvPlan;
  if (values.plan !== undefined) {
    plan = await readPlan(values.plan, model.fingerprint);
    if (plan.finalBits.length !== shape.numLayers) {
      throw new ArtifactError(
        `plan ${values.plan} has ${plan.finalBits.length} layers, the model has ${shape.numLayers}`,
      );
    }
    const clash = (name: string, flag: number | undefined, own: number) => {
      if (flag !== undefined && flag !== own) {
        throw new InputError(
          `--${name} ${flag} contradicts the plan ${values.plan}, which was made with ${name} ${own}`,
        );
      }
    };
    clash("sink", sink, plan.sink);
    clash("window", window, plan.window);
    clash("max-len", maxLenFlag, plan.maxLen);
  } else {
    const maxLen = maxLenFlag ?? plannedLen;
    const opts = { sink: sink ?? 1, window: window ?? 128 };
    const budget = values["kv-budget"];
    if (budget !== undefined) {
      const total = Number(budget);
      if (budget.trim() === "" || !Number.isSafeInteger(total) || total <= 0) {
        throw new InputError(
          `--kv-budget ${JSON.stringify(budget)} must be a positive integer number of bytes`,
        );
      }
      plan = planFromTotalBudget(shape, model.fingerprint, maxLen, total, opts);
    } else {
      const raw = values["kv-bits"];
      const bits = raw === undefined ? 4 : Number(raw);
      if (bits !== 16 && bits !== 8 && bits !== 4 && bits !== 2) {
        throw new InputError(`--kv-bits ${JSON.stringify(raw)} must be 16, 8, 4 or 2`);
      }
      plan = uniformPlan(shape, model.fingerprint, maxLen, bits, opts);
    }
  }
  checkPlanFits(plan, plannedLen, parts);
  return planToCacheSpec(plan);
}
