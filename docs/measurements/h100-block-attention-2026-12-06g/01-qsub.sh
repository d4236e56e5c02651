#!/bin/bash
# call 1: the score kernel computing the int8 query itself (qsub: no query dispatch) — block conformance
# (bit-identical to the query kernel's path), per-kernel stages, then fresh processes against the same call's
# 16-bit kernel
echo "=== conformance"
deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > $OUT/01-conformance.txt 2>&1; echo "conformance rc $?"
grep -E "qsub|passed|failed|FAILED" $OUT/01-conformance.txt | tail -30
run() { # layout tuning
  echo "=== $1 $2"
  deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$2]" --targets 8 --layouts "$1" --no-ers --qbits 2 2>&1 | grep -E "block stages|rror" | head -3
}
run int2 '{}'
run int2 '{"qsub":true}'
run int4 '{}'
run int4 '{"qsub":true}'
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md $OUT/01-fresh-int16.md 2>&1 | tail -4
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int2,PM-KVQ 1@16 + body@2,int4' --variants '[{"name":"block","tuning":{"block":{}}},{"name":"block qsub","tuning":{"block":{"qsub":true}}}]' --md $OUT/01-fresh-block.md --json $OUT/01-fresh-block.json 2>&1 | tail -10
