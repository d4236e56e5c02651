#!/usr/bin/env bash
# NOT RUN (the sixteenth session's device time ran out). vcoal (vsum1's split staged in workgroup memory, written
# with coalesced stores; the V statistics loaded before the loop) against the default, uq 32 and rdims 64 (the reduce), int2 stages (one process each, alternating), then fresh processes, then the
# block conformance in the time left (vcoal byte-identical to its twin).
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && LIMIT=<s> bash <this file>
set -u
LIMIT=${LIMIT:-300}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
st() { echo "$1: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
fr() { deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts "$1" --variants "$2" --md "$OUTD/f.md" 2>&1 | tail -"$3"; }
{
nvidia-smi --query-gpu=name,clocks.sm --format=csv
el stages
for t in '{}' '{"vcoal":true}' '{}' '{"vcoal":true}' '{"uq":32}' '{"uq":32,"vcoal":true}' '{"rdims":64}' '{"vcoal":true,"rdims":64}'; do st "$t"; done
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
fr int2 '[{"name":"block","tuning":{"block":{}}},{"name":"block vcoal","tuning":{"block":{"vcoal":true}}},{"name":"block rdims 64","tuning":{"block":{"rdims":64}}},{"name":"block vcoal rdims 64","tuning":{"block":{"vcoal":true,"rdims":64}}}]' 4
left=$(( LIMIT - ($(date +%s) - T0) - 10 ))
if [ "$left" -ge 120 ]; then
  el "conformance (timeout $left s)"
  timeout "$left" deno test -A tests/conformance_packed_test.ts --filter "/static int2|block attention at D 64|PM-KVQ mixed/" > "$OUTD/05-conformance.txt" 2>&1
  echo "rc $?"
  grep -E "vcoal|BlockAttention \{\}|passed|failed" "$OUTD/05-conformance.txt" | grep -v refused | tail -12
else
  el "conformance skipped ($left s left)"
fi
el done
} 2>&1 | tee "$OUTD/05-vcoal.log"
rm -f "$OUTD/f.md"
