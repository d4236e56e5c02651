/**
 * Packed-cache WebGPU kernels: quantize_append, ERS, dequantize and fused decode attention over packed
 * K/V stores (sink / body / window of PM-KVQ, static int-b, 16-bit, KIVI), plus a GPU-side PM-KVQ layer
 * that owns its buffers. Layouts, numerics and measurements: docs/gpu-packed.md.
 *
 * | module | what |
 * | --- | --- |
 * | layout.ts | store layouts (head-major), CPU ↔ GPU converters, images of CPU caches |
 * | quantize_append.ts | f32 K/V → packed codes + sz, byte-identical to src/quant/quantizer.ts |
 * | ers.ts | Equivalent Right Shift between stores, byte-identical to src/quant/ers.ts |
 * | dequantize.ts | codes → f32, bit-identical |
 * | attention.ts | fused split-K decode attention + reduce |
 * | block_attention.ts | BlockAttention: int8-query / 8-bit-weight decode attention over one 2/4-bit segment, in independent 256-token blocks |
 * | mixed_block_attention.ts | MixedBlockAttention: BlockAttention for a 2/4-bit body + FusedAttention for the other segments (PM-KVQ sink / window), one reduce |
 * | grouped_layer.ts | GpuGroupedLayer: GroupedCache's token movement on the GPU |
 * | kivi_layout.ts, kivi_quantize.ts, kivi_layer.ts | KIVI: layout table, key-group / value quantization, GpuKiviLayer |
 * | mixkvq_layout.ts, mixkvq_quantize.ts, mixkvq_tiers.ts, mixkvq_attention.ts, mixkvq_layer.ts | MixKVQ: layout, kernels, host tier choice, fused attention, GpuMixKvqLayer |
 * | util.ts | PackedGpu (pipelines, buffers, readback) |
 *
 * @example
 * ```ts
 * import { acquireGpu } from "../device.ts";
 * import { GpuGroupedLayer, PackedGpu } from "./mod.ts";
 * const gpu = new PackedGpu(await acquireGpu());
 * const layer = await GpuGroupedLayer.create(gpu, {
 *   batch: 1, numKvHeads: 8, headDim: 128, sink: 1, window: 128, initBits: 16, finalBits: 2, budget: null, maxLen: 4096,
 * });
 * ```
 * @module
 */
export * from "./layout.ts";
export * from "./util.ts";
export * from "./quantize_append.ts";
export * from "./ers.ts";
export * from "./dequantize.ts";
export * from "./attention.ts";
export * from "./block_attention.ts";
export * from "./mixed_block_attention.ts";
export * from "./grouped_layer.ts";
export * from "./kivi_layout.ts";
export * from "./kivi_quantize.ts";
export * from "./kivi_layer.ts";
export * from "./mixkvq_layout.ts";
export * from "./mixkvq_quantize.ts";
export * from "./mixkvq_tiers.ts";
export * from "./mixkvq_attention.ts";
export * from "./mixkvq_layer.ts";
export { QUANT_WGSL } from "./wgsl_common.ts";
