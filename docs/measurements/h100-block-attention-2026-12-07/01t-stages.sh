#!/usr/bin/env bash
# NOT RUN (no device machine started this session). Fifteenth session, the shortest form (stages only, one process each): vpair against the default, int2.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
st() { echo "$1: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
{
nvidia-smi --query-gpu=name,clocks.sm --format=csv
st '{}'
st '{"vpair":true,"uq":8}'
st '{"vpair":true,"uq":16}'
st '{}'
} 2>&1 | tee "$OUTD/01t-stages.log"
