#!/usr/bin/env bash
# PM-KVQ body@2 (MixedBlockAttention) stages under the landed knobs, one process each: which one costs it?
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
for T in '{}' '{"wshfl":false,"vsum1":false,"uq":8}' '{"vsum1":false}' '{"wshfl":false,"uq":8}'; do
  echo "body@2 $T: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$T]" --targets 8 --layouts 'PM-KVQ 1@16 + body@2' --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror' | head -2)"
done 2>&1 | tee "$OUTD/05-pmkvq.log"
