#!/usr/bin/env bash
# Residency against registers (diag.patch): PMKVQ_PROBE counts invocations alive at once (÷ 64 per workgroup,
# ÷ 132 SMs); PMKVQ_KDEP (score: the second quad's row addresses depend on the first quad's last sum, so its
# loads cannot be hoisted above the first quad's dot products), PMKVQ_NOPF (score, nblk 2: no prefetch of the
# next block during this block's reductions), PMKVQ_VRED2 (value: only the second warp's sums through workgroup
# memory, 2 KB instead of 4), PMKVQ_WSHFL (+ uq 16). Each variant once with the probe, once without (stages).
# Then fresh processes for the combinations, and the int2 conformance case per combination.
# Run on the device: source .gpu/setup.sh && export XDG_RUNTIME_DIR=/tmp && bash <this file>
set -u
OUTD=${OUT:-/tmp/out}; mkdir -p "$OUTD"
stage() { # env tuning
  echo "$1 $2: $(env $1 deno run -A bench/gpu_packed_bench.ts --tunings '[]' --block "[$2]" --targets 8 --layouts int2 --no-ers --qbits 2 2>&1 | grep -i 'block stages\|probe\|skipped\|error' | head -3 | tr '\n' ' ')"
}
{
  for E in X=0 PMKVQ_KDEP=1 PMKVQ_NOPF=1 "PMKVQ_KDEP=1 PMKVQ_NOPF=1" PMKVQ_VRED2=1 "PMKVQ_VRED2=1 PMKVQ_WSHFL=1"; do
    stage "PMKVQ_PROBE=1 $E" '{}'; stage "$E" '{}'
  done
  stage "PMKVQ_PROBE=1 PMKVQ_VRED2=1 PMKVQ_WSHFL=1" '{"uq":16}'; stage "PMKVQ_VRED2=1 PMKVQ_WSHFL=1" '{"uq":16}'
  stage "PMKVQ_PROBE=1 PMKVQ_KDEP=1" '{"nblk":1}'; stage "PMKVQ_KDEP=1" '{"nblk":1}'
  stage "PMKVQ_PROBE=1" '{"nblk":1}'; stage X=0 '{"nblk":1}'
} 2>&1 | tee "$OUTD/03-stages.log"
deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int16 --md "$OUTD/03-fresh-int16.md" > "$OUTD/03-fresh.log" 2>&1
tail -1 "$OUTD/03-fresh-int16.md" | tee "$OUTD/03-fresh.md"
for E in X=0 PMKVQ_KDEP=1 "PMKVQ_VRED2=1 PMKVQ_WSHFL=1" "PMKVQ_KDEP=1 PMKVQ_VRED2=1 PMKVQ_WSHFL=1"; do
  for T in '{}' '{"uq":16}'; do
    case "$E$T" in *WSHFL*'{}'|X=0*uq*|PMKVQ_KDEP=1'{"uq":16}') continue;; esac
    env $E deno run -A bench/gpu_attention_fresh.ts --reps 3 --targets 8 --layouts int2 \
      --variants "[{\"name\":\"block\",\"tuning\":{\"block\":$T}}]" --md "$OUTD/03-f.md" >> "$OUTD/03-fresh.log" 2>&1
    echo "$E $T $(tail -1 "$OUTD/03-f.md")" | tee -a "$OUTD/03-fresh.md"
  done
done
rm -f "$OUTD/03-f.md" "$OUTD/03-fresh-int16.md"
for E in "PMKVQ_KDEP=1 PMKVQ_VRED2=1 PMKVQ_WSHFL=1"; do
  echo "== $E"; env $E deno test -A tests/conformance_packed_test.ts --filter "/static int2/" 2>&1 | grep -E "BlockAttention|passed|failed|rror" | tail -12
done > "$OUTD/03-conformance.txt" 2>&1
tail -3 "$OUTD/03-conformance.txt"
