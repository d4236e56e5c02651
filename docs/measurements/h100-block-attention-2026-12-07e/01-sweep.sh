#!/usr/bin/env bash
# Nineteenth session, call 1: the score kernel's occupancy-side knobs at the int2 default (block 1024): sbar1 (one
# barrier per block), tq 1 (256 invocations, 4 tokens each: fewer registers per invocation), tq 4, nblk 1/2/8,
# tseq off, kstep 2, rdims 128, and 07d's block-512 candidates; the score stage at batch 6/7 for tq 1; then fresh
# processes of the three lowest stage totals (the stagger diagnostic, stag.patch, excluded) against the default and int16; the block conformance in the time left.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && LIMIT=<s> bash <this file>
set -u
LIMIT=${LIMIT:-560}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
RES="$OUTD/01-totals.txt"; : > "$RES"
st() { # $1 tuning JSON, $2 extra flags
  local line; line=$(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 ${2:-} 2>&1 | grep -E 'block stages|rror|skipped' | head -2)
  echo "$1 ${2:-}: $line"
  [ -z "${2:-}" ] && echo "$(echo "$line" | grep -oE 'reduce [0-9.]+' | cut -d' ' -f2) $1" >> "$RES"
}
J='"block":512,"tq":1,"nblk":8'
{
nvidia-smi --query-gpu=name,clocks.sm --format=csv
el stages
for t in '{}' '{"sbar1":true}' '{"tq":1}' '{"tq":1,"nblk":2}' '{"tq":1,"nblk":8}' '{"tq":1,"sbar1":true}' \
  '{"tq":4}' '{"tq":4,"nblk":2}' '{"nblk":1}' '{"nblk":2}' '{"nblk":8}' '{"tseq":false}' '{"kstep":2,"nblk":1}' \
  '{"rdims":128}' '{"tq":1,"tseq":false}' "{$J,\"sbar1\":true}" "{$J,\"vjoin\":true,\"sbar1\":true}" '{}' '{"sbar1":true}' '{"tq":1}'; do st "$t"; done
st '{}' '--batch 6'; st '{"tq":1}' '--batch 6'; st '{"tq":1}' '--batch 7'
el "stagger (stag.patch applied in the working tree: PMKVQ_STAG delays co-resident score workgroups)"
for m in div mod half; do for n in 200 800; do echo "STAG $n $m $(PMKVQ_STAG=$n PMKVQ_STAGMODE=$m st '{}' '--batch 8')"; done; done
echo "STAG 2000 div $(PMKVQ_STAG=2000 st '{}' '--batch 8')"
el fresh
sort -n "$RES" | head -5
V='{"name":"block","tuning":{"block":{}}}'
for t in $(sort -n "$RES" | grep -v ' {}$' | awk '{print $2}' | awk '!seen[$0]++' | head -3); do
  V="$V,{\"name\":\"block $(echo "$t" | tr -d '{}"' | tr ',:' '  ')\",\"tuning\":{\"block\":$t}}"
done
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --md "$OUTD/f.md" --variants "[$V]" 2>&1 | tail -4
left=$(( LIMIT - ($(date +%s) - T0) - 10 ))
if [ "$left" -ge 100 ]; then
  el "conformance (timeout $left s)"
  timeout "$left" deno test -A tests/conformance_packed_test.ts --filter "/block attention at D|PM-KVQ mixed|static int2/" > "$OUTD/01-conformance.txt" 2>&1
  echo "rc $?"
  grep -E "sbar1|BlockAttention \{\}|passed|failed" "$OUTD/01-conformance.txt" | grep -v refused | tail -10
fi
el done
} 2>&1 | tee "$OUTD/01-sweep.log"
rm -f "$OUTD/f.md"
