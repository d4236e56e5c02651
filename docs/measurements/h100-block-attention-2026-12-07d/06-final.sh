#!/usr/bin/env bash
# Eighteenth session, call 6: the block conformance with the landed defaults (uq 16 dropped where a value step
# does not divide the block, PM-KVQ's reduce at 32 dims), then fresh int16 / int2 / PM-KVQ body@2 in the time left.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && LIMIT=<s> bash <this file>
set -u
LIMIT=${LIMIT:-180}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
{
el conformance
timeout 110 deno test -A tests/conformance_packed_test.ts --filter "/block attention at D|PM-KVQ mixed|static int2/" > "$OUTD/06-conformance.txt" 2>&1
echo "rc $?"
grep -E "BlockAttention \{\}|passed|failed" "$OUTD/06-conformance.txt" | grep -v refused | tail -8
left=$(( LIMIT - ($(date +%s) - T0) - 5 ))
if [ "$left" -ge 60 ]; then
  el "fresh ($left s left)"
  timeout 30 deno run -A bench/gpu_attention_fresh.ts --reps 2 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
  timeout $(( left - 30 )) deno run -A bench/gpu_attention_fresh.ts --reps 2 --targets 8 --layouts "int2,PM-KVQ 1@16 + body@2" --md "$OUTD/f.md" --variants '[{"name":"block","tuning":{"block":{}}}]' 2>&1 | tail -2
fi
el done
} 2>&1 | tee "$OUTD/06-final.log"
rm -f "$OUTD/f.md"
