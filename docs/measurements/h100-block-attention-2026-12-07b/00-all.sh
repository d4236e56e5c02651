#!/usr/bin/env bash
# Sixteenth session, one call for little device time: int2 stages (one process each) of the default, vsub,
# kacc2, both, vpair uq 8; fresh processes (int16, int2 default, kacc2 + vsub); then, if at most LIMIT − 200 s
# have gone, the block conformance (vpair, vsub, kacc2 each byte-identical to its twin) in the time left.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && LIMIT=<s> bash <this file>
set -u
LIMIT=${LIMIT:-480}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
st() { echo "$1: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
fr() { deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts "$1" --variants "$2" --md "$OUTD/f.md" 2>&1 | tail -"$3"; }
{
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
el stages
st '{}'
st '{"vsub":true}'
st '{"kacc2":true}'
st '{"kacc2":true,"vsub":true}'
st '{"vpair":true,"uq":8}'
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
fr int2 '[{"name":"block","tuning":{"block":{}}},{"name":"block kacc2 vsub","tuning":{"block":{"kacc2":true,"vsub":true}}}]' 2
left=$(( LIMIT - ($(date +%s) - T0) - 10 ))
if [ "$left" -ge 200 ]; then
  el "conformance (timeout $left s)"
  timeout "$left" deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > "$OUTD/00-conformance.txt" 2>&1
  echo "rc $?"
  grep -E "vpair|vsub|kacc2|BlockAttention \{\}|passed|failed" "$OUTD/00-conformance.txt" | grep -v refused | tail -24
else
  el "conformance skipped ($left s left)"
fi
el done
} 2>&1 | tee "$OUTD/00-all.log"
rm -f "$OUTD/f.md"
