#!/usr/bin/env bash
# Fourteenth session, call 2: 1024-token blocks with 2 quads per score invocation (tq 2, nblk 4 / 2), with and
# without sbar-lazy.patch (/tmp/lazy), fresh processes against the 16-bit kernel; stages.
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
HERE=$PWD
P=$HERE/docs/measurements/h100-block-attention-2026-12-06n/sbar-lazy.patch
rm -rf /tmp/lazy && mkdir /tmp/lazy && cp -a gpu bench src cpu calib tests mod.ts deno.json /tmp/lazy/ \
  && { [ -f deno.lock ] && cp deno.lock /tmp/lazy/ || true; } && ln -s "$HERE/node_modules" /tmp/lazy/node_modules \
  && (cd /tmp/lazy && patch -s -p1 < "$P") && echo "lazy tree ready"
st() { echo "$1 $2 $3: $(cd "$1" && deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$3]" --targets 8 --layouts "$2" --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
fr() { deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts "$1" --variants "$2" --md "$OUTD/f.md" 2>&1 | tail -"$3"; }
{
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
fr int2 '[{"name":"block","tuning":{"block":{}}},{"name":"block 1024 tq 2 nblk 4","tuning":{"block":{"block":1024,"tq":2,"nblk":4}}}]' 2
(cd /tmp/lazy && fr int2 '[{"name":"block 1024 tq 2 nblk 4 (lazy)","tuning":{"block":{"block":1024,"tq":2,"nblk":4}}},{"name":"block 1024 tq 2 nblk 2 (lazy)","tuning":{"block":{"block":1024,"tq":2,"nblk":2}}}]' 2)
st /tmp/lazy int2 '{"block":1024,"tq":2,"nblk":4}'
st /tmp/lazy int2 '{"block":1024,"tq":2,"nblk":8}'
st /tmp/lazy int2 '{"block":1024,"tq":2,"nblk":4,"wgv":128}'
st /tmp/lazy int2 '{"block":1024,"tq":4,"nblk":4}'
(cd /tmp/lazy && fr 'PM-KVQ 1@16 + body@2' '[{"name":"block 1024 tq 2 nblk 4 (lazy)","tuning":{"block":{"block":1024,"tq":2,"nblk":4}}}]' 1)
} 2>&1 | tee "$OUTD/02-b1024.log"
rm -f "$OUTD/f.md"
