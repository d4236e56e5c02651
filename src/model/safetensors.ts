/**
 * Safetensors reading: strict parsing of one file (every malformed input is a {@link SafetensorsError} that
 * names the file and the offending tensor or value) and discovery of a model directory's shards
 * (`model.safetensors.index.json` or a single `model.safetensors`).
 *
 * Layout: an 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON header, then the data section.
 * Header: `{"__metadata__": {str: str}, "<name>": {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}}`,
 * offsets relative to the data section, which the tensors must cover exactly (no holes, no overlaps).
 *
 * @example
 * ```ts
 * import { loadSafetensorsIndex, readSafetensorsFile } from "./safetensors.ts";
 * const index = await loadSafetensorsIndex("models/tiny-lm");
 * for (const shard of index.shards) {
 *   const file = await readSafetensorsFile(`${index.dir}/${shard}`);
 *   for (const t of file.tensors.values()) console.log(t.name, t.dtype, t.shape, t.data.byteLength);
 * }
 * ```
 * @module
 */
import { join } from "node:path";
import { SafetensorsError } from "../errors.ts";
import { DTYPE_ITEM_SIZE, type TensorDtype } from "./dtype.ts";

/** A header larger than this is refused (the reference implementation uses the same limit). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Name of the shard index file in a model directory. */
export const INDEX_FILE = "model.safetensors.index.json";
/** Name of the single weight file of an unsharded model directory. */
export const SINGLE_FILE = "model.safetensors";

/** One tensor of a parsed file; `data` is a view into the file's bytes (no copy). */
export interface TensorEntry {
  name: string;
  dtype: TensorDtype;
  shape: number[];
  /** [numel * itemSize] raw little-endian bytes, a subarray of the file. */
  data: Uint8Array;
}

/** A parsed safetensors file. */
export interface SafetensorsFile {
  /** `__metadata__`, or null when the header has none. */
  metadata: Record<string, string> | null;
  /** Tensors in header order. */
  tensors: Map<string, TensorEntry>;
}

/** One tensor as described by a header: offsets are relative to the data section. */
export interface TensorInfo {
  name: string;
  dtype: TensorDtype;
  shape: number[];
  begin: number;
  end: number;
}

/** A validated header without the data. */
export interface SafetensorsHeader {
  metadata: Record<string, string> | null;
  tensors: Map<string, TensorInfo>;
  /** Byte offset of the data section in the file (8 + header length). */
  dataStart: number;
}

/** Where one tensor of a model directory lives. */
export interface TensorLocation {
  name: string;
  /** Shard file name, relative to the directory. */
  file: string;
  dtype: TensorDtype;
  shape: number[];
}

/** The weight files of a model directory and the tensors each holds (from their headers). */
export interface SafetensorsIndex {
  dir: string;
  /** Path of `model.safetensors.index.json`, or null for a single `model.safetensors`. */
  indexFile: string | null;
  /** Shard file names relative to `dir`, sorted. */
  shards: string[];
  /** Every tensor of every shard. */
  tensors: Map<string, TensorLocation>;
}

/** Dtypes the safetensors format defines that this engine does not load. */
const KNOWN_UNSUPPORTED_DTYPES = new Set([
  "BOOL",
  "U8",
  "I8",
  "U16",
  "I16",
  "U32",
  "I32",
  "U64",
  "I64",
  "F64",
  "C64",
  "F8_E5M2",
  "F8_E4M3",
  "F8_E8M0",
  "F6_E2M3",
  "F6_E3M2",
  "F4",
]);

function fail(file: string, msg: string): never {
  throw new SafetensorsError(`${file}: ${msg}`);
}

/** A short printable rendering of an untrusted JSON value for error messages. */
function show(v: unknown): string {
  let s: string;
  try {
    s = v === undefined ? "undefined" : JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Validates the 8-byte length prefix. `prefix` holds at least the first 8 bytes when the file has them;
 * `fileSize` is the whole file's size. Returns the header length N.
 */
function readHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    fail(file, `file is ${fileSize} bytes, shorter than the 8-byte header length (truncated)`);
  }
  const dv = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  const n = hi * 2 ** 32 + lo; // exact below 2^53; anything with hi > 0 is oversized anyway
  if (hi !== 0 || n > MAX_HEADER_BYTES) {
    const shown = hi >= 2 ** 21 ? `${BigInt(hi) * 2n ** 32n + BigInt(lo)}` : `${n}`;
    fail(file, `header length ${shown} exceeds the ${MAX_HEADER_BYTES}-byte limit (oversized)`);
  }
  if (n > fileSize - 8) {
    fail(file, `header length ${n} but only ${fileSize - 8} bytes follow the length prefix (truncated)`);
  }
  return n;
}

const isWs = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/**
 * Finds a repeated key within one object of already-valid JSON text (JSON.parse keeps the last silently).
 * Iterative, linear in the text.
 */
function findDuplicateKey(s: string): { key: string; topLevel: boolean } | null {
  const stack: (Set<string> | null)[] = []; // one entry per open object (a key set) or array (null)
  const n = s.length;
  let i = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === 0x22) {
      const start = i++;
      while (i < n) {
        const d = s.charCodeAt(i);
        if (d === 0x5c) i += 2;
        else if (d === 0x22) break;
        else i++;
      }
      i++; // past the closing quote
      const keys = stack[stack.length - 1];
      if (keys) {
        let j = i;
        while (j < n && isWs(s.charCodeAt(j))) j++;
        if (s.charCodeAt(j) === 0x3a) {
          const key = JSON.parse(s.slice(start, i)) as string;
          if (keys.has(key)) return { key, topLevel: stack.length === 1 };
          keys.add(key);
        }
      }
      continue;
    }
    if (c === 0x7b) stack.push(new Set());
    else if (c === 0x5b) stack.push(null);
    else if (c === 0x7d || c === 0x5d) stack.pop();
    i++;
  }
  return null;
}

function parseDtype(v: unknown, name: string, file: string): TensorDtype {
  if (typeof v !== "string") fail(file, `tensor "${name}": dtype must be a string, got ${show(v)}`);
  if (v === "BF16" || v === "F16" || v === "F32") return v;
  if (KNOWN_UNSUPPORTED_DTYPES.has(v)) {
    fail(file, `tensor "${name}": unsupported dtype ${show(v)} (supported: BF16, F16, F32)`);
  }
  fail(file, `tensor "${name}": unknown dtype ${show(v)}`);
}

/** Parses and validates the JSON header; offsets are checked against `dataLength`. */
function parseHeaderJson(headerBytes: Uint8Array, dataLength: number, file: string): SafetensorsHeader & {
  infos: TensorInfo[];
} {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    fail(file, "header is not valid UTF-8");
  }
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (e) {
    fail(file, `header is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!isPlainObject(root)) fail(file, `header must be a JSON object, got ${show(root)}`);
  const dup = findDuplicateKey(text);
  if (dup) {
    fail(file, `duplicate key "${dup.key}" in header${dup.topLevel ? " (tensor listed twice)" : ""}`);
  }

  let metadata: Record<string, string> | null = null;
  const infos: TensorInfo[] = [];
  for (const [name, raw] of Object.entries(root)) {
    if (name === "__metadata__") {
      if (!isPlainObject(raw)) fail(file, `__metadata__ must be an object of strings, got ${show(raw)}`);
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== "string") fail(file, `__metadata__ value "${k}" must be a string, got ${show(v)}`);
      }
      metadata = { ...(raw as Record<string, string>) };
      continue;
    }
    if (!isPlainObject(raw)) fail(file, `tensor "${name}": entry must be an object, got ${show(raw)}`);
    const dtype = parseDtype(raw.dtype, name, file);
    const shape = raw.shape;
    if (!Array.isArray(shape)) fail(file, `tensor "${name}": shape must be an array, got ${show(shape)}`);
    for (const d of shape) {
      if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
        fail(file, `tensor "${name}": shape ${show(shape)} has ${show(d)}, not a non-negative integer`);
      }
    }
    const offs = raw.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2) {
      fail(file, `tensor "${name}": data_offsets must be [begin, end], got ${show(offs)}`);
    }
    const [begin, end] = offs as unknown[];
    for (const o of [begin, end]) {
      if (typeof o !== "number" || !Number.isSafeInteger(o) || o < 0) {
        fail(file, `tensor "${name}": data_offsets ${show(offs)} has ${show(o)}, not a non-negative integer`);
      }
    }
    const b = begin as number;
    const e = end as number;
    if (b > e) fail(file, `tensor "${name}": data_offsets ${show(offs)} begin > end`);
    if (e > dataLength) {
      fail(file, `tensor "${name}": data_offsets ${show(offs)} outside the ${dataLength}-byte data section`);
    }
    // numel, bounded: a non-zero product can only match if it stays <= the span in bytes.
    const span = e - b;
    let numel = 1;
    let tooBig = false;
    if ((shape as number[]).includes(0)) numel = 0;
    else {
      for (const d of shape as number[]) {
        numel *= d;
        if (numel > span) {
          tooBig = true;
          break;
        }
      }
    }
    const need = numel * DTYPE_ITEM_SIZE[dtype];
    if (tooBig || need !== span) {
      fail(
        file,
        `tensor "${name}": shape ${show(shape)} with dtype ${dtype} needs ${
          tooBig ? "more than " + span : need
        }` +
          ` bytes but data_offsets ${show(offs)} span ${span} (shape/dtype mismatch)`,
      );
    }
    infos.push({ name, dtype, shape: (shape as number[]).slice(), begin: b, end: e });
  }

  // The data section must be covered exactly: sort by offsets, walk, no overlap, no hole.
  const sorted = infos.slice().sort((x, y) => x.begin - y.begin || x.end - y.end);
  let expected = 0;
  let prev: TensorInfo | null = null;
  for (const t of sorted) {
    if (t.begin < expected) {
      fail(
        file,
        `tensor "${t.name}" [${t.begin}, ${t.end}] overlaps tensor "${prev!.name}" [${prev!.begin}, ${
          prev!.end
        }]`,
      );
    }
    if (t.begin > expected) {
      fail(
        file,
        `hole in the data section: bytes [${expected}, ${t.begin}) before tensor "${t.name}" belong to no tensor`,
      );
    }
    expected = t.end;
    prev = t;
  }
  if (expected !== dataLength) {
    fail(file, `hole in the data section: bytes [${expected}, ${dataLength}) at the end belong to no tensor`);
  }
  return {
    metadata,
    tensors: new Map(infos.map((t) => [t.name, t])),
    dataStart: 8 + headerBytes.byteLength,
    infos,
  };
}

/** Runs `f`, turning any unexpected exception into a SafetensorsError so callers see one error type. */
function guarded<T>(file: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof SafetensorsError) throw e;
    throw new SafetensorsError(`${file}: unexpected internal error while parsing (${String(e)})`, {
      cause: e,
    });
  }
}

/**
 * Parses a whole safetensors file held in memory. Tensor data are views into `bytes` (no copy).
 * Throws {@link SafetensorsError} (naming `file` and the offending tensor or value) for any malformed input.
 *
 * @example
 * ```ts
 * import { parseSafetensors } from "./safetensors.ts";
 * const bytes = await Deno.readFile("model.safetensors");
 * const st = parseSafetensors(bytes, "model.safetensors");
 * console.log(st.metadata, [...st.tensors.keys()]);
 * ```
 */
export function parseSafetensors(bytes: Uint8Array, file: string): SafetensorsFile {
  return guarded(file, () => {
    const n = readHeaderLength(bytes, bytes.byteLength, file);
    const header = parseHeaderJson(bytes.subarray(8, 8 + n), bytes.byteLength - 8 - n, file);
    const tensors = new Map<string, TensorEntry>();
    for (const t of header.infos) {
      const data = bytes.subarray(header.dataStart + t.begin, header.dataStart + t.end);
      tensors.set(t.name, { name: t.name, dtype: t.dtype, shape: t.shape, data });
    }
    return { metadata: header.metadata, tensors };
  });
}

function ioError(path: string, what: string, e: unknown): SafetensorsError {
  if (e instanceof Deno.errors.NotFound) {
    return new SafetensorsError(`${what} not found: ${path}`, { cause: e });
  }
  return new SafetensorsError(`cannot read ${what} ${path}: ${e instanceof Error ? e.message : String(e)}`, {
    cause: e,
  });
}

async function readFully(f: Deno.FsFile, buf: Uint8Array): Promise<number> {
  let got = 0;
  while (got < buf.byteLength) {
    const r = await f.read(buf.subarray(got));
    if (r === null) break;
    got += r;
  }
  return got;
}

/**
 * Reads and validates only the header of a safetensors file (offsets are checked against the file size).
 *
 * @example
 * ```ts
 * import { readSafetensorsHeader } from "./safetensors.ts";
 * const h = await readSafetensorsHeader("models/tiny-lm/model-00001-of-00002.safetensors");
 * console.log(h.tensors.get("model.embed_tokens.weight")?.shape); // [4096, 384]
 * ```
 */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (e) {
    throw ioError(path, "safetensors file", e);
  }
  try {
    let size: number;
    const prefix = new Uint8Array(8);
    let headerBytes: Uint8Array;
    try {
      size = (await f.stat()).size;
      await readFully(f, prefix);
    } catch (e) {
      throw ioError(path, "safetensors file", e);
    }
    const n = guarded(path, () => readHeaderLength(prefix, size, path)); // n <= min(size - 8, 100 MiB)
    try {
      headerBytes = new Uint8Array(n);
      const got = await readFully(f, headerBytes);
      if (got !== n) fail(path, `file shrank while reading its header (truncated)`);
    } catch (e) {
      if (e instanceof SafetensorsError) throw e;
      throw ioError(path, "safetensors file", e);
    }
    const h = guarded(path, () => parseHeaderJson(headerBytes, size - 8 - n, path));
    return { metadata: h.metadata, tensors: h.tensors, dataStart: h.dataStart };
  } finally {
    f.close();
  }
}

/**
 * Reads and parses a whole safetensors file.
 *
 * @example
 * ```ts
 * import { readSafetensorsFile } from "./safetensors.ts";
 * const st = await readSafetensorsFile("models/tiny-lm/model-00002-of-00002.safetensors");
 * console.log(st.tensors.get("model.norm.weight")?.data.byteLength); // 768
 * ```
 */
export async function readSafetensorsFile(path: string): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw ioError(path, "safetensors file", e);
  }
  return parseSafetensors(bytes, path);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw ioError(path, "file", e);
  }
}

/** Parses `model.safetensors.index.json` into tensor name -> shard file name. */
function parseIndexJson(text: string, path: string): Map<string, string> {
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (e) {
    fail(path, `index is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!isPlainObject(root)) fail(path, `index must be a JSON object, got ${show(root)}`);
  const wm = root.weight_map;
  if (!isPlainObject(wm)) {
    fail(path, `"weight_map" must be an object of tensor name -> shard file, got ${show(wm)}`);
  }
  const map = new Map<string, string>();
  for (const [name, shard] of Object.entries(wm)) {
    if (typeof shard !== "string" || shard === "" || /[\\/]/.test(shard) || shard === "." || shard === "..") {
      fail(path, `weight_map["${name}"] must be a shard file name in the same directory, got ${show(shard)}`);
    }
    map.set(name, shard);
  }
  if (map.size === 0) fail(path, `"weight_map" lists no tensors`);
  return map;
}

/**
 * Finds a model directory's weight files and reads their headers: `model.safetensors.index.json`
 * (every listed shard must exist and hold the tensors the index assigns to it) or else a single
 * `model.safetensors`. Data are not read. Throws {@link SafetensorsError} naming the directory, index,
 * shard or tensor at fault.
 *
 * @example
 * ```ts
 * import { loadSafetensorsIndex } from "./safetensors.ts";
 * const index = await loadSafetensorsIndex("models/tiny-lm");
 * console.log(index.shards, index.tensors.get("lm_head.weight")?.file);
 * ```
 */
export async function loadSafetensorsIndex(dir: string): Promise<SafetensorsIndex> {
  const indexPath = join(dir, INDEX_FILE);
  const singlePath = join(dir, SINGLE_FILE);
  let weightMap: Map<string, string> | null = null;
  let indexFile: string | null = null;
  let shards: string[];
  if (await exists(indexPath)) {
    let text: string;
    try {
      text = await Deno.readTextFile(indexPath);
    } catch (e) {
      throw ioError(indexPath, "shard index", e);
    }
    weightMap = parseIndexJson(text, indexPath);
    indexFile = indexPath;
    shards = [...new Set(weightMap.values())].sort();
    for (const shard of shards) {
      if (!(await exists(join(dir, shard)))) {
        throw new SafetensorsError(
          `${indexPath}: shard "${shard}" listed in weight_map not found: ${join(dir, shard)}`,
        );
      }
    }
  } else if (await exists(singlePath)) {
    shards = [SINGLE_FILE];
  } else {
    throw new SafetensorsError(`no ${INDEX_FILE} or ${SINGLE_FILE} in directory ${dir}`);
  }

  const tensors = new Map<string, TensorLocation>();
  for (const shard of shards) {
    const path = join(dir, shard);
    const header = await readSafetensorsHeader(path);
    for (const t of header.tensors.values()) {
      const other = tensors.get(t.name);
      if (other) {
        throw new SafetensorsError(`tensor "${t.name}" appears in both ${join(dir, other.file)} and ${path}`);
      }
      tensors.set(t.name, { name: t.name, file: shard, dtype: t.dtype, shape: t.shape });
    }
  }
  if (weightMap) {
    for (const [name, shard] of weightMap) {
      const loc = tensors.get(name);
      if (!loc || loc.file !== shard) {
        throw new SafetensorsError(
          `${indexFile}: tensor "${name}" is mapped to shard "${shard}" but ${
            join(dir, shard)
          } does not contain it`,
        );
      }
    }
  }
  return { dir, indexFile, shards, tensors };
}
