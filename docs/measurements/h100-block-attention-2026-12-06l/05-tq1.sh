#!/usr/bin/env bash
# The score kernel at tq 1 (128 invocations per 512-token block) with 4 / 8 blocks per workgroup under today's
# other defaults (call 4: tq 1 + nblk 4 100.8 µs cumulative against 101.6 / 101.9, one process each): stages, then
# fresh processes, medians of 3, against the 16-bit kernel and the default in the same call.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
st() { echo "$1: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
{
st '{}'
st '{"tq":1,"nblk":4}'
st '{"tq":1,"nblk":8}'
st '{"tq":1,"nblk":4,"sred":false}'
st '{"tq":1,"nblk":4}'
st '{}'
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
V='[{"name":"block","tuning":{"block":{}}},{"name":"block tq 1 nblk 4","tuning":{"block":{"tq":1,"nblk":4}}},{"name":"block tq 1 nblk 8","tuning":{"block":{"tq":1,"nblk":8}}}]'
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --variants "$V" --md "$OUTD/f.md" 2>&1 | tail -3
} 2>&1 | tee "$OUTD/05-tq1.log"
rm -f "$OUTD/f.md"
