#!/usr/bin/env bash
# Twentieth session, call 1: the score kernel's epilogue with fewer operations — `sepi` (weights packed by shifts
# and adds, sums folded by invocation 0; same bytes), `stx` (transposing butterflies for the block's max and sum
# reductions) and `sexp2` (scores in log2 units, exp2 instead of exp) — against the int2 default: stages, then
# fresh processes (int16 before and after, int2, PM-KVQ body@2), then the block conformance in the time left.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && LIMIT=<s> bash <this file>
set -u
LIMIT=${LIMIT:-560}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
st() { echo "$1 ${2:-}: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 ${2:-} 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
X='"stx":true,"sepi":true'
E='"stx":true,"sepi":true,"sexp2":true'
{
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv
el stages
for t in '{}' '{"sepi":true}' '{"stx":true}' "{$X}" '{"sexp2":true}' "{$E}" '{}' '{"sepi":true}' '{"stx":true}' "{$X}" '{"sexp2":true}' "{$E}"; do st "$t"; done
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --md "$OUTD/f.md" --variants "[{\"name\":\"block\",\"tuning\":{\"block\":{}}},{\"name\":\"block sepi\",\"tuning\":{\"block\":{\"sepi\":true}}},{\"name\":\"block stx sepi\",\"tuning\":{\"block\":{$X}}},{\"name\":\"block stx sepi sexp2\",\"tuning\":{\"block\":{$E}}}]" 2>&1 | tail -4
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts "PM-KVQ 1@16 + body@2" --md "$OUTD/f.md" --variants "[{\"name\":\"block\",\"tuning\":{\"block\":{}}},{\"name\":\"block stx sepi\",\"tuning\":{\"block\":{\"sbar2\":true,$X}}},{\"name\":\"block stx sepi sexp2\",\"tuning\":{\"block\":{\"sbar2\":true,$E}}}]" 2>&1 | tail -3
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
left=$(( LIMIT - ($(date +%s) - T0) - 10 ))
if [ "$left" -ge 100 ]; then
  el "conformance (timeout $left s)"
  timeout "$left" deno test -A tests/conformance_packed_test.ts --filter "/static int2|block attention at D|PM-KVQ mixed/" > "$OUTD/01-conformance.txt" 2>&1
  echo "rc $?"
  grep -E "sepi|stx|sexp2|stouch|BlockAttention \{\}|passed|failed|rror" "$OUTD/01-conformance.txt" | grep -v refused | tail -24
fi
el done
} 2>&1 | tee "$OUTD/01-epilogue.log"
rm -f "$OUTD/f.md"
