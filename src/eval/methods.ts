/**
 * The methods the evaluation compares, each turned into (model, cache spec) at a given total KV budget.
 *
 * Budgets are "bit levels": the total bytes a uniform PM-KVQ plan at that final width holds at the task's
 * length (sink 1 + window 128 at 16 bits, codes + scales + zeros: src/kv/accounting.ts). Level 3 is the
 * midpoint of levels 2 and 4 — where block-wise allocation has room to choose. Unbudgeted methods (exact,
 * static int, KIVI, MixKVQ) run once and are reported at the bytes they actually hold.
 *
 * | method | budgeted | what |
 * | --- | --- | --- |
 * | exact-f32 | no | f32 cache, the reference |
 * | exact-bf16 | no | 16-bit exact baseline |
 * | int8, int4, int2 | no | static uniform, every token quantized after its own step |
 * | kivi4, kivi2 | no | KIVI, 128-token residual |
 * | mixkvq | no | MixKVQ, thresholds for about 2.5 key bits |
 * | pmkvq | yes | progressive + block-wise (allocator) + calibrated (s = 4) |
 * | pmkvq-static | yes | ablation: the same plan, each layer at its final width from the start |
 * | pmkvq-uniform | yes | ablation: uniform final widths (no allocator) |
 * | pmkvq-nopi | yes | ablation: calibrated without positional interpolation (s = 1) |
 * | pmkvq-nocalib | yes | ablation: no key smoothing |
 *
 * @example
 * ```ts
 * const run = buildMethod("pmkvq", ctx, 3, 1792);
 * const engine = createCpuEngine(run.model, run.spec);
 * ```
 * @module
 */
import type { CacheSpec, KVShape } from "../kv/cache.ts";
import type { LoadedModel } from "../model/types.ts";
import type { SensitivityArtifact } from "../profile/artifact.ts";
import { layerBytesAt } from "../kv/accounting.ts";
import { type KvPlan, planFromTotalBudget, planToCacheSpec } from "../kv/plan.ts";
import { allocatePlan } from "../alloc/allocate.ts";
import { kvShapeOf } from "../kv/factory.ts";
import { MIXKVQ_CLI_DEFAULTS } from "../cli/kv_flags.ts";
import { InputError } from "../errors.ts";

/** Every method name, in table order. */
export const ALL_METHODS = [
  "exact-f32",
  "exact-bf16",
  "int8",
  "int4",
  "int2",
  "kivi4",
  "kivi2",
  "mixkvq",
  "pmkvq",
  "pmkvq-static",
  "pmkvq-uniform",
  "pmkvq-nopi",
  "pmkvq-nocalib",
] as const;

/** A method name. */
export type MethodName = typeof ALL_METHODS[number];

/** Whether a method takes a budget. */
export function isBudgeted(m: string): boolean {
  return m.startsWith("pmkvq");
}

/** Models and artifacts the methods draw on. */
export interface MethodContext {
  model: LoadedModel;
  /** Model with smoothing calibrated at s = 4 folded in. */
  calibrated: LoadedModel;
  /** Model with smoothing calibrated at s = 1 folded in. */
  calibratedNoPi: LoadedModel;
  sensitivity: SensitivityArtifact;
}

/** What a job runs. */
export interface MethodRun {
  model: LoadedModel;
  spec: CacheSpec;
  plan: KvPlan | null;
  budgetBytes: number | null;
}

/** Total bytes of a bit level at `maxLen` tokens (level 3 = midpoint of levels 2 and 4). */
export function budgetBytesFor(shape: KVShape, level: number, maxLen: number): number {
  const at = (b: number) => shape.numLayers * layerBytesAt(shape, { bits: b, sink: 1, window: 128 }, maxLen);
  if (level === 3) return Math.floor((at(2) + at(4)) / 2);
  if (level === 2 || level === 4 || level === 8 || level === 16) return at(level);
  throw new InputError(`budget level ${level} must be 2, 3, 4, 8 or 16`);
}

/** Builds the model and cache spec of `method` at `level` for sequences of `maxLen` tokens. */
export function buildMethod(
  method: string,
  ctx: MethodContext,
  level: number | null,
  maxLen: number,
): MethodRun {
  const plain = (spec: CacheSpec): MethodRun => ({ model: ctx.model, spec, plan: null, budgetBytes: null });
  switch (method) {
    case "exact-f32":
      return plain({ method: "exact", dtype: "f32" });
    case "exact-bf16":
      return plain({ method: "exact", dtype: "bf16" });
    case "int8":
    case "int4":
    case "int2":
      return plain({ method: "static", bits: Number(method.slice(3)) as 8 | 4 | 2, sink: 0, window: 0 });
    case "kivi4":
    case "kivi2":
      return plain({ method: "kivi", bits: method === "kivi4" ? 4 : 2, group: 128, residual: 128 });
    case "mixkvq":
      return plain({ method: "mixkvq", ...MIXKVQ_CLI_DEFAULTS, numHeads: ctx.model.config.numHeads });
  }
  if (level === null) throw new InputError(`method ${method} needs a budget level`);
  const shape = kvShapeOf(ctx.model.config);
  const budget = budgetBytesFor(shape, level, maxLen);
  const blockwise = (m: LoadedModel): KvPlan => // The sensitivity was profiled on the original model; its fingerprint is the original's.
  {
    const p = allocatePlan(shape, ctx.model.fingerprint, ctx.sensitivity, maxLen, budget);
    return { ...p, modelFingerprint: m.fingerprint };
  };
  let model: LoadedModel, plan: KvPlan, spec: CacheSpec;
  switch (method) {
    case "pmkvq":
      model = ctx.calibrated;
      plan = blockwise(model);
      spec = planToCacheSpec(plan);
      break;
    case "pmkvq-static":
      model = ctx.calibrated;
      plan = blockwise(model);
      spec = { ...planToCacheSpec(plan), initBits: "final" };
      break;
    case "pmkvq-uniform":
      model = ctx.calibrated;
      plan = planFromTotalBudget(shape, model.fingerprint, maxLen, budget);
      spec = planToCacheSpec(plan);
      break;
    case "pmkvq-nopi":
      model = ctx.calibratedNoPi;
      plan = blockwise(model);
      spec = planToCacheSpec(plan);
      break;
    case "pmkvq-nocalib":
      model = ctx.model;
      plan = blockwise(model);
      spec = planToCacheSpec(plan);
      break;
    default:
      throw new InputError(
        `unknown method ${JSON.stringify(method)}: expected one of ${ALL_METHODS.join(", ")}`,
      );
  }
  return { model, spec, plan, budgetBytes: budget };
}
