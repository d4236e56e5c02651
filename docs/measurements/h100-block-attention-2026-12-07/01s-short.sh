#!/usr/bin/env bash
# NOT RUN (no device machine started this session). Fifteenth session, the short form of 01-vpair.sh for the device time left: the block conformance, then vpair
# against the default in stages (one process each).
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
st() { echo "$1: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
{
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
el stages
st '{}'
st '{"vpair":true,"uq":8}'
st '{"vpair":true,"uq":16}'
el conformance
timeout 150 deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > "$OUTD/01s-conformance.txt" 2>&1
grep -E "vpair|BlockAttention \{\}|passed|failed" "$OUTD/01s-conformance.txt" | tail -14
el done
} 2>&1 | tee "$OUTD/01s-short.log"
