/**
 * # pmkvq
 *
 * PM-KVQ — Progressive Mixed-precision KV-cache Quantization for long chain-of-thought LLMs
 * (arXiv 2505.18610) — in TypeScript for Deno, with a bit-exact CPU backend and a WebGPU backend.
 *
 * - {@link loadModel}: Hugging Face Llama / Qwen2 directories (sharded safetensors, bf16/f16/f32).
 * - {@link createCpuEngine}: the reference backend (the living spec of every kernel).
 * - {@link createCache}: exact, static int8/int4/int2, KIVI and PM-KVQ caches behind one {@link KVCache}.
 * - {@link generate}: prefill + decode loop with greedy or seeded sampling.
 * - {@link createGpuEngine}: the same engine on WebGPU (exact, static int, KIVI and PM-KVQ caches).
 * - The quantizer ({@link quantizeRows}, {@link PACKED_FORMATS}, {@link ersRows}), plans
 *   ({@link planFromTotalBudget}), the sensitivity profiler ({@link profileSensitivity}), the
 *   branch-and-bound allocator ({@link allocatePlan}) and calibration ({@link calibrateModel},
 *   {@link applyCalibration}).
 *
 * @example
 * ```ts
 * import { loadModel, createCpuEngine, generate, loadTokenizer } from "./mod.ts";
 * const model = await loadModel("models/tiny-lm");
 * const tok = await loadTokenizer(model.tokenizerPath!);
 * const engine = createCpuEngine(model, { method: "exact" });
 * const out = await generate(engine, tok.encode("Call me Ishmael."), { maxNewTokens: 32 });
 * console.log(tok.decode(out.ids));
 * ```
 * @module
 */
export * from "./src/errors.ts";
export type { BackendName, Engine, PrefillOptions } from "./src/engine.ts";
export type {
  CacheSpec,
  CacheStats,
  KVCache,
  KVShape,
  LayerStats,
  LayerView,
  ShrinkEvent,
} from "./src/kv/cache.ts";
export type { LayerWeights, LoadedModel, ModelConfig, ModelWeights, RopeScaling } from "./src/model/types.ts";
export { loadModel, type LoadOptions } from "./src/model/load.ts";
export { loadTokenizer, TextTokenizer } from "./src/model/tokenizer.ts";
export { createCache, kvShapeOf } from "./src/kv/factory.ts";
export { CpuEngine, createCpuEngine } from "./cpu/engine.ts";
export type { CpuForward, ForwardHooks, ForwardOptions, LogitsMode } from "./cpu/forward.ts";
export { generate, type GenerateOptions, type GenerateResult } from "./src/generate.ts";
export { argmax, makeSampler, type SamplingOptions } from "./src/sampling.ts";
export {
  type BodyChunk,
  GroupedCache,
  type GroupedConfig,
  type GroupedLayerExport,
  type KVBuffers,
} from "./src/kv/grouped.ts";
export { KiviCache, type KiviLayerExport, type KiviValueChunk } from "./src/kv/kivi.ts";
export {
  type MixBlock,
  type MixKeyBlock,
  MixKvqCache,
  type MixKvqConfig,
  type MixKvqLayerExport,
  type TierCounts,
} from "./src/kv/mixkvq.ts";
export { ExactCache } from "./src/kv/exact.ts";
export {
  checkBits,
  formatFor,
  groupSizeFor,
  PACKED_FORMATS,
  type PackedFormat,
  QUANT_BITS,
  type QuantBits,
} from "./src/quant/format.ts";
export {
  dequantizeRows,
  fakeQuantize,
  type NumericArray,
  packCodes,
  type QuantBuffers,
  quantizeRows,
  roundHalfEven,
  unpackCodes,
} from "./src/quant/quantizer.ts";
export { ersCode, ersRows } from "./src/quant/ers.ts";
export {
  checkPlanFits,
  type KvPlan,
  planFromFinalBits,
  planFromTotalBudget,
  type PlanOptions,
  planToCacheSpec,
  readPlan,
  uniformPlan,
  writePlan,
} from "./src/kv/plan.ts";
export { type AllocateOptions, allocatePlan } from "./src/alloc/allocate.ts";
export {
  type AllocationProblem,
  type AllocationResult,
  solveAllocation,
  type SolveOptions,
} from "./src/alloc/bnb.ts";
export {
  type ProfileProgress,
  profileSensitivity,
  type ProfileSettings,
  type SensitivityResult,
  type SensitivityTable,
} from "./src/profile/sensitivity.ts";
export {
  readSensitivity,
  SENSITIVITY_FORMAT,
  SENSITIVITY_VERSION,
  type SensitivityArtifact,
  writeSensitivity,
} from "./src/profile/artifact.ts";
export type { Encoder } from "./calib/corpus.ts";
export { calibrateModel, type CalibrateOptions, type CalibrationRun } from "./calib/calibrate.ts";
export type { MaxKeys } from "./calib/maxkeys.ts";
export type { LayerSearchResult } from "./calib/search.ts";
export { applyCalibration } from "./calib/fold.ts";
export {
  CALIBRATION_FORMAT,
  CALIBRATION_VERSION,
  type CalibrationArtifact,
  type CalibrationLayer,
  type CalibrationSettings,
  readCalibration,
  writeCalibration,
} from "./calib/artifact.ts";
export { createGpuEngine, GpuEngine, type GpuEngineOptions, type GreedyManyOptions } from "./gpu/engine.ts";
export { acquireGpu, type AcquireOptions, findAdapter, type GpuContext } from "./gpu/device.ts";
export type { CacheStepFields, GpuCache, GpuCacheEnv, GpuCacheIO, GpuCacheShape } from "./gpu/cache/types.ts";
export type { Activations, ForwardSizes, GpuForward } from "./gpu/forward.ts";
export type { GpuLayerWeights, GpuMatrix, GpuWeights } from "./gpu/weights.ts";
export type { BindingKind, Kernel, KernelRegistry } from "./gpu/registry.ts";
export type { KernelTuning } from "./gpu/tuning.ts";
export type { WeightFormat } from "./gpu/kernels/wgsl_util.ts";
