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

/**
 * Base class of every error this library throws on purpose. `code` is stable for programs to match on.
 *
 * @example
 * ```ts
 * import { PmkvqError } from "./errors.ts";
 * const e = new PmkvqError("CUSTOM", "something went wrong");
 * e instanceof Error; // true
 * e.code; // "CUSTOM"
 * ```
 */
export class PmkvqError extends Error {
  /** Stable machine-readable error code (e.g. `"CONFIG"`, `"BUDGET"`); each subclass sets its own. */
  readonly code: string;
  /**
   * Creates an error with the given code and message.
   *
   * @param code stable error code (see {@link PmkvqError.code})
   * @param message human-readable message naming the offending file, tensor or value
   * @param options standard `ErrorOptions` (e.g. `cause`)
   */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * `config.json` missing, unreadable, malformed, or describing an unsupported model.
 *
 * @example
 * ```ts
 * import { ConfigError } from "./errors.ts";
 * const e = new ConfigError("models/tiny-lm/config.json: missing hidden_size");
 * e.code; // "CONFIG"
 * ```
 */
export class ConfigError extends PmkvqError {
  /**
   * Creates the error with code `"CONFIG"`.
   *
   * @param message what is wrong and where
   * @param options standard `ErrorOptions` (e.g. `cause`)
   */
  constructor(message: string, options?: ErrorOptions) {
    super("CONFIG", message, options);
  }
}

/**
 * A model architecture (or feature of one) this engine does not implement.
 *
 * @example
 * ```ts
 * import { UnsupportedArchitectureError } from "./errors.ts";
 * const e = new UnsupportedArchitectureError("MistralForCausalLM is not supported");
 * e.code; // "UNSUPPORTED_ARCHITECTURE"
 * ```
 */
export class UnsupportedArchitectureError extends PmkvqError {
  /**
   * Creates the error with code `"UNSUPPORTED_ARCHITECTURE"`.
   *
   * @param message what is wrong and where
   * @param options standard `ErrorOptions` (e.g. `cause`)
   */
  constructor(message: string, options?: ErrorOptions) {
    super("UNSUPPORTED_ARCHITECTURE", message, options);
  }
}

/**
 * A safetensors file or shard index that is truncated, oversized, inconsistent or missing.
 *
 * @example
 * ```ts
 * import { SafetensorsError } from "./errors.ts";
 * const e = new SafetensorsError("model.safetensors: header length exceeds file size");
 * e.code; // "SAFETENSORS"
 * ```
 */
export class SafetensorsError extends PmkvqError {
  /**
   * Creates the error with code `"SAFETENSORS"`.
   *
   * @param message what is wrong and where
   * @param options standard `ErrorOptions` (e.g. `cause`)
   */
  constructor(message: string, options?: ErrorOptions) {
    super("SAFETENSORS", message, options);
  }
}

/**
 * A tensor whose shape or dtype does not match what the model config requires.
 *
 * @example
 * ```ts
 * import { TensorShapeError } from "./errors.ts";
 * const e = new TensorShapeError("model.embed_tokens.weight: expected [32000, 512], got [32000, 256]");
 * e.code; // "TENSOR_SHAPE"
 * ```
 */
export class TensorShapeError extends PmkvqError {
  /**
   * Creates the error with code `"TENSOR_SHAPE"`.
   *
   * @param message what is wrong and where
   * @param options standard `ErrorOptions` (e.g. `cause`)
   */
  constructor(message: string, options?: ErrorOptions) {
    super("TENSOR_SHAPE", message, options);
  }
}

/**
 * Bad user input to generation: empty prompt, prompt longer than the context, bad token id, bad option.
 *
 * @example
 * ```ts
 * import { InputError } from "./errors.ts";
 * const e = new InputError("prompt is empty");
 * e.code; // "INPUT"
 * ```
 */
export class InputError extends PmkvqError {
  /**
   * Creates the error with code `"INPUT"`.
   *
   * @param message what is wrong and where
   * @param options standard `ErrorOptions` (e.g. `cause`)
   */
  constructor(message: string, options?: ErrorOptions) {
    super("INPUT", message, options);
  }
}

/**
 * A quantizer or cache parameter that is not supported (bit-width, group size, head_dim).
 *
 * @example
 * ```ts
 * import { QuantConfigError } from "./errors.ts";
 * const e = new QuantConfigError("bit-width 3 is not supported");
 * e.code; // "QUANT_CONFIG"
 * ```
 */
export class QuantConfigError extends PmkvqError {
  /**
   * Creates the error with code `"QUANT_CONFIG"`.
   *
   * @param message what is wrong and where
   * @param options standard `ErrorOptions` (e.g. `cause`)
   */
  constructor(message: string, options?: ErrorOptions) {
    super("QUANT_CONFIG", message, options);
  }
}

/**
 * NaN or Infinity (or a magnitude beyond the quantizer's defined range) reached a quantizer or the logits.
 *
 * @example
 * ```ts
 * import { NonFiniteError } from "./errors.ts";
 * const e = new NonFiniteError("layer 2 keys contain NaN");
 * e.code; // "NON_FINITE"
 * ```
 */
export class NonFiniteError extends PmkvqError {
  /**
   * Creates the error with code `"NON_FINITE"`.
   *
   * @param message what is wrong and where
   * @param options standard `ErrorOptions` (e.g. `cause`)
   */
  constructor(message: string, options?: ErrorOptions) {
    super("NON_FINITE", message, options);
  }
}

/**
 * A memory budget that is impossible, or a sequence that outgrew the budget it was planned for.
 *
 * @example
 * ```ts
 * import { BudgetError } from "./errors.ts";
 * const e = new BudgetError("layer 3 needs 4096 bytes, budget is 1024");
 * e.code; // "BUDGET"
 * ```
 */
export class BudgetError extends PmkvqError {
  /**
   * Creates the error with code `"BUDGET"`.
   *
   * @param message what is wrong and where
   * @param options standard `ErrorOptions` (e.g. `cause`)
   */
  constructor(message: string, options?: ErrorOptions) {
    super("BUDGET", message, options);
  }
}

/**
 * An artifact (plan, sensitivity, calibration) that is malformed, corrupted, or made for another model.
 *
 * @example
 * ```ts
 * import { ArtifactError } from "./errors.ts";
 * const e = new ArtifactError("plan.json: checksum mismatch");
 * e.code; // "ARTIFACT"
 * ```
 */
export class ArtifactError extends PmkvqError {
  /**
   * Creates the error with code `"ARTIFACT"`.
   *
   * @param message what is wrong and where
   * @param options standard `ErrorOptions` (e.g. `cause`)
   */
  constructor(message: string, options?: ErrorOptions) {
    super("ARTIFACT", message, options);
  }
}

/**
 * The WebGPU backend could not be used: no adapter, a lost device, a failed pipeline.
 *
 * @example
 * ```ts
 * import { GpuError } from "./errors.ts";
 * const e = new GpuError("no WebGPU adapter found");
 * e.code; // "GPU"
 * ```
 */
export class GpuError extends PmkvqError {
  /**
   * Creates the error with code `"GPU"`.
   *
   * @param message what is wrong and where
   * @param options standard `ErrorOptions` (e.g. `cause`)
   */
  constructor(message: string, options?: ErrorOptions) {
    super("GPU", message, options);
  }
}
