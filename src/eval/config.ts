/**
 * Evaluation configurations: `small` runs on a CPU in CI in a few minutes; `full` is the table in
 * docs/evaluation.md (run with --jobs on a many-core machine).
 * @module
 */
import { ALL_METHODS } from "./methods.ts";

/** What an evaluation run covers. */
export interface EvalConfig {
  name: string;
  /** Passages taken from models/tiny-lm/recitation-examples.json (0–2). */
  examplePassages: number;
  /** Extra passages cut from the shipped training-text sample (seeded). */
  extraPassages: number;
  promptTokens: number;
  /** Greedy tokens per recitation. */
  newTokens: number;
  /** Teacher-forced tokens of held-out text. */
  klTokens: number;
  /** Budget levels (see methods.ts). */
  levels: number[];
  methods: string[];
  seed: number;
  profile: { samples: number; length: number; stretch: number };
  calib: { samples: number; length: number; stretch: number };
}

/** CI-sized. */
export const SMALL: EvalConfig = {
  name: "small",
  examplePassages: 1,
  extraPassages: 0,
  promptTokens: 256,
  newTokens: 96,
  klTokens: 192,
  levels: [2],
  methods: ["exact-f32", "int4", "kivi2", "mixkvq", "pmkvq", "pmkvq-uniform"],
  seed: 1,
  profile: { samples: 2, length: 128, stretch: 4 },
  calib: { samples: 2, length: 128, stretch: 4 },
};

/** The full table. */
export const FULL: EvalConfig = {
  name: "full",
  examplePassages: 2,
  extraPassages: 2,
  promptTokens: 256,
  newTokens: 1536,
  klTokens: 2048,
  levels: [2, 3, 4],
  methods: [...ALL_METHODS],
  seed: 1,
  profile: { samples: 8, length: 512, stretch: 4 },
  calib: { samples: 8, length: 512, stretch: 4 },
};

/** Configurations by name. */
export const CONFIGS: Record<string, EvalConfig> = { small: SMALL, full: FULL };
