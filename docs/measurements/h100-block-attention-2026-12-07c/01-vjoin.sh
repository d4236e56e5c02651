#!/usr/bin/env bash
# Seventeenth session: vjoin (512-token score blocks, each row of value lanes on its own block, two blocks merged
# in f32 per 1024-token split) against the default, with vcoal and rdims 64; int2 stages (one process each,
# alternating), then fresh processes against int16, then the block conformance in the time left.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && LIMIT=<s> bash <this file>
set -u
LIMIT=${LIMIT:-330}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
st() { echo "$1: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
VJ='"block":512,"tq":1,"nblk":8,"vjoin":true'
{
nvidia-smi --query-gpu=name,clocks.sm --format=csv
el stages
for t in '{}' "{$VJ}" '{}' "{$VJ}" "{$VJ,\"vcoal\":true}" '{"vcoal":true}' '{"rdims":64}' "{$VJ,\"rdims\":64}" "{$VJ,\"wgv\":128}"; do st "$t"; done
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --md "$OUTD/f.md" --variants "[{\"name\":\"block\",\"tuning\":{\"block\":{}}},{\"name\":\"block vjoin\",\"tuning\":{\"block\":{$VJ}}},{\"name\":\"block vjoin rdims 64\",\"tuning\":{\"block\":{$VJ,\"rdims\":64}}}]" 2>&1 | tail -3
left=$(( LIMIT - ($(date +%s) - T0) - 10 ))
if [ "$left" -ge 120 ]; then
  el "conformance (timeout $left s)"
  timeout "$left" deno test -A tests/conformance_packed_test.ts --filter "/static int2|block attention at D 64|PM-KVQ mixed/" > "$OUTD/01-conformance.txt" 2>&1
  echo "rc $?"
  grep -E "vjoin|vcoal|BlockAttention \{\}|passed|failed" "$OUTD/01-conformance.txt" | grep -v refused | tail -14
else
  el "conformance skipped ($left s left)"
fi
el done
} 2>&1 | tee "$OUTD/01-vjoin.log"
rm -f "$OUTD/f.md"
