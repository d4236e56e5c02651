#!/usr/bin/env bash
# NOT RUN: nothing to confirm (h100-block-attention-2026-12-07c.md: vjoin, vcoal, rdims 64 no faster). Fresh confirmation: int16, the int2 default and the candidate schedule(s) given as a JSON array of
# BlockAttentionTuning fields in CAND (default: vcoal + rdims 64), REPS processes each (default 5), alternating.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && CAND='[{"vcoal":true}]' bash <this file>
set -u
REPS=${REPS:-5}
CAND=${CAND:-'[{"vcoal":true,"rdims":64}]'}
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
T0=$(date +%s); el() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
V=$(deno eval "const c = JSON.parse(Deno.args[0]); console.log(JSON.stringify([{name: 'block', tuning: {block: {}}}, ...c.map((t) => ({name: 'block ' + JSON.stringify(t), tuning: {block: t}}))]))" "$CAND")
{
nvidia-smi --query-gpu=name,clocks.sm --format=csv
el "fresh, $REPS reps: $V"
deno run -A bench/gpu_attention_fresh.ts --reps "$REPS" --targets 8 --layouts int16 --md "$OUTD/f.md" 2>&1 | tail -1
deno run -A bench/gpu_attention_fresh.ts --reps "$REPS" --targets 8 --layouts int2 --variants "$V" --md "$OUTD/f.md" 2>&1 | tail -6
el done
} 2>&1 | tee "$OUTD/06-confirm.log"
rm -f "$OUTD/f.md"
