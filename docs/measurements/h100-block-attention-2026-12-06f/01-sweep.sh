#!/bin/bash
# call 1: per-kernel stages of the subgroup knobs (vshuf, sred) + the block conformance cases (H100)
run() { # layout tuning
  echo "=== $1 $2"
  deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$2]" --targets 8 --layouts "$1" --no-ers --qbits 2 2>&1 | grep -E "block stages|rror" | head -3
}
deno eval 'const a = await navigator.gpu.requestAdapter(); console.log(a.info.description, "subgroups", a.info.subgroupMinSize, a.info.subgroupMaxSize)'
run int2 '{}'
run int2 '{"vshuf":true}'
run int2 '{"sred":true}'
run int2 '{"vshuf":true,"sred":true}'
run int2 '{"vshuf":true,"sred":true,"pipe":true}'
run int2 '{"vshuf":true,"sred":true,"uq":4,"pipe":true}'
run int2 '{"vshuf":true,"sred":true,"wgv":128}'
run int4 '{}'
run int4 '{"sred":true}'
echo "=== conformance"
deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int/" 2>&1 | grep -E "BlockAttention|passed|failed|FAILED|ok \||rror" | grep -E "vshuf|sred|passed|failed|rror"
