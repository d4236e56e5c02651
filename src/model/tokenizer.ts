/**
 * Text ↔ token ids through Hugging Face's `tokenizer.json`, using the npm package `@huggingface/tokenizers`.
 *
 * @example
 * ```ts
 * const tok = await loadTokenizer("models/tiny-lm/tokenizer.json");
 * const ids = tok.encode("Call me Ishmael.");
 * tok.decode(ids); // "Call me Ishmael."
 * ```
 * @module
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { ConfigError } from "../errors.ts";

/**
 * Encoder/decoder for one model. Usually made by {@link loadTokenizer}.
 *
 * @example
 * ```ts
 * import { loadTokenizer } from "./tokenizer.ts";
 * const tok = await loadTokenizer("models/tiny-lm/tokenizer.json");
 * const ids = tok.encode("Call me Ishmael."); // number[], no special tokens added
 * tok.decode(ids); // "Call me Ishmael."
 * const stream = tok.streamer();
 * let text = "";
 * for (const id of ids) text += stream(id); // text arrives as UTF-8 characters complete
 * ```
 */
export class TextTokenizer {
  readonly #tok: Tokenizer;
  /** Path of the `tokenizer.json` it was loaded from. */
  readonly path: string;
  /**
   * Wraps a parsed Hugging Face tokenizer.
   *
   * @param tok the `@huggingface/tokenizers` instance
   * @param path the file it came from (reported as {@link TextTokenizer.path})
   */
  constructor(tok: Tokenizer, path: string) {
    this.#tok = tok;
    this.path = path;
  }
  /** Token ids of `text` (no special tokens added). */
  encode(text: string): number[] {
    return this.#tok.encode(text, { add_special_tokens: false }).ids;
  }
  /** Text of `ids`. */
  decode(ids: ArrayLike<number>): string {
    return this.#tok.decode(Array.from(ids), { skip_special_tokens: false });
  }
  /** A streaming decoder: push ids, get the newly completed text (holds back incomplete UTF-8). */
  streamer(): (id: number) => string {
    const ids: number[] = [];
    let emitted = "";
    return (id: number) => {
      ids.push(id);
      const text = this.decode(ids);
      // A trailing U+FFFD usually means a multi-byte character is not complete yet.
      const stable = text.endsWith("\uFFFD") ? text.slice(0, text.lastIndexOf("\uFFFD")) : text;
      if (!stable.startsWith(emitted)) {
        emitted = stable;
        return "";
      }
      const delta = stable.slice(emitted.length);
      emitted = stable;
      return delta;
    };
  }
}

/**
 * Loads `tokenizer.json`. Throws ConfigError naming the file if it is missing or malformed.
 *
 * @example
 * ```ts
 * import { loadTokenizer } from "./tokenizer.ts";
 * const tok = await loadTokenizer("models/tiny-lm/tokenizer.json");
 * tok.decode(tok.encode("hello world")); // "hello world"
 * ```
 */
export async function loadTokenizer(path: string): Promise<TextTokenizer> {
  let json: unknown;
  try {
    json = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new ConfigError(`cannot read tokenizer ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return new TextTokenizer(new Tokenizer(json as Record<string, unknown>, {}), path);
  } catch (e) {
    throw new ConfigError(`malformed tokenizer ${path}: ${(e as Error).message}`, { cause: e });
  }
}
