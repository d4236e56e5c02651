#!/usr/bin/env bash
# NOT RUN (written at the end of the fourteenth session, for the next call on the H100): the block conformance
# first (the new int2 default, block 1024 + tq 2 + nblk 4, was chosen after call 1's conformance run), then
# PM-KVQ body@2 (still tq 1 at block 512) with and without sbar-lazy.patch (/tmp/lazy), and the reduce's rdims
# at the new default's 32 splits per head. Fresh processes against the 16-bit kernel; stages one process each.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
HERE=$PWD
P=$HERE/docs/measurements/h100-block-attention-2026-12-06n/sbar-lazy.patch
timeout 150 deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > "$OUTD/04-conformance.txt" 2>&1
grep -E "BlockAttention \{\}|passed|failed" "$OUTD/04-conformance.txt" | tail -8
rm -rf /tmp/lazy && mkdir /tmp/lazy && cp -a gpu bench src cpu calib tests mod.ts deno.json /tmp/lazy/ \
  && { [ -f deno.lock ] && cp deno.lock /tmp/lazy/ || true; } && ln -s "$HERE/node_modules" /tmp/lazy/node_modules \
  && (cd /tmp/lazy && patch -s -p1 < "$P") && echo "lazy tree ready"
st() { echo "$1 $2 $3: $(cd "$1" && deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$3]" --targets 8 --layouts "$2" --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
fr() { deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts "$1" --variants "$2" --md "$OUTD/f.md" 2>&1 | tail -"$3"; }
{
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
fr 'int2,PM-KVQ 1@16 + body@2' '[{"name":"block","tuning":{"block":{}}}]' 2
(cd /tmp/lazy && fr 'PM-KVQ 1@16 + body@2' '[{"name":"block (lazy)","tuning":{"block":{}}}]' 1)
st "$HERE" int2 '{}'
st "$HERE" int2 '{"rdims":16}'
st "$HERE" int2 '{"rdims":64}'
st "$HERE" 'PM-KVQ 1@16 + body@2' '{}'
st /tmp/lazy 'PM-KVQ 1@16 + body@2' '{}'
} 2>&1 | tee "$OUTD/04-next.log"
rm -f "$OUTD/f.md"
