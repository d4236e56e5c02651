/**
 * Runs single kernels on host arrays: upload inputs, record one step, read outputs back. Used by the
 * conformance suite (kernel vs CPU twin) and the kernel benchmarks; the engine does not use it.
 *
 * Buffers it creates are storage buffers sized to the given arrays (shapes are the caller's); the step
 * uniform has one slot, set per {@link KernelHarness.run}.
 *
 * @example
 * ```ts
 * const hx = new KernelHarness(reg);
 * const x = hx.upload(new Float32Array([1, 2, 3, 4])), y = hx.upload(new Float32Array([1, 1, 1, 1]));
 * const add = await AddKernel.create(reg, { width: 4 });
 * await hx.run({ T: 1 }, (pass) => add.encode(pass, add.bind(x, y), 1));
 * console.log(await hx.readF32(x, 4)); // [2, 3, 4, 5]
 * hx.destroy();
 * ```
 * @module
 */
import type { KernelRegistry } from "./registry.ts";
import { StepBuffer, type StepValues } from "./step.ts";
import { Readback, storageBuffer, uploadBuffer } from "./buffers.ts";

/**
 * Single-kernel runner over one registry.
 *
 * @example
 * ```ts
 * const hx = new KernelHarness(new KernelRegistry(ctx));
 * ```
 */
export class KernelHarness {
  readonly reg: KernelRegistry;
  readonly steps: StepBuffer;
  #buffers: GPUBuffer[] = [];

  constructor(reg: KernelRegistry) {
    this.reg = reg;
    this.steps = new StepBuffer(reg, 1);
  }

  /**
   * A storage buffer holding `data` (freed by {@link destroy}).
   *
   * @example
   * ```ts
   * const w = hx.upload(packBf16([weights]));
   * ```
   */
  upload(data: Float32Array<ArrayBuffer> | Uint32Array<ArrayBuffer>): GPUBuffer {
    const b = uploadBuffer(this.reg.ctx, "harness input", data);
    this.#buffers.push(b);
    return b;
  }

  /**
   * A zeroed storage buffer of `words` 4-byte elements.
   *
   * @example
   * ```ts
   * const out = hx.zeros(T * N);
   * ```
   */
  zeros(words: number): GPUBuffer {
    const b = storageBuffer(this.reg.ctx, "harness output", 4 * words);
    this.#buffers.push(b);
    return b;
  }

  /**
   * Records `encode` in one compute pass with the step slot set to `step` (missing fields: T 1, others 0,
   * split 64, nSplits 1), submits, and waits for completion; GpuError when the device reported an error.
   *
   * @example
   * ```ts
   * await hx.run({ T, P }, (pass) => att.encodePrefill(pass, bgs, T));
   * ```
   */
  async run(
    step: Partial<StepValues>,
    encode: (pass: GPUComputePassEncoder) => void,
    repeat = 1,
  ): Promise<void> {
    const device = this.reg.ctx.device;
    this.steps.set(0, { T: 1, P: 0, pos0: 0, idBase: 0, idOut: 0, split: 64, nSplits: 1, ...step });
    this.steps.flush();
    const enc = device.createCommandEncoder({ label: "harness" });
    const pass = enc.beginComputePass();
    pass.setBindGroup(1, this.steps.bindGroup, [0]);
    for (let i = 0; i < repeat; i++) encode(pass);
    pass.end();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    this.reg.ctx.check();
  }

  /**
   * Reads `words` 4-byte elements of `buf` from `offsetWords` as f32.
   *
   * @example
   * ```ts
   * const out = await hx.readF32(outBuf, T * N);
   * ```
   */
  async readF32(buf: GPUBuffer, words: number, offsetWords = 0): Promise<Float32Array> {
    return new Float32Array(await this.#read(buf, words, offsetWords));
  }

  /**
   * Reads `words` u32 elements of `buf` from `offsetWords`.
   *
   * @example
   * ```ts
   * const [id] = await hx.readU32(ids, 1, 1);
   * ```
   */
  async readU32(buf: GPUBuffer, words: number, offsetWords = 0): Promise<Uint32Array> {
    return new Uint32Array(await this.#read(buf, words, offsetWords));
  }

  async #read(buf: GPUBuffer, words: number, offsetWords: number): Promise<ArrayBuffer> {
    const ctx = this.reg.ctx;
    const rb = new Readback(ctx, buf.label, 4 * words);
    try {
      const enc = ctx.device.createCommandEncoder();
      rb.copyFrom(enc, buf, 4 * offsetWords, 4 * words);
      ctx.device.queue.submit([enc.finish()]);
      return await rb.read(4 * words);
    } finally {
      rb.destroy();
    }
  }

  /** Frees every buffer it made. */
  destroy(): void {
    for (const b of this.#buffers) b.destroy();
    this.#buffers = [];
    this.steps.destroy();
  }
}
