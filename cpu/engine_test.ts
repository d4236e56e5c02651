import assert from "node:assert/strict";
import { loadModel } from "../src/model/load.ts";
import { createCpuEngine } from "./engine.ts";
import { InputError } from "../src/errors.ts";
import { TINY_LM } from "../tests/support/paths.ts";

const model = await loadModel(TINY_LM);

Deno.test("cpu engine: a prompt longer than the model's context is a typed error naming the numbers", async () => {
  const e = createCpuEngine(model);
  const n = model.config.maxPositionEmbeddings + 1;
  await assert.rejects(() => e.prefill(new Array(n).fill(5)), (err: Error) => {
    assert.ok(err instanceof InputError);
    assert.match(err.message, new RegExp(`${n}.*${model.config.maxPositionEmbeddings}`));
    return true;
  });
  assert.equal(e.position, 0, "nothing consumed");
});

Deno.test("cpu engine: empty prompt and out-of-vocabulary ids are typed errors", async () => {
  const e = createCpuEngine(model);
  await assert.rejects(() => e.prefill([]), InputError);
  await assert.rejects(
    () => e.prefill([1, 4096]),
    (err: Error) => err instanceof InputError && /4096/.test(err.message),
  );
  await assert.rejects(
    () => e.decode(-1),
    (err: Error) => err instanceof InputError && /-1/.test(err.message),
  );
});

Deno.test("cpu engine: prefill in two parts equals prefill in one (exact cache), and reset restarts", async () => {
  const ids = [85, 296, 270, 261, 271, 636, 302, 1686, 28, 343];
  const a = createCpuEngine(model);
  const whole = await a.prefill(ids);
  const b = createCpuEngine(model);
  await b.prefill(ids.slice(0, 4));
  const parts = await b.prefill(ids.slice(4));
  let d = 0;
  for (let i = 0; i < whole.length; i++) d = Math.max(d, Math.abs(whole[i] - parts[i]));
  assert.ok(d < 1e-4, `max diff ${d}`);
  assert.equal(b.position, ids.length);
  b.reset();
  assert.equal(b.position, 0);
  assert.equal(b.cacheStats().tokens, 0);
  const again = await b.prefill(ids);
  assert.deepEqual(again, whole);
});
