#!/bin/bash
# call 2: the final tree (qsub a subgroup default for every pair) — the whole packed conformance suite, the
# int2 stages with nblk 1 / 2 (default) / 4 under qsub, then fresh processes of the defaults against the same
# call's 16-bit kernel
deno test -A tests/conformance_packed_test.ts > $OUT/02-conformance-all.txt 2>&1; echo "conformance rc $?"
grep -E "passed|failed" $OUT/02-conformance-all.txt | tail -2
run() { # layout tuning
  echo "=== $1 $2"
  deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$2]" --targets 8 --layouts "$1" --no-ers --qbits 2 2>&1 | grep -E "block stages|rror" | head -3
}
run int2 '{}'
run int2 '{"nblk":1}'
run int2 '{"nblk":4}'
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md $OUT/02-fresh-int16.md 2>&1 | tail -4
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int4,int2,PM-KVQ 1@16 + body@4,PM-KVQ 1@16 + body@2' --variants '[{"name":"block","tuning":{"block":{}}}]' --md $OUT/02-fresh-block.md --json $OUT/02-fresh-block.json 2>&1 | tail -8
