#!/bin/bash
# call 5: the final tree — the whole packed conformance suite, then fresh processes of the {q2, q2} default
# (vshuf + sred + nblk 2) against the same call's 16-bit kernel
deno test -A tests/conformance_packed_test.ts > $OUT/05-conformance-all.txt 2>&1; echo "conformance rc $?"
grep -E "passed|failed" $OUT/05-conformance-all.txt | tail -2
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md $OUT/05-fresh-int16.md 2>&1 | tail -4
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int2,PM-KVQ 1@16 + body@2' --variants '[{"name":"block","tuning":{"block":{}}}]' --md $OUT/05-fresh-block.md --json $OUT/05-fresh-block.json 2>&1 | tail -6
