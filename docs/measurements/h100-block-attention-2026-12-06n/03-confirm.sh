#!/usr/bin/env bash
# Fourteenth session, call 3 (same warm machine as call 2): fresh processes, the default against 1024-token
# blocks at tq 2 with nblk 4 / 8, int2 and PM-KVQ body@2.
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
fr() { deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts "$1" --variants "$2" --md "$OUTD/f.md" 2>&1 | tail -"$3"; }
{
fr int2 '[{"name":"block","tuning":{"block":{}}},{"name":"block 1024 tq 2 nblk 4","tuning":{"block":{"block":1024,"tq":2,"nblk":4}}},{"name":"block 1024 tq 2 nblk 8","tuning":{"block":{"block":1024,"tq":2,"nblk":8}}}]' 3
fr 'PM-KVQ 1@16 + body@2' '[{"name":"block","tuning":{"block":{}}},{"name":"block 1024 tq 2 nblk 4","tuning":{"block":{"block":1024,"tq":2,"nblk":4}}}]' 2
} 2>&1 | tee "$OUTD/03-confirm.log"
rm -f "$OUTD/f.md"
