/**
 * Turns the CLI's KV-cache flags into a {@link CacheSpec}.
 * @module
 */
import type { CacheSpec } from "../kv/cache.ts";
import type { LoadedModel } from "../model/types.ts";
import { InputError } from "../errors.ts";

/** Help text for the KV flags. */
export const KV_FLAGS_HELP = `  --kv METHOD            exact (default, f32)\n`;

/** Flags relevant to the cache. */
export interface KvFlagValues {
  kv?: string;
  "kv-budget"?: string;
  "kv-bits"?: string;
  plan?: string;
  "max-len"?: string;
  sink?: string;
  window?: string;
}

/** Builds the cache spec for a run of `plannedLen` tokens. */
export function cacheSpecFromFlags(values: KvFlagValues, _model: LoadedModel, _plannedLen: number): Promise<CacheSpec> {
  const kv = values.kv ?? "exact";
  if (kv === "exact") return Promise.resolve({ method: "exact", dtype: "f32" });
  return Promise.reject(new InputError(`--kv ${JSON.stringify(kv)} is not supported`));
}
