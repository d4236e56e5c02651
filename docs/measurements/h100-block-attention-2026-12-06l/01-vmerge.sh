#!/usr/bin/env bash
# vmerge (the value kernel's last workgroup per (sequence, KV head) merges the splits; no reduce dispatch):
# stages and fresh processes against the 16-bit kernel and the reduce path, the merge's unroll (PMKVQ_MU, a
# diagnostic knob of this call's tree), the vmerge tests and the block conformance cases.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem --format=csv > "$OUTD/01-smi.txt" 2>&1
st() { echo "$1 $2 $3: $(env $1 deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$3]" --targets 8 --layouts $2 --no-ers --qbits ${2#int} 2>&1 | grep -E 'block stages|rror' | head -2)"; }
{
for L in int2 int4; do for T in '{}' '{"vmerge":true}'; do st X=0 $L "$T"; done; done
st PMKVQ_MU=8 int2 '{"vmerge":true}'
st PMKVQ_MU=2 int2 '{"vmerge":true}'
st X=0 int2 '{}'
st X=0 int2 '{"vmerge":true}'
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int2,int4' \
  --variants '[{"name":"block","tuning":{"block":{}}},{"name":"block vmerge","tuning":{"block":{"vmerge":true}}}]' \
  --md "$OUTD/f.md" 2>&1 | tail -4
} 2>&1 | tee "$OUTD/01-vmerge.log"
rm -f "$OUTD/f.md"
deno test -A gpu/packed/block_merge_test.ts > "$OUTD/01-merge-test.txt" 2>&1; tail -3 "$OUTD/01-merge-test.txt"
deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > "$OUTD/01-conformance.txt" 2>&1
grep -E "vmerge|passed|failed" "$OUTD/01-conformance.txt" | tail -12
