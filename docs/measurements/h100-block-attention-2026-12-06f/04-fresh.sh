#!/bin/bash
# call 4: fresh processes (medians of 3) of the final tree's defaults (subgroups: vshuf for 2-bit V, sred for
# {q2, q2}), the same call's 16-bit kernel first; int2 with nblk 2 as a candidate default
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md $OUT/04-fresh-int16.md --json $OUT/04-fresh-int16.json 2>&1 | tail -4
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int4,int2,PM-KVQ 1@16 + body@4,PM-KVQ 1@16 + body@2' --variants '[{"name":"block","tuning":{"block":{}}}]' --md $OUT/04-fresh-block.md --json $OUT/04-fresh-block.json 2>&1 | tail -8
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int2,PM-KVQ 1@16 + body@2' --variants '[{"name":"block nblk 2","tuning":{"block":{"nblk":2}}}]' --md $OUT/04-fresh-nblk2.md 2>&1 | tail -6
