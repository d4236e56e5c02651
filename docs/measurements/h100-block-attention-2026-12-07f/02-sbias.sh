#!/usr/bin/env bash
# Twentieth session, call 2: `sbias` (one select per token: a past-the-count score's NEG as the score multiply's
# fma addend; same bytes) on top of call 1's best, stx + sepi + sexp2, against the int2 default: stages, fresh
# processes against int16 (before and after), then the block conformance in the time left.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && LIMIT=<s> bash <this file>
set -u
LIMIT=${LIMIT:-420}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
st() { echo "$1 ${2:-}: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 ${2:-} 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
E='"stx":true,"sepi":true,"sexp2":true'
B='"stx":true,"sepi":true,"sexp2":true,"sbias":true'
{
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv
el stages
for t in '{}' "{$E}" "{$B}" '{"sbias":true}' '{}' "{$E}" "{$B}" '{"sbias":true}'; do st "$t"; done
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --md "$OUTD/f.md" --variants "[{\"name\":\"block\",\"tuning\":{\"block\":{}}},{\"name\":\"block stx sepi sexp2\",\"tuning\":{\"block\":{$E}}},{\"name\":\"block stx sepi sexp2 sbias\",\"tuning\":{\"block\":{$B}}}]" 2>&1 | tail -3
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
left=$(( LIMIT - ($(date +%s) - T0) - 8 ))
if [ "$left" -ge 60 ]; then
  el "conformance (timeout $left s)"
  timeout "$left" deno test -A tests/conformance_packed_test.ts --filter "/static int2|PM-KVQ mixed/" > "$OUTD/02-conformance.txt" 2>&1
  echo "rc $?"
  grep -E "sbias|sexp2|BlockAttention \{\}|passed|failed|rror" "$OUTD/02-conformance.txt" | grep -v refused | tail -12
fi
el done
} 2>&1 | tee "$OUTD/02-sbias.log"
rm -f "$OUTD/f.md"
