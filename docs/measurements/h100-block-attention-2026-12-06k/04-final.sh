#!/usr/bin/env bash
# The landed knobs (wshfl, uq 16, vsum1: the {q2, q2} default on subgroups of 32 lanes): fresh processes
# against the 16-bit kernel and the previous int2 schedule in the same call, int4 and PM-KVQ body@2/@4, stages,
# the subgroup probe's size, and the block conformance cases.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
{
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int2,PM-KVQ 1@16 + body@2' \
  --variants '[{"name":"block","tuning":{"block":{}}},{"name":"block before (uq 8)","tuning":{"block":{"wshfl":false,"vsum1":false,"uq":8}}}]' \
  --md "$OUTD/f.md" 2>&1 | tail -4
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int4,PM-KVQ 1@16 + body@4' \
  --variants '[{"name":"block","tuning":{"block":{}}}]' --md "$OUTD/f.md" 2>&1 | tail -2
for T in '{}' '{"wshfl":false,"vsum1":false,"uq":8}'; do
  echo "int2 $T: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$T]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror' | head -2)"
done
} 2>&1 | tee "$OUTD/04-fresh.log"
rm -f "$OUTD/f.md"
deno test -A gpu/packed/subgroups_test.ts 2>&1 | grep -E "size|passed|failed" | tee "$OUTD/04-subgroups.txt"
deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > "$OUTD/04-conformance.txt" 2>&1
grep -E "wshfl|vsum1|BlockAttention \{\}|passed|failed" "$OUTD/04-conformance.txt" | tail -14
