#!/bin/bash
# call 2 (warm machine of call 1): rsub with its 16 preloaded partials as unrolled scalars (pv0 … pv15) instead
# of a function-scope array indexed in a loop
run() { echo "=== $1 $2"; deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$2]" --targets 8 --layouts "$1" --no-ers --qbits 2 2>&1 | grep -E "block stages|rror" | head -3; }
run int2 '{}'; run int2 '{"rsub":true}'; run int2 '{}'; run int2 '{"rsub":true,"rdims":128}'
deno test -A tests/conformance_packed_test.ts --filter "/block attention at D 64/" 2>&1 | grep -E "passed|failed" | tail -1
