/**
 * WebGPU adapter and device acquisition for the GPU backend.
 *
 * The device is requested with the adapter's REAL limits (WebGPU hands out conservative defaults otherwise:
 * a 128 MiB storage binding and a 256 MiB buffer, too small for the weights of a real model) and with the
 * optional features the kernels can use (`shader-f16`, `timestamp-query`, `subgroups`) when the adapter has
 * them (`subgroups` is tried even where Deno's `adapter.features` does not list it, and dropped if refused).
 *
 * Failure handling, all surfaced as {@link GpuError}:
 * | situation | behaviour |
 * |---|---|
 * | no `navigator.gpu` or no adapter | {@link acquireGpu} rejects: "no WebGPU adapter is available ..." |
 * | `device.lost` resolves | every later {@link GpuContext.check} throws "device lost: <reason>: <message>" |
 * | an uncaptured validation/out-of-memory/internal error | the next {@link GpuContext.check} throws it |
 *
 * @example
 * ```ts
 * import { acquireGpu } from "./device.ts";
 * const ctx = await acquireGpu();
 * console.log(ctx.description, ctx.features.has("shader-f16"));
 * ctx.check(); // throws GpuError once the device is lost or an error was reported
 * ctx.destroy();
 * ```
 * @module
 */
import { GpuError } from "../src/errors.ts";

/** Limits requested from the adapter at their real values (those the adapter reports). */
export const REQUESTED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
  "maxUniformBufferBindingSize",
  "maxBindGroups",
  "maxDynamicUniformBuffersPerPipelineLayout",
] as const;

/** Optional features requested when the adapter offers them. */
export const OPTIONAL_FEATURES: readonly GPUFeatureName[] = [
  "shader-f16",
  "timestamp-query",
  // subgroup builtins (wgpu exposes them without an `enable` directive); used by opt-in block attention knobs
  "subgroups" as GPUFeatureName,
];

/** Options of {@link acquireGpu}. */
export interface AcquireOptions {
  /** Passed to `requestAdapter` (default "high-performance"). */
  powerPreference?: GPUPowerPreference;
  /** Called once when the device is lost (after the context has recorded it). */
  onLost?: (reason: string) => void;
}

/** An acquired adapter + device with error bookkeeping. */
export interface GpuContext {
  /** The adapter the device was requested from. */
  readonly adapter: GPUAdapter;
  /** The device every buffer and pipeline of this context lives on. */
  readonly device: GPUDevice;
  /** Human-readable adapter description, e.g. "NVIDIA H100 80GB HBM3" or "llvmpipe (LLVM 15.0.6, 256 bits)". */
  readonly description: string;
  /** Features enabled on the device. */
  readonly features: ReadonlySet<string>;
  /** The device's limits (the adapter's real limits for {@link REQUESTED_LIMITS}). */
  readonly limits: GPUSupportedLimits;
  /** Set once `device.lost` resolved: "<reason>: <message>". */
  readonly lostReason: string | null;
  /** Throws GpuError when the device was lost or an uncaptured error was reported since the last check. */
  check(): void;
  /** Destroys the device (idempotent). Later {@link check} calls throw "device lost: destroyed ...". */
  destroy(): void;
}

/** The WebGPU entry point of this runtime, or undefined. */
function gpuApi(): GPU | undefined {
  return (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
}

/**
 * Requests an adapter without creating a device; null when none exists. Used by `--backend auto`.
 *
 * @example
 * ```ts
 * const adapter = await findAdapter();
 * console.log(adapter ? adapterDescription(adapter) : "no WebGPU adapter");
 * ```
 */
export async function findAdapter(
  powerPreference: GPUPowerPreference = "high-performance",
): Promise<GPUAdapter | null> {
  const gpu = gpuApi();
  if (!gpu) return null;
  try {
    return await gpu.requestAdapter({ powerPreference });
  } catch {
    return null;
  }
}

/**
 * The best human-readable name of an adapter: its description, else vendor/architecture/device.
 *
 * @example
 * ```ts
 * const adapter = await findAdapter();
 * if (adapter) console.log(adapterDescription(adapter)); // "llvmpipe (LLVM 15.0.6, 256 bits)"
 * ```
 */
export function adapterDescription(adapter: GPUAdapter): string {
  const info = adapter.info;
  if (info.description) return info.description;
  const parts = [info.vendor, info.architecture, info.device].filter((s) => s && s !== "0");
  return parts.length > 0 ? `WebGPU adapter ${parts.join(" ")}` : "WebGPU adapter (no description)";
}

/**
 * Acquires adapter + device with the adapter's real limits and the optional features it has.
 * Rejects with GpuError when WebGPU or an adapter is unavailable, or the device cannot be created.
 *
 * @example
 * ```ts
 * const ctx = await acquireGpu({ onLost: (r) => console.error("GPU lost:", r) });
 * console.log(ctx.limits.maxStorageBufferBindingSize);
 * ```
 */
export async function acquireGpu(options: AcquireOptions = {}): Promise<GpuContext> {
  if (!gpuApi()) {
    throw new GpuError("no WebGPU adapter is available: this runtime has no navigator.gpu");
  }
  const adapter = await findAdapter(options.powerPreference ?? "high-performance");
  if (!adapter) {
    throw new GpuError(
      "no WebGPU adapter is available on this machine (install a Vulkan driver, e.g. mesa-vulkan-drivers for " +
        "the llvmpipe software adapter; set XDG_RUNTIME_DIR if Deno complains)",
    );
  }
  const requiredLimits: Record<string, number> = {};
  const adapterLimits = adapter.limits as unknown as Record<string, number>;
  for (const name of REQUESTED_LIMITS) {
    const v = adapterLimits[name];
    if (typeof v === "number") requiredLimits[name] = v;
  }
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
  let device: GPUDevice;
  try {
    device = await requestWithSubgroups(adapter, requiredFeatures, requiredLimits);
  } catch (e) {
    throw new GpuError(
      `could not create a WebGPU device on ${adapterDescription(adapter)}: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  return new Context(adapter, device, options.onLost);
}

/**
 * Deno 2.9's adapter does not list `subgroups` in `adapter.features` although its devices grant it: when the
 * list lacks it, one request with it is tried first, and a refusal falls back to the listed features.
 *
 * @example
 * ```ts
 * const device = await requestWithSubgroups(adapter, ["shader-f16"], {});
 * device.features.has("subgroups"); // where the adapter grants it
 * ```
 */
export async function requestWithSubgroups(
  adapter: GPUAdapter,
  requiredFeatures: GPUFeatureName[],
  requiredLimits: Record<string, number>,
): Promise<GPUDevice> {
  const sg = "subgroups" as GPUFeatureName;
  if (!requiredFeatures.includes(sg)) {
    try {
      return await adapter.requestDevice({
        requiredFeatures: [...requiredFeatures, sg],
        requiredLimits,
        label: "pmkvq",
      });
    } catch {
      // not granted: the listed features only
    }
  }
  return await adapter.requestDevice({ requiredFeatures, requiredLimits, label: "pmkvq" });
}

class Context implements GpuContext {
  readonly adapter: GPUAdapter;
  readonly device: GPUDevice;
  readonly description: string;
  readonly features: ReadonlySet<string>;
  readonly limits: GPUSupportedLimits;
  #lost: string | null = null;
  #errors: string[] = [];
  #destroyed = false;

  constructor(adapter: GPUAdapter, device: GPUDevice, onLost?: (reason: string) => void) {
    this.adapter = adapter;
    this.device = device;
    this.description = adapterDescription(adapter);
    this.features = new Set(device.features as unknown as Iterable<string>);
    this.limits = device.limits;
    device.lost.then((info) => {
      this.#lost = `${info.reason}${info.message ? `: ${info.message}` : ""}`;
      onLost?.(this.#lost);
    });
    device.addEventListener("uncapturederror", (ev) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      this.#errors.push(`${err.constructor?.name ?? "GPUError"}: ${err.message}`);
    });
  }

  get lostReason(): string | null {
    return this.#lost;
  }

  check(): void {
    if (this.#lost !== null) throw new GpuError(`device lost: ${this.#lost}`);
    if (this.#destroyed) throw new GpuError("device lost: destroyed (the engine or context was disposed)");
    if (this.#errors.length > 0) {
      const errs = this.#errors.splice(0);
      throw new GpuError(`WebGPU reported ${errs.length} error(s): ${errs.join("; ")}`);
    }
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.device.destroy();
  }
}
