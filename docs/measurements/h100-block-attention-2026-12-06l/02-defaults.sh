#!/usr/bin/env bash
# Today's defaults (main at the start of the session, 1634539: no vmerge), fresh processes, medians of 3,
# against the 16-bit kernel in the same call — among them MixedBlockAttention's 2-bit V body schedule as
# mixedBlockTuning selects it (wshfl / vsum1 off beside fused splits), which the eleventh session did not
# run after its last change — and the block stages of int2 and PM-KVQ body@2.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
{
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 \
  --layouts 'int2,int4,PM-KVQ 1@16 + body@2,PM-KVQ 1@16 + body@4' \
  --variants '[{"name":"block","tuning":{"block":{}}}]' --md "$OUTD/f.md" 2>&1 | tail -4
for L in int2 'PM-KVQ 1@16 + body@2'; do
  echo "$L {}: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block '[{}]' --targets 8 --layouts "$L" --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror' | head -2)"
done
} 2>&1 | tee "$OUTD/02-defaults.log"
rm -f "$OUTD/f.md"
