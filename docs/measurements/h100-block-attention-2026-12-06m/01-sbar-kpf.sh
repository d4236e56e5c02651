#!/usr/bin/env bash
# Thirteenth session, call 1. The working tree = HEAD e9d1cc3 + sbar-kpf.patch: the score kernel with `sred`
# takes one barrier per block (maxima double-buffered by block parity, the sums written per subgroup to bst and
# added by the value kernel in subgroup order: byte-identical outputs), and the `kpf` knob (the next block's K
# rows prefetched word by word during this block's dot products). /tmp/base = the tree with the patch reversed
# (HEAD's kernels). Stages (one process each), fresh processes (medians of 3) against the 16-bit kernel, block
# conformance; tq 1 with nblk 4 (1,024 score workgroups, 8 per SM would hold them in one wave); and
# 1024-token blocks at tq 1 (nblk 4: 512 score workgroups, as the default's 8 × 512).
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
HERE=$PWD
P=$HERE/docs/measurements/h100-block-attention-2026-12-06m/sbar-kpf.patch
rm -rf /tmp/base && mkdir /tmp/base && cp -a gpu bench src cpu calib tests mod.ts deno.json /tmp/base/ \
  && { [ -f deno.lock ] && cp deno.lock /tmp/base/ || true; } && ln -s "$HERE/node_modules" /tmp/base/node_modules \
  && (cd /tmp/base && patch -s -R -p1 < "$P") && echo "base tree ready"
st() { echo "$1 $2 $3: $(cd "$1" && deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$3]" --targets 8 --layouts "$2" --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
{
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
st /tmp/base int2 '{}'
st "$HERE" int2 '{}'
st "$HERE" int2 '{"kpf":true}'
st /tmp/base int2 '{}'
st "$HERE" int2 '{}'
st "$HERE" int2 '{"kpf":true}'
st "$HERE" int2 '{"nblk":4}'
st "$HERE" int2 '{"nblk":4,"kpf":true}'
st "$HERE" int2 '{"block":1024,"nblk":4}'
st "$HERE" int2 '{"block":1024,"nblk":4,"kpf":true}'
st "$HERE" 'PM-KVQ 1@16 + body@2' '{}'
st "$HERE" 'PM-KVQ 1@16 + body@2' '{"kpf":true}'
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
V='[{"name":"block","tuning":{"block":{}}},{"name":"block kpf","tuning":{"block":{"kpf":true}}}]'
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int2,PM-KVQ 1@16 + body@2' --variants "$V" --md "$OUTD/f.md" 2>&1 | tail -4
(cd /tmp/base && deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int2' --variants '[{"name":"block (HEAD e9d1cc3)","tuning":{"block":{}}}]' --md "$OUTD/f.md" 2>&1 | tail -1)
} 2>&1 | tee "$OUTD/01-sbar-kpf.log"
rm -f "$OUTD/f.md"
deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > "$OUTD/01-conformance.txt" 2>&1
grep -E "BlockAttention \{\}|kpf|passed|failed" "$OUTD/01-conformance.txt" | tail -12
