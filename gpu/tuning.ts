/**
 * Kernel tuning by adapter kind. Software adapters (llvmpipe/lavapipe, SwiftShader) run each invocation on a
 * CPU thread, where every `workgroupBarrier` costs a coroutine switch of the whole workgroup and shared
 * memory buys nothing; real GPUs want coalesced loads and workgroup-memory tiles. Both variants compute the
 * same sums (in a different order) and the conformance suite runs both on whatever adapter is present.
 * | knob | GPU | software adapter |
 * |---|---|---|
 * | matvecLanes (threads per output row of the decode matmul) | 32 (coalesced, tree-reduced) | 1 (no barriers) |
 * | prefillMatmul | "shared" (64×64 tiles in workgroup memory) | "blocked" (4×8 outputs per thread, no barriers) |
 * | attention | "workgroup" (64 threads per KV head and 64-token chunk) | "serial" (one invocation per query head and split) |
 *
 * @example
 * ```ts
 * const tuning = tuningFor(ctx); // SOFTWARE_TUNING on llvmpipe
 * const reg = new KernelRegistry(ctx, tuning);
 * ```
 * @module
 */
import type { GpuContext } from "./device.ts";

/** Kernel variant choices (see the module doc). */
export interface KernelTuning {
  /** Threads per output row in the matrix-vector matmul: 1 or a power of two ≤ 256. */
  matvecLanes: number;
  /** Algorithm of the multi-row (prefill) matmul. */
  prefillMatmul: "shared" | "blocked";
  /** Algorithm of the attention kernels. */
  attention: "workgroup" | "serial";
}

/** Tuning for real GPUs. */
export const GPU_TUNING: KernelTuning = { matvecLanes: 32, prefillMatmul: "shared", attention: "workgroup" };
/** Tuning for software adapters. */
export const SOFTWARE_TUNING: KernelTuning = {
  matvecLanes: 1,
  prefillMatmul: "blocked",
  attention: "serial",
};

/**
 * True for CPU-emulated adapters (the adapter says it is a fallback, or names llvmpipe/lavapipe/SwiftShader).
 *
 * @example
 * ```ts
 * if (isSoftwareAdapter(ctx)) console.log("slow software adapter:", ctx.description);
 * ```
 */
export function isSoftwareAdapter(ctx: Pick<GpuContext, "adapter" | "description">): boolean {
  const info = ctx.adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  return info.isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader/i.test(ctx.description);
}

/**
 * The tuning for `ctx`'s adapter; `PMKVQ_GPU_TUNING=gpu|software` overrides (for experiments).
 *
 * @example
 * ```ts
 * const tuning = tuningFor(ctx);
 * ```
 */
export function tuningFor(ctx: Pick<GpuContext, "adapter" | "description">): KernelTuning {
  let forced: string | undefined;
  try {
    forced = Deno.env.get("PMKVQ_GPU_TUNING");
  } catch {
    forced = undefined; // no env permission (or not Deno): use the adapter's kind
  }
  if (forced === "gpu") return GPU_TUNING;
  if (forced === "software") return SOFTWARE_TUNING;
  return isSoftwareAdapter(ctx) ? SOFTWARE_TUNING : GPU_TUNING;
}
