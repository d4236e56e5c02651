#!/bin/bash
# call 1: load patterns (access probe), then fresh processes: the 16-bit kernel, int2 with the default block
# schedule and with qcon (consecutive quads); then the int2 stages of the default, qcon and qcon + wshuf
deno run -A bench/gpu_access_probe.ts 2>&1 | tail -16
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md $OUT/01-fresh-int16.md 2>&1 | tail -4
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int2' --variants '[{"name":"block","tuning":{"block":{}}},{"name":"block qcon","tuning":{"block":{"qcon":true}}}]' --md $OUT/01-fresh-int2.md --json $OUT/01-fresh-int2.json 2>&1 | tail -6
run() { echo "=== $1 $2"; deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$2]" --targets 8 --layouts "$1" --no-ers --qbits 2 2>&1 | grep -E "block stages|rror" | head -3; }
run int2 '{}'; run int2 '{"qcon":true}'; run int2 '{"qcon":true,"wshuf":true}'
deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > $OUT/01-conformance.txt 2>&1; echo "conformance rc $?"
grep -E "qcon|passed|failed" $OUT/01-conformance.txt | grep -v refused | tail -8
