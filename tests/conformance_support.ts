/**
 * Support for the cross-backend conformance suite (tests/conformance_test.ts): the list of backends with
 * availability (a missing WebGPU adapter is a printed, visible skip), seeded random data, error metrics, and
 * memoized CPU reference runs so several cases share one CPU computation.
 *
 * @example
 * ```ts
 * const backends = await detectBackends();
 * for (const b of backends) Deno.test({ name: `[${b.name}] ...`, ignore: !b.available, fn: async () => {} });
 * ```
 * @module
 */
import type { Engine } from "../src/engine.ts";
import type { LoadedModel } from "../src/model/types.ts";
import type { CacheSpec } from "../src/kv/cache.ts";
import { createCpuEngine } from "../cpu/engine.ts";
import { createGpuEngine, type GpuEngineOptions } from "../gpu/engine.ts";
import { acquireGpu, type GpuContext } from "../gpu/device.ts";
import { argmax, mulberry32 } from "../src/sampling.ts";

/** One backend of the suite. */
export interface Backend {
  name: "cpu" | "webgpu";
  available: boolean;
  /** Why it is unavailable (printed once). */
  reason: string;
  /** Builds an engine; GPU engines share the suite's device. */
  create(model: LoadedModel, spec: CacheSpec, options?: GpuEngineOptions): Promise<Engine>;
}

/** The suite's shared GPU context, or null with the reason. */
export interface GpuAvailability {
  ctx: GpuContext | null;
  reason: string;
}

/**
 * Acquires the shared WebGPU device once; null (with the reason printed as SKIPPED) when there is none.
 *
 * @example
 * ```ts
 * const { ctx, reason } = await gpuAvailability();
 * ```
 */
export async function gpuAvailability(): Promise<GpuAvailability> {
  try {
    const ctx = await acquireGpu();
    return { ctx, reason: "" };
  } catch (e) {
    const reason = (e as Error).message;
    console.warn(`SKIPPED: WebGPU conformance cases are ignored: ${reason}`);
    return { ctx: null, reason };
  }
}

/**
 * The suite's backends: cpu always, webgpu when `gpu.ctx` is set.
 *
 * @example
 * ```ts
 * const backends = detectBackends(await gpuAvailability());
 * ```
 */
export function detectBackends(gpu: GpuAvailability): Backend[] {
  return [
    { name: "cpu", available: true, reason: "", create: (m, s) => Promise.resolve(createCpuEngine(m, s)) },
    {
      name: "webgpu",
      available: gpu.ctx !== null,
      reason: gpu.reason,
      create: (m, s, o) => createGpuEngine(m, s, { ...o, context: gpu.ctx! }),
    },
  ];
}

/**
 * `n` seeded uniform values in [-scale, scale).
 *
 * @example
 * ```ts
 * const x = randomF32(1, 384);
 * ```
 */
export function randomF32(seed: number, n: number, scale = 1): Float32Array<ArrayBuffer> {
  const r = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * r() - 1) * scale;
  return out;
}

/**
 * Rounds every value to bf16 by truncation (so CPU and GPU see identical, bf16-exact weights).
 *
 * @example
 * ```ts
 * const w = toBf16Exact(randomF32(2, N * K, 0.05));
 * ```
 */
export function toBf16Exact(a: Float32Array<ArrayBuffer>): Float32Array<ArrayBuffer> {
  const bits = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < bits.length; i++) bits[i] &= 0xffff0000;
  return a;
}

/**
 * max |a − b|.
 *
 * @example
 * ```ts
 * maxAbsDiff([1, 2], [1, 2.5]); // 0.5
 * ```
 */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/**
 * max |got − want| / max |want| (the relative error the suite states its bounds in).
 *
 * @example
 * ```ts
 * relErr([1, 2.01], [1, 2]); // 0.005
 * ```
 */
export function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(want[i]));
  return maxAbsDiff(got, want) / (m || 1);
}

/** What a greedy run produced. */
export interface GreedyRun {
  /** Logits after the prompt. */
  prefill: Float32Array;
  /** Logits after each of the first `logitSteps` decode steps. */
  stepLogits: Float32Array[];
  /** The n greedy tokens (token 0 = argmax of the prefill logits). */
  tokens: number[];
}

/**
 * Greedy decoding through the plain Engine API: prefill, then n − 1 decode steps; keeps the prefill logits
 * and the first `logitSteps` step logits.
 *
 * @example
 * ```ts
 * const run = await greedyRun(engine, prompt, 64, 4);
 * ```
 */
export async function greedyRun(
  engine: Engine,
  prompt: number[],
  n: number,
  logitSteps: number,
): Promise<GreedyRun> {
  const prefill = await engine.prefill(prompt);
  const stepLogits: Float32Array[] = [];
  const tokens = [argmax(prefill)];
  while (tokens.length < n) {
    const logits = await engine.decode(tokens[tokens.length - 1]);
    if (stepLogits.length < logitSteps) stepLogits.push(logits);
    tokens.push(argmax(logits));
  }
  return { prefill, stepLogits, tokens };
}

const memo = new Map<string, Promise<unknown>>();

/**
 * Memoizes `make()` under `key` for the whole suite (CPU reference runs are shared by several cases).
 *
 * @example
 * ```ts
 * const cpu = await once("cpu-greedy", () => greedyRun(createCpuEngine(model), prompt, 64, 8));
 * ```
 */
export function once<T>(key: string, make: () => Promise<T>): Promise<T> {
  let p = memo.get(key);
  if (!p) {
    p = make();
    memo.set(key, p);
  }
  return p as Promise<T>;
}

/**
 * Greedy steps of the whole-model case: `PMKVQ_CONFORMANCE_STEPS` or `fallback`.
 *
 * @example
 * ```ts
 * const steps = conformanceSteps(64); // PMKVQ_CONFORMANCE_STEPS=256 for the full run
 * ```
 */
export function conformanceSteps(fallback: number): number {
  const v = Deno.env.get("PMKVQ_CONFORMANCE_STEPS");
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`PMKVQ_CONFORMANCE_STEPS=${v} must be a positive integer`);
  }
  return n;
}
