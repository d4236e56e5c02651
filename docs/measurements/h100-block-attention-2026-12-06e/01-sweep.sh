#!/bin/bash
# call 1's sweep (run as: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash sweep.sh | tee $OUT/sweep.log)
# PMKVQ_DIAG needs diag.patch applied (scratch, not on main)
run() { # env layout tuning
  echo "=== $1 $2 $3"
  env $1 deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$3]" --targets 8 --layouts "$2" --no-ers --qbits 2 2>&1 | grep -E "block stages|rror" | head -3
}
for L in int2 int4; do
  run X=1 $L '{}'
  run X=1 $L '{"nblk":2}'
  run X=1 $L '{"nblk":4}'
done
run X=1 int2 '{"nblk":8}'
run X=1 int2 '{"pipe":true}'
run X=1 int2 '{"nblk":2,"pipe":true}'
run X=1 int2 '{"block":256,"tq":1,"nblk":4}'
run X=1 int2 '{"block":256,"tq":2,"tseq":true,"nblk":4}'
for D in kcomp kmem vcomp vmem kcomp,vcomp kmem,vmem; do
  run PMKVQ_DIAG=$D int2 '{}'
done
run PMKVQ_DIAG=kcomp int4 '{}'
run PMKVQ_DIAG=vcomp int4 '{}'
echo "=== conformance"
timeout 240 deno test -A tests/conformance_packed_test.ts --filter "/static int|PM-KVQ|HPK|D 64|reduce/" > $OUT/conformance.txt 2>&1; echo "rc $?"
grep -E "BlockAttention|ok \||FAILED" $OUT/conformance.txt | grep -E "nblk|\{\}|ok \||FAILED" | head -20
