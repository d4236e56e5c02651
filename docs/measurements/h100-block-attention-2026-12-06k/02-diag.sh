#!/usr/bin/env bash
# Diagnostic knobs of diag.patch (environment variables): PMKVQ_PROBE (residency: most workgroups of each kernel
# alive at once, by atomic counters), PMKVQ_VBPRE (value kernel: block statistics loaded before the lane-sum
# barrier), PMKVQ_KSHL (score kernel, 2-bit K: planes at ×16 by left shifts, one right shift per word),
# PMKVQ_WSHFL (value kernel: one weights word per lane per step, the quads' weights by subgroupShuffle; uq 16
# allowed). The dot4 probe with its XOR variants first. Stages (one process each), H100 conformance of the int2 case per knob, fresh processes.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
deno run -A bench/gpu_dot4_probe.ts > "$OUTD/02-dot4-probe.log" 2>&1; cat "$OUTD/02-dot4-probe.log"
stage() { # env tuning [extra args]
  echo "$1 $2 ${3:-}: $(env $1 deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$2]" --targets 8 --layouts int2 --no-ers --qbits 2 ${3:-} 2>&1 | grep -i 'block stages\|probe\|skipped\|error' | head -3 | tr '\n' ' ')"
}
{
  stage PMKVQ_PROBE=1 '{}'
  stage PMKVQ_PROBE=1 '{}' '--tokens 65536'
  stage "PMKVQ_PROBE=1 PMKVQ_WSHFL=1" '{"uq":16}' '--tokens 65536'
  for E in X=0 PMKVQ_VBPRE=1 PMKVQ_KSHL=1 PMKVQ_WSHFL=1 X=0 PMKVQ_KSHL=1 PMKVQ_WSHFL=1; do stage $E '{}'; done
  stage PMKVQ_WSHFL=1 '{"uq":16}'; stage PMKVQ_WSHFL=1 '{"uq":16}'
  stage "PMKVQ_KSHL=1 PMKVQ_VBPRE=1 PMKVQ_WSHFL=1" '{}'
  stage "PMKVQ_KSHL=1 PMKVQ_VBPRE=1 PMKVQ_WSHFL=1" '{"uq":16}'
} 2>&1 | tee "$OUTD/02-stages.log"
for E in X=0 "PMKVQ_KSHL=1 PMKVQ_VBPRE=1 PMKVQ_WSHFL=1"; do
  echo "== $E"; env $E deno test -A tests/conformance_packed_test.ts --filter "/static int2/" 2>&1 | grep -E "BlockAttention|passed|failed|rror" | tail -12
done > "$OUTD/02-conformance.txt" 2>&1
tail -4 "$OUTD/02-conformance.txt"
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/02-fresh-int16.md" > "$OUTD/02-fresh-int16.log" 2>&1
i=0
for E in X=0 "PMKVQ_KSHL=1 PMKVQ_VBPRE=1" "PMKVQ_KSHL=1 PMKVQ_VBPRE=1 PMKVQ_WSHFL=1"; do
  i=$((i+1))
  env $E deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 \
    --variants '[{"name":"block","tuning":{"block":{}}}]' --md "$OUTD/02-fresh-$i.md" > "$OUTD/02-fresh-$i.log" 2>&1
  echo "== $E"; tail -1 "$OUTD/02-fresh-$i.md"
done
env PMKVQ_KSHL=1 PMKVQ_VBPRE=1 PMKVQ_WSHFL=1 deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 \
  --variants '[{"name":"uq16","tuning":{"block":{"uq":16}}}]' --md "$OUTD/02-fresh-4.md" > "$OUTD/02-fresh-4.log" 2>&1
echo "== all3 uq16"; tail -1 "$OUTD/02-fresh-4.md"
cat "$OUTD/02-fresh-int16.md" | tail -1
