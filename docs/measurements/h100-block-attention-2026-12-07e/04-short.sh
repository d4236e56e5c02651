#!/usr/bin/env bash
# Nineteenth session, call 4 (03-epilogue.sh cut to the device time left): `sepi` and `stx` + `sepi` against the
# int2 default, stages and fresh processes against int16, then the block conformance in the time left.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && LIMIT=<s> bash <this file>
set -u
LIMIT=${LIMIT:-280}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
st() { echo "$1: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
X='"stx":true,"sepi":true'
{
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv
el stages
for t in '{}' '{"sepi":true}' "{$X}" '{}' '{"sepi":true}' "{$X}"; do st "$t"; done
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --md "$OUTD/f.md" --variants "[{\"name\":\"block\",\"tuning\":{\"block\":{}}},{\"name\":\"block sepi\",\"tuning\":{\"block\":{\"sepi\":true}}},{\"name\":\"block stx sepi\",\"tuning\":{\"block\":{$X}}}]" 2>&1 | tail -3
left=$(( LIMIT - ($(date +%s) - T0) - 8 ))
if [ "$left" -ge 60 ]; then
  el "conformance (timeout $left s)"
  timeout "$left" deno test -A tests/conformance_packed_test.ts --filter "/static int2|block attention at D 64/" > "$OUTD/04-conformance.txt" 2>&1
  echo "rc $?"
  grep -E "sepi|stx|BlockAttention \{\}|passed|failed|rror" "$OUTD/04-conformance.txt" | grep -v refused | tail -12
fi
el done
} 2>&1 | tee "$OUTD/04-short.log"
rm -f "$OUTD/f.md"
