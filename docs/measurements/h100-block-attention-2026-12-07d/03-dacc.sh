#!/usr/bin/env bash
# Eighteenth session, call 3: the dot-product probe with the score kernel's loop in miniature (vec4 against
# per-component accumulation); dacc (per-component accumulation in both kernels), nblk 2 with sbar2, vst4 with
# sbar2 + rdims 64 as int2 stages; fresh processes against int16; the block conformance in the time left.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && LIMIT=<s> bash <this file>
set -u
LIMIT=${LIMIT:-540}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
st() { echo "$1: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
A='"sbar2":true,"rdims":64,"vst4":true'
{
nvidia-smi --query-gpu=name,clocks.sm --format=csv
el probe
deno run -A bench/gpu_dot4_probe.ts 2>&1 | tail -13
el stages
for t in '{}' '{"dacc":true}' "{$A}" "{$A,\"dacc\":true}" '{"nblk":2,"sbar2":true}' '{}' '{"dacc":true}' "{$A}"; do st "$t"; done
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --md "$OUTD/f.md" --variants "[{\"name\":\"block\",\"tuning\":{\"block\":{}}},{\"name\":\"block sbar2 rdims 64 vst4\",\"tuning\":{\"block\":{$A}}},{\"name\":\"block dacc\",\"tuning\":{\"block\":{\"dacc\":true}}},{\"name\":\"block sbar2 rdims 64 vst4 dacc\",\"tuning\":{\"block\":{$A,\"dacc\":true}}}]" 2>&1 | tail -4
left=$(( LIMIT - ($(date +%s) - T0) - 10 ))
if [ "$left" -ge 100 ]; then
  el "conformance (timeout $left s)"
  timeout "$left" deno test -A tests/conformance_packed_test.ts --filter "/static int2|block attention at D 64|PM-KVQ mixed/" > "$OUTD/03-conformance.txt" 2>&1
  echo "rc $?"
  grep -E "dacc|vst4|vstat|passed|failed" "$OUTD/03-conformance.txt" | grep -v refused | tail -12
else
  el "conformance skipped ($left s left)"
fi
el done
} 2>&1 | tee "$OUTD/03-dacc.log"
rm -f "$OUTD/f.md"
