/**
 * `deno task allocate`: sensitivity artifact + total KV budget → per-layer plan (final bit-widths and byte
 * budgets), solved exactly by branch and bound. `deno task run --kv pmkvq --plan FILE` uses the plan.
 *
 * deno task allocate --sensitivity out/sensitivity.json --budget 3000000 --max-len 4096 --out out/plan.json
 * @module
 */
import { parseArgs } from "node:util";
import { loadModel } from "../model/load.ts";
import { readSensitivity } from "../profile/artifact.ts";
import { allocate } from "../alloc/allocate.ts";
import { kvShapeOf } from "../kv/factory.ts";
import { layerBytesAt } from "../kv/accounting.ts";
import { writePlan } from "../kv/plan.ts";
import { DEFAULT_MODEL_DIR } from "./run.ts";
import { InputError, PmkvqError } from "../errors.ts";

const HELP = `pmkvq allocate: choose each layer's final KV bit-width under a total memory budget

Usage: deno task allocate --budget BYTES --max-len N [options]
  --budget BYTES       total KV-cache bytes for all layers (every stored byte: codes, scales, zeros,
                       the 16-bit sink and window)
  --max-len N          tokens the plan must hold (prompt + generated)
  --sensitivity FILE   sensitivity artifact from 'deno task profile' (default out/sensitivity.json)
  --model DIR          model directory (default: the embedded tiny-lm); the artifact must match it
  --choices LIST       candidate final bit-widths (default 2,4,8)
  --sink N, --window N 16-bit sink and window tokens (default 1, 128)
  --out FILE           plan file (default out/plan.json)
  --help
`;

function intArg(v: string | undefined, name: string, def?: number): number {
  if (v === undefined) {
    if (def === undefined) throw new InputError(`--${name} is required`);
    return def;
  }
  const n = Number(v);
  if (v.trim() === "" || !Number.isSafeInteger(n) || n < 0) {
    throw new InputError(`--${name} ${JSON.stringify(v)} must be a non-negative integer`);
  }
  return n;
}

/** Entry point; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      budget: { type: "string" },
      "max-len": { type: "string" },
      sensitivity: { type: "string" },
      model: { type: "string" },
      choices: { type: "string" },
      sink: { type: "string" },
      window: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const budget = intArg(values.budget, "budget");
  const maxLen = intArg(values["max-len"], "max-len");
  if (maxLen < 1) throw new InputError(`--max-len ${maxLen} must be at least 1`);
  const choices = (values.choices ?? "2,4,8").split(",").map((s) => {
    const b = Number(s);
    if (![2, 4, 8, 16].includes(b)) {
      throw new InputError(`--choices: ${JSON.stringify(s)} is not one of 2, 4, 8, 16`);
    }
    return b;
  });
  const sink = intArg(values.sink, "sink", 1), window = intArg(values.window, "window", 128);
  const model = await loadModel(values.model ?? DEFAULT_MODEL_DIR);
  const art = await readSensitivity(values.sensitivity ?? "out/sensitivity.json", model.fingerprint);
  const shape = kvShapeOf(model.config);
  const t0 = performance.now();
  const a = allocate(shape, model.fingerprint, art, maxLen, budget, { choices, sink, window });
  const ms = performance.now() - t0;
  const out = values.out ?? "out/plan.json";
  await Deno.mkdir(out.replace(/\/[^/]*$/, "") || ".", { recursive: true });
  await writePlan(out, a.plan);
  console.log(
    `plan for ${maxLen} tokens under ${budget} bytes (solved in ${ms.toFixed(1)} ms, ${a.nodes} nodes):`,
  );
  console.log("| layer | final bits | budget bytes | sensitivity |");
  console.log("| ---: | ---: | ---: | ---: |");
  a.plan.finalBits.forEach((b, l) =>
    console.log(`| ${l} | ${b} | ${a.plan.budgets[l]} | ${art.total[String(b)][l].toExponential(3)} |`)
  );
  const uniform = choices.map((b) => ({
    b,
    bytes: shape.numLayers * layerBytesAt(shape, { bits: b, sink, window }, maxLen),
  }));
  console.log(`total ${a.bytes} bytes of ${budget}; total sensitivity ${a.cost.toExponential(4)}`);
  console.log(
    `uniform plans for comparison: ${uniform.map((u) => `${u.b}-bit ${u.bytes} bytes`).join(", ")}`,
  );
  console.log(`wrote ${out}`);
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
