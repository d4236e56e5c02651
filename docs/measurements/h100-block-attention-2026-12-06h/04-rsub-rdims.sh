#!/bin/bash
# call 4 (warm): rsub at rdims 16 / 32 / 64, with vpre, and at int4
run() { echo "=== $1 $2"; deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$2]" --targets 8 --layouts "$1" --no-ers --qbits 2 2>&1 | grep -E "block stages|rror" | head -3; }
run int2 '{"rsub":true}'; run int2 '{"rsub":true,"rdims":16}'; run int2 '{"rsub":true,"rdims":64}'; run int2 '{"rsub":true,"vpre":true}'; run int4 '{"rsub":true}'; run int4 '{}'
