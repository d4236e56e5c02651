/**
 * subgroupLanes: the lane-mapping probe passes where the adapter grants subgroups (llvmpipe: 8 lanes, the H100:
 * 32), is cached per device, and a device without the feature is reported with the reason, without running
 * anything. WebGPU cases are ignored (printed) when there is no adapter.
 */
import assert from "node:assert/strict";
import { gpuAvailability } from "../../tests/conformance_support.ts";
import { PackedGpu } from "./util.ts";
import { SUBGROUP_PROBE_WGSL, subgroupLanes } from "./subgroups.ts";

Deno.test("subgroupLanes: a device without the subgroups feature is not ok, and says why", async () => {
  const stub = {
    ctx: { features: new Set<string>(), description: "stub adapter" },
    device: {},
  } as unknown as PackedGpu;
  const r = await subgroupLanes(stub);
  assert.equal(r.ok, false);
  assert.match(r.reason!, /stub adapter does not grant the "subgroups" feature/);
  assert.equal(subgroupLanes(stub), subgroupLanes(stub), "cached per device");
});

Deno.test("subgroup probe WGSL checks both shuffle partners, the lane index and a size of at least 4, and records the size", () => {
  for (
    const s of [
      "subgroupShuffleXor(lid, 1u)",
      "subgroupShuffleXor(lid, 2u)",
      "sid == lid % sgs",
      "sgs >= 4u",
      "o[256u] = sgs",
    ]
  ) {
    assert.ok(SUBGROUP_PROBE_WGSL.includes(s), s);
  }
});

const { ctx, reason } = await gpuAvailability();

Deno.test({
  name: `subgroupLanes on ${
    ctx ? ctx.description : "no adapter"
  }: the probe passes where subgroups are granted`,
  ignore: !ctx,
  fn: async () => {
    const gpu = new PackedGpu(ctx!);
    const r = await subgroupLanes(gpu);
    const info = ctx!.adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
    console.log(
      `  ${ctx!.description}: subgroups ${ctx!.features.has("subgroups") ? "granted" : "not granted"}, ` +
        `sizes ${info.subgroupMinSize ?? "?"}…${info.subgroupMaxSize ?? "?"}: ${r.ok ? "ok" : r.reason}`,
    );
    if (ctx!.features.has("subgroups")) {
      assert.ok(r.ok, r.reason);
      // the size the probe saw: a power of two ≥ 4, within the adapter's range where it reports one
      const size = r.size!;
      assert.ok(size >= 4 && (size & (size - 1)) === 0, `subgroup size ${size}`);
      if (info.subgroupMinSize !== undefined) assert.ok(size >= info.subgroupMinSize, `size ${size}`);
      if (info.subgroupMaxSize !== undefined) assert.ok(size <= info.subgroupMaxSize, `size ${size}`);
      console.log(`  probe subgroup size ${size}`);
    } else assert.match(r.reason!, /does not grant/);
  },
});
if (!ctx) console.log(`subgroups_test: WebGPU cases not run: ${reason}`);
