#!/usr/bin/env bash
# Thirteenth session, call 2. The working tree = HEAD e9d1cc3 + sbar-lazy.patch: with `sred` the score kernel
# takes one barrier per block and leaves its sums to the next one — the maxima double-buffered by block parity,
# each subgroup's sums to one of three slots (block mod 3) with no barrier, added by invocation 0 in subgroup
# order after the next block's maxima barrier (the last block's after one more barrier): the value kernel and
# every output bit unchanged. /tmp/base = the tree with the patch reversed (HEAD's kernels). Stages (one
# process each, alternating) and fresh processes (medians of 3), no 16-bit run. Kept short: the
# session's device time was nearly spent on machines that did not start.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
HERE=$PWD
P=$HERE/docs/measurements/h100-block-attention-2026-12-06m/sbar-lazy.patch
rm -rf /tmp/base && mkdir /tmp/base && cp -a gpu bench src cpu calib tests mod.ts deno.json deno.lock /tmp/base/ \
  && ln -s "$HERE/node_modules" /tmp/base/node_modules \
  && (cd /tmp/base && patch -s -R -p1 < "$P") && echo "base tree ready"
st() { echo "$1 $2 $3: $(cd "$1" && deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$3]" --targets 8 --layouts "$2" --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
{
for i in 1 2; do st /tmp/base int2 '{}'; st "$HERE" int2 '{}'; done
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --variants '[{"name":"block","tuning":{"block":{}}}]' --md "$OUTD/f.md" 2>&1 | tail -1
(cd /tmp/base && deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 --variants '[{"name":"block (HEAD e9d1cc3)","tuning":{"block":{}}}]' --md "$OUTD/f.md" 2>&1 | tail -1)
} 2>&1 | tee "$OUTD/02-sbar-lazy.log"
rm -f "$OUTD/f.md"
