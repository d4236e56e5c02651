/**
 * GPU timing for the benchmarks and probes in bench/: timestamp queries around one compute pass when the
 * device has `timestamp-query`, else the wall clock around submit → `onSubmittedWorkDone`; best of several
 * passes after a warm-up. (gpu/timer.ts's PassTimer serves the engine, whose passes bind a step group.)
 *
 * Buffers:
 * | buffer | shape | type |
 * | --- | --- | --- |
 * | query resolve | [2] | u64 nanoseconds (QUERY_RESOLVE, COPY_SRC) |
 * | readback (per pass) | [2] | u64 (MAP_READ) |
 *
 * @module
 */
import type { PackedGpu } from "../gpu/packed/util.ts";

/**
 * Timer: timestamp queries when available, else wall clock around onSubmittedWorkDone.
 *
 * @example
 * ```ts
 * const timer = new BenchTimer(gpu);
 * const seconds = await timer.time((pass) => kernel.encode(pass, bound), 20); // best of 3, per call
 * ```
 */
export class BenchTimer {
  readonly method: "timestamp" | "wall";
  readonly #gpu: PackedGpu;
  readonly #qs: GPUQuerySet | null;
  readonly #res: GPUBuffer | null;

  /** Times passes on `gpu`'s device. */
  constructor(gpu: PackedGpu) {
    this.#gpu = gpu;
    const ts = gpu.ctx.features.has("timestamp-query");
    this.method = ts ? "timestamp" : "wall";
    this.#qs = ts ? gpu.device.createQuerySet({ type: "timestamp", count: 2 }) : null;
    this.#res = ts
      ? gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC })
      : null;
  }

  /**
   * Best-of-`trials` seconds per call of `encode` (recorded `iters` times in one pass; one warm-up pass first).
   * Throws GpuError when the device reported an error or was lost.
   */
  async time(encode: (pass: GPUComputePassEncoder) => void, iters: number, trials = 3): Promise<number> {
    const dev = this.#gpu.device;
    let best = Infinity;
    for (let t = 0; t < trials + 1; t++) {
      const enc = dev.createCommandEncoder();
      const pass = enc.beginComputePass(
        this.#qs
          ? { timestampWrites: { querySet: this.#qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } }
          : {},
      );
      for (let i = 0; i < iters; i++) encode(pass);
      pass.end();
      let seconds: number;
      if (this.#qs && this.#res) {
        enc.resolveQuerySet(this.#qs, 0, 2, this.#res, 0);
        const rb = dev.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
        enc.copyBufferToBuffer(this.#res, 0, rb, 0, 16);
        dev.queue.submit([enc.finish()]);
        await rb.mapAsync(GPUMapMode.READ);
        const [a, b] = new BigUint64Array(rb.getMappedRange().slice(0));
        rb.unmap();
        rb.destroy();
        seconds = Number(b - a) / 1e9;
      } else {
        const t0 = performance.now();
        dev.queue.submit([enc.finish()]);
        await dev.queue.onSubmittedWorkDone();
        seconds = (performance.now() - t0) / 1000;
      }
      this.#gpu.ctx.check();
      if (t > 0) best = Math.min(best, seconds / iters); // trial 0 is the warm-up
    }
    return best;
  }
}
