/**
 * `deno task run` end to end on the CPU: the JSON report, prompt inputs, calibration, and typed errors for
 * bad flags (tiny-lm, a few tokens per case).
 */
import assert from "node:assert/strict";
import { main } from "./run.ts";
import { ArtifactError, InputError } from "../errors.ts";

const CAL = new URL("../../docs/artifacts/calibration-tiny-lm-s4.json", import.meta.url).pathname;

async function run(args: string[]): Promise<Record<string, unknown>> {
  const dir = await Deno.makeTempDir({ prefix: "pmkvq-run-" });
  try {
    const code = await main([...args, "--quiet", "--json", `${dir}/r.json`]);
    assert.equal(code, 0);
    return JSON.parse(await Deno.readTextFile(`${dir}/r.json`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("run: --prompt-ids in, the JSON report holds the ids, the cache and the speed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ids.json`, JSON.stringify([5, 17, 300, 42]));
    const r = await run(["--prompt-ids", `${dir}/ids.json`, "--max-new-tokens", "6", "--kv", "int8"]);
    assert.deepEqual(r.promptIds, [5, 17, 300, 42]);
    assert.equal((r.generatedIds as number[]).length, 6);
    assert.equal(r.backend, "cpu");
    assert.equal((r.cacheSpec as { method: string }).method, "static");
    const cache = r.cache as { bytes: number; layers: unknown[] };
    assert.ok(cache.bytes > 0 && cache.layers.length === 6);
    assert.equal(r.calibration, null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run: --calibration is folded in and reported; at 16 bits the greedy tokens equal the unsmoothed model's", async () => {
  const plain = await run([
    "--prompt",
    "Call me Ishmael.",
    "--max-new-tokens",
    "8",
    "--kv",
    "pmkvq",
    "--kv-bits",
    "2",
  ]);
  const cal = await run([
    "--prompt",
    "Call me Ishmael.",
    "--max-new-tokens",
    "8",
    "--kv",
    "pmkvq",
    "--kv-bits",
    "2",
    "--calibration",
    CAL,
  ]);
  assert.equal(cal.calibration, CAL);
  // short greedy runs at 16 bits (nothing has shrunk yet): smoothing changes scores only by rounding
  assert.deepEqual(cal.generatedIds, plain.generatedIds);
});

Deno.test("run: bad flags and foreign artifacts are typed errors naming the value", async () => {
  await assert.rejects(
    main(["--kv", "int3", "--quiet"]),
    (e) => e instanceof InputError && /int3/.test(e.message),
  );
  await assert.rejects(
    main(["--prompt", "a", "--prompt-ids", "x.json", "--quiet"]),
    (e) => e instanceof InputError && /only one of/.test(e.message),
  );
  const dir = await Deno.makeTempDir();
  try {
    const art = JSON.parse(await Deno.readTextFile(CAL));
    art.modelFingerprint = "0".repeat(String(art.modelFingerprint).length);
    await Deno.writeTextFile(`${dir}/other.json`, JSON.stringify(art));
    await assert.rejects(
      main(["--calibration", `${dir}/other.json`, "--max-new-tokens", "1", "--quiet"]),
      (e) => e instanceof ArtifactError && /other\.json/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
