/**
 * PM-KVQ's block-wise allocation: from a sensitivity artifact and a total byte budget to a plan (per-layer
 * final bit-widths and byte budgets), solved exactly with {@link solveAllocation}.
 *
 * The integer program (paper Eqs. 6–8, with this project's full byte accounting):
 *   minimize Σ_l s_total[b_l][l]   subject to   Σ_l layerBytesAt(b_l, maxLen) ≤ budget,
 * where layerBytesAt counts every byte the PM-KVQ cache holds for the layer at `maxLen` tokens (codes, scales,
 * zeros, the 16-bit sink and window), and s_total = s_K + s_V of layer l itself (the paper's pairing).
 *
 * @example
 * ```ts
 * const art = await readSensitivity("out/sensitivity.json", model.fingerprint);
 * const plan = allocatePlan(kvShapeOf(model.config), model.fingerprint, art, 4096, 3_000_000);
 * plan.finalBits; // e.g. [2, 2, 4, 2, 4, 4]
 * ```
 * @module
 */
import type { KVShape } from "../kv/cache.ts";
import type { SensitivityArtifact } from "../profile/artifact.ts";
import { layerBytesAt } from "../kv/accounting.ts";
import { type KvPlan, PLAN_DEFAULT_SINK, PLAN_DEFAULT_WINDOW, planFromFinalBits } from "../kv/plan.ts";
import { snapCosts, solveAllocation } from "./bnb.ts";
import { ArtifactError, InputError } from "../errors.ts";

/** Options of {@link allocatePlan}. */
export interface AllocateOptions {
  /** Candidate final bit-widths (default [2, 4, 8]; each must be in the artifact). */
  choices?: number[];
  /** 16-bit sink tokens of the planned cache (default {@link PLAN_DEFAULT_SINK}). */
  sink?: number;
  /** 16-bit window capacity in tokens of the planned cache (default {@link PLAN_DEFAULT_WINDOW}). */
  window?: number;
}

/** The solved allocation, for reports. */
export interface Allocation {
  plan: KvPlan;
  /** Σ of the chosen sensitivities. */
  cost: number;
  /** Σ of the chosen layers' bytes at maxLen (≤ budget). */
  bytes: number;
  nodes: number;
}

/** Solves the allocation and returns the plan plus its objective. */
export function allocate(
  shape: KVShape,
  fingerprint: string,
  art: SensitivityArtifact,
  maxLen: number,
  budget: number,
  options: AllocateOptions = {},
): Allocation {
  if (art.modelFingerprint !== fingerprint) {
    throw new ArtifactError(
      `sensitivity artifact was made for model ${art.modelFingerprint}, not this model ${fingerprint}`,
    );
  }
  if (art.model.numLayers !== shape.numLayers) {
    throw new ArtifactError(
      `sensitivity artifact has ${art.model.numLayers} layers, the model ${shape.numLayers}`,
    );
  }
  const choices = [...(options.choices ?? [2, 4, 8])].sort((a, b) => a - b);
  for (const b of choices) {
    if (!art.total[String(b)]) {
      throw new InputError(
        `bit-width ${b} was not profiled (the artifact has ${Object.keys(art.total).join(", ")})`,
      );
    }
  }
  const sink = options.sink ?? PLAN_DEFAULT_SINK, window = options.window ?? PLAN_DEFAULT_WINDOW;
  const costs: number[][] = [], weights: number[][] = [], labels: number[][] = [];
  for (let l = 0; l < shape.numLayers; l++) {
    costs.push(choices.map((b) => art.total[String(b)][l]));
    weights.push(choices.map((b) => layerBytesAt(shape, { bits: b, sink, window }, maxLen)));
    labels.push(choices);
  }
  // Snap sensitivities to a power-of-two grid (each moves by < 2^-44 of the largest total) so that sums are exact
  // and equal-cost plans are real ties: the search stays fast and its tie-breaking deterministic.
  const r = solveAllocation({ costs: snapCosts(costs), weights, budget, labels });
  const finalBits = r.choice.map((j) => choices[j]);
  return {
    plan: planFromFinalBits(shape, fingerprint, maxLen, finalBits, { sink, window }),
    cost: r.cost,
    bytes: r.weight,
    nodes: r.nodes,
  };
}

/**
 * {@link allocate}, returning only the plan: the per-layer final bit-widths (from `options.choices`) that
 * minimize the summed sensitivity while every layer's bytes at `maxLen` tokens fit `budget` bytes in total.
 * Throws ArtifactError for another model's artifact, InputError for an unprofiled width, BudgetError when
 * even the narrowest widths do not fit.
 *
 * @example
 * ```ts
 * import { allocatePlan } from "./allocate.ts";
 * import { readSensitivity } from "../profile/artifact.ts";
 * import { writePlan } from "../kv/plan.ts";
 * const shape = { numLayers: 6, numKvHeads: 2, headDim: 128 };
 * const fingerprint = "ab12…"; // LoadedModel.fingerprint
 * const art = await readSensitivity("out/sensitivity.json", fingerprint);
 * const plan = allocatePlan(shape, fingerprint, art, 4096, 3_000_000, { choices: [2, 4, 8] });
 * await writePlan("out/plan.json", plan); // plan.source === "allocator"
 * ```
 */
export function allocatePlan(
  shape: KVShape,
  fingerprint: string,
  art: SensitivityArtifact,
  maxLen: number,
  budget: number,
  options: AllocateOptions = {},
): KvPlan {
  return allocate(shape, fingerprint, art, maxLen, budget, options).plan;
}
