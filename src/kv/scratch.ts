/**
 * The f32 working copy the CPU backend attends over: rows of `row` floats, token-major, grown by doubling in
 * steps of 128 tokens. Backend scratch, reported as `scratchBytes`, never as cache storage.
 *
 * @example
 * ```ts
 * import { ScratchRows } from "./scratch.ts";
 * const s = new ScratchRows(256);
 * s.ensure(3);        // capacity 128 tokens
 * s.data.length;      // 32768
 * ```
 * @module
 */

/**
 * Capacity granularity of the scratch, in tokens.
 *
 * @example
 * ```ts
 * import { SCRATCH_STEP_TOKENS, ScratchRows } from "./scratch.ts";
 * const s = new ScratchRows(1); s.ensure(1);
 * s.capacity === SCRATCH_STEP_TOKENS; // true
 * ```
 */
export const SCRATCH_STEP_TOKENS = 128;

/**
 * A growable [capacity, row] Float32Array.
 *
 * @example
 * ```ts
 * import { ScratchRows } from "./scratch.ts";
 * const s = new ScratchRows(256);
 * s.ensure(10);
 * s.rows(10).length; // 2560
 * ```
 */
export class ScratchRows {
  readonly row: number;
  /** [capacity, row]; replaced (not resized) when it grows. */
  data: Float32Array = new Float32Array(0);

  /**
   * @example
   * ```ts
   * import { ScratchRows } from "./scratch.ts";
   * new ScratchRows(2 * 128).bytes; // 0
   * ```
   */
  constructor(row: number) {
    this.row = row;
  }

  /** Capacity in tokens. */
  get capacity(): number {
    return this.data.length / this.row;
  }

  /** Bytes of the working copy. */
  get bytes(): number {
    return this.data.byteLength;
  }

  /**
   * Makes room for `tokens` rows, keeping the first `keep` rows (default: all).
   *
   * @example
   * ```ts
   * import { ScratchRows } from "./scratch.ts";
   * const s = new ScratchRows(4);
   * s.ensure(200); s.capacity; // 256
   * ```
   */
  ensure(tokens: number, keep = this.capacity): void {
    if (tokens <= this.capacity) return;
    const grown = Math.max(tokens, 2 * this.capacity);
    const cap = Math.ceil(grown / SCRATCH_STEP_TOKENS) * SCRATCH_STEP_TOKENS;
    const next = new Float32Array(cap * this.row);
    next.set(this.data.subarray(0, Math.min(keep, this.capacity) * this.row));
    this.data = next;
  }

  /**
   * The first `tokens` rows, as a view.
   *
   * @example
   * ```ts
   * import { ScratchRows } from "./scratch.ts";
   * const s = new ScratchRows(2); s.ensure(1);
   * s.rows(1).length; // 2
   * ```
   */
  rows(tokens: number): Float32Array {
    return this.data.subarray(0, tokens * this.row);
  }

  /**
   * Drops the working copy.
   *
   * @example
   * ```ts
   * import { ScratchRows } from "./scratch.ts";
   * const s = new ScratchRows(2); s.ensure(1); s.clear(); s.bytes; // 0
   * ```
   */
  clear(): void {
    this.data = new Float32Array(0);
  }
}
