#!/usr/bin/env bash
# Occupancy sensitivity of the int2 block kernels (tenth session): dummy workgroup memory (occupancy.patch,
# PMKVQ_PAD_SCORE / PMKVQ_PAD_VALUE bytes) caps the resident workgroups per SM; stage times per cap.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee "$OUTD/01-smi.txt"
which ncu nsys 2>&1 | tee -a "$OUTD/01-smi.txt"
deno eval 'const a = await navigator.gpu.requestAdapter(); console.log([...a.features].sort().join(" ")); console.log("maxComputeWorkgroupStorageSize", a.limits.maxComputeWorkgroupStorageSize, "maxUniformBufferBindingSize", a.limits.maxUniformBufferBindingSize);' 2>&1 | tee "$OUTD/01-features.txt"
for P in 0 8192 12288 16384 20480 26624 32768 40960 45056; do
  for rep in 1 2; do
    echo "pad $P rep $rep: $(PMKVQ_PAD_SCORE=$P PMKVQ_PAD_VALUE=$P deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block '[{}]' --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -i 'block stages\|skipped' | head -2)"
  done
done 2>&1 | tee "$OUTD/01-occupancy.log"
