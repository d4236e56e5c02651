/**
 * One evaluation job: a method at a budget level on one task (a recitation passage, or the teacher-forced
 * held-out sequence), run on the CPU backend, or on WebGPU for the methods the WebGPU engine has caches for
 * (exact f32, static int, KIVI, PM-KVQ and its ablations; the others fall back to the CPU and say so in
 * `backend`). Jobs are independent so they can run in parallel processes.
 *
 * @example
 * ```ts
 * const ctx = await loadContext(dir, artifacts);
 * const r = await runJob({ method: "pmkvq", level: 2, task: { kind: "recite", passage: 0 } }, ctx, data);
 * ```
 * @module
 */
import type { LoadedModel } from "../model/types.ts";
import { loadModel } from "../model/load.ts";
import { readSensitivity } from "../profile/artifact.ts";
import { readCalibration } from "../../calib/artifact.ts";
import { applyCalibration } from "../../calib/fold.ts";
import { createCpuEngine } from "../../cpu/engine.ts";
import type { Engine } from "../engine.ts";
import type { CacheSpec } from "../kv/cache.ts";
import { buildMethod, type MethodContext } from "./methods.ts";
import {
  compareLogProbs,
  type RecitationResult,
  recite,
  teacherForcedLogProbs,
  type TeacherForcedResult,
} from "./metrics.ts";

/** A task of a job. */
export type EvalTask = { kind: "recite"; passage: number } | { kind: "kl" } | { kind: "kl-reference" };

/** One job. */
export interface EvalJob {
  method: string;
  level: number | null;
  task: EvalTask;
}

/** Token data shared by every job of a run. */
export interface EvalData {
  passages: { source: string; prompt: number[]; truth: number[] }[];
  klIds: number[];
  /** Binary f32 file with the exact cache's teacher-forced log-probs, [klIds.length − 1, vocab]. */
  exactLogProbsFile: string;
}

/** Artifact paths. */
export interface EvalArtifacts {
  sensitivity: string;
  calibration: string;
  calibrationNoPi: string;
}

/** What one job produced. */
export interface JobResult {
  method: string;
  level: number | null;
  task: EvalTask;
  budgetBytes: number | null;
  plannedBits: number[] | null;
  recitation?: RecitationResult;
  teacherForced?: TeacherForcedResult & { peakBytes: number; layerBits: number[] };
  /** Where it ran: "cpu", or "webgpu: <adapter>" (absent in results made before backends were selectable). */
  backend?: string;
  seconds: number;
}

/** Backend of an evaluation run. */
export type EvalBackend = "cpu" | "webgpu";

/** Whether the WebGPU engine has a cache for `spec` (else a webgpu run uses the CPU for that method). */
export function webgpuRuns(spec: CacheSpec): boolean {
  return (spec.method === "exact" && (spec.dtype ?? "f32") === "f32") || spec.method === "static" ||
    spec.method === "pmkvq" || spec.method === "kivi" || spec.method === "mixkvq";
}

async function engineFor(
  model: LoadedModel,
  spec: CacheSpec,
  maxLen: number,
  backend: EvalBackend,
): Promise<{ engine: Engine; where: string }> {
  if (backend === "webgpu" && webgpuRuns(spec)) {
    const { createGpuEngine } = await import("../../gpu/engine.ts");
    const engine = await createGpuEngine(model, spec, { maxLen });
    return { engine, where: `webgpu: ${engine.device}` };
  }
  return { engine: createCpuEngine(model, spec), where: "cpu" };
}

/** Loads the model and the artifacts, folding both calibrations. */
export async function loadContext(modelDir: string, a: EvalArtifacts): Promise<MethodContext> {
  const model: LoadedModel = await loadModel(modelDir);
  const sensitivity = await readSensitivity(a.sensitivity, model.fingerprint);
  const cal = await readCalibration(a.calibration, model);
  const calNoPi = await readCalibration(a.calibrationNoPi, model);
  return {
    model,
    sensitivity,
    calibrated: applyCalibration(model, cal),
    calibratedNoPi: applyCalibration(model, calNoPi),
  };
}

/** Runs one job. */
export async function runJob(
  job: EvalJob,
  ctx: MethodContext,
  data: EvalData,
  backend: EvalBackend = "cpu",
): Promise<JobResult> {
  const t0 = performance.now();
  const vocab = ctx.model.config.vocabSize;
  const maxLen = job.task.kind === "recite"
    ? data.passages[job.task.passage].prompt.length + data.passages[job.task.passage].truth.length
    : data.klIds.length;
  const run = buildMethod(job.method, ctx, job.level, maxLen);
  const { engine, where } = await engineFor(run.model, run.spec, maxLen, backend);
  try {
    return await runOn(engine, where, job, run, data, vocab, t0);
  } finally {
    engine.dispose();
  }
}

async function runOn(
  engine: Engine,
  where: string,
  job: EvalJob,
  run: ReturnType<typeof buildMethod>,
  data: EvalData,
  vocab: number,
  t0: number,
): Promise<JobResult> {
  const base = {
    method: job.method,
    level: job.level,
    task: job.task,
    budgetBytes: run.budgetBytes,
    plannedBits: run.plan?.finalBits ?? null,
    backend: where,
  };
  if (job.task.kind === "recite") {
    const p = data.passages[job.task.passage];
    const recitation = await recite(engine, p.prompt, p.truth);
    return { ...base, recitation, seconds: (performance.now() - t0) / 1000 };
  }
  const lp = await teacherForcedLogProbs(engine, data.klIds, vocab);
  if (job.task.kind === "kl-reference") {
    await Deno.writeFile(data.exactLogProbsFile, new Uint8Array(lp.buffer, lp.byteOffset, lp.byteLength));
  }
  const bytes = await Deno.readFile(data.exactLogProbsFile);
  const exact = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const stats = engine.cacheStats();
  return {
    ...base,
    teacherForced: {
      ...compareLogProbs(exact, lp, data.klIds, vocab),
      peakBytes: stats.peakBytes,
      layerBits: stats.layers.map((l) => l.bits),
    },
    seconds: (performance.now() - t0) / 1000,
  };
}
