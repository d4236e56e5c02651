/**
 * Quality metrics of a KV cache against the truth and against the exact cache.
 *
 * - recitation: greedy continuation of a training passage vs the true text: prefix-match length (tokens
 *   until the first wrong one) and position-wise match fraction;
 * - teacher-forced: feed the true tokens one at a time (so quantization happens as in generation) and compare
 *   each next-token distribution with the exact cache's: KL(p_exact ‖ p_method), top-1 agreement, and the
 *   method's own perplexity of the true text.
 *
 * @example
 * ```ts
 * const r = await recite(engine, prompt, truth);
 * console.log(r.prefixMatch, r.matchFraction);
 * ```
 * @module
 */
import type { Engine } from "../engine.ts";
import type { CacheStats, ShrinkEvent } from "../kv/cache.ts";
import { argmax } from "../sampling.ts";
import { InputError } from "../errors.ts";

/** Tokens equal from the start until the first difference. */
export function prefixMatch(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Fraction of positions i < |truth| where out[i] = truth[i]. */
export function matchFraction(out: ArrayLike<number>, truth: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < truth.length; i++) if (out[i] === truth[i]) m++;
  return truth.length ? m / truth.length : 1;
}

/** One recitation run. */
export interface RecitationResult {
  prefixMatch: number;
  matchFraction: number;
  newTokens: number;
  decodeTokensPerSecond: number;
  peakBytes: number;
  finalBytes: number;
  /** Final bit-width per layer. */
  layerBits: number[];
  events: ShrinkEvent[];
  /** [tokens in context, KV bytes] sampled during generation. */
  bytesTrace: [number, number][];
}

/** Greedy-decodes `truth.length` tokens after `prompt` and compares them with `truth`. */
export async function recite(
  engine: Engine,
  prompt: number[],
  truth: number[],
  options: { traceEvery?: number } = {},
): Promise<RecitationResult> {
  const every = options.traceEvery ?? 32;
  engine.reset();
  let logits = await engine.prefill(prompt);
  const trace: [number, number][] = [[engine.position, engine.cacheStats().bytes]];
  const out: number[] = [];
  // a backend that chains greedy steps on the device (WebGPU) decodes up to the next trace point per call:
  // the same tokens as decode + argmax (lowest id on ties), one read-back per chunk instead of per token
  const chained = (engine as Partial<GreedyChain>).decodeGreedyMany;
  const t0 = performance.now();
  if (truth.length > 0) out.push(argmax(logits));
  while (out.length < truth.length) {
    if (typeof chained === "function") {
      const n = Math.min(truth.length - out.length, every - (engine.position % every));
      out.push(...await chained.call(engine, out[out.length - 1], n));
    } else {
      logits = await engine.decode(out[out.length - 1]);
      out.push(argmax(logits));
    }
    if (engine.position % every === 0) trace.push([engine.position, engine.cacheStats().bytes]);
  }
  const seconds = (performance.now() - t0) / 1000;
  const stats: CacheStats = engine.cacheStats();
  trace.push([engine.position, stats.bytes]);
  return {
    prefixMatch: prefixMatch(out, truth),
    matchFraction: matchFraction(out, truth),
    newTokens: out.length,
    decodeTokensPerSecond: seconds > 0 ? (out.length - 1) / seconds : 0,
    peakBytes: stats.peakBytes,
    finalBytes: stats.bytes,
    layerBits: stats.layers.map((l) => l.bits),
    events: stats.events,
    bytesTrace: trace,
  };
}

/** A backend that chains greedy steps on the device (the WebGPU engine). */
interface GreedyChain {
  decodeGreedyMany(id: number, n: number): Promise<number[]>;
}

/** Log-softmax of `logits` into `out` (f64 accumulation). */
export function logSoftmax(logits: ArrayLike<number>, out: Float32Array): Float32Array {
  let mx = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > mx) mx = logits[i];
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += Math.exp(logits[i] - mx);
  const lse = mx + Math.log(s);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lse;
  return out;
}

/**
 * Teacher-forced log-probabilities: row t (t = 0..n−2) is log p(· | ids[0..t]), computed by a prefill of
 * ids[0] and single-token decodes of ids[1..n−2]. Shape [n − 1, vocab].
 */
export async function teacherForcedLogProbs(
  engine: Engine,
  ids: number[],
  vocab: number,
): Promise<Float32Array> {
  if (ids.length < 2) throw new InputError(`teacher forcing needs at least 2 tokens, got ${ids.length}`);
  engine.reset();
  const out = new Float32Array((ids.length - 1) * vocab); // [n-1, vocab]
  let logits = await engine.prefill([ids[0]]);
  for (let t = 0; t < ids.length - 1; t++) {
    logSoftmax(logits, out.subarray(t * vocab, (t + 1) * vocab));
    if (t + 1 < ids.length - 1) logits = await engine.decode(ids[t + 1]);
  }
  return out;
}

/** Teacher-forced comparison with the exact cache. */
export interface TeacherForcedResult {
  tokens: number;
  /** Mean KL(p_exact ‖ p_method) in nats per token. */
  kl: number;
  /** Fraction of positions where both argmaxes agree. */
  top1: number;
  /** exp(mean NLL of the true next token) under the method. */
  perplexity: number;
  /** Same for the exact cache (for reference). */
  exactPerplexity: number;
}

/** Compares method log-probs with exact log-probs ([n−1, vocab] each) on the true next tokens ids[1..]. */
export function compareLogProbs(
  exact: Float32Array,
  method: Float32Array,
  ids: number[],
  vocab: number,
): TeacherForcedResult {
  const n = ids.length - 1;
  if (exact.length !== n * vocab || method.length !== n * vocab) {
    throw new InputError(`log-prob arrays must be [${n}, ${vocab}]`);
  }
  let kl = 0, agree = 0, nll = 0, nllExact = 0;
  for (let t = 0; t < n; t++) {
    const e = exact.subarray(t * vocab, (t + 1) * vocab);
    const m = method.subarray(t * vocab, (t + 1) * vocab);
    let k = 0;
    for (let i = 0; i < vocab; i++) {
      const pe = Math.exp(e[i]);
      if (pe > 0) k += pe * (e[i] - m[i]);
    }
    kl += k;
    if (argmax(e) === argmax(m)) agree++;
    nll -= m[ids[t + 1]];
    nllExact -= e[ids[t + 1]];
  }
  return {
    tokens: n,
    kl: kl / n,
    top1: agree / n,
    perplexity: Math.exp(nll / n),
    exactPerplexity: Math.exp(nllExact / n),
  };
}
