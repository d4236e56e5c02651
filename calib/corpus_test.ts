import assert from "node:assert/strict";
import { loadCorpusSegments, stretchedPositions, tokenWindows } from "./corpus.ts";
import { loadTokenizer } from "../src/model/tokenizer.ts";
import { InputError } from "../src/errors.ts";
import { TINY_LM } from "../tests/support/paths.ts";

Deno.test("corpus: shipped sample has 32 segments; windows are seeded, disjoint and reproducible", async () => {
  const segs = await loadCorpusSegments();
  assert.equal(segs.length, 32);
  assert.ok(!segs.some((s) => s.includes("<<<segment")));
  const tok = await loadTokenizer(`${TINY_LM}/tokenizer.json`);
  const few = segs.slice(0, 3);
  const a = tokenWindows(few, tok, { count: 5, length: 256, seed: 3 });
  const b = tokenWindows(few, tok, { count: 5, length: 256, seed: 3 });
  const c = tokenWindows(few, tok, { count: 5, length: 256, seed: 4 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.ok(a.every((w) => w.length === 256));
  assert.throws(
    () => tokenWindows(few, tok, { count: 100000, length: 256 }),
    (e: Error) => e instanceof InputError && /100000/.test(e.message),
  );
});

Deno.test("corpus: stretched positions and bad input", async () => {
  assert.deepEqual(stretchedPositions(4, 4), [0, 4, 8, 12]);
  assert.throws(() => stretchedPositions(4, 0), InputError);
  await assert.rejects(
    () => loadCorpusSegments("/nonexistent.txt"),
    (e: Error) => e instanceof InputError && /nonexistent/.test(e.message),
  );
});
