import assert from "node:assert/strict";
import { markdownTable, rowsOf } from "./report.ts";
import type { JobResult } from "./job.ts";

function job(method: string, level: number | null, prefix: number): JobResult {
  return {
    method,
    level,
    task: { kind: "recite", passage: 0 },
    budgetBytes: level === null ? null : level * 1000,
    plannedBits: null,
    recitation: {
      prefixMatch: prefix,
      matchFraction: prefix / 10,
      newTokens: 10,
      peakBytes: 2048,
      layerBits: [4, 4],
      decodeTokensPerSecond: 5,
    } as unknown as JobResult["recitation"],
    seconds: 1,
  };
}

Deno.test("rowsOf: unbudgeted rows first, then by level, methods in table order whatever the job order", () => {
  const rows = rowsOf([
    job("pmkvq-static", 3, 1),
    job("int4", null, 2),
    job("pmkvq", 3, 7),
    job("exact-f32", null, 10),
    job("pmkvq", 2, 5),
  ]);
  assert.deepEqual(rows.map((r) => `${r.method}@${r.level ?? "-"}`), [
    "exact-f32@-",
    "int4@-",
    "pmkvq@2",
    "pmkvq@3",
    "pmkvq-static@3",
  ]);
  const table = markdownTable(rows).split("\n");
  assert.match(table[2], /^\| exact-f32 \|/);
  assert.match(table[4], /\| 5 \(5\) \/ 10 \|/);
});
