/**
 * Whether this device's subgroups have the shape the block attention's subgroup knobs (`vshuf`, `sred`,
 * block_attention.wgsl.ts) rely on: the adapter grants the `subgroups` feature, and within a 1-D workgroup
 * subgroup lane i is local invocation index g·size + i with size ≥ 4 — so lanes lid ^ 1 and lid ^ 2 are
 * shuffle partners and subgroup g covers invocations g·size … g·size + size − 1. WebGPU does not promise that
 * mapping (Vulkan drivers give it in practice), so it is measured once per device with a probe kernel.
 *
 * Probe buffer:
 * | buffer | type | shape / content |
 * | --- | --- | --- |
 * | `o` | `array<u32>` read_write | [257]: 1 where invocation lid saw the expected partners, lane and size, else 0; [256]: the subgroup size invocation 0 saw |
 *
 * @example
 * ```ts
 * const lanes = await subgroupLanes(gpu);
 * if (!lanes.ok) console.log(lanes.reason);
 * ```
 * @module
 */
import type { PackedGpu } from "./util.ts";

/** Result of {@link subgroupLanes}. */
export interface SubgroupLanes {
  /** The knobs can run: feature granted and the lane mapping checked. */
  ok: boolean;
  /** Why not (feature missing, or the invocations whose mapping differed), when `ok` is false. */
  reason?: string;
  /**
   * The probe's subgroup size, when `ok` (a hint for choosing schedules: other pipelines may get another size
   * on devices that pick it per shader, so kernels that depend on it check it themselves).
   */
  size?: number;
}

/** Invocations of the probe workgroup (the largest block attention workgroup). */
const PROBE_THREADS = 256;

/** WGSL of the probe (module doc): one workgroup of {@link PROBE_THREADS} invocations. */
export const SUBGROUP_PROBE_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> o: array<u32>;
@compute @workgroup_size(${PROBE_THREADS})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sid: u32,
        @builtin(subgroup_size) sgs: u32) {
  let x1 = subgroupShuffleXor(lid, 1u);
  let x2 = subgroupShuffleXor(lid, 2u);
  o[lid] = select(0u, 1u, sgs >= 4u && sid == lid % sgs && x1 == (lid ^ 1u) && x2 == (lid ^ 2u));
  if (lid == 0u) { o[${PROBE_THREADS}u] = sgs; }
}
`;

const cache = new WeakMap<GPUDevice, Promise<SubgroupLanes>>();

/**
 * Checks (once per device, cached) that the subgroup knobs can run on `gpu` (module doc).
 *
 * @example
 * ```ts
 * (await subgroupLanes(gpu)).ok; // true on the H100 and on llvmpipe
 * ```
 */
export function subgroupLanes(gpu: PackedGpu): Promise<SubgroupLanes> {
  let r = cache.get(gpu.device);
  if (!r) {
    r = probe(gpu);
    cache.set(gpu.device, r);
  }
  return r;
}

async function probe(gpu: PackedGpu): Promise<SubgroupLanes> {
  if (!gpu.ctx.features.has("subgroups")) {
    return { ok: false, reason: `${gpu.ctx.description} does not grant the "subgroups" feature` };
  }
  const pipe = await gpu.pipeline("subgroup lane probe", SUBGROUP_PROBE_WGSL);
  const o = gpu.storage("subgroup lane probe", 4 * (PROBE_THREADS + 1));
  try {
    const bg = gpu.device.createBindGroup({
      layout: pipe.layout,
      entries: [{ binding: 0, resource: { buffer: o } }],
    });
    await gpu.submit((pass) => {
      pass.setPipeline(pipe.pipeline);
      pass.setBindGroup(0, bg);
      pass.dispatchWorkgroups(1);
    });
    const all = new Uint32Array(await gpu.read(o, 0, 4 * (PROBE_THREADS + 1)));
    const got = all.subarray(0, PROBE_THREADS);
    const bad = [...got.keys()].filter((i) => got[i] !== 1);
    return bad.length === 0 ? { ok: true, size: all[PROBE_THREADS] } : {
      ok: false,
      reason: `${gpu.ctx.description}: subgroup lanes are not consecutive invocations of ≥ 4 ` +
        `(invocations ${bad.slice(0, 8).join(", ")}${bad.length > 8 ? ", …" : ""} differ)`,
    };
  } finally {
    o.destroy();
  }
}
