/**
 * Writing of valid safetensors bytes, for tests and small tools: the header is padded with spaces to a
 * multiple of 8 bytes and tensors are laid out back to back in the order given.
 *
 * @example
 * ```ts
 * import { writeSafetensors, f32Bytes } from "./safetensors_write.ts";
 * const bytes = writeSafetensors([{ name: "w", dtype: "F32", shape: [2], data: f32Bytes([1, 2]) }]);
 * await Deno.writeFile("w.safetensors", bytes);
 * ```
 * @module
 */
import { SafetensorsError } from "../errors.ts";

/** A tensor to write: `data` holds its raw little-endian bytes. */
export interface TensorToWrite {
  name: string;
  /** Any safetensors dtype name; item sizes are known for the common ones and checked against `data`. */
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

const ITEM_SIZE: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  U16: 2,
  I16: 2,
  F16: 2,
  BF16: 2,
  U32: 4,
  I32: 4,
  F32: 4,
  U64: 8,
  I64: 8,
  F64: 8,
};

/**
 * Builds the bytes of a valid safetensors file. Throws {@link SafetensorsError} when a tensor's byte
 * length does not match its shape and dtype, or a name repeats.
 *
 * @example
 * ```ts
 * import { writeSafetensors } from "./safetensors_write.ts";
 * const bf16One = new Uint8Array([0x80, 0x3f]);
 * const bytes = writeSafetensors([{ name: "x", dtype: "BF16", shape: [1], data: bf16One }], { format: "pt" });
 * ```
 */
export function writeSafetensors(tensors: TensorToWrite[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name in header) throw new SafetensorsError(`writeSafetensors: duplicate tensor "${t.name}"`);
    const item = ITEM_SIZE[t.dtype];
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (item !== undefined && numel * item !== t.data.byteLength) {
      throw new SafetensorsError(
        `writeSafetensors: tensor "${t.name}" ${t.dtype} ${JSON.stringify(t.shape)} needs ${
          numel * item
        } bytes, got ${t.data.byteLength}`,
      );
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  return assembleSafetensors(
    JSON.stringify(header),
    tensors.map((t) => t.data),
  );
}

/**
 * Assembles a file from header JSON text (padded with spaces to a multiple of 8 bytes) and data chunks
 * written back to back, without any validation: useful to build malformed files in tests.
 *
 * @example
 * ```ts
 * import { assembleSafetensors } from "./safetensors_write.ts";
 * const bad = assembleSafetensors('{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', [new Uint8Array(4)]);
 * ```
 */
export function assembleSafetensors(headerJson: string, chunks: Uint8Array[] = []): Uint8Array {
  let head = new TextEncoder().encode(headerJson); // [N]
  const padded = Math.ceil(head.byteLength / 8) * 8;
  if (padded !== head.byteLength) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(head);
    head = p;
  }
  const dataLen = chunks.reduce((a, c) => a + c.byteLength, 0);
  const out = new Uint8Array(8 + head.byteLength + dataLen); // [8 + N + data]
  new DataView(out.buffer).setBigUint64(0, BigInt(head.byteLength), true);
  out.set(head, 8);
  let o = 8 + head.byteLength;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}

/**
 * Little-endian f32 bytes of `values`.
 *
 * @example
 * ```ts
 * import { f32Bytes } from "./safetensors_write.ts";
 * f32Bytes([1]); // Uint8Array [0, 0, 128, 63]
 * ```
 */
export function f32Bytes(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 4); // [n * 4]
  const dv = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) dv.setFloat32(4 * i, values[i], true);
  return out;
}
