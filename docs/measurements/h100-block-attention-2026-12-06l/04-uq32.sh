#!/usr/bin/env bash
# Call 3 again for the variants it could not run: a given uq 32 (or wshfl) alone was refused by create's
# K-row check before the subgroup defaults merged (fixed in this call's tree, bdfaa11). uq 32 with wshfl, wgv
# 32 / 128; the score kernel at tq 1 (nblk 2 / 4) under today's other defaults; then fresh processes against the
# 16-bit kernel. PMKVQ_NOFB: uq32-nofb.patch (diagnostic).
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
st() { echo "$1 $2: $(env $1 deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$2]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
{
st X=0 '{}'
st X=0 '{"uq":32}'
st PMKVQ_NOFB=1 '{"uq":32}'
st X=0 '{"wgv":32,"uq":32}'
st X=0 '{"wgv":128,"uq":32}'
st X=0 '{"uq":32,"vsum1":false}'
st X=0 '{"tq":1}'
st X=0 '{"tq":1,"nblk":4}'
st X=0 '{}'
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
V='[{"name":"block","tuning":{"block":{}}},{"name":"block uq 32","tuning":{"block":{"uq":32}}}]'
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --variants "$V" --md "$OUTD/f.md" 2>&1 | tail -2
} 2>&1 | tee "$OUTD/04-uq32.log"
rm -f "$OUTD/f.md"
