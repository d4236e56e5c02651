/**
 * Fused decode attention at the issue's shape, **one process per (layout, tuning, repetition)**, medians
 * reported. Why: on the H100, a layout measured after other layouts (or after many tunings) in the same
 * process sometimes runs 1.5–3× slower than the same kernel in a fresh process — int2 312 µs alone, 520–1,050
 * µs after int16/int8/int4 (docs/gpu-packed.md §4; cause not identified: clocks stayed at 1,980 MHz). The
 * sweep of bench/gpu_packed_bench.ts picks tunings; this script produces the figures we report.
 *
 *   deno run -A bench/gpu_attention_fresh.ts [--reps 3] [--md FILE] [--json FILE]
 *       [--layouts int4,int2] [--variants '[{"name":"x","tuning":{…}}]'] [--targets 8]
 *
 * `--variants` replaces the built-in variants by these tunings (applied to every layout; a fused tuning names the
 * knobs it changes from `DEFAULT_ATTENTION_TUNING`, so `{}` is the default; a tuning
 * `{"block": {…}}` runs BlockAttention, `--block` of the bench, on the int4 / int2 / PM-KVQ layouts); `--targets` is
 * passed to the bench (splits per sequence and KV head).
 *
 * Runs `bench/gpu_packed_bench.ts --tunings [T] --targets 8 --layouts L` as a subprocess for every layout L
 * and tuning T (`VARIANTS`: the default; `INT8_QUERY_ATTENTION_TUNING` for layouts with 2/4/8-bit K; for
 * the PM-KVQ layouts also the default with one pipeline per path; BlockAttention for int4, int2 and PM-KVQ),
 * `reps` times.
 *
 * @example
 * ```ts
 * // deno run -A bench/gpu_attention_fresh.ts --reps 3 --md out/attention.md
 * ```
 * @module
 */
import { parseArgs } from "node:util";
import {
  type AttentionTuning,
  DEFAULT_ATTENTION_TUNING,
  INT8_QUERY_ATTENTION_TUNING,
} from "../gpu/packed/attention.ts";
import type { BenchReport } from "./gpu_packed_bench.ts";
import type { BlockAttentionTuning } from "../gpu/packed/block_attention.ts";

const LAYOUTS = ["int16", "int8", "int4", "int2", "PM-KVQ 1@16 + body@4", "PM-KVQ 1@16 + body@2"];

/** Tuning variants: the default, the int8 query (2/4/8-bit K), one pipeline per path (multi-path layouts). */
const VARIANTS: { name: string; tuning: VariantTuning; applies: (layout: string) => boolean }[] = [
  { name: "", tuning: DEFAULT_ATTENTION_TUNING, applies: () => true },
  { name: " (int8 query)", tuning: INT8_QUERY_ATTENTION_TUNING, applies: (l) => l !== "int16" },
  {
    name: " (per path)",
    tuning: { ...DEFAULT_ATTENTION_TUNING, perPath: true },
    applies: (l) => l.startsWith("PM"),
  },
  // BlockAttention (int8 query + 8-bit weights, block schedule, defaultBlockTuning of its formats) on the 2/4-bit body; the
  // PM-KVQ sink and window on the fused kernel (MixedBlockAttention)
  { name: " (block)", tuning: { block: {} }, applies: (l) => blockLayout(l) },
];

/** One fresh-process measurement. */
interface Run {
  layout: string;
  variant: string;
  us: number;
  gbps: number;
  copyGBps: number;
}

function median(x: number[]): number {
  const s = [...x].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Layouts with a 2/4-bit body (BlockAttention variants apply). */
function blockLayout(l: string): boolean {
  return l === "int4" || l === "int2" || l.startsWith("PM");
}

/** A variant: a fused-kernel tuning, or `{ block }` for BlockAttention (layouts with a 2/4-bit body). */
type VariantTuning = AttentionTuning | { block: BlockAttentionTuning };

async function once(layout: string, variant: string, tuning: VariantTuning, targets: string): Promise<Run> {
  const json = await Deno.makeTempFile({ suffix: ".json" });
  const bench = new URL("./gpu_packed_bench.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      bench,
      "--tunings",
      JSON.stringify("block" in tuning ? [] : [tuning]),
      ...("block" in tuning ? ["--block", JSON.stringify([tuning.block])] : []),
      "--targets",
      targets,
      "--layouts",
      layout,
      "--json",
      json,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `bench failed for ${layout} ${JSON.stringify(tuning)}: ${
        new TextDecoder().decode(out.stderr).slice(-800)
      }`,
    );
  }
  const r = JSON.parse(await Deno.readTextFile(json)) as BenchReport;
  await Deno.remove(json);
  const row = r.best.find((b) =>
    b.layout.startsWith(layout) && ("block" in tuning) === b.layout.endsWith("(block)")
  );
  if (!row) throw new Error(`no row for ${layout} in the bench report`);
  return { layout, variant, us: row.us, gbps: row.gbps, copyGBps: r.copyGBps };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      reps: { type: "string", default: "3" },
      md: { type: "string" },
      json: { type: "string" },
      layouts: { type: "string" },
      variants: { type: "string" },
      targets: { type: "string", default: "8" },
    },
  });
  const layouts = values.layouts ? values.layouts.split(",") : LAYOUTS;
  let variants = VARIANTS;
  if (values.variants) {
    const parsed = JSON.parse(values.variants) as unknown;
    if (
      !Array.isArray(parsed) ||
      !parsed.every((v) => typeof v?.name === "string" && typeof v?.tuning === "object" && v.tuning)
    ) {
      throw new TypeError(`--variants must be a JSON array of {name, tuning}, got ${values.variants}`);
    }
    variants = parsed.map((v: { name: string; tuning: VariantTuning }) => ({
      name: v.name ? ` (${v.name})` : "",
      // a fused tuning names only the knobs it changes from DEFAULT_ATTENTION_TUNING
      tuning: "block" in v.tuning ? v.tuning : { ...DEFAULT_ATTENTION_TUNING, ...v.tuning },
      // BlockAttention runs on layouts with a 2/4-bit body only
      applies: (l: string) => !("block" in v.tuning) || blockLayout(l),
    }));
  }
  const reps = Number(values.reps);
  if (!Number.isInteger(reps) || reps < 1) {
    throw new RangeError(`--reps must be a positive integer, got ${values.reps}`);
  }
  const runs: Run[] = [];
  for (let i = 0; i < reps; i++) {
    for (const layout of layouts) {
      for (const v of variants.filter((x) => x.applies(layout))) {
        const r = await once(layout, v.name, v.tuning, values.targets);
        runs.push(r);
        console.log(`rep ${i + 1} ${layout}${v.name}: ${r.us.toFixed(1)} us`);
      }
    }
  }
  const keyOf = (r: Run) => r.layout + r.variant;
  const keys = [...new Set(runs.map(keyOf))];
  const med = new Map(keys.map((k) => [k, median(runs.filter((r) => keyOf(r) === k).map((r) => r.us))]));
  const base = med.get("int16") ?? NaN;
  const copy = median(runs.map((r) => r.copyGBps));
  const lines = [
    `Fresh process per measurement, ${reps} repetitions, median; vec4 copy ${copy.toFixed(0)} GB/s (median).`,
    "",
    "| layout | µs / call (median) | all runs | GB/s of KV | of copy BW | speed-up vs 16-bit |",
    "| --- | ---: | --- | ---: | ---: | ---: |",
    ...keys.map((k) => {
      const rs = runs.filter((r) => keyOf(r) === k), m = med.get(k)!;
      const gb = rs[0].gbps * rs[0].us / m;
      return `| ${k} | ${m.toFixed(1)} | ${rs.map((r) => r.us.toFixed(0)).join(", ")} | ${
        gb.toPrecision(4)
      } | ${(100 * gb / copy).toFixed(0)}% | ${Number.isFinite(base) ? `${(base / m).toFixed(2)}×` : "—"} |`;
    }),
  ];
  console.log(lines.join("\n"));
  if (values.md) await Deno.writeTextFile(values.md, lines.join("\n") + "\n");
  if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(runs, null, 1));
}
