/**
 * Small WebGPU helpers shared by the packed-cache kernels (gpu/packed/*): a per-device pipeline cache that
 * surfaces WGSL compile errors, buffer creation/upload/readback, and uniform packing. Independent of the
 * engine's gpu/buffers.ts so the two can evolve separately; only gpu/device.ts's {@link GpuContext} is shared.
 *
 * | helper | buffer usage |
 * | --- | --- |
 * | {@link PackedGpu.storage} | STORAGE, COPY_SRC, COPY_DST; size rounded up to 16 bytes |
 * | {@link PackedGpu.uniform} | UNIFORM, COPY_DST |
 * | {@link PackedGpu.read} | a temporary MAP_READ staging buffer per call |
 *
 * @example
 * ```ts
 * import { acquireGpu } from "../device.ts";
 * import { PackedGpu } from "./util.ts";
 * const gpu = new PackedGpu(await acquireGpu());
 * const b = gpu.upload("x", new Float32Array([1, 2, 3, 4]));
 * console.log(new Float32Array(await gpu.read(b, 0, 16))); // [1, 2, 3, 4]
 * ```
 * @module
 */
import type { GpuContext } from "../device.ts";
import { GpuError } from "../../src/errors.ts";

/** One compute pipeline and its bind group layout 0 ("auto", or explicit with a dynamic uniform). */
export interface Pipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  /** Binding 0 is a `var<uniform>` bound with a dynamic offset (uniform_arena.ts `bindUniform`). */
  dynamicUniform: boolean;
  /** The WGSL it was built from (for debugging). */
  code: string;
}

/**
 * Device helper: pipeline cache, buffers, readback.
 *
 * @example
 * ```ts
 * const gpu = new PackedGpu(await acquireGpu());
 * ```
 */
export class PackedGpu {
  readonly ctx: GpuContext;
  readonly device: GPUDevice;
  readonly #pipes = new Map<string, Promise<Pipeline>>();

  constructor(ctx: GpuContext) {
    this.ctx = ctx;
    this.device = ctx.device;
  }

  /**
   * The pipeline of `code` (entry point `main`), compiled once per distinct source. Compile or validation
   * errors reject with GpuError naming `label` and the compiler messages. `dynamicUniform`: group 0's layout
   * is built from the WGSL's declarations ({@link wgslBindings}) with binding 0 — which must be the
   * `var<uniform>` — taking a dynamic offset (bound by uniform_arena.ts `bindUniform`); otherwise "auto".
   *
   * @example
   * ```ts
   * const p = await gpu.pipeline("fill", "@compute @workgroup_size(1) fn main() {}");
   * ```
   */
  pipeline(label: string, code: string, opts: { dynamicUniform?: boolean } = {}): Promise<Pipeline> {
    const dyn = opts.dynamicUniform ?? false;
    const key = `${dyn ? "dyn" : "auto"}\n${code}`;
    let p = this.#pipes.get(key);
    if (!p) {
      p = this.#build(label, code, dyn);
      this.#pipes.set(key, p);
      p.catch(() => this.#pipes.delete(key));
    }
    return p;
  }

  /** The explicit group-0 layout of `code` with binding 0 a dynamic-offset uniform. */
  #dynamicLayout(label: string, code: string): GPUBindGroupLayout {
    const binds = wgslBindings(code);
    if (binds[0]?.binding !== 0 || binds[0].kind !== "uniform") {
      throw new GpuError(`WGSL pipeline "${label}": dynamicUniform needs binding 0 to be the var<uniform>`);
    }
    return this.device.createBindGroupLayout({
      label,
      entries: binds.map((b) => ({
        binding: b.binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: b.kind, hasDynamicOffset: b.binding === 0 },
      })),
    });
  }

  async #build(label: string, code: string, dynamicUniform: boolean): Promise<Pipeline> {
    const device = this.device;
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ label, code });
    const info = await module.getCompilationInfo();
    const errs = info.messages.filter((m) => m.type === "error");
    let pipeline: GPUComputePipeline | null = null;
    let thrown: unknown = null;
    let explicit: GPUBindGroupLayout | null = null;
    try {
      explicit = dynamicUniform ? this.#dynamicLayout(label, code) : null;
      pipeline = await device.createComputePipelineAsync({
        label,
        layout: explicit ? device.createPipelineLayout({ label, bindGroupLayouts: [explicit] }) : "auto",
        compute: { module, entryPoint: "main" },
      });
    } catch (e) {
      thrown = e;
    }
    const scoped = await device.popErrorScope();
    if (errs.length > 0 || scoped || thrown || !pipeline) {
      const msgs = errs.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
      if (scoped) msgs.push(scoped.message);
      if (thrown) msgs.push((thrown as Error).message);
      throw new GpuError(`WGSL pipeline "${label}" failed on ${this.ctx.description}: ${msgs.join("; ")}`);
    }
    return { pipeline, layout: explicit ?? pipeline.getBindGroupLayout(0), dynamicUniform, code };
  }

  /**
   * A zeroed storage buffer of at least `bytes` (rounded up to 16). GpuError when the adapter's binding or
   * buffer limit is smaller.
   *
   * @example
   * ```ts
   * const partials = gpu.storage("partials", 1 << 20);
   * ```
   */
  storage(label: string, bytes: number): GPUBuffer {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    const lim = this.ctx.limits;
    const max = Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize);
    if (size > max) {
      throw new GpuError(
        `buffer "${label}" needs ${size} bytes; ${this.ctx.description} allows ${max} per binding`,
      );
    }
    return this.device.createBuffer({
      label,
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
  }

  /**
   * A storage buffer holding `data`.
   *
   * @example
   * ```ts
   * const q = gpu.upload("q", new Float32Array(4096));
   * ```
   */
  upload(label: string, data: ArrayBufferView<ArrayBuffer>): GPUBuffer {
    const buf = this.storage(label, data.byteLength);
    this.device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
    return buf;
  }

  /**
   * A uniform buffer holding `data` (its size rounded up to 16 bytes).
   *
   * @example
   * ```ts
   * const u = gpu.uniform("params", new Uint32Array([1, 2, 3, 4]));
   * ```
   */
  uniform(label: string, data: ArrayBufferView<ArrayBuffer>): GPUBuffer {
    const size = Math.max(16, Math.ceil(data.byteLength / 16) * 16);
    const buf = this.device.createBuffer({
      label,
      size,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
    return buf;
  }

  /**
   * Copies `bytes` of `src` from `offset` (both multiples of 4) after all submitted work and returns them.
   * Checks the context for device loss / reported errors afterwards.
   *
   * @example
   * ```ts
   * const words = new Uint32Array(await gpu.read(store, 0, 64));
   * ```
   */
  async read(src: GPUBuffer, offset: number, bytes: number): Promise<ArrayBuffer> {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const staging = this.device.createBuffer({
      label: "packed readback",
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const enc = this.device.createCommandEncoder({ label: "packed readback" });
    enc.copyBufferToBuffer(src, offset, staging, 0, size);
    this.device.queue.submit([enc.finish()]);
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, size);
    } catch (e) {
      this.ctx.check();
      throw new GpuError(`readback of ${src.label} failed: ${(e as Error).message}`, { cause: e });
    }
    const out = staging.getMappedRange(0, size).slice(0, bytes);
    staging.unmap();
    staging.destroy();
    this.ctx.check();
    return out;
  }

  /**
   * Records `encode` into one compute pass, submits it and waits for the GPU (then checks for errors).
   *
   * @example
   * ```ts
   * await gpu.submit((pass) => kernel.encode(pass, prepared));
   * ```
   */
  async submit(encode: (pass: GPUComputePassEncoder) => void): Promise<void> {
    const enc = this.device.createCommandEncoder({ label: "packed" });
    const pass = enc.beginComputePass();
    encode(pass);
    pass.end();
    this.device.queue.submit([enc.finish()]);
    await this.device.queue.onSubmittedWorkDone();
    this.ctx.check();
  }
}

/** One `@group(0)` buffer binding declared in WGSL. */
export interface WgslBinding {
  binding: number;
  kind: "uniform" | "read-only-storage" | "storage";
}

/**
 * The `@group(0) @binding(n) var<…>` buffer declarations of `code`, sorted by binding (GpuError on a
 * binding declared twice or an access mode other than uniform / storage read / storage read_write).
 *
 * @example
 * ```ts
 * import { wgslBindings } from "./util.ts";
 * wgslBindings("@group(0) @binding(0) var<uniform> p: P;\n@group(0) @binding(1) var<storage, read_write> o: array<u32>;");
 * // [{ binding: 0, kind: "uniform" }, { binding: 1, kind: "storage" }]
 * ```
 */
export function wgslBindings(code: string): WgslBinding[] {
  const out: WgslBinding[] = [];
  const re = /@group\(0\)\s*@binding\((\d+)\)\s*var<\s*([a-z_]+)\s*(?:,\s*([a-z_]+)\s*)?>/g;
  for (const m of code.matchAll(re)) {
    const binding = Number(m[1]);
    const space = m[2], access = m[3] ?? "read";
    let kind: WgslBinding["kind"];
    if (space === "uniform") kind = "uniform";
    else if (space === "storage" && access === "read") kind = "read-only-storage";
    else if (space === "storage" && access === "read_write") kind = "storage";
    else throw new GpuError(`WGSL binding ${binding}: unsupported var<${space}${m[3] ? ", " + access : ""}>`);
    if (out.some((b) => b.binding === binding)) throw new GpuError(`WGSL binding ${binding} declared twice`);
    out.push({ binding, kind });
  }
  return out.sort((a, b) => a.binding - b.binding);
}

/**
 * Builds the bytes of a uniform struct made only of 4-byte scalars in declaration order (u32 by default,
 * f32 where the value is tagged with {@link f32u}). WGSL `vec4<u32>`/`array<vec4<u32>, N>` members are
 * written as 4 consecutive entries.
 *
 * @example
 * ```ts
 * import { f32u, packUniform } from "./util.ts";
 * packUniform([1, 2, 3, 4, f32u(0.5), 0, 0, 0]).byteLength; // 32
 * ```
 */
export function packUniform(values: readonly (number | { f32: number })[]): Uint32Array<ArrayBuffer> {
  const n = Math.max(4, Math.ceil(values.length / 4) * 4);
  const buf = new ArrayBuffer(n * 4);
  const u = new Uint32Array(buf), f = new Float32Array(buf);
  values.forEach((v, i) => {
    if (typeof v === "number") {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new RangeError(`uniform entry ${i} is not a u32: ${v}`);
      }
      u[i] = v;
    } else f[i] = v.f32;
  });
  return u;
}

/**
 * Tags a uniform entry as f32 for {@link packUniform}.
 *
 * @example
 * ```ts
 * import { f32u } from "./util.ts";
 * f32u(1 / Math.sqrt(128)); // { f32: 0.0883... }
 * ```
 */
export function f32u(v: number): { f32: number } {
  return { f32: v };
}

/**
 * A 2-D workgroup grid covering `n` workgroups with x ≤ 65535: [x, y]; kernels recover the flat index as
 * `wid.y * x + wid.x` and return when it is ≥ n.
 *
 * @example
 * ```ts
 * import { grid2d } from "./util.ts";
 * grid2d(100000); // [50000, 2]
 * ```
 */
export function grid2d(n: number, maxX = 65535): [number, number] {
  if (n <= maxX) return [Math.max(1, n), 1];
  const y = Math.ceil(n / maxX);
  return [Math.ceil(n / y), y];
}
