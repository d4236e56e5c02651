/**
 * UniformArena / bindUniform / wgslBindings: staged uniforms reach the right dispatch (several slots, several
 * pages), bind groups are reused, a missing flush is a GpuError, and the one-off path (no arena) binds a fresh
 * uniform at offset 0. WebGPU cases are ignored (printed) when there is no adapter.
 */
import assert from "node:assert/strict";
import { gpuAvailability } from "../../tests/conformance_support.ts";
import { PackedGpu, type Pipeline, wgslBindings } from "./util.ts";
import { bindUniform, UniformArena } from "./uniform_arena.ts";
import { GpuError, TensorShapeError } from "../../src/errors.ts";

Deno.test("wgslBindings: kinds and order of group-0 buffers; unsupported spaces are typed errors", () => {
  const code = `
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<vec4<u32>>;
@group(1) @binding(0) var<uniform> step: Step;`;
  assert.deepEqual(wgslBindings(code), [
    { binding: 0, kind: "uniform" },
    { binding: 1, kind: "read-only-storage" },
    { binding: 2, kind: "storage" },
  ]);
  assert.throws(() => wgslBindings("@group(0) @binding(0) var<workgroup> w: u32;"), GpuError);
  assert.throws(
    () => wgslBindings("@group(0) @binding(1) var<uniform> a: P;\n@group(0) @binding(1) var<uniform> b: P;"),
    /declared twice/,
  );
});

const { ctx, reason } = await gpuAvailability();

/** out[wid.x·4 + i] = p.v[i] + base[i]: reads its uniform and one storage buffer. */
const KERNEL = `
struct P { v: vec4<u32> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> base: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(4) fn main(@builtin(local_invocation_id) l: vec3<u32>) {
  out[p.v.w * 4u + l.x] = p.v[l.x] + base[l.x];
}`;

async function setup(): Promise<{ gpu: PackedGpu; pipe: Pipeline; base: GPUBuffer; out: GPUBuffer }> {
  const gpu = new PackedGpu(ctx!);
  const pipe = await gpu.pipeline("arena test", KERNEL, { dynamicUniform: true });
  const base = gpu.upload("base", new Uint32Array([1000, 2000, 3000, 0]));
  const out = gpu.storage("out", 4 * 4 * 8);
  return { gpu, pipe, base, out };
}

/** Records one dispatch per row r < n writing (r·10 + i) + base, flushes, submits, releases; returns out. */
async function runRows(
  gpu: PackedGpu,
  pipe: Pipeline,
  bufs: GPUBuffer[],
  n: number,
  arena?: UniformArena,
): Promise<Uint32Array> {
  const enc = gpu.device.createCommandEncoder();
  const pass = enc.beginComputePass();
  const fresh: GPUBuffer[] = [];
  for (let r = 0; r < n; r++) {
    const b = bindUniform(
      gpu,
      pipe,
      "row",
      new Uint32Array([r * 10, r * 10 + 1, r * 10 + 2, r]),
      bufs,
      arena,
    );
    if (b.uniform) fresh.push(b.uniform);
    pass.setPipeline(pipe.pipeline);
    pass.setBindGroup(0, b.bindGroup, b.offsets);
    pass.dispatchWorkgroups(1);
  }
  pass.end();
  arena?.flush();
  gpu.device.queue.submit([enc.finish()]);
  arena?.release();
  fresh.forEach((u) => u.destroy());
  return new Uint32Array(await gpu.read(bufs[1], 0, 4 * 4 * n));
}

function expectedRows(n: number): number[] {
  const e: number[] = [];
  for (let r = 0; r < n; r++) e.push(r * 10 + 1000, r * 10 + 1 + 2000, r * 10 + 2 + 3000, r);
  return e;
}

Deno.test({
  name: "UniformArena: every staged slot reaches its dispatch, across pages and reuse; bind groups cached",
  ignore: ctx === null,
  fn: async () => {
    const { gpu, pipe, base, out } = await setup();
    // two slots per page: 8 rows span 4 pages
    const arena = new UniformArena(gpu, "test arena", 2 * gpu.ctx.limits.minUniformBufferOffsetAlignment);
    assert.deepEqual([...await runRows(gpu, pipe, [base, out], 8, arena)], expectedRows(8));
    assert.equal(arena.pages, 4);
    // second submission reuses slots and pages (new values must not read the old ones)
    gpu.device.queue.writeBuffer(base, 0, new Uint32Array([5, 6, 7, 0]));
    const again = await runRows(gpu, pipe, [base, out], 3, arena);
    assert.deepEqual([...again].slice(0, 4), [5, 1 + 6, 2 + 7, 0]);
    assert.deepEqual([...again].slice(8, 12), [25, 21 + 6, 22 + 7, 2]);
    assert.equal(arena.pages, 4);
    // same layout, page, size and buffers: the same bind group object
    const a = arena.stage(new Uint32Array(4));
    const g1 = arena.bindGroup(pipe.layout, "x", a.page, 16, [base, out]);
    assert.equal(arena.bindGroup(pipe.layout, "x", a.page, 16, [base, out]), g1);
    assert.notEqual(arena.bindGroup(pipe.layout, "x", a.page, 16, [out, base]), g1);
    arena.release(true);
    arena.destroy();
    base.destroy();
    out.destroy();
  },
});

Deno.test({
  name: "UniformArena: a release without flush is a GpuError; bad uniform sizes are typed errors",
  ignore: ctx === null,
  fn: async () => {
    const { gpu, base, out } = await setup();
    const arena = new UniformArena(gpu, "test arena");
    arena.stage(new Uint32Array(4));
    assert.equal(arena.unflushed, true);
    assert.throws(() => arena.release(), /not flushed before the submit/);
    assert.equal(arena.unflushed, false);
    assert.throws(() => arena.stage(new Uint32Array(3)), TensorShapeError);
    assert.throws(() => arena.stage(new Uint32Array(arena.pageBytes / 4 + 4)), TensorShapeError);
    arena.destroy();
    base.destroy();
    out.destroy();
  },
});

Deno.test({
  name: "bindUniform without an arena: a fresh uniform at offset 0; an auto-layout pipeline is refused",
  ignore: ctx === null,
  fn: async () => {
    const { gpu, pipe, base, out } = await setup();
    assert.deepEqual([...await runRows(gpu, pipe, [base, out], 3)], expectedRows(3));
    const auto = await gpu.pipeline("arena test auto", KERNEL);
    assert.equal(auto.dynamicUniform, false);
    assert.throws(() => bindUniform(gpu, auto, "x", new Uint32Array(4), [base, out]), GpuError);
    base.destroy();
    out.destroy();
  },
});

if (ctx === null) console.warn(`SKIPPED: uniform arena GPU cases: ${reason}`);
