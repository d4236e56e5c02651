/**
 * The one place pipelines are compiled: each distinct (kernel, variant) is compiled once per device and
 * reused by every op, cache and test that asks for it.
 *
 * Every kernel uses two bind groups:
 * | group | contents | set |
 * |---|---|---|
 * | 0 | the kernel's buffers, in the binding order its WGSL declares ({@link BindingKind} list) | per dispatch |
 * | 1 | binding 0: the {@link STEP_WGSL} `Step` uniform, dynamic offset (one slot per forward step) | per step |
 *
 * @example
 * ```ts
 * const reg = new KernelRegistry(ctx); // tuning: tuningFor(ctx)
 * const k = await reg.kernel("add:n", ["storage", "read-only-storage"], () => addWgsl());
 * // k.pipeline, k.layout (group 0)
 * ```
 * @module
 */
import type { GpuContext } from "./device.ts";
import { type KernelTuning, tuningFor } from "./tuning.ts";
import { GpuError } from "../src/errors.ts";

/** How a group-0 binding is declared in WGSL. */
export type BindingKind = "storage" | "read-only-storage" | "uniform";

/** A compiled kernel: its pipeline and its group-0 layout (group 1 is {@link KernelRegistry.stepLayout}). */
export interface Kernel {
  /** The kernel's unique key (kernel name + every baked constant), also its pipeline label. */
  readonly key: string;
  /** The compiled compute pipeline (entry point `main`). */
  readonly pipeline: GPUComputePipeline;
  /** Group-0 bind group layout of the kernel's buffers. */
  readonly layout: GPUBindGroupLayout;
}

/**
 * Compiles and caches pipelines and bind group layouts of one device.
 *
 * @example
 * ```ts
 * import { KernelRegistry } from "./registry.ts";
 * import { acquireGpu } from "./device.ts";
 * import { SOFTWARE_TUNING } from "./tuning.ts";
 * const ctx = await acquireGpu();
 * const reg = new KernelRegistry(ctx, SOFTWARE_TUNING);
 * const wgsl = "@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n" +
 *   "@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) i: vec3u) { x[i.x] = 0.0; }";
 * const k = await reg.kernel("zero:f32", ["storage"], () => wgsl);
 * reg.compiled; // 1 (asking for "zero:f32" again reuses it)
 * ```
 */
export class KernelRegistry {
  /** The device the pipelines are compiled for. */
  readonly ctx: GpuContext;
  /** Kernel variant choices for this adapter (gpu/tuning.ts). */
  readonly tuning: KernelTuning;
  /** Group 1: the per-step uniform, with a dynamic offset. */
  readonly stepLayout: GPUBindGroupLayout;
  #layouts = new Map<string, GPUBindGroupLayout>();
  #kernels = new Map<string, Promise<Kernel>>();
  #compiles = 0;

  /**
   * An empty registry for `ctx`; prefer {@link registryFor}, which shares one per device.
   *
   * @param ctx the acquired device
   * @param tuning kernel variant choices (default: `tuningFor(ctx)`, from the adapter)
   */
  constructor(ctx: GpuContext, tuning: KernelTuning = tuningFor(ctx)) {
    this.ctx = ctx;
    this.tuning = tuning;
    this.stepLayout = ctx.device.createBindGroupLayout({
      label: "step",
      entries: [{
        binding: 0,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: "uniform", hasDynamicOffset: true },
      }],
    });
  }

  /** Number of pipelines compiled so far (each key once). */
  get compiled(): number {
    return this.#compiles;
  }

  /**
   * The group-0 layout for a list of binding kinds (binding i has kind i); cached.
   *
   * @example
   * ```ts
   * const layout = reg.layout(["read-only-storage", "storage"]);
   * ```
   */
  layout(kinds: readonly BindingKind[]): GPUBindGroupLayout {
    const key = kinds.join(",");
    let l = this.#layouts.get(key);
    if (!l) {
      l = this.ctx.device.createBindGroupLayout({
        label: key,
        entries: kinds.map((type, binding) => ({
          binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type },
        })),
      });
      this.#layouts.set(key, l);
    }
    return l;
  }

  /**
   * The kernel named `key`, compiling `source()` (entry point `main`) on first use. `key` must identify the
   * source uniquely (kernel name + every baked constant).
   *
   * @example
   * ```ts
   * const k = await reg.kernel(`swiglu:${I}`, ["read-only-storage", "storage"], () => swigluWgsl({ I }));
   * ```
   */
  kernel(key: string, kinds: readonly BindingKind[], source: () => string): Promise<Kernel> {
    let k = this.#kernels.get(key);
    if (!k) {
      k = this.#compile(key, kinds, source());
      this.#kernels.set(key, k);
    }
    return k;
  }

  async #compile(key: string, kinds: readonly BindingKind[], code: string): Promise<Kernel> {
    const device = this.ctx.device;
    const module = device.createShaderModule({ label: key, code });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === "error");
    if (errors.length > 0) {
      const lines = code.split("\n");
      const msg = errors.map((m) => `line ${m.lineNum}: ${m.message}\n    ${lines[m.lineNum - 1] ?? ""}`)
        .join("\n");
      throw new GpuError(`WGSL of kernel ${key} does not compile:\n${msg}`);
    }
    const layout = this.layout(kinds);
    let pipeline: GPUComputePipeline;
    try {
      pipeline = await device.createComputePipelineAsync({
        label: key,
        layout: device.createPipelineLayout({ label: key, bindGroupLayouts: [layout, this.stepLayout] }),
        compute: { module, entryPoint: "main" },
      });
    } catch (e) {
      throw new GpuError(`pipeline of kernel ${key} could not be created: ${(e as Error).message}`, {
        cause: e,
      });
    }
    this.#compiles++;
    return { key, pipeline, layout };
  }
}

const shared = new WeakMap<GpuContext, KernelRegistry>();

/**
 * The registry of `ctx` with its adapter's default tuning, shared by every engine on that device (so a
 * second engine reuses the compiled pipelines).
 *
 * @example
 * ```ts
 * const reg = registryFor(ctx);
 * registryFor(ctx) === reg; // true
 * ```
 */
export function registryFor(ctx: GpuContext): KernelRegistry {
  let reg = shared.get(ctx);
  if (!reg) {
    reg = new KernelRegistry(ctx);
    shared.set(ctx, reg);
  }
  return reg;
}
