/**
 * The evaluation harness end to end on a reduced small configuration: artifacts are profiled and calibrated
 * by the real CLIs, jobs run, and the table, JSON and SVGs are written with sane values.
 */
import assert from "node:assert/strict";
import { main } from "../src/cli/eval.ts";

Deno.test("eval: reduced small config writes results, table and plots with consistent numbers", async () => {
  const out = await Deno.makeTempDir({ prefix: "pmkvq-eval-" });
  try {
    const code = await main([
      "--config", "small", "--methods", "exact-f32,kivi2,pmkvq,pmkvq-static", "--new-tokens", "24", "--kl-tokens", "48",
      "--artifact-samples", "1", "--artifact-length", "64", "--out", out,
    ]);
    assert.equal(code, 0);
    const r = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
    const rows = r.rows as { method: string; meanPrefix: number; kl: number | null; recitePeakBytes: number; budgetBytes: number | null }[];
    assert.deepEqual(rows.map((x) => x.method).sort(), ["exact-f32", "kivi2", "pmkvq", "pmkvq-static"]);
    const exact = rows.find((x) => x.method === "exact-f32")!;
    assert.equal(exact.meanPrefix, 24, "the exact cache recites the passage");
    for (const x of rows.filter((x) => x.method.startsWith("pmkvq"))) {
      assert.ok(x.budgetBytes !== null && x.recitePeakBytes <= x.budgetBytes, `${x.method} stays within its budget`);
      assert.ok(x.kl !== null && x.kl >= 0, `${x.method} has a KL`);
    }
    const table = await Deno.readTextFile(`${out}/table.md`);
    assert.match(table, /\| pmkvq \| 2 \|/);
    for (const f of ["recitation-vs-bytes.svg", "kl-vs-bytes.svg", "layer-bits.svg", "bytes-trace.svg"]) {
      assert.match(await Deno.readTextFile(`${out}/${f}`), /^<svg /);
    }
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
