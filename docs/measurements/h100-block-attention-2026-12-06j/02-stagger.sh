#!/usr/bin/env bash
# Staggered schedules (vstag / sstag): stages per tuning (one process each, 2 reps), fresh processes for the
# candidates against the 16-bit kernel, then the block conformance cases.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
for T in '{}' '{"vstag":4}' '{"vstag":2}' '{"vstag":6}' '{"vstag":1}' '{"sstag":true}' '{"vstag":4,"sstag":true}' '{"uq":4,"vstag":2}' '{"nblk":4,"sstag":true,"vstag":4}'; do
  for rep in 1 2; do
    echo "$T rep $rep: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$T]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -i 'block stages\|skipped\|error' | head -2)"
  done
done 2>&1 | tee "$OUTD/02-stages.log"
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/02-fresh-int16.md" > "$OUTD/02-fresh-int16.log" 2>&1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 \
  --variants '[{"name":"block","tuning":{"block":{}}},{"name":"vstag4","tuning":{"block":{"vstag":4}}},{"name":"vstag4+sstag","tuning":{"block":{"vstag":4,"sstag":true}}}]' \
  --md "$OUTD/02-fresh-block.md" --json "$OUTD/02-fresh-block.json" > "$OUTD/02-fresh-block.log" 2>&1
cat "$OUTD/02-fresh-int16.md" "$OUTD/02-fresh-block.md"
deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > "$OUTD/02-conformance.txt" 2>&1
grep -E "stag|passed|failed" "$OUTD/02-conformance.txt" | tail -12
