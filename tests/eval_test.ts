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
      "--config",
      "small",
      "--methods",
      "exact-f32,kivi2,pmkvq,pmkvq-static",
      "--new-tokens",
      "24",
      "--kl-tokens",
      "48",
      "--artifact-samples",
      "1",
      "--artifact-length",
      "64",
      "--out",
      out,
    ]);
    assert.equal(code, 0);
    const r = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
    const rows = r.rows as {
      method: string;
      meanPrefix: number;
      kl: number | null;
      recitePeakBytes: number;
      budgetBytes: number | null;
    }[];
    assert.deepEqual(rows.map((x) => x.method).sort(), ["exact-f32", "kivi2", "pmkvq", "pmkvq-static"]);
    const exact = rows.find((x) => x.method === "exact-f32")!;
    assert.equal(exact.meanPrefix, 24, "the exact cache recites the passage");
    for (const x of rows.filter((x) => x.method.startsWith("pmkvq"))) {
      assert.ok(
        x.budgetBytes !== null && x.recitePeakBytes <= x.budgetBytes,
        `${x.method} stays within its budget`,
      );
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

const gpu = await (async () => {
  const { findAdapter } = await import("../gpu/device.ts");
  const adapter = await findAdapter().catch(() => null);
  if (!adapter) console.warn("SKIPPED: eval --backend webgpu is ignored: no WebGPU adapter on this machine");
  return adapter !== null;
})();

Deno.test({
  name:
    "eval --backend webgpu: GPU-capable methods run on WebGPU with the CPU's results; the rest on the CPU",
  ignore: !gpu,
  fn: async () => {
    const dirs: string[] = [];
    try {
      const results: Record<
        string,
        {
          method: string;
          task: { kind: string };
          backend: string;
          recitation?: { prefixMatch: number; layerBits: number[]; events: unknown[] };
          teacherForced?: { kl: number; top1: number };
        }[]
      > = {};
      for (const backend of ["cpu", "webgpu"]) {
        const out = await Deno.makeTempDir({ prefix: `pmkvq-eval-${backend}-` });
        dirs.push(out);
        // the same artifacts for both runs: made by the first run, passed to the second
        const artifacts = backend === "cpu" ? [] : [
          "--sensitivity",
          `${dirs[0]}/sensitivity.json`,
          "--calibration",
          `${dirs[0]}/calibration-s4.json`,
          "--calibration-nopi",
          `${dirs[0]}/calibration-s1.json`,
        ];
        const code = await main([
          "--config",
          "small",
          "--methods",
          "exact-f32,kivi2,pmkvq,mixkvq",
          "--new-tokens",
          "40",
          "--kl-tokens",
          "40",
          "--artifact-samples",
          "1",
          "--artifact-length",
          "64",
          "--backend",
          backend,
          "--out",
          out,
          ...artifacts,
        ]);
        assert.equal(code, 0);
        results[backend] = JSON.parse(await Deno.readTextFile(`${out}/results.json`)).results;
      }
      for (const r of results.webgpu) {
        // every method in --methods has a WebGPU cache (mixkvq since gpu/cache/mixkvq.ts)
        const want = "webgpu";
        assert.ok(
          r.backend.startsWith(want),
          `${r.method} ${r.task.kind} ran on ${r.backend}, expected ${want}`,
        );
        const c = results.cpu.find((x) =>
          x.method === r.method && JSON.stringify(x.task) === JSON.stringify(r.task)
        )!;
        assert.equal(c.backend, "cpu");
        if (r.recitation) {
          assert.equal(r.recitation.prefixMatch, c.recitation!.prefixMatch, `${r.method}: same recitation`);
          assert.deepEqual(r.recitation.layerBits, c.recitation!.layerBits);
          assert.deepEqual(r.recitation.events, c.recitation!.events, `${r.method}: same shrink events`);
        }
        if (r.teacherForced) {
          // GPU and CPU logits differ by float rounding only (≤ 2e-4, tests/conformance_test.ts)
          assert.ok(
            Math.abs(r.teacherForced.kl - c.teacherForced!.kl) <= 1e-3 + 0.05 * c.teacherForced!.kl,
            `${r.method}: KL ${r.teacherForced.kl} vs cpu ${c.teacherForced!.kl}`,
          );
          assert.ok(Math.abs(r.teacherForced.top1 - c.teacherForced!.top1) <= 0.05, `${r.method}: top-1`);
        }
      }
    } finally {
      for (const d of dirs) await Deno.remove(d, { recursive: true });
    }
  },
});
