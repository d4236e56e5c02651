/**
 * A word copy that can run inside a compute pass (`copyBufferToBuffer` cannot): dst[dstOff + i] =
 * src[srcOff + i] for i < n, as u32 words, so f32 bit patterns (NaN payloads, −0, subnormals) are kept.
 * The MixKVQ GPU cache uses it to log each step's queries and a prompt's q/k/v rows (gpu/cache/mixkvq.ts).
 *
 * | binding | buffer | type |
 * | --- | --- | --- |
 * | 0 | params (srcOff, dstOff, n, gridX) | uniform u32 |
 * | 1 | src | u32, read |
 * | 2 | dst | u32, read_write |
 *
 * @example
 * ```ts
 * const copy = await CopyWords.create(gpu);
 * const u = copy.encode(pass, { src: qkv, srcOff: 0 }, { dst: log, dstOff: 512 }, 512);
 * // submit, then u.destroy()
 * ```
 * @module
 */
import { grid2d, type PackedGpu, packUniform, type Pipeline } from "./util.ts";
import { TensorShapeError } from "../../src/errors.ts";

const THREADS = 64;

/**
 * WGSL of the word copy (one invocation per word, 2-D grid).
 *
 * @example
 * ```ts
 * copyWordsWgsl().includes("fn main"); // true
 * ```
 */
export function copyWordsWgsl(): string {
  return /* wgsl */ `
struct P { a: vec4<u32> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * p.a.w + wid.x) * ${THREADS}u + lid;
  if (i >= p.a.z) { return; }
  dst[p.a.y + i] = src[p.a.x + i];
}
`;
}

/**
 * The compiled word copy.
 *
 * @example
 * ```ts
 * const copy = await CopyWords.create(gpu);
 * ```
 */
export class CopyWords {
  readonly gpu: PackedGpu;
  readonly #pipe: Pipeline;

  private constructor(gpu: PackedGpu, pipe: Pipeline) {
    this.gpu = gpu;
    this.#pipe = pipe;
  }

  /**
   * Compiles (or reuses) the pipeline.
   *
   * @example
   * ```ts
   * const copy = await CopyWords.create(gpu);
   * ```
   */
  static async create(gpu: PackedGpu): Promise<CopyWords> {
    return new CopyWords(gpu, await gpu.pipeline("copy words", copyWordsWgsl()));
  }

  /**
   * Records the copy of `n` words; returns its uniform (destroy after submission). TensorShapeError when
   * a range leaves its buffer or n < 1.
   *
   * @example
   * ```ts
   * const u = copy.encode(pass, { src, srcOff: 0 }, { dst, dstOff: 0 }, 1024);
   * ```
   */
  encode(
    pass: GPUComputePassEncoder,
    from: { src: GPUBuffer; srcOff: number },
    to: { dst: GPUBuffer; dstOff: number },
    n: number,
  ): GPUBuffer {
    if (
      !Number.isSafeInteger(n) || n < 1 || 4 * (from.srcOff + n) > from.src.size ||
      4 * (to.dstOff + n) > to.dst.size
    ) {
      throw new TensorShapeError(
        `copy of ${n} words from ${from.src.label}[${from.srcOff}] (${from.src.size} bytes) to ` +
          `${to.dst.label}[${to.dstOff}] (${to.dst.size} bytes) is out of range`,
      );
    }
    const grid = grid2d(Math.ceil(n / THREADS));
    const u = this.gpu.uniform("copy words params", packUniform([from.srcOff, to.dstOff, n, grid[0]]));
    const bg = this.gpu.device.createBindGroup({
      label: "copy words",
      layout: this.#pipe.layout,
      entries: [u, from.src, to.dst].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    pass.setPipeline(this.#pipe.pipeline);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(grid[0], grid[1]);
    return u;
  }
}
