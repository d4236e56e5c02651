#!/usr/bin/env bash
# Eighteenth session, call 5: which of sbar2 / rdims 64 slows PM-KVQ body@2 (call 4: 125.7 µs against 119.9 with
# the previous default), fresh processes; then the block conformance (D 32 case with the harness's reduce check).
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && LIMIT=<s> bash <this file>
set -u
LIMIT=${LIMIT:-300}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
{
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts "PM-KVQ 1@16 + body@2" --md "$OUTD/f.md" --variants '[{"name":"block","tuning":{"block":{}}},{"name":"block rdims 32","tuning":{"block":{"rdims":32}}},{"name":"block no sbar2","tuning":{"block":{"sbar2":false}}},{"name":"block previous default","tuning":{"block":{"sbar2":false,"vst4":false,"rdims":32}}}]' 2>&1 | tail -4
left=$(( LIMIT - ($(date +%s) - T0) - 10 ))
if [ "$left" -ge 90 ]; then
  el "conformance (timeout $left s)"
  timeout "$left" deno test -A tests/conformance_packed_test.ts --filter "/block attention at D|PM-KVQ mixed/" > "$OUTD/05-conformance.txt" 2>&1
  echo "rc $?"
  grep -E "BlockAttention \{\}|passed|failed" "$OUTD/05-conformance.txt" | grep -v refused | tail -8
fi
el done
} 2>&1 | tee "$OUTD/05-mixed.log"
rm -f "$OUTD/f.md"
