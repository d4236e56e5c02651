#!/bin/bash
# call 6: MixedBlockAttention's fused splits in their own buffer, recorded after the block value kernel (may
# overlap it) against the earlier order (overlap false: into part, recorded first); same call, fresh processes
deno test -A tests/conformance_packed_test.ts --filter "/PM-KVQ|reduce/" > $OUT/06-conformance.txt 2>&1; echo "conformance rc $?"
grep -E "passed|failed" $OUT/06-conformance.txt | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md $OUT/06-fresh-int16.md 2>&1 | tail -3
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'PM-KVQ 1@16 + body@2,PM-KVQ 1@16 + body@4' --variants '[{"name":"block","tuning":{"block":{}}},{"name":"block no overlap","tuning":{"block":{"overlap":false}}}]' --md $OUT/06-fresh-pmkvq.md --json $OUT/06-fresh-pmkvq.json 2>&1 | tail -7
