#!/usr/bin/env bash
# The value kernel at 32 quads per step (uq 32 with wshfl) and without its vec4 fallback branch for subgroups
# other than 32 lanes (PMKVQ_NOFB: a diagnostic of this call's tree, uq32-nofb.patch — is the never-taken branch
# costing registers?), wgv 32 / 128: int2 stages, then fresh processes against the 16-bit kernel.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
st() { echo "$1 $2: $(env $1 deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$2]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror' | head -2)"; }
{
st X=0 '{}'
st PMKVQ_NOFB=1 '{}'
st X=0 '{"uq":32}'
st PMKVQ_NOFB=1 '{"uq":32}'
st X=0 '{"wgv":128}'
st PMKVQ_NOFB=1 '{"wgv":128}'
st PMKVQ_NOFB=1 '{"wgv":32,"uq":32}'
st PMKVQ_NOFB=1 '{"wgv":128,"uq":32}'
st X=0 '{}'
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
V='[{"name":"block","tuning":{"block":{}}},{"name":"block uq 32","tuning":{"block":{"uq":32}}}]'
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --variants "$V" --md "$OUTD/f.md" 2>&1 | tail -2
PMKVQ_NOFB=1 deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --variants "$V" --md "$OUTD/f.md" 2>&1 | tail -2 | sed 's/^/NOFB /'
} 2>&1 | tee "$OUTD/03-uq.log"
rm -f "$OUTD/f.md"
