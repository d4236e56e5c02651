#!/usr/bin/env bash
# NOT RUN (no device machine started this session). Fifteenth session, call 1: the block conformance (the int2 default of block 1024 + tq 2 + nblk 4 has not run
# on the H100 yet; vpair's 32-lane weights path runs only here), then vpair (8 dims per value invocation, lane
# pairs) against the default: stages (one process each) and fresh processes against the 16-bit kernel.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
st() { echo "$1: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
fr() { deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts "$1" --variants "$2" --md "$OUTD/f.md" 2>&1 | tail -"$3"; }
{
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
el conformance
timeout 170 deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > "$OUTD/01-conformance.txt" 2>&1
grep -E "vpair|BlockAttention \{\}|passed|failed" "$OUTD/01-conformance.txt" | tail -14
el stages
st '{}'
st '{"vpair":true,"uq":8}'
st '{"vpair":true,"uq":16}'
st '{}'
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
fr int2 '[{"name":"block","tuning":{"block":{}}},{"name":"block vpair uq 8","tuning":{"block":{"vpair":true,"uq":8}}}]' 2
el done
} 2>&1 | tee "$OUTD/01-vpair.log"
rm -f "$OUTD/f.md"
