#!/usr/bin/env bash
# Nineteenth session, call 2: `stouch` (score kernel: one word of each 128-byte line of the next block's K rows
# and sz words loaded at the start of this block, consumed after its dot products) against the int2 default,
# also at nblk 2 and on the block-512 / tq 1 / nblk 8 schedule (PM-KVQ body@2's); the score stage at batch 6;
# ablations of the score kernel (ablate.patch: no query loads / no K loads / no dot products / no exp);
# the SM clock during the stages (nvidia-smi every 200 ms); fresh processes int16 / int2 / PM-KVQ body@2 with
# and without; the block conformance (stouch's twins) last.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && LIMIT=<s> bash <this file>
set -u
LIMIT=${LIMIT:-560}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
st() { echo "$1 ${2:-}: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 ${2:-} 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
J='"block":512,"tq":1,"nblk":8'
{
nvidia-smi --query-gpu=name,clocks.sm --format=csv
el stages
# the SM clock, power and throttle reasons every 200 ms while the stages run (is the SM clock at its boost?)
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.max.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active --format=csv -lms 200 > "$OUTD/02-smi.csv" 2>&1 &
SMI=$!
for t in '{}' '{"stouch":true}' '{}' '{"stouch":true}' '{"nblk":2,"stouch":true}' "{$J}" "{$J,\"stouch\":true}" '{}' '{"stouch":true}'; do st "$t"; done
st '{}' '--batch 6'; st '{"stouch":true}' '--batch 6'
el "ablations (ablate.patch applied in the working tree: PMKVQ_ABL removes one kind of the score kernel's work)"
for a in noq nok nodot noexp nok,nodot noq,nodot nok,noq,nodot,noexp; do echo "ABL $a $(PMKVQ_ABL=$a st '{}' '--batch 8')"; done
kill $SMI; sort -t, -k2 -n "$OUTD/02-smi.csv" | awk -F, '{print $2}' | uniq -c | sort -k2 -n | tail -8
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts "int2,PM-KVQ 1@16 + body@2" --md "$OUTD/f.md" --variants '[{"name":"block","tuning":{"block":{}}},{"name":"block stouch","tuning":{"block":{"stouch":true}}}]' 2>&1 | tail -4
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
left=$(( LIMIT - ($(date +%s) - T0) - 10 ))
if [ "$left" -ge 100 ]; then
  el "conformance (timeout $left s)"
  timeout "$left" deno test -A tests/conformance_packed_test.ts --filter "/static int2|block attention at D|PM-KVQ mixed/" > "$OUTD/02-conformance.txt" 2>&1
  echo "rc $?"
  grep -E "stouch|BlockAttention \{\}|passed|failed" "$OUTD/02-conformance.txt" | grep -v refused | tail -14
fi
el done
} 2>&1 | tee "$OUTD/02-touch.log"
rm -f "$OUTD/f.md"
