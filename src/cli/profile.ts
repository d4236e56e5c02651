/**
 * `deno task profile`: per-layer KV-cache quantization sensitivity of a model (PM-KVQ §3.1), written as a
 * checksummed JSON artifact for the allocator, printed as a table, and drawn as an SVG bar chart.
 * `--help` lists the flags. Exit code 2 on bad flags or unusable inputs.
 *
 * @example
 * ```sh
 * deno task profile --samples 16 --length 512 --stretch 4 --out out/sensitivity.json
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { basename, dirname, join } from "node:path";
import { loadModel } from "../model/load.ts";
import { loadTokenizer } from "../model/tokenizer.ts";
import { InputError, PmkvqError } from "../errors.ts";
import { DEFAULT_MODEL_DIR } from "./run.ts";
import {
  DEFAULT_PROFILE_SETTINGS,
  type ProfileProgress,
  profileSensitivity,
  resolveSettings,
} from "../profile/sensitivity.ts";
import { makeSensitivityArtifact, writeSensitivity } from "../profile/artifact.ts";
import { formatSensitivityTable, tablesOf } from "../profile/report.ts";
import { sensitivitySvg } from "../profile/svg.ts";

/** Where the artifact goes by default. */
export const DEFAULT_PROFILE_OUT = "out/sensitivity.json";

/** What `settings.corpus` records when --corpus is not given. */
const DEFAULT_CORPUS_LABEL = "data/tiny-lm-train-sample.txt.gz";

const d = DEFAULT_PROFILE_SETTINGS;
const HELP = `pmkvq profile: per-layer KV-cache quantization sensitivity (PM-KVQ, first-order Taylor)

For each layer l and bit-width b: s = mean |(Q_b(K_l) - K_l) * dL/dK_l| + the same for V, averaged over
calibration windows (L = next-token cross-entropy, positions stretched 0, s, 2s, ...).

Usage: deno task profile [options]

  --model DIR       Hugging Face model directory (default: the embedded tiny-lm)
  --samples N       calibration windows (default ${d.samples})
  --length N        tokens per window (default ${d.length})
  --stretch S       position stretch: positions 0, S, 2S, ... (default ${d.stretch})
  --seed N          seed of the window selection (default ${d.seed})
  --bits LIST       candidate bit-widths, comma-separated, from 2,4,8,16 (default ${d.bits.join(",")})
  --corpus FILE     calibration text, .txt or .gz (default ${DEFAULT_CORPUS_LABEL})
  --out FILE        artifact (default ${DEFAULT_PROFILE_OUT})
  --svg FILE        bar chart (default: --out with .svg in place of .json)
  --help            this text
`;

function int(v: string | undefined, name: string, def: number): number {
  if (v === undefined) return def;
  if (!/^\s*\d+\s*$/.test(v)) {
    throw new InputError(`--${name} ${JSON.stringify(v)} is not a non-negative integer`);
  }
  return Number(v);
}

function bitsList(v: string | undefined): number[] {
  if (v === undefined) return [...d.bits];
  const parts = v.split(",").map((s) => s.trim());
  if (parts.some((p) => !/^\d+$/.test(p))) {
    throw new InputError(`--bits ${JSON.stringify(v)} must be a comma-separated list of 2, 4, 8, 16`);
  }
  return parts.map(Number);
}

const clock = (
  s: number,
) => (s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${s.toFixed(0)}s`);

/**
 * Runs the profiler CLI with `args`; returns the exit code (0 ok, 2 bad flags or inputs). Errors other than
 * the library's typed ones propagate.
 *
 * @example
 * ```ts
 * import { main } from "./profile.ts";
 * const code = await main(["--help"]); // 0; a bad flag returns 2
 * // main(["--samples", "2", "--length", "64", "--out", "/tmp/s.json"]) profiles the embedded tiny-lm
 * ```
 */
export async function main(args: string[]): Promise<number> {
  try {
    return await run(args);
  } catch (e) {
    if (e instanceof PmkvqError || String((e as { code?: string }).code).startsWith("ERR_PARSE_ARGS")) {
      console.error(`error: ${(e as Error).message}`);
      return 2;
    }
    throw e;
  }
}

async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string" },
      samples: { type: "string" },
      length: { type: "string" },
      stretch: { type: "string" },
      seed: { type: "string" },
      bits: { type: "string" },
      corpus: { type: "string" },
      out: { type: "string" },
      svg: { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const settings = resolveSettings({
    samples: int(values.samples, "samples", d.samples),
    length: int(values.length, "length", d.length),
    stretch: int(values.stretch, "stretch", d.stretch),
    seed: int(values.seed, "seed", d.seed),
    bits: bitsList(values.bits),
    corpus: values.corpus ?? d.corpus,
  });
  const out = values.out ?? DEFAULT_PROFILE_OUT;
  const svgFile = values.svg ?? join(dirname(out), basename(out).replace(/\.json$/i, "") + ".svg");
  const dir = values.model ?? DEFAULT_MODEL_DIR;
  const enc = new TextEncoder();
  const log = (s: string) => Deno.stderr.writeSync(enc.encode(s));
  log(`loading ${dir} ...\n`);
  const model = await loadModel(dir);
  if (!model.tokenizerPath) {
    throw new InputError(`${dir} has no tokenizer.json: the profiler needs one to cut the corpus`);
  }
  const tok = await loadTokenizer(model.tokenizerPath);
  const c = model.config;
  log(
    `profiling ${c.architecture} (${c.numLayers} layers, ${c.numKvHeads} KV heads × ${c.headDim}): ` +
      `${settings.samples} windows × ${settings.length} tokens, positions × ${settings.stretch}, ` +
      `bits ${settings.bits.join(",")}\n`,
  );
  const tty = Deno.stderr.isTerminal();
  const onProgress = (p: ProfileProgress) => {
    const msg =
      `window ${p.window}/${p.windows}  loss ${p.loss.toFixed(3)}  elapsed ${clock(p.elapsedSeconds)}` +
      `  ETA ${clock(p.etaSeconds)}`;
    log(tty ? `\r${msg}   ${p.window === p.windows ? "\n" : ""}` : `${msg}\n`);
  };
  const t0 = performance.now();
  const result = await profileSensitivity(model, tok, settings, onProgress);
  const wall = (performance.now() - t0) / 1000;
  const art = await makeSensitivityArtifact(model, settings, result, values.corpus ?? DEFAULT_CORPUS_LABEL);
  await writeSensitivity(out, art);
  const tables = tablesOf(art);
  const name = basename(dir.replace(/[\\/]+$/, "")) || dir;
  const svg = sensitivitySvg(tables, {
    title: `KV quantization sensitivity per layer: ${name}`,
    subtitle:
      `${settings.samples} windows × ${settings.length} tokens, positions stretched × ${settings.stretch}, ` +
      `seed ${settings.seed}; mean loss ${result.loss.toFixed(3)} nats`,
  });
  await Deno.mkdir(dirname(svgFile), { recursive: true });
  await Deno.writeTextFile(svgFile, svg);
  console.log(formatSensitivityTable(tables));
  console.log(
    `mean loss ${result.loss.toFixed(4)} nats over ${result.windows} windows; profile took ${
      wall.toFixed(1)
    } s`,
  );
  log(`wrote ${out} and ${svgFile}\n`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
