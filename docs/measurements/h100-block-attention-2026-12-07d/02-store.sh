#!/usr/bin/env bash
# Eighteenth session, call 2: vst4 (the value kernel's split as one vec4 store per head) and vstat (its block
# statistics loaded before the loop), with sbar2 and rdims 64; the value stage at batch 6 / 7 / 8 (does the value
# grid of 2,048 workgroups fit in one wave?); fresh processes against int16; the block conformance in the time left.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && LIMIT=<s> bash <this file>
set -u
LIMIT=${LIMIT:-540}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
st() { echo "$1 ${2:-}: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 ${2:-} 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
A='"sbar2":true,"rdims":64'
{
nvidia-smi --query-gpu=name,clocks.sm --format=csv
el stages
for t in '{}' '{"vst4":true}' '{"vstat":true}' '{"vst4":true,"vstat":true}' "{$A}" "{$A,\"vst4\":true,\"vstat\":true}" '{}' '{"vst4":true,"vstat":true}'; do st "$t"; done
for bb in 6 7 8; do st '{}' "--batch $bb"; done
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --md "$OUTD/f.md" --variants "[{\"name\":\"block\",\"tuning\":{\"block\":{}}},{\"name\":\"block sbar2 rdims 64\",\"tuning\":{\"block\":{$A}}},{\"name\":\"block vst4 vstat\",\"tuning\":{\"block\":{\"vst4\":true,\"vstat\":true}}},{\"name\":\"block sbar2 rdims 64 vst4 vstat\",\"tuning\":{\"block\":{$A,\"vst4\":true,\"vstat\":true}}}]" 2>&1 | tail -4
left=$(( LIMIT - ($(date +%s) - T0) - 10 ))
if [ "$left" -ge 100 ]; then
  el "conformance (timeout $left s)"
  timeout "$left" deno test -A tests/conformance_packed_test.ts --filter "/static int2|block attention at D 64|PM-KVQ mixed/" > "$OUTD/02-conformance.txt" 2>&1
  echo "rc $?"
  grep -E "vst4|vstat|BlockAttention \{\}|passed|failed" "$OUTD/02-conformance.txt" | grep -v refused | tail -12
else
  el "conformance skipped ($left s left)"
fi
el done
} 2>&1 | tee "$OUTD/02-store.log"
rm -f "$OUTD/f.md"
