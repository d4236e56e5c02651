#!/usr/bin/env bash
# Eighteenth session, call 4: the new {q2, q2} default (sbar2 + vst4 + rdims 64 on 32-lane subgroups) against the
# previous one (the same fields off), int2 and PM-KVQ body@2, fresh processes against int16; the block conformance
# (new default, D 32 case) in the time left.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && LIMIT=<s> bash <this file>
set -u
LIMIT=${LIMIT:-540}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
OLD='{"sbar2":false,"vst4":false,"rdims":32}'
{
nvidia-smi --query-gpu=name,clocks.sm --format=csv
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts "int2,PM-KVQ 1@16 + body@2" --md "$OUTD/f.md" --variants "[{\"name\":\"block\",\"tuning\":{\"block\":{}}},{\"name\":\"block previous default\",\"tuning\":{\"block\":$OLD}}]" 2>&1 | tail -4
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --md "$OUTD/f.md" --variants "[{\"name\":\"block\",\"tuning\":{\"block\":{}}},{\"name\":\"block previous default\",\"tuning\":{\"block\":$OLD}}]" 2>&1 | tail -2
left=$(( LIMIT - ($(date +%s) - T0) - 10 ))
if [ "$left" -ge 100 ]; then
  el "conformance (timeout $left s)"
  timeout "$left" deno test -A tests/conformance_packed_test.ts --filter "/static int2|block attention at D|PM-KVQ mixed/" > "$OUTD/04-conformance.txt" 2>&1
  echo "rc $?"
  grep -E "BlockAttention \{\}|passed|failed" "$OUTD/04-conformance.txt" | grep -v refused | tail -10
else
  el "conformance skipped ($left s left)"
fi
el done
} 2>&1 | tee "$OUTD/04-confirm.log"
rm -f "$OUTD/f.md"
