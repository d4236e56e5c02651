/**
 * Probe: does awaiting `mapAsync` of submission A also wait for a later submission B? (It decides whether a
 * greedy chain can keep the GPU busy while the host awaits a chunk's tokens: gpu/engine.ts decodeGreedyMany.)
 * One busy kernel per submission (each invocation runs `iters` dependent FMAs), a 16-byte copy into A's or
 * B's readback buffer; prints when each map resolves.
 *
 *   deno run -A bench/gpu_map_probe.ts [iters = 10000000]
 *
 * @module
 */
const adapter = await navigator.gpu.requestAdapter();
const device = await adapter!.requestDevice();
const code = `@group(0) @binding(0) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  var x = f32(g.x);
  for (var i = 0u; i < ${Deno.args[0] ?? "10000000"}u; i++) { x = fma(x, 0.9999, 0.5); }
  o[g.x] = x;
}`;
const pipe = device.createComputePipeline({
  layout: "auto",
  compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
});
const buf = device.createBuffer({
  size: 4 * 64 * 1024,
  usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC,
});
const bg = device.createBindGroup({
  layout: pipe.getBindGroupLayout(0),
  entries: [{ binding: 0, resource: { buffer: buf } }],
});
const rbs = [0, 1].map(() =>
  device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST })
);
function submit(rb: GPUBuffer) {
  const enc = device.createCommandEncoder();
  const p = enc.beginComputePass();
  p.setPipeline(pipe);
  p.setBindGroup(0, bg);
  p.dispatchWorkgroups(1024);
  p.end();
  enc.copyBufferToBuffer(buf, 0, rb, 0, 16);
  device.queue.submit([enc.finish()]);
}
for (let rep = 0; rep < 3; rep++) {
  let t = performance.now();
  submit(rbs[0]);
  await rbs[0].mapAsync(GPUMapMode.READ);
  rbs[0].unmap();
  const one = performance.now() - t;
  t = performance.now();
  submit(rbs[0]);
  submit(rbs[1]);
  await rbs[0].mapAsync(GPUMapMode.READ);
  const a = performance.now() - t;
  rbs[0].unmap();
  await rbs[1].mapAsync(GPUMapMode.READ);
  const b = performance.now() - t;
  rbs[1].unmap();
  console.log(
    `one submission ${one.toFixed(1)} ms; two back to back: first map resolves at ${
      a.toFixed(1)
    } ms, second at ${b.toFixed(1)} ms`,
  );
}
