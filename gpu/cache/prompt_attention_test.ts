import assert from "node:assert/strict";
import { checkPromptSteps } from "./prompt_attention.ts";
import { GpuError } from "../../src/errors.ts";

Deno.test("checkPromptSteps: a prompt on an empty cache, then single tokens; a later multi-token step names the cache", () => {
  assert.equal(checkPromptSteps("KIVI", 0, [256, 1, 1]), 258);
  assert.equal(checkPromptSteps("packed", 300, [1, 1, 1]), 3);
  assert.equal(checkPromptSteps("packed", 0, []), 0);
  assert.throws(
    () => checkPromptSteps("KIVI", 10, [2]),
    (e) =>
      e instanceof GpuError && /2-token prefill after 10 cached tokens .* KIVI webgpu cache/.test(e.message),
  );
  assert.throws(
    () => checkPromptSteps("packed", 0, [4, 1, 3]),
    (e) => e instanceof GpuError && /3-token prefill after 5 cached tokens/.test(e.message),
  );
});
