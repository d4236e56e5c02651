#!/usr/bin/env bash
# NOT RUN as such (00-all.sh ran the same conformance). Sixteenth session: the block conformance on the H100 (the int2 default of block 1024 + tq 2 + nblk 4,
# vpair's 32-lane weights path, vsub and kacc2: each byte-identical to its twin).
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
{
el conformance
timeout 300 deno test -A tests/conformance_packed_test.ts --filter "/block attention|static int|PM-KVQ/" > "$OUTD/02-conformance.txt" 2>&1
echo "rc $?"
grep -E "vpair|vsub|kacc2|BlockAttention \{\}|passed|failed" "$OUTD/02-conformance.txt" | tail -20
el done
} 2>&1 | tee "$OUTD/02-conformance.log"
