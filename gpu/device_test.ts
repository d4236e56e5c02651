/** acquireGpu without WebGPU: a clear GpuError (navigator.gpu is hidden for the test, then restored). */
import assert from "node:assert/strict";
import { acquireGpu, findAdapter, requestWithSubgroups } from "./device.ts";
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

Deno.test("requestWithSubgroups: tries subgroups first where unlisted, falls back when refused", async () => {
  const calls: string[][] = [];
  const adapter = (grants: boolean) =>
    ({
      requestDevice: (d: GPUDeviceDescriptor) => {
        const f = [...(d.requiredFeatures ?? [])] as string[];
        calls.push(f);
        if (f.includes("subgroups") && !grants) return Promise.reject(new TypeError("unsupported feature"));
        return Promise.resolve({ features: new Set(f) } as unknown as GPUDevice);
      },
    }) as unknown as GPUAdapter;
  const granted = await requestWithSubgroups(adapter(true), ["shader-f16"], {});
  assert.deepEqual(calls, [["shader-f16", "subgroups"]]);
  assert.ok(granted.features.has("subgroups"));
  calls.length = 0;
  const refused = await requestWithSubgroups(adapter(false), ["shader-f16"], {});
  assert.deepEqual(calls, [["shader-f16", "subgroups"], ["shader-f16"]]);
  assert.ok(!refused.features.has("subgroups"));
  calls.length = 0;
  await requestWithSubgroups(adapter(true), ["subgroups" as GPUFeatureName], {});
  assert.deepEqual(calls, [["subgroups"]], "listed: requested once, as given");
});
