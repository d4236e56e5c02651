#!/usr/bin/env bash
# Fourteenth session, call 1. The working tree = the `vmrg` knob (value workgroups merging 2 / 4 blocks in
# registers into one split: half / a quarter of the value workgroups, the splits written and the splits the
# reduce merges; the same weights) on top of e42f055's kernels (vmrg 1 = byte-identical WGSL). /tmp/lazy = the
# tree + sbar-lazy.patch (the thirteenth session's unmeasured one-barrier-per-block score kernel). Also
# 1024-token blocks with 1-quad score invocations in one wave (tq 1, nblk 8: 256 workgroups of 8 warps) or
# 2 quads per invocation (tq 2, nblk 4 / 2). Stages (one process each), fresh processes (medians of 3)
# against the 16-bit kernel, block conformance. Ordered so that a run cut short still has the main figures.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
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
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
st "$HERE" int2 '{}'
st "$HERE" int2 '{"vmrg":2}'
st "$HERE" int2 '{"vmrg":4}'
st /tmp/lazy int2 '{}'
st /tmp/lazy int2 '{"vmrg":2}'
st "$HERE" int2 '{"block":1024,"tq":1,"nblk":8}'
st "$HERE" int2 '{"block":1024,"tq":1,"nblk":8,"vmrg":2}'
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
fr int2 '[{"name":"block","tuning":{"block":{}}},{"name":"block vmrg 2","tuning":{"block":{"vmrg":2}}},{"name":"block vmrg 4","tuning":{"block":{"vmrg":4}}}]' 3
(cd /tmp/lazy && fr int2 '[{"name":"block vmrg 2 (lazy)","tuning":{"block":{"vmrg":2}}}]' 1)
st "$HERE" int2 '{"vmrg":2,"uq":8}'
st "$HERE" int2 '{"vmrg":2,"wgv":128}'
st "$HERE" int2 '{"vmrg":2,"rdims":64}'
st "$HERE" int2 '{"vmrg":4,"rdims":64}'
st "$HERE" int2 '{"block":1024,"tq":2,"nblk":4}'
st "$HERE" int2 '{"block":1024,"tq":2,"nblk":2}'
st /tmp/lazy int2 '{"block":1024,"tq":1,"nblk":8}'
st "$HERE" 'PM-KVQ 1@16 + body@2' '{}'
st "$HERE" 'PM-KVQ 1@16 + body@2' '{"vmrg":2}'
st "$HERE" int4 '{}'
st "$HERE" int4 '{"vmrg":2}'
fr int2 '[{"name":"block 1024 tq 1 nblk 8 vmrg 2","tuning":{"block":{"block":1024,"tq":1,"nblk":8,"vmrg":2}}}]' 1
(cd /tmp/lazy && fr int2 '[{"name":"block (lazy)","tuning":{"block":{}}}]' 1)
fr 'PM-KVQ 1@16 + body@2' '[{"name":"block","tuning":{"block":{}}},{"name":"block vmrg 2","tuning":{"block":{"vmrg":2}}}]' 2
} 2>&1 | tee "$OUTD/01-vmrg.log"
rm -f "$OUTD/f.md"
timeout 150 deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > "$OUTD/01-conformance.txt" 2>&1
grep -E "BlockAttention \{\}|vmrg|passed|failed" "$OUTD/01-conformance.txt" | tail -14
