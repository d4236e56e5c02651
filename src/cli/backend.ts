/**
 * Backend selection for the CLI and harnesses: cpu, webgpu, auto.
 * @module
 */
import type { Engine } from "../engine.ts";
import type { LoadedModel } from "../model/types.ts";
import type { CacheSpec } from "../kv/cache.ts";
import { createCpuEngine } from "../../cpu/engine.ts";
import { GpuError, InputError } from "../errors.ts";

/** Creates an engine on the named backend. `auto` uses WebGPU when an adapter exists, else the CPU. */
export async function createBackend(name: string, model: LoadedModel, spec: CacheSpec): Promise<Engine> {
  if (name === "cpu") return createCpuEngine(model, spec);
  if (name === "webgpu" || name === "auto") {
    const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
    const adapter = gpu ? await gpu.requestAdapter({ powerPreference: "high-performance" }) : null;
    if (!adapter) {
      if (name === "auto") return createCpuEngine(model, spec);
      throw new GpuError("--backend webgpu: no WebGPU adapter is available on this machine");
    }
    throw new GpuError("--backend webgpu: the WebGPU engine is not built yet (use --backend cpu)");
  }
  throw new InputError(`--backend ${JSON.stringify(name)}: expected cpu, webgpu or auto`);
}
