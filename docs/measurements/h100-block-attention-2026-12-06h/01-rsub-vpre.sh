#!/bin/bash
# call 1: the reduce with subgroup folds and every load first (rsub) and the value kernel's byte prefixes (vpre)
# — the reduce unit test and block conformance, per-kernel stages, then fresh processes against the same call's
# 16-bit kernel
echo "=== reduce unit test + block conformance"
deno test -A gpu/packed/block_reduce_test.ts > $OUT/01-reduce-test.txt 2>&1; echo "reduce test rc $?"
deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > $OUT/01-conformance.txt 2>&1; echo "conformance rc $?"
grep -E "runs within|vpre|rsub|passed|failed|FAILED" $OUT/01-reduce-test.txt $OUT/01-conformance.txt | grep -v refused | tail -14
run() { # layout tuning
  echo "=== $1 $2"
  deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$2]" --targets 8 --layouts "$1" --no-ers --qbits 2 2>&1 | grep -E "block stages|rror" | head -3
}
run int2 '{}'
run int2 '{"vpre":true}'
run int2 '{"rsub":true}'
run int2 '{"vpre":true,"rsub":true}'
run int2 '{"vpre":true,"rsub":true,"rdims":16}'
run int2 '{"vpre":true,"rsub":true,"rdims":64}'
run int4 '{}'
run int4 '{"rsub":true}'
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md $OUT/01-fresh-int16.md 2>&1 | tail -4
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int2,PM-KVQ 1@16 + body@2' --variants '[{"name":"block","tuning":{"block":{}}},{"name":"block vpre rsub","tuning":{"block":{"vpre":true,"rsub":true}}}]' --md $OUT/01-fresh-block2.md --json $OUT/01-fresh-block2.json 2>&1 | tail -8
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int4,PM-KVQ 1@16 + body@4' --variants '[{"name":"block","tuning":{"block":{}}},{"name":"block rsub","tuning":{"block":{"rsub":true}}}]' --md $OUT/01-fresh-block4.md --json $OUT/01-fresh-block4.json 2>&1 | tail -8
