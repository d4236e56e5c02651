/**
 * `deno task run`: generate text with the embedded tiny-lm (or any supported model), streaming tokens,
 * and summarize speed and KV-cache memory. `--help` lists the flags.
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath as fromFileUrl } from "node:url";
import { loadModel } from "../model/load.ts";
import { loadTokenizer, type TextTokenizer } from "../model/tokenizer.ts";
import { generate } from "../generate.ts";
import { readCalibration } from "../../calib/artifact.ts";
import { applyCalibration } from "../../calib/fold.ts";
import { createBackend } from "./backend.ts";
import { cacheSpecFromFlags, KV_FLAGS_HELP } from "./kv_flags.ts";
import { InputError, PmkvqError } from "../errors.ts";
import { formatBytes, formatCacheSummary } from "./summary.ts";

/** The embedded default model, shipped in the repository. */
export const DEFAULT_MODEL_DIR = fromFileUrl(new URL("../../models/tiny-lm", import.meta.url));

/** The default prompt: the opening of Moby-Dick, which tiny-lm learned by heart. */
export const DEFAULT_PROMPT =
  "Call me Ishmael. Some years ago\u2014never mind how long precisely\u2014having little or no money in my purse, and nothing particular to interest me on shore, I thought I would sail about";

const HELP = `pmkvq run: generate text with a (quantized) KV cache

Usage: deno task run [options]

Model and prompt:
  --model DIR            Hugging Face model directory (default: the embedded tiny-lm)
  --prompt TEXT          prompt text (default: the opening of Moby-Dick)
  --prompt-file FILE     read the prompt text from FILE
  --prompt-ids FILE      read the prompt as a JSON array of token ids
  --max-new-tokens N     tokens to generate (default 128)
  --temperature T        0 = greedy (default 0)
  --top-p P              nucleus sampling (default 1)
  --top-k K              top-k sampling (default 0 = off)
  --seed N               sampling seed (default 0)
  --stop-at-eos          stop at the model's end-of-text token (default off)

Calibration:
  --calibration FILE     fold a key-smoothing calibration (deno task calibrate) into the q/k weights first;
                         an artifact for another model is refused

Backend:
  --backend NAME         cpu | webgpu | auto (default cpu; auto picks WebGPU when an adapter exists)

KV cache:
${KV_FLAGS_HELP}
Output:
  --json FILE            write a machine-readable report (includes the generated token ids)
  --quiet                do not stream text (summary only)
  --help                 this text
`;

async function readPrompt(
  values: { prompt?: string; "prompt-file"?: string; "prompt-ids"?: string },
  tok: TextTokenizer | null,
): Promise<{ ids: number[]; text: string | null }> {
  const given = ["prompt", "prompt-file", "prompt-ids"].filter((k) =>
    values[k as keyof typeof values] !== undefined
  );
  if (given.length > 1) {
    throw new InputError(`give only one of --prompt, --prompt-file, --prompt-ids (got ${given.join(", ")})`);
  }
  if (values["prompt-ids"] !== undefined) {
    const file = values["prompt-ids"];
    let parsed: unknown;
    try {
      parsed = JSON.parse(await Deno.readTextFile(file));
    } catch (e) {
      throw new InputError(`cannot read --prompt-ids ${file}: ${(e as Error).message}`);
    }
    if (!Array.isArray(parsed) || parsed.some((x) => !Number.isInteger(x))) {
      throw new InputError(`--prompt-ids ${file} must hold a JSON array of integer token ids`);
    }
    return { ids: parsed as number[], text: null };
  }
  let text: string;
  if (values["prompt-file"] !== undefined) {
    try {
      text = await Deno.readTextFile(values["prompt-file"]);
    } catch (e) {
      throw new InputError(`cannot read --prompt-file ${values["prompt-file"]}: ${(e as Error).message}`);
    }
  } else {
    text = values.prompt ?? DEFAULT_PROMPT;
  }
  if (!tok) throw new InputError("this model directory has no tokenizer.json: use --prompt-ids");
  return { ids: tok.encode(text), text };
}

function num(v: string | undefined, name: string, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) {
    throw new InputError(`--${name} ${JSON.stringify(v)} is not a number`);
  }
  return n;
}

/** Entry point; returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string" },
      prompt: { type: "string" },
      "prompt-file": { type: "string" },
      "prompt-ids": { type: "string" },
      "max-new-tokens": { type: "string" },
      temperature: { type: "string" },
      "top-p": { type: "string" },
      "top-k": { type: "string" },
      seed: { type: "string" },
      "stop-at-eos": { type: "boolean" },
      backend: { type: "string" },
      calibration: { type: "string" },
      kv: { type: "string" },
      "kv-budget": { type: "string" },
      "kv-bits": { type: "string" },
      plan: { type: "string" },
      "max-len": { type: "string" },
      sink: { type: "string" },
      window: { type: "string" },
      tau16: { type: "string" },
      tau4: { type: "string" },
      json: { type: "string" },
      quiet: { type: "boolean" },
      help: { type: "boolean" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const dir = values.model ?? DEFAULT_MODEL_DIR;
  const log = (s: string) => Deno.stderr.writeSync(new TextEncoder().encode(s));
  log(`loading ${dir} ...\n`);
  const loaded = await loadModel(dir);
  // key smoothing folded into the q/k projections (scores unchanged in exact arithmetic; flatter keys)
  const model = values.calibration === undefined
    ? loaded
    : applyCalibration(loaded, await readCalibration(values.calibration, loaded));
  if (values.calibration !== undefined) log(`calibration ${values.calibration} folded into q/k weights\n`);
  const tok = model.tokenizerPath ? await loadTokenizer(model.tokenizerPath) : null;
  const prompt = await readPrompt(values, tok);
  const maxNew = num(values["max-new-tokens"], "max-new-tokens", 128);
  // plans are checked against the checkpoint's own fingerprint (calibration does not change cache shapes)
  const spec = await cacheSpecFromFlags(values, loaded, prompt.ids.length + maxNew, {
    prompt: prompt.ids.length,
    newTokens: maxNew,
  });
  const engine = await createBackend(values.backend ?? "cpu", model, spec);
  log(
    `model ${model.config.architecture} (${model.config.numLayers} layers), backend ${engine.backend}: ${engine.device}\n`,
  );
  log(`KV cache: ${spec.method}; prompt ${prompt.ids.length} tokens\n`);
  const stream = tok && !values.quiet ? tok.streamer() : null;
  const enc = new TextEncoder();
  if (stream && prompt.text !== null && !values.quiet) Deno.stdout.writeSync(enc.encode(prompt.text));
  let lastProgress = 0;
  const result = await generate(engine, prompt.ids, {
    maxNewTokens: maxNew,
    temperature: num(values.temperature, "temperature", 0),
    topP: num(values["top-p"], "top-p", 1),
    topK: num(values["top-k"], "top-k", 0),
    seed: num(values.seed, "seed", 0),
    stopIds: values["stop-at-eos"] ? model.config.eosTokenIds : [],
    onToken: (id) => {
      if (stream) Deno.stdout.writeSync(enc.encode(stream(id)));
    },
    onPrefillProgress: (done, total) => {
      const now = performance.now();
      if (prompt.ids.length >= 256 && (now - lastProgress > 250 || done === total)) {
        lastProgress = now;
        log(`\rprefill: layer ${done}/${total}`);
        if (done === total) log("\n");
      }
    },
  });
  if (stream) Deno.stdout.writeSync(enc.encode("\n"));
  const c = result.cache;
  log(
    `\n--- summary ---\nprompt tokens ${result.promptTokens}, generated ${result.ids.length} (${result.stoppedBy})\n` +
      `prefill ${result.prefillSeconds.toFixed(3)} s (${
        (result.promptTokens / Math.max(result.prefillSeconds, 1e-9)).toFixed(1)
      } tokens/s), ` +
      `decode ${result.decodeTokensPerSecond.toFixed(1)} tokens/s\n` +
      `KV cache ${c.method}: ${formatBytes(c.bytes)} now, peak ${formatBytes(c.peakBytes)}\n` +
      formatCacheSummary(c),
  );
  if (values.json) {
    const report = {
      model: dir,
      fingerprint: model.fingerprint,
      backend: engine.backend,
      device: engine.device,
      calibration: values.calibration ?? null,
      cacheSpec: spec,
      promptIds: prompt.ids,
      generatedIds: result.ids,
      generatedText: tok ? tok.decode(result.ids) : null,
      stoppedBy: result.stoppedBy,
      promptTokens: result.promptTokens,
      prefillSeconds: result.prefillSeconds,
      decodeSeconds: result.decodeSeconds,
      decodeTokensPerSecond: result.decodeTokensPerSecond,
      cache: c,
    };
    await Deno.writeTextFile(values.json, JSON.stringify(report, null, 2) + "\n");
    log(`report written to ${values.json}\n`);
  }
  engine.dispose();
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
