#!/usr/bin/env bash
# wlds (the value kernel's weights staged in workgroup memory): stages per tuning (one process each, 2 reps),
# fresh processes against the 16-bit kernel, then the block conformance cases.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
for T in '{}' '{"wlds":true}' '{"wlds":true,"pipe":true}' '{"wlds":true,"pipe":true,"uq":4}' '{"wlds":true,"wgv":128}' '{"wlds":true,"wgv":128,"pipe":true}' '{"wlds":true,"pipe":true,"uq":2}'; do
  for rep in 1 2; do
    echo "$T rep $rep: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$T]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -i 'block stages\|skipped\|error' | head -2)"
  done
done 2>&1 | tee "$OUTD/03-stages.log"
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/03-fresh-int16.md" > "$OUTD/03-fresh-int16.log" 2>&1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2,int4 \
  --variants '[{"name":"block","tuning":{"block":{}}},{"name":"wlds","tuning":{"block":{"wlds":true}}},{"name":"wlds+pipe","tuning":{"block":{"wlds":true,"pipe":true}}}]' \
  --md "$OUTD/03-fresh-block.md" --json "$OUTD/03-fresh-block.json" > "$OUTD/03-fresh-block.log" 2>&1
cat "$OUTD/03-fresh-int16.md" "$OUTD/03-fresh-block.md"
deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > "$OUTD/03-conformance.txt" 2>&1
grep -E "wlds|passed|failed" "$OUTD/03-conformance.txt" | tail -8
