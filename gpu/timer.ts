/**
 * GPU timing of a recorded compute pass: timestamp queries when the device has `timestamp-query`, else the
 * wall clock around submit → `onSubmittedWorkDone` (which in Deno includes up to ~10 ms of polling, so
 * callers repeat the work inside one pass to amortize it).
 *
 * Buffers:
 * | buffer | shape | type |
 * |---|---|---|
 * | query resolve | [2] | u64 nanoseconds (QUERY_RESOLVE, COPY_SRC) |
 * | readback | [2] | u64 (MAP_READ) |
 *
 * @example
 * ```ts
 * const timer = new PassTimer(ctx);
 * const seconds = await timer.time((pass) => { for (let i = 0; i < 20; i++) copy.encode(pass, bg, n); }, stepBindGroup);
 * ```
 * @module
 */
import type { GpuContext } from "./device.ts";
import { Readback } from "./buffers.ts";

/**
 * Times passes on one device.
 *
 * @example
 * ```ts
 * const timer = new PassTimer(ctx);
 * ```
 */
export class PassTimer {
  /** "timestamp" when timestamp queries are used, else "wall". */
  readonly method: "timestamp" | "wall";
  readonly #ctx: GpuContext;
  readonly #query: GPUQuerySet | null;
  readonly #resolve: GPUBuffer | null;
  readonly #rb: Readback | null;
  /** Host milliseconds the last {@link PassTimer.time} spent in `pass.end()`, `finish()` and `submit()`
   * (WebGPU implementations validate and translate the recorded commands there, not while recording). */
  lastSubmitMs = 0;

  constructor(ctx: GpuContext) {
    this.#ctx = ctx;
    const ts = ctx.features.has("timestamp-query");
    this.method = ts ? "timestamp" : "wall";
    this.#query = ts ? ctx.device.createQuerySet({ type: "timestamp", count: 2 }) : null;
    this.#resolve = ts
      ? ctx.device.createBuffer({
        label: "timestamps [2] u64",
        size: 16,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      })
      : null;
    this.#rb = ts ? new Readback(ctx, "timestamps [2] u64", 16) : null;
  }

  /**
   * Seconds the pass recorded by `encode` took on the GPU (timestamps) or end to end (wall clock).
   * `step` is bound as group 1 before `encode` runs.
   *
   * @example
   * ```ts
   * const s = await timer.time((pass) => mm.encode(pass, bg, 1), steps.bindGroup);
   * ```
   */
  async time(
    encode: (pass: GPUComputePassEncoder) => void,
    step: GPUBindGroup,
    stepOffset = 0,
  ): Promise<number> {
    const device = this.#ctx.device;
    const enc = device.createCommandEncoder({ label: "timed" });
    const pass = enc.beginComputePass(
      this.#query
        ? { timestampWrites: { querySet: this.#query, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } }
        : {},
    );
    pass.setBindGroup(1, step, [stepOffset]);
    encode(pass);
    const h0 = performance.now();
    pass.end();
    if (this.#query && this.#resolve && this.#rb) {
      enc.resolveQuerySet(this.#query, 0, 2, this.#resolve, 0);
      this.#rb.copyFrom(enc, this.#resolve, 0, 16);
      device.queue.submit([enc.finish()]);
      this.lastSubmitMs = performance.now() - h0;
      const [t0, t1] = new BigUint64Array(await this.#rb.read(16));
      this.#ctx.check();
      return Number(t1 - t0) / 1e9;
    }
    const t0 = performance.now();
    device.queue.submit([enc.finish()]);
    this.lastSubmitMs = performance.now() - h0;
    await device.queue.onSubmittedWorkDone();
    this.#ctx.check();
    return (performance.now() - t0) / 1000;
  }

  /** Frees the query set and buffers. */
  destroy(): void {
    this.#query?.destroy();
    this.#resolve?.destroy();
    this.#rb?.destroy();
  }
}
