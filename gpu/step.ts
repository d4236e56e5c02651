/**
 * Per-step parameters: the only values that change between forward steps. Every kernel reads them from
 * `@group(1) @binding(0) var<uniform> step: Step`; one uniform buffer holds {@link STEP_SLOTS}-many slots,
 * written with `queue.writeBuffer` before a submit, and each recorded step binds its slot with a dynamic
 * offset. Several steps (prefill chunks, or chained greedy decode steps) therefore fit in ONE submit.
 *
 * `Step` layout (u32 each, 32 bytes; slot stride = max(32, minUniformBufferOffsetAlignment)):
 * | offset | field | meaning |
 * |---|---|---|
 * | 0 | T | new tokens in this step (1 for decode) |
 * | 4 | P | tokens already in the cache before this step |
 * | 8 | pos0 | RoPE table row of the first new token (= P for one sequence) |
 * | 12 | idBase | index in the `ids` buffer of the first new token |
 * | 16 | idOut | index in `ids` where `argmax` writes the chosen token (and `flags` its non-finite count) |
 * | 20 | split | decode attention: tokens per split (multiple of 64) |
 * | 24 | nSplits | decode attention: ceil((P + T) / split) |
 * | 28 | _pad | 0 |
 *
 * @example
 * ```ts
 * const steps = new StepBuffer(reg, 4);
 * steps.set(0, { T: 1, P: 10, pos0: 10, idBase: 0, idOut: 1, split: 64, nSplits: 1 });
 * steps.flush();
 * pass.setBindGroup(1, steps.bindGroup, [steps.offset(0)]);
 * ```
 * @module
 */
import type { KernelRegistry } from "./registry.ts";

/** WGSL declaration of the step uniform; prepend to every kernel. */
export const STEP_WGSL = `struct Step {
  T: u32, P: u32, pos0: u32, idBase: u32,
  idOut: u32, split: u32, nSplits: u32, pad0: u32,
}
@group(1) @binding(0) var<uniform> step: Step;
`;

/** The values of one step. */
export interface StepValues {
  T: number;
  P: number;
  pos0: number;
  idBase: number;
  idOut: number;
  split: number;
  nSplits: number;
}

/** Bytes of one `Step`. */
export const STEP_BYTES = 32;

/**
 * A uniform buffer of step slots with its group-1 bind group.
 *
 * @example
 * ```ts
 * const steps = new StepBuffer(reg, 64);
 * ```
 */
export class StepBuffer {
  readonly slots: number;
  /** Byte distance between slots (the device's uniform offset alignment, at least {@link STEP_BYTES}). */
  readonly stride: number;
  /** [slots, stride / 4] u32 */
  readonly buffer: GPUBuffer;
  readonly bindGroup: GPUBindGroup;
  #host: Uint32Array<ArrayBuffer>;
  #dirty = 0;
  readonly #device: GPUDevice;

  constructor(reg: KernelRegistry, slots: number) {
    const device = reg.ctx.device;
    this.#device = device;
    this.slots = slots;
    this.stride = Math.max(STEP_BYTES, reg.ctx.limits.minUniformBufferOffsetAlignment);
    this.buffer = device.createBuffer({
      label: "step params",
      size: slots * this.stride,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.#host = new Uint32Array((slots * this.stride) / 4);
    this.bindGroup = device.createBindGroup({
      label: "step",
      layout: reg.stepLayout,
      entries: [{ binding: 0, resource: { buffer: this.buffer, offset: 0, size: STEP_BYTES } }],
    });
  }

  /** Byte offset of slot `i` (the dynamic offset to bind it). */
  offset(i: number): number {
    return i * this.stride;
  }

  /** Stages slot `i`; {@link flush} uploads the staged slots. */
  set(i: number, v: StepValues): void {
    if (i < 0 || i >= this.slots) throw new RangeError(`step slot ${i} outside [0, ${this.slots})`);
    const b = (i * this.stride) / 4;
    const h = this.#host;
    h[b] = v.T;
    h[b + 1] = v.P;
    h[b + 2] = v.pos0;
    h[b + 3] = v.idBase;
    h[b + 4] = v.idOut;
    h[b + 5] = v.split;
    h[b + 6] = v.nSplits;
    h[b + 7] = 0;
    this.#dirty = Math.max(this.#dirty, i + 1);
  }

  /** Uploads slots [0, highest slot set) with one writeBuffer. */
  flush(): void {
    if (this.#dirty === 0) return;
    this.#device.queue.writeBuffer(this.buffer, 0, this.#host, 0, (this.#dirty * this.stride) / 4);
    this.#dirty = 0;
  }

  /** Frees the buffer. */
  destroy(): void {
    this.buffer.destroy();
  }
}
