#!/usr/bin/env bash
# How the int2 block stages scale with the work: cached tokens per sequence (batch 8) and batch (32,768
# tokens), default schedule, one process per shape, 2 reps. A fixed per-kernel cost shows as the intercept.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
run() {
  deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block '[{}]' --targets 8 --layouts int2 --no-ers --qbits 2 "$@" 2>&1 | grep -i 'block stages\|skipped\|error' | head -2
}
for T in 8192 16384 32768 65536; do
  for rep in 1 2; do echo "tokens $T batch 8 rep $rep: $(run --tokens $T --batch 8)"; done
done 2>&1 | tee "$OUTD/04-scaling.log"
for B in 2 4 16; do
  for rep in 1 2; do echo "tokens 32768 batch $B rep $rep: $(run --tokens 32768 --batch $B)"; done
done 2>&1 | tee -a "$OUTD/04-scaling.log"
