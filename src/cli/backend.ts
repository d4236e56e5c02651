/**
 * Backend selection for the CLI and harnesses: cpu, webgpu, auto.
 * @module
 */
import type { Engine } from "../engine.ts";
import type { LoadedModel } from "../model/types.ts";
import type { CacheSpec } from "../kv/cache.ts";
import { createCpuEngine } from "../../cpu/engine.ts";
import { GpuError, InputError } from "../errors.ts";

/** Options of {@link createBackend}. */
export interface BackendOptions {
  /** WebGPU: context capacity in tokens (default max_position_embeddings; the f32 cache is preallocated). */
  maxLen?: number;
  /** Where `auto` reports its choice (default: standard error). */
  log?: (line: string) => void;
}

function stderrLine(line: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`${line}\n`));
}

/**
 * Creates an engine on the named backend. `auto` uses WebGPU when an adapter exists (and reports which
 * adapter), else the CPU; it also falls back to the CPU when the WebGPU engine cannot serve the request
 * (e.g. a cache method not yet supported on webgpu).
 *
 * @example
 * ```ts
 * const engine = await createBackend("auto", model, { method: "exact" });
 * console.log(engine.backend, engine.device);
 * ```
 */
export async function createBackend(
  name: string,
  model: LoadedModel,
  spec: CacheSpec,
  options: BackendOptions = {},
): Promise<Engine> {
  if (name === "cpu") return createCpuEngine(model, spec);
  if (name === "webgpu" || name === "auto") {
    const log = options.log ?? stderrLine;
    const { findAdapter } = await import("../../gpu/device.ts");
    const adapter = await findAdapter();
    if (!adapter) {
      if (name === "auto") {
        log("backend auto: no WebGPU adapter is available; using the CPU");
        return createCpuEngine(model, spec);
      }
      throw new GpuError("--backend webgpu: no WebGPU adapter is available on this machine");
    }
    const { createGpuEngine } = await import("../../gpu/engine.ts");
    try {
      const engine = await createGpuEngine(model, spec, { maxLen: options.maxLen });
      if (name === "auto") log(`backend auto: using WebGPU on ${engine.device}`);
      return engine;
    } catch (e) {
      if (name === "auto" && e instanceof GpuError) {
        log(`backend auto: WebGPU cannot run this (${e.message}); using the CPU`);
        return createCpuEngine(model, spec);
      }
      throw e;
    }
  }
  throw new InputError(`--backend ${JSON.stringify(name)}: expected cpu, webgpu or auto`);
}
