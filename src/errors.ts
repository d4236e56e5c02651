/**
 * Typed errors. Every error names the offending file, tensor or value so a user can act on it.
 *
 * @example
 * ```ts
 * import { PmkvqError, BudgetError } from "./errors.ts";
 * try { throw new BudgetError("layer 3 needs 4096 bytes, budget is 1024"); }
 * catch (e) { if (e instanceof PmkvqError) console.error(e.code, e.message); }
 * ```
 * @module
 */

/** Base class of every error this library throws on purpose. `code` is stable for programs to match on. */
export class PmkvqError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** `config.json` missing, unreadable, malformed, or describing an unsupported model. */
export class ConfigError extends PmkvqError {
  constructor(message: string, options?: ErrorOptions) {
    super("CONFIG", message, options);
  }
}

/** A model architecture (or feature of one) this engine does not implement. */
export class UnsupportedArchitectureError extends PmkvqError {
  constructor(message: string, options?: ErrorOptions) {
    super("UNSUPPORTED_ARCHITECTURE", message, options);
  }
}

/** A safetensors file or shard index that is truncated, oversized, inconsistent or missing. */
export class SafetensorsError extends PmkvqError {
  constructor(message: string, options?: ErrorOptions) {
    super("SAFETENSORS", message, options);
  }
}

/** A tensor whose shape or dtype does not match what the model config requires. */
export class TensorShapeError extends PmkvqError {
  constructor(message: string, options?: ErrorOptions) {
    super("TENSOR_SHAPE", message, options);
  }
}

/** Bad user input to generation: empty prompt, prompt longer than the context, bad token id, bad option. */
export class InputError extends PmkvqError {
  constructor(message: string, options?: ErrorOptions) {
    super("INPUT", message, options);
  }
}

/** A quantizer or cache parameter that is not supported (bit-width, group size, head_dim). */
export class QuantConfigError extends PmkvqError {
  constructor(message: string, options?: ErrorOptions) {
    super("QUANT_CONFIG", message, options);
  }
}

/** NaN or Infinity (or a magnitude beyond the quantizer's defined range) reached a quantizer or the logits. */
export class NonFiniteError extends PmkvqError {
  constructor(message: string, options?: ErrorOptions) {
    super("NON_FINITE", message, options);
  }
}

/** A memory budget that is impossible, or a sequence that outgrew the budget it was planned for. */
export class BudgetError extends PmkvqError {
  constructor(message: string, options?: ErrorOptions) {
    super("BUDGET", message, options);
  }
}

/** An artifact (plan, sensitivity, calibration) that is malformed, corrupted, or made for another model. */
export class ArtifactError extends PmkvqError {
  constructor(message: string, options?: ErrorOptions) {
    super("ARTIFACT", message, options);
  }
}

/** The WebGPU backend could not be used: no adapter, a lost device, a failed pipeline. */
export class GpuError extends PmkvqError {
  constructor(message: string, options?: ErrorOptions) {
    super("GPU", message, options);
  }
}
