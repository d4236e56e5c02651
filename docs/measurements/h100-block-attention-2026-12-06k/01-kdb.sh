#!/usr/bin/env bash
# Double-buffered K rows in the score kernel (kdb 1/2/3): stages per tuning (one process each), fresh processes
# for the candidates against the 16-bit kernel, then the block conformance cases (kdb schedules included).
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
stage() { # layout qbits tuning
  echo "$1 $3: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$3]" --targets 8 --layouts "$1" --no-ers --qbits "$2" 2>&1 | grep -i 'block stages\|skipped\|error' | head -2)"
}
{
  for T in '{}' '{"kdb":1}' '{"kdb":2}' '{"kdb":3}' '{}' '{"kdb":1}' '{"kdb":2}' '{"kdb":3}' \
    '{"nblk":4,"kdb":2}' '{"nblk":4,"kdb":3}' '{"nblk":1,"kdb":1}' '{"tq":4,"kdb":1}' '{"tq":4,"kdb":3}'; do
    stage int2 2 "$T"
  done
  for T in '{}' '{"kdb":1}' '{"kdb":2}' '{"kdb":3}'; do stage int4 4 "$T"; done
} 2>&1 | tee "$OUTD/01-stages.log"
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/01-fresh-int16.md" > "$OUTD/01-fresh-int16.log" 2>&1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 \
  --variants '[{"name":"block","tuning":{"block":{}}},{"name":"kdb1","tuning":{"block":{"kdb":1}}},{"name":"kdb2","tuning":{"block":{"kdb":2}}},{"name":"kdb3","tuning":{"block":{"kdb":3}}}]' \
  --md "$OUTD/01-fresh-block.md" --json "$OUTD/01-fresh-block.json" > "$OUTD/01-fresh-block.log" 2>&1
cat "$OUTD/01-fresh-int16.md" "$OUTD/01-fresh-block.md"
deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > "$OUTD/01-conformance.txt" 2>&1
grep -E "kdb|passed|failed" "$OUTD/01-conformance.txt" | tail -16
