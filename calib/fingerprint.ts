/**
 * Fingerprints of calibrated models. A model with a calibration folded in (calib/fold.ts) gets the fingerprint
 *
 *   <base fingerprint>:calib:<first 16 hex digits of the calibration artifact's checksum>
 *
 * so it is never mistaken for the original, while artifacts made for the original (plans, sensitivities) can
 * still be matched against {@link baseFingerprint}. Whether such an artifact is still VALID for the smoothed
 * model is the consumer's decision: smoothing changes the cached keys (k/λ), so key statistics differ.
 *
 * @example
 * ```ts
 * const fp = calibratedFingerprint("ab12", "0123456789abcdef0123");
 * fp;                   // "ab12:calib:0123456789abcdef"
 * baseFingerprint(fp);  // "ab12"
 * ```
 * @module
 */

/** Separator between a base fingerprint and the calibration it carries. */
export const CALIB_SEPARATOR = ":calib:";

/** Hex digits of the artifact checksum kept in a calibrated fingerprint. */
export const CALIB_CHECKSUM_PREFIX = 16;

/**
 * The fingerprint of `base` with the calibration of checksum `checksum` folded in.
 *
 * @example
 * ```ts
 * calibratedFingerprint("ab12", "ffeeddccbbaa99887766"); // "ab12:calib:ffeeddccbbaa9988"
 * ```
 */
export function calibratedFingerprint(base: string, checksum: string): string {
  return `${base}${CALIB_SEPARATOR}${checksum.slice(0, CALIB_CHECKSUM_PREFIX)}`;
}

/**
 * The fingerprint of the model before any calibration was folded in (the argument itself when none was).
 *
 * @example
 * ```ts
 * baseFingerprint("ab12:calib:ffeeddccbbaa9988"); // "ab12"
 * baseFingerprint("ab12");                        // "ab12"
 * ```
 */
export function baseFingerprint(fingerprint: string): string {
  const i = fingerprint.indexOf(CALIB_SEPARATOR);
  return i < 0 ? fingerprint : fingerprint.slice(0, i);
}

/**
 * True when `fingerprint` names a model with a calibration folded in.
 *
 * @example
 * ```ts
 * isCalibratedFingerprint("ab12:calib:ffeeddccbbaa9988"); // true
 * ```
 */
export function isCalibratedFingerprint(fingerprint: string): boolean {
  return fingerprint.includes(CALIB_SEPARATOR);
}
