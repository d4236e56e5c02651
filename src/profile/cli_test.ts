import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../cli/profile.ts";
import { readSensitivity } from "./artifact.ts";
import { loadModel } from "../model/load.ts";
import { TINY_LM } from "../../tests/support/paths.ts";

/** Runs `main` with console output captured. */
async function capture(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const log = console.log, error = console.error;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    return { code: await main(args), out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test("profile CLI: --help exits 0; bad flags exit 2 with a clear message", async () => {
  const help = await capture(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /--samples N/);
  for (
    const [args, pattern] of [
      [["--samples", "abc"], /--samples "abc" is not a non-negative integer/],
      [["--samples", "0"], /samples must be an integer >= 1/],
      [["--length", "1"], /length must be an integer >= 2/],
      [["--stretch=-2"], /--stretch "-2" is not a non-negative integer/],
      [["--stretch", "0"], /stretch must be an integer >= 1/],
      [["--seed", "1.5"], /--seed "1.5"/],
      [["--bits", "2,3"], /bit-width 3 is not supported/],
      [["--bits", "2,x"], /--bits "2,x"/],
      [["--bits", "4,4"], /duplicates/],
      [["--frobnicate"], /frobnicate/],
      [["--model", "/nonexistent-model-dir"], /nonexistent-model-dir/],
    ] as [string[], RegExp][]
  ) {
    const r = await capture(args);
    assert.equal(r.code, 2, `${args.join(" ")} → exit ${r.code}`);
    assert.match(r.err, /^error: /);
    assert.match(r.err, pattern);
  }
});

Deno.test("profile CLI: a small tiny-lm run writes a readable artifact, an SVG and the table", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const corpus = join(dir, "c.txt");
    await Deno.writeTextFile(
      corpus,
      "Call me Ishmael. Some years ago, never mind how long precisely, having little money. ".repeat(4),
    );
    const out = join(dir, "s.json");
    const r = await capture([
      "--samples",
      "2",
      "--length",
      "16",
      "--bits",
      "8,2",
      "--corpus",
      corpus,
      "--out",
      out,
    ]);
    assert.equal(r.code, 0, r.err);
    const model = await loadModel(TINY_LM);
    const art = await readSensitivity(out, model.fingerprint);
    assert.deepEqual(art.settings, { samples: 2, length: 16, stretch: 4, seed: 0, corpus, bits: [2, 8] });
    assert.equal(art.total["2"].length, 6);
    const svg = await Deno.readTextFile(join(dir, "s.svg"));
    assert.ok(svg.startsWith("<svg") && svg.includes("tiny-lm"));
    assert.match(r.out, /^layer\s+s_2\s+s_8\s+K share\s+V share$/m);
    assert.equal(r.out.split("\n").filter((l) => /^\s+\d\s/.test(l)).length, 6);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
