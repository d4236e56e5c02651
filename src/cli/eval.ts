/**
 * `deno task eval`: every KV-cache method at equal total KV bytes on tiny-lm (or any model), with recitation,
 * teacher-forced KL/top-1/perplexity, bytes and speed; writes results.json, table.md and SVG plots.
 *
 * deno task eval --config small              # CI-sized, a few minutes on one core
 * deno task eval --config full --jobs 16     # the table in docs/evaluation.md (parallel worker processes)
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { loadModel } from "../model/load.ts";
import { loadTokenizer } from "../model/tokenizer.ts";
import { loadCorpusSegments, tokenWindows } from "../../calib/corpus.ts";
import { DEFAULT_MODEL_DIR } from "./run.ts";
import { CONFIGS, type EvalConfig } from "../eval/config.ts";
import { ALL_METHODS, isBudgeted } from "../eval/methods.ts";
import {
  type EvalArtifacts,
  type EvalBackend,
  type EvalData,
  type EvalJob,
  type JobResult,
  loadContext,
  runJob,
} from "../eval/job.ts";
import { bytesTraceSvg, layerBitsSvg, markdownTable, qualityVsBytesSvg, rowsOf } from "../eval/report.ts";
import { InputError, PmkvqError } from "../errors.ts";

const HELP = `pmkvq eval: compare KV caches at equal total KV bytes

Usage: deno task eval [options]
  --config NAME        small (default; CI-sized) | full
  --model DIR          model directory (default: the embedded tiny-lm)
  --out DIR            output directory (default out/eval/<config>)
  --backend NAME       cpu (default) | webgpu: methods with a WebGPU cache (exact-f32, int8/4/2, kivi*, pmkvq*) run
                       there, the others on the CPU; each job's "backend" in results.json says where
  --jobs N             parallel worker processes (default 1: in-process)
  --methods LIST       comma-separated subset of: ${ALL_METHODS.join(", ")}
  --levels LIST        budget levels (2, 3, 4, 8, 16) for the budgeted methods
  --new-tokens N       override the recitation length
  --kl-tokens N        override the teacher-forced length
  --artifact-samples N, --artifact-length N
                       override the windows used to profile and calibrate
  --example-passages N recitation passages taken from recitation-examples.json (0-2)
  --extra-passages N   extra seeded passages drawn from the training corpus
  --report FILE        only redraw table.md and the SVG plots from a finished results.json (into --out or its folder)
  --resume FILE        reuse finished jobs from a results/partial-results JSON of the same config
  --sensitivity FILE   use this sensitivity artifact (default: profile with the config's settings)
  --calibration FILE   calibration with s = 4 (default: calibrate)
  --calibration-nopi FILE   calibration with s = 1 (default: calibrate)
  --help
`;

const log = (s: string) => Deno.stderr.writeSync(new TextEncoder().encode(s + "\n"));
const SELF = fileURLToPath(import.meta.url);
const CLI_DIR = fileURLToPath(new URL(".", import.meta.url));

async function sh(args: string[]): Promise<void> {
  const p = new Deno.Command(Deno.execPath(), { args, stdout: "inherit", stderr: "inherit" }).spawn();
  const st = await p.status;
  if (!st.success) throw new PmkvqError("EVAL", `subprocess failed (${st.code}): deno ${args.join(" ")}`);
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

/** Builds the artifacts the config needs (in parallel when jobs > 1). */
async function prepareArtifacts(
  cfg: EvalConfig,
  model: string,
  out: string,
  given: Partial<EvalArtifacts>,
  jobs: number,
): Promise<EvalArtifacts> {
  const a: EvalArtifacts = {
    sensitivity: given.sensitivity ?? `${out}/sensitivity.json`,
    calibration: given.calibration ?? `${out}/calibration-s${cfg.calib.stretch}.json`,
    calibrationNoPi: given.calibrationNoPi ?? `${out}/calibration-s1.json`,
  };
  const tasks: string[][] = [];
  if (!(await exists(a.sensitivity))) {
    tasks.push([
      "run",
      "-A",
      `${CLI_DIR}profile.ts`,
      "--model",
      model,
      "--samples",
      String(cfg.profile.samples),
      "--length",
      String(cfg.profile.length),
      "--stretch",
      String(cfg.profile.stretch),
      "--bits",
      "2,4,8,16",
      "--out",
      a.sensitivity,
    ]);
  }
  for (const [file, s] of [[a.calibration, cfg.calib.stretch], [a.calibrationNoPi, 1]] as const) {
    if (!(await exists(file))) {
      tasks.push([
        "run",
        "-A",
        `${CLI_DIR}calibrate.ts`,
        "--model",
        model,
        "--samples",
        String(cfg.calib.samples),
        "--length",
        String(cfg.calib.length),
        "--stretch",
        String(s),
        "--out",
        file,
      ]);
    }
  }
  if (jobs > 1) await Promise.all(tasks.map(sh));
  else for (const t of tasks) await sh(t);
  return a;
}

/** Token data of the run: recitation passages and held-out text. */
async function prepareData(cfg: EvalConfig, modelDir: string, out: string): Promise<EvalData> {
  const model = await loadModel(modelDir);
  if (!model.tokenizerPath) throw new InputError(`${modelDir} has no tokenizer.json`);
  const tok = await loadTokenizer(model.tokenizerPath);
  const passages: EvalData["passages"] = [];
  const exFile = `${modelDir}/recitation-examples.json`;
  if (cfg.examplePassages > 0) {
    const ex = JSON.parse(await Deno.readTextFile(exFile)) as {
      prompt_ids: number[];
      truth_ids: number[];
      char_offset: string;
    }[];
    for (const e of ex.slice(0, cfg.examplePassages)) {
      passages.push({
        source: `recitation-examples.json offset ${e.char_offset}`,
        prompt: e.prompt_ids.slice(-cfg.promptTokens),
        truth: e.truth_ids.slice(0, cfg.newTokens),
      });
    }
  }
  if (cfg.extraPassages > 0) {
    const segs = await loadCorpusSegments();
    const wins = tokenWindows(segs, tok, {
      count: cfg.extraPassages,
      length: cfg.promptTokens + cfg.newTokens,
      seed: cfg.seed,
    });
    wins.forEach((w, i) =>
      passages.push({
        source: `training-text sample, seed ${cfg.seed}, window ${i}`,
        prompt: w.slice(0, cfg.promptTokens),
        truth: w.slice(cfg.promptTokens),
      })
    );
  }
  const held = tok.encode(await Deno.readTextFile(`${modelDir}/heldout.txt`));
  if (held.length < cfg.klTokens) {
    throw new InputError(`heldout.txt has ${held.length} tokens, ${cfg.klTokens} needed`);
  }
  return { passages, klIds: held.slice(0, cfg.klTokens), exactLogProbsFile: `${out}/exact-logprobs.f32` };
}

function jobsOf(cfg: EvalConfig, data: EvalData): EvalJob[] {
  const jobs: EvalJob[] = [{ method: "exact-f32", level: null, task: { kind: "kl-reference" } }];
  for (const m of cfg.methods) {
    for (const level of isBudgeted(m) ? cfg.levels : [null]) {
      data.passages.forEach((_, p) => jobs.push({ method: m, level, task: { kind: "recite", passage: p } }));
      if (m !== "exact-f32") jobs.push({ method: m, level, task: { kind: "kl" } });
    }
  }
  return jobs;
}

async function runAll(
  jobs: EvalJob[],
  n: number,
  modelDir: string,
  artifacts: EvalArtifacts,
  data: EvalData,
  out: string,
  backend: EvalBackend,
): Promise<JobResult[]> {
  const results: JobResult[] = [];
  const t0 = performance.now();
  const report = (r: JobResult) => {
    results.push(r);
    // Keep partial results on disk so an interrupted run still leaves its finished jobs.
    Deno.writeTextFileSync(`${out}/partial-results.json`, JSON.stringify(results));
    const what = r.recitation
      ? `prefix ${r.recitation.prefixMatch}/${r.recitation.newTokens}`
      : r.teacherForced
      ? `KL ${r.teacherForced.kl.toExponential(2)}`
      : "";
    log(
      `[${results.length}/${jobs.length}] ${r.method}@${r.level ?? "-"} ${r.task.kind}${
        r.task.kind === "recite" ? r.task.passage : ""
      }: ${what} (${r.seconds.toFixed(0)} s; ${((performance.now() - t0) / 1000).toFixed(0)} s elapsed)`,
    );
  };
  if (n <= 1) {
    const ctx = await loadContext(modelDir, artifacts);
    for (const j of jobs) report(await runJob(j, ctx, data, backend));
    return results;
  }
  const dataFile = `${out}/data.json`;
  await Deno.writeTextFile(dataFile, JSON.stringify(data));
  const queue = [...jobs];
  let referenceDone = false;
  let idx = 0;
  const worker = async () => {
    while (true) {
      const i = queue.findIndex((j) => j.task.kind !== "kl" || referenceDone);
      if (i < 0) {
        if (queue.length === 0) return;
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      const [job] = queue.splice(i, 1);
      const file = `${out}/job-${idx++}.json`;
      await sh([
        "run",
        "-A",
        SELF,
        "--worker",
        JSON.stringify({ job, modelDir, artifacts, dataFile, out: file, backend }),
      ]);
      const r = JSON.parse(await Deno.readTextFile(file)) as JobResult;
      if (job.task.kind === "kl-reference") referenceDone = true;
      report(r);
    }
  };
  await Promise.all(Array.from({ length: n }, worker));
  return results;
}

/** Writes table.md and the four SVG plots of `results` into `out`; returns the table. */
async function writeReport(out: string, cfg: EvalConfig, results: JobResult[]): Promise<string> {
  const rows = rowsOf(results);
  const table = markdownTable(rows);
  await Deno.writeTextFile(`${out}/table.md`, table);
  await Deno.writeTextFile(
    `${out}/recitation-vs-bytes.svg`,
    qualityVsBytesSvg(rows, "meanPrefix", `Recitation (${cfg.newTokens} greedy tokens) vs KV bytes`),
  );
  await Deno.writeTextFile(
    `${out}/kl-vs-bytes.svg`,
    qualityVsBytesSvg(
      rows,
      "kl",
      `Teacher-forced KL to the exact cache (${cfg.klTokens} tokens) vs KV bytes`,
    ),
  );
  await Deno.writeTextFile(`${out}/layer-bits.svg`, layerBitsSvg(rows));
  await Deno.writeTextFile(`${out}/bytes-trace.svg`, bytesTraceSvg(results, cfg.levels[0]));
  return table;
}

/** Entry point; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: "string" },
      model: { type: "string" },
      out: { type: "string" },
      jobs: { type: "string" },
      methods: { type: "string" },
      levels: { type: "string" },
      "new-tokens": { type: "string" },
      "kl-tokens": { type: "string" },
      "artifact-samples": { type: "string" },
      "artifact-length": { type: "string" },
      resume: { type: "string" },
      "example-passages": { type: "string" },
      "extra-passages": { type: "string" },
      sensitivity: { type: "string" },
      calibration: { type: "string" },
      "calibration-nopi": { type: "string" },
      worker: { type: "string" },
      backend: { type: "string" },
      report: { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.report) {
    // redraw the table and plots of a finished run (e.g. after a report change) without running anything
    const prev = JSON.parse(await Deno.readTextFile(values.report)) as {
      config?: EvalConfig;
      results?: JobResult[];
    };
    if (!prev.config || !Array.isArray(prev.results)) {
      throw new InputError(`--report ${values.report}: not an eval results.json (no config/results)`);
    }
    const out = values.out ?? values.report.replace(/\/[^/]*$/, "");
    console.log(await writeReport(out, prev.config, prev.results));
    log(`rewrote ${out}/table.md and 4 SVG plots from ${values.report}`);
    return 0;
  }
  if (values.worker) {
    const w = JSON.parse(values.worker) as {
      job: EvalJob;
      modelDir: string;
      artifacts: EvalArtifacts;
      dataFile: string;
      out: string;
      backend: EvalBackend;
    };
    const ctx = await loadContext(w.modelDir, w.artifacts);
    const data = JSON.parse(await Deno.readTextFile(w.dataFile)) as EvalData;
    await Deno.writeTextFile(w.out, JSON.stringify(await runJob(w.job, ctx, data, w.backend)));
    return 0;
  }
  const base = CONFIGS[values.config ?? "small"];
  if (!base) {
    throw new InputError(
      `--config ${JSON.stringify(values.config)}: expected ${Object.keys(CONFIGS).join(" or ")}`,
    );
  }
  const cfg: EvalConfig = { ...base };
  if (values.methods) {
    cfg.methods = values.methods.split(",");
    for (const m of cfg.methods) {
      if (!(ALL_METHODS as readonly string[]).includes(m)) {
        throw new InputError(`--methods: unknown method ${JSON.stringify(m)}`);
      }
    }
  }
  if (values.levels) cfg.levels = values.levels.split(",").map(Number);
  const posInt = (v: string | undefined, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1) {
      throw new InputError(`--${name} ${JSON.stringify(v)} must be a positive integer`);
    }
    return n;
  };
  cfg.newTokens = posInt(values["new-tokens"], "new-tokens") ?? cfg.newTokens;
  cfg.klTokens = posInt(values["kl-tokens"], "kl-tokens") ?? cfg.klTokens;
  const count = (v: string | undefined, name: string, max: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0 || n > max) {
      throw new InputError(`--${name} ${JSON.stringify(v)} must be an integer in [0, ${max}]`);
    }
    return n;
  };
  cfg.examplePassages = count(values["example-passages"], "example-passages", 2) ?? cfg.examplePassages;
  cfg.extraPassages = count(values["extra-passages"], "extra-passages", 64) ?? cfg.extraPassages;
  if (cfg.examplePassages + cfg.extraPassages < 1) {
    throw new InputError("the evaluation needs at least one recitation passage");
  }
  const as = posInt(values["artifact-samples"], "artifact-samples"),
    al = posInt(values["artifact-length"], "artifact-length");
  cfg.profile = { ...cfg.profile, samples: as ?? cfg.profile.samples, length: al ?? cfg.profile.length };
  cfg.calib = { ...cfg.calib, samples: as ?? cfg.calib.samples, length: al ?? cfg.calib.length };
  for (const l of cfg.levels) {
    if (![2, 3, 4, 8, 16].includes(l)) throw new InputError(`--levels: ${l} is not one of 2, 3, 4, 8, 16`);
  }
  const backend = (values.backend ?? "cpu") as EvalBackend;
  if (backend !== "cpu" && backend !== "webgpu") {
    throw new InputError(`--backend ${JSON.stringify(values.backend)}: expected cpu or webgpu`);
  }
  const jobsN = Number(values.jobs ?? "1");
  if (!Number.isInteger(jobsN) || jobsN < 1) {
    throw new InputError(`--jobs ${values.jobs} must be a positive integer`);
  }
  const modelDir = values.model ?? DEFAULT_MODEL_DIR;
  const out = values.out ?? `out/eval/${cfg.name}`;
  await Deno.mkdir(out, { recursive: true });
  const t0 = performance.now();
  log(
    `eval ${cfg.name}: methods ${cfg.methods.join(", ")}; levels ${
      cfg.levels.join(", ")
    }; ${jobsN} job(s) at a time; backend ${backend}`,
  );
  const artifacts = await prepareArtifacts(cfg, modelDir, out, {
    sensitivity: values.sensitivity,
    calibration: values.calibration,
    calibrationNoPi: values["calibration-nopi"],
  }, jobsN);
  const data = await prepareData(cfg, modelDir, out);
  let jobs = jobsOf(cfg, data);
  const resumed: JobResult[] = [];
  if (values.resume) {
    const prev = JSON.parse(await Deno.readTextFile(values.resume));
    const list = (Array.isArray(prev) ? prev : prev.results) as JobResult[];
    const id = (j: { method: string; level: number | null; task: EvalJob["task"] }) =>
      JSON.stringify([j.method, j.level, j.task]);
    const wanted = new Set(jobs.filter((j) => j.task.kind !== "kl-reference").map(id));
    for (const r of list) if (wanted.has(id(r))) resumed.push(r);
    const done = new Set(resumed.map(id));
    jobs = jobs.filter((j) => !done.has(id(j)));
    log(`resumed ${resumed.length} finished jobs from ${values.resume}; ${jobs.length} to run`);
  }
  const results = [...resumed, ...await runAll(jobs, jobsN, modelDir, artifacts, data, out, backend)];
  const seconds = (performance.now() - t0) / 1000;
  await Deno.writeTextFile(
    `${out}/results.json`,
    JSON.stringify(
      {
        config: cfg,
        artifacts,
        passages: data.passages.map((p) => p.source),
        seconds,
        rows: rowsOf(results),
        results,
      },
      null,
      1,
    ),
  );
  console.log(await writeReport(out, cfg, results));
  log(`wrote ${out}/results.json, table.md and 4 SVG plots in ${seconds.toFixed(0)} s`);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    if (e instanceof PmkvqError) {
      console.error(`error: ${e.message}`);
      Deno.exit(2);
    }
    throw e;
  }
}
