#!/bin/bash
# call 2: fresh processes (medians of 3), the same call's 16-bit kernel first. "block" = the defaults (with
# the adapter's subgroups: vshuf for 2-bit V, sred for {q2, q2}); "block no subgroups" = the stop-22 kernels
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md $OUT/02-fresh-int16.md 2>&1 | tail -4
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int2,PM-KVQ 1@16 + body@2' --variants '[{"name":"block","tuning":{"block":{}}},{"name":"block no subgroups","tuning":{"block":{"vshuf":false,"sred":false}}}]' --md $OUT/02-fresh-int2.md --json $OUT/02-fresh-int2.json 2>&1 | tail -8
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int4,PM-KVQ 1@16 + body@4' --variants '[{"name":"block","tuning":{"block":{}}}]' --md $OUT/02-fresh-int4.md --json $OUT/02-fresh-int4.json 2>&1 | tail -6
