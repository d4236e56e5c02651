#!/bin/bash
# call 2 (PMKVQ_DIAG needs diag.patch applied; scratch, not on main)
# scratch sweep (not committed)
run() { # env layout tuning
  echo "=== $1 $2 $3"
  env $1 deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$3]" --targets 8 --layouts "$2" --no-ers --qbits 2 2>&1 | grep -E "block stages|rror" | head -3
}
run X=1 int2 '{}'
run PMKVQ_DIAG=ypack int2 '{}'
run X=1 int2 '{"nblk":4}'
run PMKVQ_DIAG=ypack int2 '{"nblk":4}'
run PMKVQ_DIAG=kcomp,kmem int2 '{}'
run PMKVQ_DIAG=vcomp,vmem int2 '{}'
run PMKVQ_DIAG=ypack int4 '{}'
run X=1 int4 '{"nblk":4}'
echo "=== fresh"
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md $OUT/fresh-int16.md 2>&1 | tail -4
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts 'int4,int2,PM-KVQ 1@16 + body@4,PM-KVQ 1@16 + body@2' --variants '[{"name":"block","tuning":{"block":{}}},{"name":"block nblk 4","tuning":{"block":{"nblk":4}}}]' --md $OUT/fresh-block.md 2>&1 | tail -12
