import assert from "node:assert/strict";
import { join } from "node:path";
import { SafetensorsError } from "../errors.ts";
import { DTYPE_ITEM_SIZE } from "./dtype.ts";
import {
  INDEX_FILE,
  loadSafetensorsIndex,
  MAX_HEADER_BYTES,
  parseSafetensors,
  readSafetensorsFile,
  readSafetensorsHeader,
} from "./safetensors.ts";
import { assembleSafetensors, f32Bytes, type TensorToWrite, writeSafetensors } from "./safetensors_write.ts";
import { mulberry32 } from "../sampling.ts";

const FILE = "weights-under-test.safetensors";

/** Asserts `f` throws a SafetensorsError whose message contains every one of `parts`. */
function throwsSt(f: () => unknown, ...parts: string[]): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${e}`);
    for (const p of parts) {
      assert.ok(e.message.includes(p), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(p)}`);
    }
    return true;
  });
}

async function rejectsSt(p: Promise<unknown>, ...parts: string[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${e}`);
    for (const s of parts) {
      assert.ok(e.message.includes(s), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(s)}`);
    }
    return true;
  });
}

/** Deterministic bytes. */
function bytesOf(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 17) & 0xff;
  return out;
}

function sampleTensors(): TensorToWrite[] {
  return [
    { name: "a.weight", dtype: "BF16", shape: [3, 4], data: bytesOf(24, 1) },
    { name: "b.bias", dtype: "F32", shape: [5], data: f32Bytes([1, 2, 3, 4, 5]) },
    { name: "empty", dtype: "F16", shape: [0, 7], data: new Uint8Array(0) },
    { name: "scalar", dtype: "F16", shape: [], data: bytesOf(2, 3) },
    { name: "c.weight", dtype: "F16", shape: [2, 3, 2], data: bytesOf(24, 5) },
  ];
}

/** A header followed by `dataLen` zero bytes. */
function withHeader(header: unknown, dataLen: number): Uint8Array {
  return assembleSafetensors(JSON.stringify(header), [new Uint8Array(dataLen)]);
}

Deno.test("safetensors: a written file parses back, with views into the input", () => {
  const tensors = sampleTensors();
  const bytes = writeSafetensors(tensors, { format: "pt" });
  const st = parseSafetensors(bytes, FILE);
  assert.deepEqual(st.metadata, { format: "pt" });
  assert.deepEqual([...st.tensors.keys()], tensors.map((t) => t.name));
  for (const t of tensors) {
    const e = st.tensors.get(t.name)!;
    assert.equal(e.dtype, t.dtype);
    assert.deepEqual(e.shape, t.shape);
    assert.deepEqual(e.data, t.data);
    assert.equal(e.data.buffer, bytes.buffer, "data must be a view, not a copy");
  }
  assert.equal(Number(new DataView(bytes.buffer).getBigUint64(0, true)) % 8, 0, "header padded to 8 bytes");
  assert.equal(parseSafetensors(writeSafetensors([]), FILE).tensors.size, 0);
  assert.equal(parseSafetensors(writeSafetensors([]), FILE).metadata, null);
});

Deno.test("safetensors: parses from a subarray with a non-zero byteOffset", () => {
  const inner = writeSafetensors(sampleTensors());
  const outer = new Uint8Array(inner.byteLength + 3);
  outer.set(inner, 3);
  const st = parseSafetensors(outer.subarray(3), FILE);
  assert.deepEqual(st.tensors.get("b.bias")!.data, f32Bytes([1, 2, 3, 4, 5]));
});

Deno.test("safetensors: short, truncated and oversized headers", () => {
  throwsSt(() => parseSafetensors(new Uint8Array(5), FILE), FILE, "5 bytes", "truncated");
  throwsSt(() => parseSafetensors(new Uint8Array(0), FILE), FILE, "truncated");
  const trunc = new Uint8Array(50);
  new DataView(trunc.buffer).setBigUint64(0, 100n, true);
  throwsSt(() => parseSafetensors(trunc, FILE), FILE, "header length 100", "42 bytes", "truncated");
  const big = new Uint8Array(64);
  new DataView(big.buffer).setBigUint64(0, BigInt(MAX_HEADER_BYTES + 1), true);
  throwsSt(() => parseSafetensors(big, FILE), FILE, `${MAX_HEADER_BYTES + 1}`, "oversized");
  new DataView(big.buffer).setBigUint64(0, 0xffffffffffffffffn, true);
  throwsSt(() => parseSafetensors(big, FILE), FILE, "18446744073709551615", "oversized");
});

Deno.test("safetensors: header not UTF-8, not JSON, not an object", () => {
  const bad = new Uint8Array(8 + 4);
  new DataView(bad.buffer).setBigUint64(0, 4n, true);
  bad.set([0x7b, 0xff, 0xfe, 0x7d], 8);
  throwsSt(() => parseSafetensors(bad, FILE), FILE, "UTF-8");
  throwsSt(() => parseSafetensors(assembleSafetensors("{not json"), FILE), FILE, "not valid JSON");
  throwsSt(() => parseSafetensors(assembleSafetensors("\uFEFF{}"), FILE), FILE, "not valid JSON");
  throwsSt(() => parseSafetensors(assembleSafetensors("[1,2]"), FILE), FILE, "JSON object", "[1,2]");
  throwsSt(() => parseSafetensors(assembleSafetensors("null"), FILE), FILE, "JSON object", "null");
  throwsSt(() => parseSafetensors(assembleSafetensors('"x"'), FILE), FILE, "JSON object");
});

Deno.test("safetensors: malformed tensor entries and metadata", () => {
  const ok = { dtype: "F32", shape: [1], data_offsets: [0, 4] };
  throwsSt(() => parseSafetensors(withHeader({ t: 5 }, 0), FILE), FILE, `"t"`, "entry must be an object");
  throwsSt(
    () => parseSafetensors(withHeader({ t: { ...ok, dtype: undefined } }, 4), FILE),
    FILE,
    `"t"`,
    "dtype",
  );
  throwsSt(
    () => parseSafetensors(withHeader({ t: { ...ok, shape: "1" } }, 4), FILE),
    FILE,
    `"t"`,
    "shape",
    `"1"`,
  );
  throwsSt(
    () => parseSafetensors(withHeader({ t: { ...ok, data_offsets: [0] } }, 4), FILE),
    FILE,
    `"t"`,
    "[0]",
  );
  throwsSt(
    () => parseSafetensors(withHeader({ t: { ...ok, data_offsets: null } }, 4), FILE),
    FILE,
    "data_offsets",
  );
  throwsSt(() => parseSafetensors(withHeader({ __metadata__: [1], t: ok }, 4), FILE), FILE, "__metadata__");
  throwsSt(
    () => parseSafetensors(withHeader({ __metadata__: { k: 1 }, t: ok }, 4), FILE),
    FILE,
    `"k"`,
    "string",
  );
});

Deno.test("safetensors: unsupported and unknown dtypes are named", () => {
  for (const d of ["I64", "F64", "U8", "BOOL", "F8_E4M3"]) {
    throwsSt(
      () => parseSafetensors(withHeader({ ids: { dtype: d, shape: [1], data_offsets: [0, 8] } }, 8), FILE),
      FILE,
      `"ids"`,
      "unsupported",
      d,
    );
  }
  throwsSt(
    () => parseSafetensors(withHeader({ w: { dtype: "Q7", shape: [1], data_offsets: [0, 2] } }, 2), FILE),
    FILE,
    `"w"`,
    "unknown",
    "Q7",
  );
  throwsSt(
    () => parseSafetensors(withHeader({ w: { dtype: 16, shape: [1], data_offsets: [0, 2] } }, 2), FILE),
    FILE,
    `"w"`,
    "16",
  );
});

Deno.test("safetensors: bad shapes and shape/dtype mismatches", () => {
  const h = (shape: unknown, offs = [0, 8]) =>
    withHeader({ w: { dtype: "BF16", shape, data_offsets: offs } }, offs[1]);
  throwsSt(() => parseSafetensors(h([2, -2]), FILE), FILE, `"w"`, "-2");
  throwsSt(() => parseSafetensors(h([2, 1.5]), FILE), FILE, `"w"`, "1.5");
  throwsSt(() => parseSafetensors(h([2, "2"]), FILE), FILE, `"w"`, `"2"`);
  throwsSt(() => parseSafetensors(h([2 ** 60, 2]), FILE), FILE, `"w"`, "non-negative integer");
  throwsSt(() => parseSafetensors(h([3, 2]), FILE), FILE, `"w"`, "needs 12 bytes", "span 8", "mismatch");
  throwsSt(() => parseSafetensors(h([2 ** 26, 2 ** 26, 2 ** 26]), FILE), FILE, `"w"`, "mismatch");
  // [huge, 0] has zero elements: valid with an empty span.
  const st = parseSafetensors(
    withHeader({ w: { dtype: "BF16", shape: [2 ** 40, 0], data_offsets: [0, 0] } }, 0),
    FILE,
  );
  assert.equal(st.tensors.get("w")!.data.byteLength, 0);
});

Deno.test("safetensors: bad offsets, overlaps, holes and duplicate keys", () => {
  const t = (offs: unknown) => ({ dtype: "F32", shape: [1], data_offsets: offs });
  throwsSt(() => parseSafetensors(withHeader({ w: t([0, 4.5]) }, 8), FILE), FILE, `"w"`, "4.5");
  throwsSt(() => parseSafetensors(withHeader({ w: t(["0", 4]) }, 4), FILE), FILE, `"w"`, `"0"`);
  throwsSt(() => parseSafetensors(withHeader({ w: t([-4, 0]) }, 4), FILE), FILE, `"w"`, "-4");
  throwsSt(() => parseSafetensors(withHeader({ w: t([4, 0]) }, 4), FILE), FILE, `"w"`, "begin > end");
  throwsSt(
    () => parseSafetensors(withHeader({ w: t([0, 4]), v: t([4, 8]) }, 6), FILE),
    FILE,
    `"v"`,
    "outside",
    "6-byte",
  );
  throwsSt(
    () => parseSafetensors(withHeader({ w: t([0, 4]), v: t([2, 6]) }, 6), FILE),
    FILE,
    `"v"`,
    `"w"`,
    "overlaps",
  );
  throwsSt(() => parseSafetensors(withHeader({ w: t([0, 4]), v: t([0, 4]) }, 4), FILE), FILE, "overlaps");
  throwsSt(
    () => parseSafetensors(withHeader({ w: t([0, 4]), v: t([6, 10]) }, 10), FILE),
    FILE,
    `"v"`,
    "hole",
    "[4, 6)",
  );
  throwsSt(() => parseSafetensors(withHeader({ w: t([0, 4]) }, 7), FILE), FILE, "hole", "[4, 7)");
  throwsSt(() => parseSafetensors(withHeader({ w: t([4, 8]) }, 8), FILE), FILE, `"w"`, "hole", "[0, 4)");
  const dupTop =
    '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
  throwsSt(
    () => parseSafetensors(assembleSafetensors(dupTop, [new Uint8Array(4)]), FILE),
    FILE,
    `"w"`,
    "duplicate",
  );
  const dupIn = '{"w":{"dtype":"I64","dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
  throwsSt(
    () => parseSafetensors(assembleSafetensors(dupIn, [new Uint8Array(4)]), FILE),
    FILE,
    `"dtype"`,
    "duplicate",
  );
  // Escaped names are compared after unescaping; a key-looking string value is not a key.
  const dupEsc =
    '{"\\u0077":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
  throwsSt(() => parseSafetensors(assembleSafetensors(dupEsc, [new Uint8Array(4)]), FILE), FILE, "duplicate");
  const notDup = '{"__metadata__":{"a":"b","c":"a"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
  assert.equal(parseSafetensors(assembleSafetensors(notDup, [new Uint8Array(4)]), FILE).tensors.size, 1);
});

// ---------------------------------------------------------------------------------------------------------
// Fuzz: every mutation of a valid file either parses with consistent invariants or is a SafetensorsError.

const FUZZ_SEED = 0x5eed2024;
const FUZZ_CASES = 6000;

function checkInvariants(bytes: Uint8Array): void {
  let st;
  try {
    st = parseSafetensors(bytes, FILE);
  } catch (e) {
    if (!(e instanceof SafetensorsError)) throw new Error(`non-SafetensorsError thrown: ${e}`, { cause: e });
    if (!e.message.startsWith(`${FILE}: `) || e.message.includes("unexpected internal error")) {
      throw new Error(`bad error message: ${e.message}`);
    }
    return;
  }
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const dataStart = bytes.byteOffset + 8 + n;
  const dataEnd = bytes.byteOffset + bytes.byteLength;
  const spans: [number, number][] = [];
  for (const t of st.tensors.values()) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    assert.equal(t.data.byteLength, numel * DTYPE_ITEM_SIZE[t.dtype], t.name);
    assert.equal(t.data.buffer, bytes.buffer);
    assert.ok(t.data.byteOffset >= dataStart && t.data.byteOffset + t.data.byteLength <= dataEnd, t.name);
    spans.push([t.data.byteOffset, t.data.byteOffset + t.data.byteLength]);
  }
  spans.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let at = dataStart;
  for (const [b, e] of spans) {
    assert.equal(b, at, "tensors must tile the data section");
    at = e;
  }
  assert.equal(at, dataEnd);
}

Deno.test(`safetensors: fuzz ${FUZZ_CASES} mutations, seed 0x${FUZZ_SEED.toString(16)}`, () => {
  const rand = mulberry32(FUZZ_SEED);
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const tensors = sampleTensors();
  const base = writeSafetensors(tensors, { format: "pt", note: "x" });
  const baseN = Number(new DataView(base.buffer).getBigUint64(0, true));
  const baseHeader = JSON.parse(new TextDecoder().decode(base.subarray(8, 8 + baseN))) as Record<string, any>;
  const baseData = base.subarray(8 + baseN);
  const names = tensors.map((t) => t.name);
  const weirdNumbers = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    12,
    24,
    44,
    68,
    72,
    96,
    -1,
    -8,
    1.5,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    2 ** 64,
    1e308,
    -0,
  ];
  const weird = [...weirdNumbers, null, "4", true, [], {}, [1, 2], "BF16"];
  const dtypes = ["BF16", "F16", "F32", "I64", "F64", "U8", "bf16", "", "F8_E5M2", "XYZ"];
  let parsed = 0;

  const jsonEdit = (): Uint8Array => {
    const h = structuredClone(baseHeader);
    const edits = 1 + int(3);
    for (let k = 0; k < edits; k++) {
      const name = pick(names);
      const raw = h[name];
      const e = typeof raw === "object" && raw !== null && !Array.isArray(raw) ? raw : null;
      switch (int(9)) {
        case 0:
          if (e) e.data_offsets = [pick(weirdNumbers), pick(weirdNumbers)];
          break;
        case 1:
          if (e && Array.isArray(e.data_offsets)) {
            e.data_offsets[int(2)] = e.data_offsets[int(2)] + pick([-2, -1, 1, 2, 4]);
          }
          break;
        case 2:
          if (e) e.shape = Array.from({ length: int(4) }, () => pick(weirdNumbers));
          break;
        case 3:
          if (e && Array.isArray(e.shape) && e.shape.length) e.shape[int(e.shape.length)] = pick(weird);
          break;
        case 4:
          if (e) e.dtype = pick(dtypes);
          break;
        case 5:
          if (e) delete e[pick(["dtype", "shape", "data_offsets"])];
          break;
        case 6:
          h[name] = pick(weird);
          break;
        case 7:
          h[`extra${int(3)}`] = { dtype: pick(dtypes), shape: [int(5)], data_offsets: [int(100), int(100)] };
          break;
        default:
          h.__metadata__ = pick([null, { a: 1 }, { a: "b" }, [], "x"]);
      }
    }
    let text = JSON.stringify(h);
    if (rand() < 0.1) text = text.replace(`"${pick(names)}"`, `"${pick(names)}"`); // may duplicate a key
    const dataLen = rand() < 0.8 ? baseData.byteLength : int(baseData.byteLength + 16);
    const data = new Uint8Array(dataLen);
    data.set(baseData.subarray(0, Math.min(dataLen, baseData.byteLength)));
    return assembleSafetensors(text, [data]);
  };

  for (let c = 0; c < FUZZ_CASES; c++) {
    let b: Uint8Array;
    const kind = int(6);
    if (kind === 5) b = jsonEdit();
    else b = base.slice();
    switch (kind) {
      case 0: // bit flips, mostly in the header
        for (let k = 1 + int(4); k > 0; k--) {
          const pos = rand() < 0.8 ? int(Math.min(b.byteLength, 8 + baseN)) : int(b.byteLength);
          b[pos] ^= 1 << int(8);
        }
        break;
      case 1: // byte overwrites
        for (let k = 1 + int(4); k > 0; k--) {
          b[int(Math.min(b.byteLength, 8 + baseN))] = pick([
            0,
            0x20,
            0x22,
            0x2c,
            0x3a,
            0x5b,
            0x5d,
            0x7b,
            0x7d,
            0x30,
            0x39,
            0x2d,
            0xff,
            int(256),
          ]);
        }
        break;
      case 2: // truncation
        b = b.subarray(0, int(b.byteLength));
        break;
      case 3: { // header-length edits
        const dv = new DataView(b.buffer);
        const choice = int(4);
        if (choice === 0) dv.setBigUint64(0, BigInt(baseN + pick([-9, -8, -1, 1, 8, 100])), true);
        else if (choice === 1) dv.setUint32(0, int(2 ** 32), true);
        else if (choice === 2) dv.setUint32(4, 1 + int(2 ** 32 - 1), true);
        else dv.setBigUint64(0, BigInt(int(b.byteLength + 16)), true);
        break;
      }
      case 4: { // JSON edit plus a bit flip
        b = jsonEdit();
        b[int(b.byteLength)] ^= 1 << int(8);
        break;
      }
    }
    checkInvariants(b);
    try {
      parseSafetensors(b, FILE);
      parsed++;
    } catch { /* counted above */ }
  }
  // The mutations must not be so destructive that nothing ever parses, nor so mild that everything does.
  assert.ok(parsed > 0 && parsed < FUZZ_CASES, `parsed ${parsed} of ${FUZZ_CASES}`);
});

// ---------------------------------------------------------------------------------------------------------
// Files and directories.

async function withTempDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "pmkvq-st-" });
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const shardA = () => writeSafetensors([{ name: "x", dtype: "F32", shape: [2], data: f32Bytes([1, 2]) }]);
const shardB = () =>
  writeSafetensors([
    { name: "y", dtype: "BF16", shape: [2], data: bytesOf(4) },
    { name: "z", dtype: "F16", shape: [1], data: bytesOf(2) },
  ]);
const indexJson = (map: Record<string, unknown>) =>
  JSON.stringify({ metadata: { total_size: 14 }, weight_map: map });

Deno.test("safetensors: readSafetensorsHeader and readSafetensorsFile", async () => {
  await withTempDir(async (dir) => {
    const p = join(dir, "m.safetensors");
    await Deno.writeFile(p, shardB());
    const h = await readSafetensorsHeader(p);
    assert.deepEqual([...h.tensors.keys()], ["y", "z"]);
    assert.deepEqual(h.tensors.get("z"), { name: "z", dtype: "F16", shape: [1], begin: 4, end: 6 });
    const f = await readSafetensorsFile(p);
    assert.deepEqual(f.tensors.get("y")!.data, bytesOf(4));
    await Deno.writeFile(p, shardB().subarray(0, 20));
    await rejectsSt(readSafetensorsHeader(p), p, "truncated");
    await Deno.writeFile(p, shardB().subarray(0, shardB().byteLength - 1));
    await rejectsSt(readSafetensorsHeader(p), p, `"z"`, "outside");
    await rejectsSt(readSafetensorsFile(join(dir, "nope.safetensors")), "nope.safetensors", "not found");
  });
});

Deno.test("safetensors: single-file directory and missing weights", async () => {
  await withTempDir(async (dir) => {
    await rejectsSt(loadSafetensorsIndex(dir), dir, "model.safetensors");
    await Deno.writeFile(join(dir, "model.safetensors"), shardB());
    const idx = await loadSafetensorsIndex(dir);
    assert.equal(idx.indexFile, null);
    assert.deepEqual(idx.shards, ["model.safetensors"]);
    assert.deepEqual(idx.tensors.get("y"), {
      name: "y",
      file: "model.safetensors",
      dtype: "BF16",
      shape: [2],
    });
  });
});

Deno.test("safetensors: sharded directory, missing shard, tensor missing from its shard", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(join(dir, "s1.safetensors"), shardA());
    await Deno.writeFile(join(dir, "s2.safetensors"), shardB());
    const indexPath = join(dir, INDEX_FILE);
    await Deno.writeTextFile(
      indexPath,
      indexJson({ x: "s1.safetensors", y: "s2.safetensors", z: "s2.safetensors" }),
    );
    const idx = await loadSafetensorsIndex(dir);
    assert.equal(idx.indexFile, indexPath);
    assert.deepEqual(idx.shards, ["s1.safetensors", "s2.safetensors"]);
    assert.equal(idx.tensors.get("z")!.file, "s2.safetensors");

    await Deno.writeTextFile(indexPath, indexJson({ x: "s1.safetensors", y: "s3.safetensors" }));
    await rejectsSt(loadSafetensorsIndex(dir), "s3.safetensors", "not found");

    await Deno.writeTextFile(indexPath, indexJson({ x: "s1.safetensors", q: "s2.safetensors" }));
    await rejectsSt(loadSafetensorsIndex(dir), `"q"`, "s2.safetensors", "does not contain");

    await Deno.writeTextFile(indexPath, indexJson({ x: "s2.safetensors" }));
    await rejectsSt(loadSafetensorsIndex(dir), `"x"`, "s2.safetensors");

    await Deno.writeFile(join(dir, "s1.safetensors"), shardB());
    await Deno.writeTextFile(indexPath, indexJson({ y: "s1.safetensors", z: "s2.safetensors" }));
    await rejectsSt(loadSafetensorsIndex(dir), `"y"`, "both", "s1.safetensors", "s2.safetensors");
  });
});

Deno.test("safetensors: malformed shard index", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(join(dir, "s1.safetensors"), shardA());
    const indexPath = join(dir, INDEX_FILE);
    const cases: [string, string[]][] = [
      ["{oops", ["not valid JSON"]],
      ["[]", ["JSON object"]],
      [JSON.stringify({ weight_map: [] }), ["weight_map"]],
      [JSON.stringify({ weight_map: {} }), ["no tensors"]],
      [JSON.stringify({ weight_map: { x: 3 } }), [`weight_map["x"]`, "3"]],
      [JSON.stringify({ weight_map: { x: "../s1.safetensors" } }), [`weight_map["x"]`, "../s1.safetensors"]],
    ];
    for (const [text, parts] of cases) {
      await Deno.writeTextFile(indexPath, text);
      await rejectsSt(loadSafetensorsIndex(dir), indexPath, ...parts);
    }
  });
});
