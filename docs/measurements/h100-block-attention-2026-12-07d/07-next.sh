#!/usr/bin/env bash
# Written in the eighteenth session after its device time ran out, for the next one (not run yet): sbar1 (one
# barrier per score block, the sums folded after the next block's) against today's default, alone and at block 512
# / tq 1 / nblk 8 (with and without vjoin); rdims 128; int2 stages, then fresh processes against int16, then the
# block conformance in the time left.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && LIMIT=<s> bash <this file>
set -u
LIMIT=${LIMIT:-540}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
st() { echo "$1: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
J='"block":512,"tq":1,"nblk":8'
{
nvidia-smi --query-gpu=name,clocks.sm --format=csv
el stages
for t in '{}' '{"sbar1":true}' '{}' '{"sbar1":true}' '{"rdims":128}' "{$J}" "{$J,\"sbar1\":true}" "{$J,\"vjoin\":true,\"sbar1\":true}"; do st "$t"; done
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --md "$OUTD/f.md" --variants "[{\"name\":\"block\",\"tuning\":{\"block\":{}}},{\"name\":\"block sbar1\",\"tuning\":{\"block\":{\"sbar1\":true}}},{\"name\":\"block 512 tq 1 nblk 8 vjoin sbar1\",\"tuning\":{\"block\":{$J,\"vjoin\":true,\"sbar1\":true}}}]" 2>&1 | tail -3
left=$(( LIMIT - ($(date +%s) - T0) - 10 ))
if [ "$left" -ge 100 ]; then
  el "conformance (timeout $left s)"
  timeout "$left" deno test -A tests/conformance_packed_test.ts --filter "/block attention at D|PM-KVQ mixed|static int2/" > "$OUTD/07-conformance.txt" 2>&1
  echo "rc $?"
  grep -E "sbar1|BlockAttention \{\}|passed|failed" "$OUTD/07-conformance.txt" | grep -v refused | tail -10
fi
el done
} 2>&1 | tee "$OUTD/07-next.log"
rm -f "$OUTD/f.md"
