#!/bin/bash
# call 5: the PM-KVQ layouts with the tree reduce and with rsub in one call (call 1 and call 3 disagreed at body@4)
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'PM-KVQ 1@16 + body@4,PM-KVQ 1@16 + body@2,int4' --variants '[{"name":"block trees","tuning":{"block":{"rsub":false}}},{"name":"block rsub","tuning":{"block":{"rsub":true}}}]' --md $OUT/05-fresh-mixed.md --json $OUT/05-fresh-mixed.json 2>&1 | tail -9
