// Float32 tensors on the wire: little-endian bytes in C order (proto message atomlens.v1.Tensor).

export interface WireTensor {
  shape: number[];
  data: Buffer;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Encodes values as little-endian float32 bytes (a copy; never aliases the input). */
export function encodeFloat32(values: Float32Array | Float64Array | number[], shape: number[]): WireTensor {
  const count = shape.reduce((a, b) => a * b, 1);
  if (values.length !== count) {
    throw new Error(`tensor has ${values.length} values but shape [${shape.join(', ')}] needs ${count}`);
  }
  const data = Buffer.alloc(count * 4);
  if (LITTLE_ENDIAN_HOST && values instanceof Float32Array) {
    data.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  } else {
    for (let i = 0; i < count; i++) data.writeFloatLE(values[i]!, i * 4);
  }
  return { shape: [...shape], data };
}

/** Decodes little-endian float32 bytes; throws when the byte length does not match the shape. */
export function decodeFloat32(tensor: { shape: number[]; data: Uint8Array }): Float32Array {
  const count = tensor.shape.reduce((a, b) => a * b, 1);
  if (tensor.data.byteLength !== count * 4) {
    throw new Error(
      `tensor of shape [${tensor.shape.join(', ')}] needs ${count * 4} bytes, got ${tensor.data.byteLength}`,
    );
  }
  const out = new Float32Array(count);
  if (LITTLE_ENDIAN_HOST) {
    new Uint8Array(out.buffer).set(tensor.data);
  } else {
    const view = new DataView(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  }
  return out;
}

/** True when every value is finite (no NaN or ±Infinity). */
export function allFinite(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return false;
  return true;
}
