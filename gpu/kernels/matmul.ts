/**
 * `matmul` op (mirrors cpu/ops.ts `matmul`; WGSL in matmul.wgsl.ts): picks the matrix-vector path for one
 * row (decode, LM head) and the registry's prefill path (tiled or blocked, gpu/tuning.ts) for more. Both
 * pipelines share one group-0 layout, so one bind group serves both. A `swiglu` variant has only the
 * matrix-vector path.
 *
 * Buffers ({@link MatmulBuffers}):
 * | name | shape | type |
 * |---|---|---|
 * | x | [rows, K] | f32 |
 * | w | [N, K] ([2N, K] gate;up for swiglu) | bf16 pairs packed in u32, or f32 ({@link MatmulVariant.weights}) |
 * | out | [rows, N] | f32 (accumulated into when `residual`) |
 * | bias | [N] | f32, when `bias` |
 *
 * @example
 * ```ts
 * const mm = await MatmulKernel.create(reg, { K: 384, N: 1024, weights: "bf16", bias: false, residual: false });
 * const bg = mm.bind({ x, w, out });
 * mm.encode(pass, bg, 1); // decode: one row
 * ```
 * @module
 */
import type { Kernel, KernelRegistry } from "../registry.ts";
import { grid2d } from "../buffers.ts";
import {
  BLOCK_N,
  BLOCK_T,
  matmulBlockedWgsl,
  matmulTiledWgsl,
  type MatmulVariant,
  matvecWgsl,
  TILE,
} from "./matmul.wgsl.ts";

export type { MatmulVariant } from "./matmul.wgsl.ts";

/** The buffers of one matmul. */
export interface MatmulBuffers {
  /** [rows, K] f32 */ x: GPUBuffer;
  /** [N, K] ([2N, K] for swiglu) bf16-pairs-in-u32 or f32 */ w: GPUBuffer;
  /** [rows, N] f32 */ out: GPUBuffer;
  /** [N] f32 */ bias?: GPUBuffer;
}

/**
 * Both compiled paths of one matmul variant.
 *
 * @example
 * ```ts
 * const k = await MatmulKernel.create(reg, variant);
 * ```
 */
export class MatmulKernel {
  readonly variant: MatmulVariant;
  /** Matrix-vector path. */
  readonly vec: Kernel;
  /** Multi-row path, or null for swiglu variants. */
  readonly multi: Kernel | null;
  readonly #reg: KernelRegistry;
  readonly #lanes: number;
  readonly #blocked: boolean;

  private constructor(reg: KernelRegistry, variant: MatmulVariant, vec: Kernel, multi: Kernel | null) {
    this.#reg = reg;
    this.variant = variant;
    this.vec = vec;
    this.multi = multi;
    this.#lanes = reg.tuning.matvecLanes;
    this.#blocked = reg.tuning.prefillMatmul === "blocked";
  }

  /**
   * Compiles (or reuses) the two pipelines of `variant`.
   *
   * @example
   * ```ts
   * const lmHead = await MatmulKernel.create(reg, { K: 384, N: 4096, weights: "bf16", bias: false, residual: false });
   * ```
   */
  static async create(reg: KernelRegistry, variant: MatmulVariant): Promise<MatmulKernel> {
    const v = variant;
    const kinds = v.bias
      ? ["read-only-storage", "read-only-storage", "storage", "read-only-storage"] as const
      : ["read-only-storage", "read-only-storage", "storage"] as const;
    const tag = `${v.K}x${v.N}:${v.weights}:${v.bias ? "b" : ""}${v.residual ? "r" : ""}${
      v.swiglu ? "s" : ""
    }`;
    const lanes = reg.tuning.matvecLanes;
    const multi = v.swiglu
      ? null
      : reg.tuning.prefillMatmul === "blocked"
      ? reg.kernel(`matmul_blocked:${tag}`, kinds, () => matmulBlockedWgsl(v))
      : reg.kernel(`matmul_tiled:${tag}`, kinds, () => matmulTiledWgsl(v));
    const [vec, m] = await Promise.all([
      reg.kernel(`matvec${lanes}:${tag}`, kinds, () => matvecWgsl(v, lanes)),
      multi,
    ]);
    return new MatmulKernel(reg, variant, vec, m);
  }

  /**
   * A bind group over `b` (valid for both paths).
   *
   * @example
   * ```ts
   * const bg = mm.bind({ x: xn, w: qkvWeight, out: qkv, bias: qkvBias });
   * ```
   */
  bind(b: MatmulBuffers): GPUBindGroup {
    if (this.variant.bias !== (b.bias !== undefined)) {
      throw new RangeError(`matmul ${this.vec.key}: bias buffer ${b.bias ? "given" : "missing"}`);
    }
    const entries: GPUBindGroupEntry[] = [
      { binding: 0, resource: { buffer: b.x } },
      { binding: 1, resource: { buffer: b.w } },
      { binding: 2, resource: { buffer: b.out } },
    ];
    if (b.bias) entries.push({ binding: 3, resource: { buffer: b.bias } });
    return this.#reg.ctx.device.createBindGroup({ label: this.vec.key, layout: this.vec.layout, entries });
  }

  /**
   * Records the matmul of `rows` rows (must equal step.T for the multi-row path; 1 uses the matvec path).
   * The step bind group (group 1) must already be set on `pass`.
   *
   * @example
   * ```ts
   * mm.encode(pass, bg, T);
   * ```
   */
  encode(pass: GPUComputePassEncoder, bindGroup: GPUBindGroup, rows: number): void {
    const N = this.variant.N;
    if (rows === 1) {
      pass.setPipeline(this.vec.pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(...grid2d(this.#reg.ctx, Math.ceil(N / (256 / this.#lanes))));
    } else if (!this.multi) {
      throw new RangeError(`matmul ${this.vec.key}: a swiglu variant runs one row only (got ${rows})`);
    } else {
      pass.setPipeline(this.multi.pipeline);
      pass.setBindGroup(0, bindGroup);
      if (this.#blocked) pass.dispatchWorkgroups(Math.ceil(N / (BLOCK_N * 64)), Math.ceil(rows / BLOCK_T));
      else pass.dispatchWorkgroups(Math.ceil(N / TILE), Math.ceil(rows / TILE));
    }
  }
}
