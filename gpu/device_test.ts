/** acquireGpu without WebGPU: a clear GpuError (navigator.gpu is hidden for the test, then restored). */
import assert from "node:assert/strict";
import { acquireGpu, findAdapter } from "./device.ts";
import { GpuError } from "../src/errors.ts";

Deno.test("acquireGpu rejects with GpuError 'no WebGPU adapter' when the runtime has no navigator.gpu", async () => {
  const saved = Object.getOwnPropertyDescriptor(globalThis, "navigator");
  Object.defineProperty(globalThis, "navigator", { value: {}, configurable: true });
  try {
    assert.equal(await findAdapter(), null);
    await assert.rejects(
      acquireGpu(),
      (e: unknown) => e instanceof GpuError && /no WebGPU adapter/.test((e as Error).message),
    );
  } finally {
    if (saved) Object.defineProperty(globalThis, "navigator", saved);
  }
});
