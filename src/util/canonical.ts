/**
 * Canonical JSON (object keys sorted at every level, no whitespace) and its SHA-256: the checksum of
 * profiler artifacts. Numbers are written as JavaScript writes them (shortest round-trip form), so parsing and
 * re-serializing an artifact reproduces the same text.
 *
 * @example
 * ```ts
 * import { canonicalJson, sha256Hex } from "./canonical.ts";
 * canonicalJson({ b: [1, 2], a: "x" }); // '{"a":"x","b":[1,2]}'
 * await sha256Hex("abc"); // "ba7816bf..."
 * ```
 * @module
 */

/**
 * Canonical JSON text of a JSON value. Throws TypeError for values JSON cannot hold exactly (NaN, ±Infinity,
 * undefined, functions), naming the path, instead of silently writing `null`.
 *
 * @example
 * ```ts
 * import { canonicalJson } from "./canonical.ts";
 * canonicalJson({ z: 1, a: { y: null, b: true } }); // '{"a":{"b":true,"y":null},"z":1}'
 * ```
 */
export function canonicalJson(v: unknown, path = "$"): string {
  if (v === null || typeof v === "boolean" || typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new TypeError(`${path} is ${v}, which JSON cannot hold`);
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map((x, i) => canonicalJson(x, `${path}[${i}]`)).join(",")}]`;
  if (typeof v === "object") {
    const o = v as Record<string, unknown>;
    // Like JSON.stringify, object members whose value is undefined are left out.
    const keys = Object.keys(o).sort().filter((k) => o[k] !== undefined);
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k], `${path}.${k}`)}`).join(",")}}`;
  }
  throw new TypeError(`${path} is a ${typeof v}, which JSON cannot hold`);
}

/**
 * Lower-case hex SHA-256 of the UTF-8 bytes of `text`.
 *
 * @example
 * ```ts
 * import { sha256Hex } from "./canonical.ts";
 * await sha256Hex(""); // "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
 * ```
 */
export async function sha256Hex(text: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}
