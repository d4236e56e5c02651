/**
 * Paths of fixtures used by tests: the embedded model and, when present, `../shared` beside the checkout.
 * @module
 */
import { fileURLToPath as fromFileUrl } from "node:url";

/** Repository root. */
export const ROOT = fromFileUrl(new URL("../../", import.meta.url));
/** The embedded tiny-lm. */
export const TINY_LM = `${ROOT}models/tiny-lm`;
/** ../shared/models/random (present on developer machines and in CI, not in a bare clone). */
export const SHARED_RANDOM = `${ROOT}../shared/models/random`;

/** True when `path` exists. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Reason a test is ignored when a fixture is absent; printed so the skip is visible. */
export function requireFixture(path: string): boolean {
  if (exists(path)) return false;
  console.warn(`SKIPPED: fixture ${path} is absent (it lives in ../shared beside the checkout)`);
  return true;
}
