/**
 * Per-call uniforms without per-call GPU objects. A packed-cache decode step used to create, per layer, a
 * fresh uniform buffer and a fresh bind group for every kernel it recorded (attention partial and reduce,
 * quantize-append, ERS): on the H100 host that was ≈ 1 ms of recording per tiny-lm token, three times the
 * GPU time of the step. A {@link UniformArena} instead
 * - stages each call's uniform bytes into pages of one host mirror (bump allocation, aligned to the device's
 *   `minUniformBufferOffsetAlignment`), bound with a **dynamic offset**;
 * - keeps the bind groups, keyed by (layout, page, uniform size, the other buffers): a decode step after the
 *   first finds them all cached, so recording a step creates no GPU object;
 * - uploads the staged bytes with one `writeBuffer` per page ({@link UniformArena.flush}), which the owner
 *   must call after recording and before submitting; {@link UniformArena.release} (after the submit) frees
 *   the slots and throws if staged bytes were never flushed (they would have been read stale).
 * Reusing a slot after `release` is safe: a `writeBuffer` queued after a submit executes after it.
 *
 * Pipelines that take their uniform this way are built with `gpu.pipeline(label, code, { dynamicUniform: true })`
 * (binding 0 = `var<uniform>` with a dynamic offset); {@link bindUniform} binds them with an arena or, without
 * one, with a fresh uniform buffer at offset 0 (one-off dispatches, tests).
 *
 * Buffers:
 * | buffer | shape | type | use |
 * | --- | --- | --- | --- |
 * | page i | [pageBytes / 4] | u32 (UNIFORM, COPY_DST) | slots of `align`-rounded uniform structs, one per staged call |
 *
 * @example
 * ```ts
 * const arena = new UniformArena(gpu, "decode uniforms");
 * const b = bindUniform(gpu, pipe, "ers", packUniform([1, 2, 3, 4]), [src, dst], arena);
 * pass.setBindGroup(0, b.bindGroup, b.offsets);
 * // … record, then:
 * arena.flush();
 * device.queue.submit([encoder.finish()]);
 * arena.release();
 * ```
 * @module
 */
import type { PackedGpu, Pipeline } from "./util.ts";
import { GpuError, TensorShapeError } from "../../src/errors.ts";

interface Page {
  /** [pageBytes / 4] u32 uniform slots */ buffer: GPUBuffer;
  /** host mirror of `buffer` */ host: Uint32Array<ArrayBuffer>;
  /** bytes staged */ used: number;
  /** bytes of [0, used) already uploaded */ flushed: number;
}

/** Bind groups kept before the cache is cleared (stores replaced by shrinks leave stale keys behind). */
const MAX_CACHED_GROUPS = 4096;

/**
 * Staged uniform slots with cached bind groups (module doc).
 *
 * @example
 * ```ts
 * const arena = new UniformArena(gpu, "decode uniforms");
 * ```
 */
export class UniformArena {
  /** Slot alignment in bytes (the device's `minUniformBufferOffsetAlignment`). */
  readonly align: number;
  /** Bytes per page. */
  readonly pageBytes: number;
  readonly #gpu: PackedGpu;
  readonly #label: string;
  readonly #pages: Page[] = [];
  #page = 0;
  readonly #groups = new Map<string, GPUBindGroup>();
  readonly #ids = new WeakMap<object, number>();
  #nextId = 1;

  constructor(gpu: PackedGpu, label: string, pageBytes = 1 << 20) {
    this.#gpu = gpu;
    this.#label = label;
    this.align = Math.max(16, gpu.ctx.limits.minUniformBufferOffsetAlignment);
    const max = Math.min(gpu.ctx.limits.maxBufferSize, 1 << 24);
    this.pageBytes = Math.min(max, Math.max(this.align, Math.ceil(pageBytes / this.align) * this.align));
  }

  /** Calls staged since the last release whose bytes were not flushed yet. */
  get unflushed(): boolean {
    return this.#pages.some((p) => p.used > p.flushed);
  }

  /** Pages allocated so far (grows when one submission stages more than a page). */
  get pages(): number {
    return this.#pages.length;
  }

  #id(o: object): number {
    let id = this.#ids.get(o);
    if (id === undefined) {
      id = this.#nextId++;
      this.#ids.set(o, id);
    }
    return id;
  }

  /**
   * Stages `data` (a uniform struct, byte length a multiple of 16) in the next slot: its page and offset.
   *
   * @example
   * ```ts
   * const { page, offset } = arena.stage(packUniform([1, 2, 3, 4]));
   * ```
   */
  stage(data: Uint32Array<ArrayBuffer>): { page: number; offset: number } {
    const bytes = data.byteLength;
    if (bytes === 0 || bytes % 16 !== 0 || bytes > this.pageBytes) {
      throw new TensorShapeError(
        `uniform arena ${this.#label}: a uniform of ${bytes} bytes (needs a multiple of 16, at most ${this.pageBytes})`,
      );
    }
    const slot = Math.ceil(bytes / this.align) * this.align;
    while (this.#page < this.#pages.length && this.#pages[this.#page].used + slot > this.pageBytes) {
      this.#page++;
    }
    if (this.#page === this.#pages.length) {
      const buffer = this.#gpu.device.createBuffer({
        label: `${this.#label} page ${this.#page} [${this.pageBytes / 4}] u32`,
        size: this.pageBytes,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      this.#pages.push({ buffer, host: new Uint32Array(this.pageBytes / 4), used: 0, flushed: 0 });
    }
    const p = this.#pages[this.#page];
    const offset = p.used;
    p.host.set(data, offset / 4);
    p.used = offset + slot;
    return { page: this.#page, offset };
  }

  /**
   * The bind group of `layout` with binding 0 = page `page` (window of `uniformBytes`, dynamic offset) and
   * bindings 1, 2, … = `buffers` (whole buffers); created once per distinct key.
   *
   * @example
   * ```ts
   * const bg = arena.bindGroup(pipe.layout, "ers", page, 48, [src, dst]);
   * ```
   */
  bindGroup(
    layout: GPUBindGroupLayout,
    label: string,
    page: number,
    uniformBytes: number,
    buffers: readonly GPUBuffer[],
  ): GPUBindGroup {
    const pg = this.#pages[page];
    if (!pg) throw new TensorShapeError(`uniform arena ${this.#label}: no page ${page}`);
    let key = `${this.#id(layout)}|${page}|${uniformBytes}`;
    for (const b of buffers) key += `|${this.#id(b)}`;
    let g = this.#groups.get(key);
    if (!g) {
      if (this.#groups.size >= MAX_CACHED_GROUPS) this.#groups.clear();
      g = this.#gpu.device.createBindGroup({
        label,
        layout,
        entries: [
          { binding: 0, resource: { buffer: pg.buffer, offset: 0, size: uniformBytes } },
          ...buffers.map((b, i) => ({ binding: 1 + i, resource: { buffer: b } })),
        ],
      });
      this.#groups.set(key, g);
    }
    return g;
  }

  /**
   * Uploads every staged, not yet uploaded byte (one `writeBuffer` per touched page). Call after recording
   * the calls and before submitting them.
   *
   * @example
   * ```ts
   * arena.flush();
   * ```
   */
  flush(): void {
    for (const p of this.#pages) {
      if (p.used > p.flushed) {
        this.#gpu.device.queue.writeBuffer(
          p.buffer,
          p.flushed,
          p.host,
          p.flushed / 4,
          (p.used - p.flushed) / 4,
        );
        p.flushed = p.used;
      }
    }
  }

  /**
   * Frees every slot (the submission that reads them is queued). GpuError if staged bytes were never
   * flushed: that submission read stale uniforms. `discard` frees them anyway (nothing was submitted).
   *
   * @example
   * ```ts
   * arena.release();
   * ```
   */
  release(discard = false): void {
    const stale = this.unflushed;
    for (const p of this.#pages) p.used = p.flushed = 0;
    this.#page = 0;
    if (stale && !discard) {
      throw new GpuError(
        `uniform arena ${this.#label}: uniforms were recorded but not flushed before the submit (flush() missing)`,
      );
    }
  }

  /** Forgets the cached bind groups (their buffers are about to be destroyed). */
  forget(): void {
    this.#groups.clear();
  }

  /** Frees the pages. */
  destroy(): void {
    for (const p of this.#pages) p.buffer.destroy();
    this.#pages.length = 0;
    this.#groups.clear();
  }
}

/** A bound uniform call: the bind group and the dynamic offsets to set it with. */
export interface UniformBinding {
  bindGroup: GPUBindGroup;
  /** [binding 0's dynamic offset] */
  offsets: number[];
  /** The fresh uniform buffer to destroy after the submit (null when it lives in an arena). */
  uniform: GPUBuffer | null;
}

/**
 * Binds a `dynamicUniform` pipeline's group 0: binding 0 = `data`, bindings 1.. = `buffers`, through `arena`
 * (staged, cached bind group) or, without one, a fresh uniform buffer and bind group (offset 0).
 *
 * @example
 * ```ts
 * const b = bindUniform(gpu, pipe, "ers", packUniform([1, 2, 3, 4]), [src, dst]);
 * pass.setBindGroup(0, b.bindGroup, b.offsets);
 * ```
 */
export function bindUniform(
  gpu: PackedGpu,
  pipe: Pipeline,
  label: string,
  data: Uint32Array<ArrayBuffer>,
  buffers: readonly GPUBuffer[],
  arena?: UniformArena,
): UniformBinding {
  if (!pipe.dynamicUniform) {
    throw new GpuError(`bindUniform(${label}): the pipeline was not built with dynamicUniform`);
  }
  if (arena) {
    const { page, offset } = arena.stage(data);
    return {
      bindGroup: arena.bindGroup(pipe.layout, label, page, data.byteLength, buffers),
      offsets: [offset],
      uniform: null,
    };
  }
  const uniform = gpu.uniform(`${label} params`, data);
  const bindGroup = gpu.device.createBindGroup({
    label,
    layout: pipe.layout,
    entries: [
      { binding: 0, resource: { buffer: uniform, offset: 0, size: uniform.size } },
      ...buffers.map((b, i) => ({ binding: 1 + i, resource: { buffer: b } })),
    ],
  });
  return { bindGroup, offsets: [0], uniform };
}
