#!/bin/bash
# call 3: int2 schedules on top of the subgroup defaults (vshuf + sred), kplanes; then fresh processes
run() { # layout tuning
  echo "=== $1 $2"
  deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$2]" --targets 8 --layouts "$1" --no-ers --qbits 2 2>&1 | grep -E "block stages|rror" | head -3
}
run int2 '{}'
run int2 '{"kplanes":true}'
run int2 '{"nblk":1}'
run int2 '{"nblk":2}'
run int2 '{"nblk":8}'
run int2 '{"uq":4}'
run int2 '{"wgv":32}'
run int2 '{"tq":4}'
run int2 '{"block":1024,"tq":4}'
run int2 '{"block":1024,"tq":2}'
run int2 '{"block":1024,"tq":4,"nblk":2}'
run int2 '{"block":1024,"tq":4,"kplanes":true}'
run int2 '{}'
echo "=== fresh"
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md $OUT/03-fresh-int16.md 2>&1 | tail -4
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int2' --variants '[{"name":"block","tuning":{"block":{}}},{"name":"block kplanes","tuning":{"block":{"kplanes":true}}}]' --md $OUT/03-fresh-int2.md 2>&1 | tail -6
