/**
 * Calibration and evaluation text: the shipped training-text sample (data/tiny-lm-train-sample.txt.gz) or any
 * text file (.txt or .gz), cut into token windows with a seeded, documented selection.
 *
 * @example
 * ```ts
 * const segments = await loadCorpusSegments();
 * const windows = tokenWindows(segments, tok, { count: 8, length: 512, seed: 1 });
 * ```
 * @module
 */
import { fileURLToPath } from "node:url";
import { InputError } from "../src/errors.ts";
import { mulberry32 } from "../src/sampling.ts";

/** The shipped sample of tiny-lm's training text. */
export const DEFAULT_CORPUS = fileURLToPath(new URL("../data/tiny-lm-train-sample.txt.gz", import.meta.url));

/** Reads a .txt or .gz text file and splits it at `<<<segment ...>>>` marker lines (the whole text if none). */
export async function loadCorpusSegments(path: string = DEFAULT_CORPUS): Promise<string[]> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new InputError(`cannot read corpus ${path}: ${(e as Error).message}`);
  }
  let text: string;
  if (path.endsWith(".gz")) {
    const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream("gzip"));
    text = await new Response(stream).text();
  } else {
    text = new TextDecoder().decode(bytes);
  }
  const parts = text.split(/\n*<<<segment[^>]*>>>\n/).filter((s) => s.trim().length > 0);
  if (parts.length === 0) throw new InputError(`corpus ${path} holds no text`);
  return parts;
}

/** Something that turns text into token ids. */
export interface Encoder {
  /** Token ids of `text` (no special tokens added), e.g. `TextTokenizer.encode`. */
  encode(text: string): number[];
}

/** How to cut windows. */
export interface WindowOptions {
  /** Number of windows. */
  count: number;
  /** Tokens per window. */
  length: number;
  /** Seed of the selection (default 0). */
  seed?: number;
}

/**
 * Tokenizes every segment, cuts each into consecutive non-overlapping windows of `length` tokens, and picks
 * `count` of them without replacement with a seeded shuffle (mulberry32(seed), Fisher-Yates), returned in
 * corpus order. Throws InputError naming the numbers when the corpus holds fewer windows.
 */
export function tokenWindows(segments: string[], tok: Encoder, options: WindowOptions): number[][] {
  const { count, length } = options;
  if (!Number.isInteger(count) || count < 1) {
    throw new InputError(`window count ${count} must be a positive integer`);
  }
  if (!Number.isInteger(length) || length < 2) {
    throw new InputError(`window length ${length} must be an integer >= 2`);
  }
  const all: number[][] = [];
  for (const s of segments) {
    const ids = tok.encode(s);
    for (let i = 0; i + length <= ids.length; i += length) all.push(ids.slice(i, i + length));
  }
  if (all.length < count) {
    throw new InputError(
      `the corpus holds ${all.length} windows of ${length} tokens; ${count} were asked for`,
    );
  }
  const order = all.map((_, i) => i);
  const rand = mulberry32(options.seed ?? 0);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order.slice(0, count).sort((a, b) => a - b).map((i) => all[i]);
}

/** Positions 0, s, 2s, … for positional interpolation (s = 1: ordinary positions). */
export function stretchedPositions(length: number, s: number): number[] {
  if (!(s >= 1) || !Number.isInteger(s)) {
    throw new InputError(`position stretch s = ${s} must be an integer >= 1`);
  }
  return Array.from({ length }, (_, i) => i * s);
}
