#!/usr/bin/env bash
# Eighteenth session: vtouch (the value kernel touches the V rows and weights of the step 1 or 2 ahead) and sbar2
# (the score kernel's reductions without their leading barriers) against the default; rdims 64; int2 stages (one
# process each), then fresh processes against int16, then the block conformance in the time left.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && LIMIT=<s> bash <this file>
set -u
LIMIT=${LIMIT:-540}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
st() { echo "$1: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
J='"block":512,"tq":1,"nblk":8,"vjoin":true'
{
nvidia-smi --query-gpu=name,clocks.sm --format=csv
el stages
for t in '{}' '{"vtouch":1}' '{"vtouch":2}' '{"sbar2":true}' '{"sbar2":true,"vtouch":1}' '{}' '{"vtouch":1}' \
  '{"rdims":64}' '{"uq":8}' '{"uq":8,"vtouch":1}' '{"block":512,"tq":1,"nblk":8,"sbar2":true}' \
  "{$J,\"sbar2\":true,\"vtouch\":1}" "{$J}"; do st "$t"; done
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --md "$OUTD/f.md" --variants "[{\"name\":\"block\",\"tuning\":{\"block\":{}}},{\"name\":\"block vtouch 1\",\"tuning\":{\"block\":{\"vtouch\":1}}},{\"name\":\"block sbar2 vtouch 1 rdims 64\",\"tuning\":{\"block\":{\"sbar2\":true,\"vtouch\":1,\"rdims\":64}}},{\"name\":\"block vjoin sbar2 vtouch 1 rdims 64\",\"tuning\":{\"block\":{$J,\"sbar2\":true,\"vtouch\":1,\"rdims\":64}}}]" 2>&1 | tail -4
left=$(( LIMIT - ($(date +%s) - T0) - 10 ))
if [ "$left" -ge 120 ]; then
  el "conformance (timeout $left s)"
  timeout "$left" deno test -A tests/conformance_packed_test.ts --filter "/static int2|block attention at D 64|PM-KVQ mixed/" > "$OUTD/01-conformance.txt" 2>&1
  echo "rc $?"
  grep -E "vtouch|sbar2|BlockAttention \{\}|passed|failed" "$OUTD/01-conformance.txt" | grep -v refused | tail -14
else
  el "conformance skipped ($left s left)"
fi
el done
} 2>&1 | tee "$OUTD/01-touch.log"
rm -f "$OUTD/f.md"
