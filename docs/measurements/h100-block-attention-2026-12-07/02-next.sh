#!/usr/bin/env bash
# NOT RUN (no device machine started this session). Fifteenth session, call 2 (same warm machine): PM-KVQ body@2 with vpair and with sbar-lazy.patch (/tmp/lazy),
# the score kernel with 2 blocks per workgroup at the new default, the reduce's rdims at 32 splits per head.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
HERE=$PWD
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
P=$HERE/docs/measurements/h100-block-attention-2026-12-07/sbar-lazy.patch
rm -rf /tmp/lazy && mkdir /tmp/lazy && cp -a gpu bench src cpu calib tests mod.ts deno.json /tmp/lazy/ \
  && { [ -f deno.lock ] && cp deno.lock /tmp/lazy/ || true; } && ln -s "$HERE/node_modules" /tmp/lazy/node_modules \
  && (cd /tmp/lazy && patch -s -p1 < "$P") && echo "lazy tree ready"
st() { echo "$1 $2 $3: $(cd "$1" && deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$3]" --targets 8 --layouts "$2" --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
fr() { deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts "$1" --variants "$2" --md "$OUTD/f.md" 2>&1 | tail -"$3"; }
{
el stages
st "$HERE" int2 '{"nblk":2}'
st "$HERE" int2 '{"rdims":16}'
st "$HERE" int2 '{"rdims":64}'
st "$HERE" 'PM-KVQ 1@16 + body@2' '{}'
st "$HERE" 'PM-KVQ 1@16 + body@2' '{"vpair":true,"uq":8}'
st /tmp/lazy 'PM-KVQ 1@16 + body@2' '{}'
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
fr 'PM-KVQ 1@16 + body@2' '[{"name":"block","tuning":{"block":{}}},{"name":"block vpair uq 8","tuning":{"block":{"vpair":true,"uq":8}}}]' 2
(cd /tmp/lazy && fr 'PM-KVQ 1@16 + body@2' '[{"name":"block (lazy)","tuning":{"block":{}}}]' 1)
el done
} 2>&1 | tee "$OUTD/02-next.log"
rm -f "$OUTD/f.md"
