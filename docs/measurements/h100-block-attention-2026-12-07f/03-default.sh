#!/usr/bin/env bash
# Twentieth session, call 3: the new {q2, q2} default of 32-lane subgroups (stx + sepi + sexp2 + sbias) against
# the previous default (the four given false) in fresh processes, int16 before and after; PM-KVQ body@2 (whose
# schedule leaves the four off); then the static-int2 block conformance in the time left.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && LIMIT=<s> bash <this file>
set -u
LIMIT=${LIMIT:-250}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
O='"stx":false,"sepi":false,"sexp2":false,"sbias":false'
{
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --md "$OUTD/f.md" --variants "[{\"name\":\"block\",\"tuning\":{\"block\":{}}},{\"name\":\"block, previous default\",\"tuning\":{\"block\":{$O}}}]" 2>&1 | tail -2
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts "PM-KVQ 1@16 + body@2" --md "$OUTD/f.md" --variants '[{"name":"block","tuning":{"block":{}}}]' 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
left=$(( LIMIT - ($(date +%s) - T0) - 8 ))
if [ "$left" -ge 50 ]; then
  el "conformance (timeout $left s)"
  timeout "$left" deno test -A tests/conformance_packed_test.ts --filter "/static int2/" > "$OUTD/03-conformance.txt" 2>&1
  echo "rc $?"
  grep -E "BlockAttention \{\}|sbias|passed|failed|rror" "$OUTD/03-conformance.txt" | grep -v refused | tail -8
fi
el done
} 2>&1 | tee "$OUTD/03-default.log"
rm -f "$OUTD/f.md"
