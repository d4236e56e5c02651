/**
 * Human-readable cache summaries for the CLI.
 * @module
 */
import type { CacheStats } from "../kv/cache.ts";

/** "1.50 MiB" style. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(2)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

/** Per-layer bits/bytes and shrink events, one line each. */
export function formatCacheSummary(c: CacheStats): string {
  const lines = c.layers.map((l, i) =>
    `  layer ${i}: ${l.bits}-bit, ${l.tokens} tokens, ${formatBytes(l.bytes)}` +
    (l.budget !== null ? ` of ${formatBytes(l.budget)} budget` : "")
  );
  const ev = c.events.map((e) => `  step ${e.step}: layer ${e.layer} ${e.from} -> ${e.to} bits`);
  return lines.join("\n") + "\n" + (ev.length ? `shrink events:\n${ev.join("\n")}\n` : "");
}
