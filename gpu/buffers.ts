/**
 * Buffer helpers: labelled storage buffers with size checks against the device limits, uploads, and a
 * reusable MAP_READ staging buffer for readbacks.
 *
 * Every storage buffer is created with usage STORAGE | COPY_SRC | COPY_DST and a size rounded up to 16 bytes
 * (so it can be bound as `array<vec4<…>>`).
 *
 * @example
 * ```ts
 * const buf = storageBuffer(ctx, "x [T, K] f32", 4 * T * K);
 * ctx.device.queue.writeBuffer(buf, 0, x);
 * const rb = new Readback(ctx, "logits", 4 * V);
 * const enc = ctx.device.createCommandEncoder();
 * rb.copyFrom(enc, buf, 0, 4 * V);
 * ctx.device.queue.submit([enc.finish()]);
 * const logits = new Float32Array(await rb.read(4 * V));
 * ```
 * @module
 */
import type { GpuContext } from "./device.ts";
import { GpuError } from "../src/errors.ts";

/**
 * Rounds `n` up to a multiple of `m`.
 *
 * @example
 * ```ts
 * roundUp(10, 16); // 16
 * ```
 */
export function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

/**
 * A storage buffer of `bytes` (rounded up to 16); GpuError when it exceeds the device's limits.
 * `label` should carry the shape, e.g. "layer 3 K cache [nKv, cap, D] f32".
 *
 * @example
 * ```ts
 * const h = storageBuffer(ctx, "h [T, hidden] f32", 4 * T * hidden);
 * ```
 */
export function storageBuffer(ctx: GpuContext, label: string, bytes: number): GPUBuffer {
  const size = Math.max(16, roundUp(bytes, 16));
  const lim = ctx.limits;
  if (size > lim.maxStorageBufferBindingSize || size > lim.maxBufferSize) {
    throw new GpuError(
      `buffer "${label}" needs ${size} bytes; the adapter (${ctx.description}) allows ` +
        `${Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize)} bytes per storage binding`,
    );
  }
  return ctx.device.createBuffer({
    label,
    size,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
}

/**
 * A storage buffer initialised with `data` (f32 or u32 words).
 *
 * @example
 * ```ts
 * const w = uploadBuffer(ctx, "norm weight [hidden] f32", new Float32Array(384).fill(1));
 * ```
 */
export function uploadBuffer(
  ctx: GpuContext,
  label: string,
  data: Float32Array<ArrayBuffer> | Uint32Array<ArrayBuffer>,
): GPUBuffer {
  const buf = storageBuffer(ctx, label, data.byteLength);
  ctx.device.queue.writeBuffer(buf, 0, data);
  return buf;
}

/**
 * A MAP_READ staging buffer reused across readbacks (one readback in flight at a time).
 *
 * @example
 * ```ts
 * const rb = new Readback(ctx, "logits", 4 * V);
 * ```
 */
export class Readback {
  /** [bytes] staging, MAP_READ | COPY_DST */
  readonly buffer: GPUBuffer;
  readonly bytes: number;
  readonly #ctx: GpuContext;

  constructor(ctx: GpuContext, label: string, bytes: number) {
    this.#ctx = ctx;
    this.bytes = roundUp(Math.max(bytes, 4), 4);
    this.buffer = ctx.device.createBuffer({
      label: `readback ${label}`,
      size: this.bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
  }

  /** Records a copy of `bytes` from `src` at `srcOffset` into the staging buffer at `dstOffset`. */
  copyFrom(
    encoder: GPUCommandEncoder,
    src: GPUBuffer,
    srcOffset: number,
    bytes: number,
    dstOffset = 0,
  ): void {
    encoder.copyBufferToBuffer(src, srcOffset, this.buffer, dstOffset, bytes);
  }

  /**
   * Maps `bytes` from `offset` (a multiple of 8) after the submitted work finished and returns a copy.
   * Device loss or a failed map becomes GpuError. (Deno's mapAsync polls every 10 ms, and resolves only
   * once ALL work submitted so far is done — measured with bench/gpu_map_probe.ts on the H100.)
   */
  async read(bytes: number = this.bytes, offset = 0): Promise<ArrayBuffer> {
    try {
      await this.buffer.mapAsync(GPUMapMode.READ, offset, bytes);
    } catch (e) {
      this.#ctx.check();
      throw new GpuError(`reading back ${this.buffer.label} failed: ${(e as Error).message}`, { cause: e });
    }
    const out = this.buffer.getMappedRange(offset, bytes).slice(0);
    this.buffer.unmap();
    return out;
  }

  /** Frees the staging buffer. */
  destroy(): void {
    this.buffer.destroy();
  }
}

/**
 * Splits `groups` workgroups over x and y so neither exceeds the per-dimension limit. Kernels that use it
 * linearize with `wg.x + wg.y * nw.x` and guard against the overshoot.
 *
 * @example
 * ```ts
 * pass.dispatchWorkgroups(...grid2d(ctx, Math.ceil(n / 256)));
 * ```
 */
export function grid2d(ctx: GpuContext, groups: number): [number, number] {
  const max = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [Math.max(1, groups), 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y];
}
