#!/usr/bin/env bash
# NOT RUN as such (00-all.sh ran its stages and fresh processes in one call). Sixteenth session: int2 stages (one process each): the default against vsub (V plane 3 as the unmasked
# total minus planes 0…2), kacc2 (K planes from the word and one shift, a second accumulator), both, vpair at uq 8
# with and without vsub; then fresh processes against the 16-bit kernel.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
st() { echo "$1: $(deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$1]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -E 'block stages|rror|skipped' | head -2)"; }
fr() { deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts "$1" --variants "$2" --md "$OUTD/f.md" 2>&1 | tail -"$3"; }
{
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv
el stages
st '{}'
st '{"vsub":true}'
st '{"kacc2":true}'
st '{"kacc2":true,"vsub":true}'
st '{"vpair":true,"uq":8}'
st '{"vpair":true,"uq":8,"vsub":true}'
st '{}'
el fresh
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
fr int2 '[{"name":"block","tuning":{"block":{}}},{"name":"block vsub","tuning":{"block":{"vsub":true}}},{"name":"block kacc2 vsub","tuning":{"block":{"kacc2":true,"vsub":true}}}]' 3
el done
} 2>&1 | tee "$OUTD/01-stages.log"
rm -f "$OUTD/f.md"
