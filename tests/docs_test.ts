/**
 * The public API stays documented: `deno doc --lint mod.ts` (every exported symbol and public member has
 * JSDoc; no public signature references a type mod.ts does not export).
 */
import assert from "node:assert/strict";

Deno.test("public API: deno doc --lint mod.ts reports no errors", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--lint", "mod.ts"],
    cwd: root,
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, `deno doc --lint mod.ts failed:\n${text.slice(0, 4000)}`);
});
