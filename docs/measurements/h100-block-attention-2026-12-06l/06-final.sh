#!/usr/bin/env bash
# The new {q2, q2} default on subgroups of 32 lanes (tq 1, nblk 8 on top of the eleventh session's schedule)
# against the previous one (tq 2, nblk 2) and nblk 16: stages, fresh processes (int2 and PM-KVQ body@2,
# whose MixedBlockAttention schedule takes the new fields too) against the 16-bit kernel, block conformance;
# and (vnb.patch, diagnostic PMKVQ_VNB) value workgroups that take 2 / 4 blocks in turn.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
st() { echo "$1 $2: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$2]" --targets 8 --layouts "$1" --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
{
for T in '{}' '{"tq":2,"nblk":2}' '{"nblk":16}'; do st int2 "$T"; done
for V in 2 4; do export PMKVQ_VNB=$V; echo "PMKVQ_VNB=$V $(st int2 '{}')"; unset PMKVQ_VNB; done
st 'PM-KVQ 1@16 + body@2' '{}'
st 'PM-KVQ 1@16 + body@2' '{"tq":2,"nblk":2}'
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
V='[{"name":"block","tuning":{"block":{}}},{"name":"block before (tq 2, nblk 2)","tuning":{"block":{"tq":2,"nblk":2}}}]'
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int2,PM-KVQ 1@16 + body@2' --variants "$V" --md "$OUTD/f.md" 2>&1 | tail -4
} 2>&1 | tee "$OUTD/06-final.log"
rm -f "$OUTD/f.md"
deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > "$OUTD/06-conformance.txt" 2>&1
grep -E "BlockAttention \{\}|nblk\":(8|16)|passed|failed" "$OUTD/06-conformance.txt" | tail -10
