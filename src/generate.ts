/**
 * The generation loop over any {@link Engine}: prefill the prompt, then decode token by token.
 *
 * @example
 * ```ts
 * const result = await generate(engine, promptIds, { maxNewTokens: 64, onToken: (id) => out.push(id) });
 * console.log(result.ids, result.decodeTokensPerSecond);
 * ```
 * @module
 */
import type { Engine } from "./engine.ts";
import type { CacheStats } from "./kv/cache.ts";
import { makeSampler, type SamplingOptions } from "./sampling.ts";
import { InputError } from "./errors.ts";

/** A backend that can chain greedy steps on the device (the WebGPU engine). */
interface GreedyChain {
  decodeGreedyMany(
    id: number,
    n: number,
    options: { stopIds?: readonly number[]; onToken?: (id: number, index: number) => void },
  ): Promise<number[]>;
}

/** Generation settings. */
export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most (a non-negative integer; 0 only runs the prefill). */
  maxNewTokens: number;
  /** Stop at these token ids (default: none). The stop token is included in `ids`. */
  stopIds?: number[];
  /** Called with each generated token id as soon as it is chosen. */
  onToken?: (id: number, index: number) => void;
  /** Prefill progress (layers done, total). */
  onPrefillProgress?: (done: number, total: number) => void;
}

/** What a generation produced and how fast. */
export interface GenerateResult {
  /** Tokens in the prompt. */
  promptTokens: number;
  /** Generated token ids, in order (including the stop token when one ended the run). */
  ids: number[];
  /** Why generation ended: the `maxNewTokens` limit or a token of `stopIds`. */
  stoppedBy: "max-new-tokens" | "stop-token";
  /** Wall-clock seconds of the prefill (prompt forward pass, the first logits). */
  prefillSeconds: number;
  /** Wall-clock seconds from the end of the prefill to the last token. */
  decodeSeconds: number;
  /** Generated tokens after the first, per second of decode time. */
  decodeTokensPerSecond: number;
  /** The engine's cache accounting after the run. */
  cache: CacheStats;
}

/**
 * Runs `prompt` (token ids) through `engine.prefill`, then picks up to `maxNewTokens` tokens (greedy when
 * `temperature` is 0 or absent, else seeded sampling), decoding each one but the last. Stops early at a token of
 * `stopIds`. Throws InputError for a bad option.
 *
 * @example
 * ```ts
 * import { generate } from "./generate.ts";
 * import { loadModel } from "./model/load.ts";
 * import { loadTokenizer } from "./model/tokenizer.ts";
 * import { createCpuEngine } from "../cpu/engine.ts";
 * const model = await loadModel("models/tiny-lm");
 * const tok = await loadTokenizer(model.tokenizerPath!);
 * const engine = createCpuEngine(model, { method: "kivi", bits: 4 });
 * const out = await generate(engine, tok.encode("Call me Ishmael."), {
 *   maxNewTokens: 32,
 *   stopIds: model.config.eosTokenIds,
 *   onToken: (id) => console.log(tok.decode([id])),
 * });
 * console.log(out.stoppedBy, out.decodeTokensPerSecond, out.cache.bytes);
 * ```
 */
export async function generate(
  engine: Engine,
  prompt: ArrayLike<number>,
  options: GenerateOptions,
): Promise<GenerateResult> {
  if (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 0) {
    throw new InputError(`max-new-tokens ${options.maxNewTokens} must be a non-negative integer`);
  }
  const pick = makeSampler(options);
  const stop = new Set(options.stopIds ?? []);
  const t0 = performance.now();
  let logits = await engine.prefill(prompt, { onProgress: options.onPrefillProgress });
  const t1 = performance.now();
  const ids: number[] = [];
  let stoppedBy: GenerateResult["stoppedBy"] = "max-new-tokens";
  const chained = (engine as Partial<GreedyChain>).decodeGreedyMany;
  if ((options.temperature ?? 0) === 0 && typeof chained === "function" && options.maxNewTokens > 0) {
    // Greedy on a backend that chains steps on the device (WebGPU): one read-back per chunk of tokens
    // instead of one per token. Same tokens as the loop below (argmax, lowest id on ties).
    const first = pick(logits);
    ids.push(first);
    options.onToken?.(first, 0);
    if (!stop.has(first)) {
      const rest = await chained.call(engine, first, options.maxNewTokens - 1, {
        stopIds: options.stopIds,
        onToken: (id: number, i: number) => options.onToken?.(id, i + 1),
      });
      ids.push(...rest);
    }
    if (stop.has(ids[ids.length - 1])) stoppedBy = "stop-token";
  } else {
    for (let i = 0; i < options.maxNewTokens; i++) {
      const id = pick(logits);
      ids.push(id);
      options.onToken?.(id, i);
      if (stop.has(id)) {
        stoppedBy = "stop-token";
        break;
      }
      if (i + 1 < options.maxNewTokens) logits = await engine.decode(id);
    }
  }
  const t2 = performance.now();
  const decodeSeconds = (t2 - t1) / 1000;
  const decoded = Math.max(0, ids.length - 1);
  return {
    promptTokens: prompt.length,
    ids,
    stoppedBy,
    prefillSeconds: (t1 - t0) / 1000,
    decodeSeconds,
    decodeTokensPerSecond: decodeSeconds > 0 ? decoded / decodeSeconds : 0,
    cache: engine.cacheStats(),
  };
}
