/**
 * CPU decode speed: tiny-lm, batch 1, one token at a time after a context of 1,024 tokens, exact cache.
 * Run: `deno task bench --filter cpu-decode` (tokens/s = 1000 / avg ms).
 */
import { loadModel } from "../src/model/load.ts";
import { CpuEngine } from "../cpu/engine.ts";
import { DEFAULT_MODEL_DIR } from "../src/cli/run.ts";

const model = await loadModel(DEFAULT_MODEL_DIR);
const CONTEXT = 1024;

function engineAt(spec: ConstructorParameters<typeof CpuEngine>[1]): CpuEngine {
  const e = new CpuEngine(model, spec);
  // Fill the cache to CONTEXT tokens with a deterministic token sequence (prefill in one pass).
  const ids = Array.from({ length: CONTEXT }, (_, i) => (i * 37 + 11) % model.config.vocabSize);
  e.prefill(ids);
  return e;
}

const exact = engineAt({ method: "exact" });
Deno.bench({
  name: `cpu-decode tiny-lm exact-f32 @${CONTEXT} ctx (tokens/s = 1000 / avg ms)`,
  group: "cpu-decode",
  fn: async (b) => {
    // Keep the context near CONTEXT: refill (untimed) once it has grown by 64 tokens.
    if (exact.position >= CONTEXT + 64) {
      exact.reset();
      await exact.prefill(Array.from({ length: CONTEXT }, (_, i) => (i * 37 + 11) % model.config.vocabSize));
    }
    b.start();
    await exact.decode(42);
    b.end();
  },
});
