/**
 * `deno task calibrate`: calibrate the key smoothing factors λ of a model (PM-KVQ §3.3: max|K| with positions
 * stretched by s, then a per-layer α search) and write the artifact. `--help` lists the flags; see
 * docs/calibration.md.
 *
 * @example
 * ```sh
 * deno task calibrate --samples 16 --length 512 --stretch 4 --out out/calibration.json
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import { loadModel } from "../model/load.ts";
import { loadTokenizer } from "../model/tokenizer.ts";
import { DEFAULT_MODEL_DIR } from "./run.ts";
import { DEFAULT_CORPUS, loadCorpusSegments, tokenWindows } from "../../calib/corpus.ts";
import { calibrateModel } from "../../calib/calibrate.ts";
import { writeCalibration } from "../../calib/artifact.ts";
import { checkBits } from "../quant/format.ts";
import { InputError, PmkvqError } from "../errors.ts";

const HELP = `pmkvq calibrate: key smoothing factors with positional interpolation (PM-KVQ §3.3)

Usage: deno task calibrate [options]

  --model DIR        Hugging Face model directory (default: the embedded tiny-lm)
  --samples N        calibration windows (default 16)
  --length N         tokens per window (default 512)
  --stretch S        position stretch: token i runs at position i·S (default 4)
  --seed N           window-selection seed (default 0)
  --k-bits B         key bits of the α search's student: 16, 8, 4 or 2 (default 4)
  --v-bits B         value bits of the α search's student (default 4)
  --corpus FILE      calibration text, .txt or .gz (default: data/tiny-lm-train-sample.txt.gz)
  --out FILE         artifact path (default out/calibration.json)
  --help             this text

Progress goes to stderr. The defaults take about 12 minutes on a 2-core CPU with tiny-lm (≈ 45 s per window).
`;

function int(v: string | undefined, name: string, def: number, min: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (v.trim() === "" || !Number.isInteger(n) || n < min) {
    throw new InputError(`--${name} ${JSON.stringify(v)} must be an integer >= ${min}`);
  }
  return n;
}

/**
 * Entry point; returns the process exit code.
 *
 * @example
 * ```ts
 * await main(["--samples", "2", "--length", "64", "--out", "out/cal.json"]);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string" },
      samples: { type: "string" },
      length: { type: "string" },
      stretch: { type: "string" },
      seed: { type: "string" },
      "k-bits": { type: "string" },
      "v-bits": { type: "string" },
      corpus: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const samples = int(values.samples, "samples", 16, 1);
  const length = int(values.length, "length", 512, 2);
  const stretch = int(values.stretch, "stretch", 4, 1);
  const seed = int(values.seed, "seed", 0, 0);
  const kBits = checkBits(int(values["k-bits"], "k-bits", 4, 1));
  const vBits = checkBits(int(values["v-bits"], "v-bits", 4, 1));
  const corpus = values.corpus ?? DEFAULT_CORPUS;
  const out = values.out ?? "out/calibration.json";
  const dir = values.model ?? DEFAULT_MODEL_DIR;

  const enc = new TextEncoder();
  const log = (s: string) => Deno.stderr.writeSync(enc.encode(s));
  const t0 = performance.now();
  const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
  log(`loading ${dir} ...\n`);
  const model = await loadModel(dir);
  if (!model.tokenizerPath) {
    throw new InputError(`${dir} has no tokenizer.json; calibration needs one to cut text windows`);
  }
  const tok = await loadTokenizer(model.tokenizerPath);
  log(`tokenizing ${corpus} ...\n`);
  const windows = tokenWindows(await loadCorpusSegments(corpus), tok, { count: samples, length, seed });
  log(
    `${samples} windows of ${length} tokens at positions 0, ${stretch}, ${2 * stretch}, … (effective length ${
      length * stretch
    }); ` +
      `student K${kBits}/V${vBits}\n`,
  );

  let last = 0;
  const { artifact } = calibrateModel(model, windows, {
    stretch,
    seed,
    kBits,
    vBits,
    onProgress: (p) => {
      const now = performance.now();
      const done = p.window === p.windows && p.layer === p.layers;
      if (now - last < 250 && !done) return;
      last = now;
      const what = p.pass === 1 ? "pass 1/2 (max |K|)" : "pass 2/2 (α search)";
      log(
        `\r${what}: window ${p.window}/${p.windows}, layer ${p.layer}/${p.layers}, elapsed ${elapsed()}   `,
      );
      if (done) log("\n");
    },
  });
  await writeCalibration(out, artifact);
  log(`layer  alpha  loss        loss (no smoothing)\n`);
  artifact.layers.forEach((L, l) => {
    log(
      `${String(l).padStart(5)}  ${L.alpha.toFixed(2)}   ${L.loss.toExponential(3)}   ${
        L.lossNoSmoothing.toExponential(3)
      }\n`,
    );
  });
  log(`calibration written to ${out} (checksum ${artifact.checksum.slice(0, 16)}…, ${elapsed()})\n`);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    if (e instanceof PmkvqError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      console.error(`error: ${(e as Error).message}`);
      Deno.exit(2);
    }
    throw e;
  }
}
