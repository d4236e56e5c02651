#!/bin/bash
# call 3 (warm machine of calls 1–2): rsub with the partials in registers (unrolled), fresh processes against the
# same call's 16-bit kernel, then the block conformance cases
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md $OUT/03-fresh-int16.md 2>&1 | tail -4
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int2,int4,PM-KVQ 1@16 + body@2,PM-KVQ 1@16 + body@4' --variants '[{"name":"block rsub","tuning":{"block":{"rsub":true}}}]' --md $OUT/03-fresh-block.md --json $OUT/03-fresh-block.json 2>&1 | tail -8
deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > $OUT/03-conformance.txt 2>&1; echo "conformance rc $?"
grep -E "rsub|passed|failed" $OUT/03-conformance.txt | grep -v refused | tail -6
deno test -A gpu/packed/block_reduce_test.ts 2>&1 | grep -E "runs within|passed|failed"
