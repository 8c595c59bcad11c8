// NumPy .npy files (format versions 1.0, 2.0, 3.0; https://numpy.org/neps/nep-0001-npy-format.html):
// a magic string, a version, a little-endian header length, a Python-literal header dict
// {'descr', 'fortran_order', 'shape'}, then the raw C-order data. Float32 and float64 only.

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

/** An array read from an .npy file. */
export interface NpyArray {
  /** The array's shape (C order). */
  shape: number[];
  /** Values widened to float64 (float32 files convert exactly). */
  data: Float64Array;
  /** The element type stored in the file. */
  dtype: 'float32' | 'float64';
}

function fail(msg: string): never {
  throw new Error(`not a usable .npy file: ${msg}`);
}

/** Parses the header dict numpy writes, e.g. {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), } */
function parseHeader(text: string): { descr: string; fortran: boolean; shape: number[] } {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    fail(`header '${text.trim()}' lacks descr, fortran_order or shape`);
  }
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      const v = Number(s.replace(/L$/, ''));
      if (!Number.isInteger(v) || v < 0) fail(`bad dimension '${s}' in shape (${shapeText})`);
      return v;
    });
  return { descr, fortran: fortran === 'True', shape };
}

/** Reads a float32 or float64 array in C order. Throws a message naming the problem otherwise. */
export function readNpy(buf: Buffer): NpyArray {
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC))
    fail('it does not start with the \\x93NUMPY magic');
  const major = buf[6]!;
  let headerLength: number;
  let headerStart: number;
  if (major === 1) {
    headerLength = buf.readUInt16LE(8);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) fail('truncated header');
    headerLength = buf.readUInt32LE(8);
    headerStart = 12;
  } else {
    fail(`unsupported format version ${major}.${buf[7]}`);
  }
  if (buf.length < headerStart + headerLength) fail('truncated header');
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', headerStart, headerStart + headerLength);
  const { descr, fortran, shape } = parseHeader(header);
  if (fortran) fail('the array is in Fortran order; save it in C order (numpy.ascontiguousarray) and retry');
  const dtypes: Record<string, { size: number; little: boolean }> = {
    '<f8': { size: 8, little: true },
    '>f8': { size: 8, little: false },
    '<f4': { size: 4, little: true },
    '>f4': { size: 4, little: false },
  };
  const dtype = dtypes[descr];
  if (!dtype)
    fail(`dtype '${descr}' is not supported; convert to float32 or float64 (arr.astype('float64'))`);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = headerStart + headerLength;
  const needed = count * dtype.size;
  if (buf.length - offset < needed) {
    fail(
      `truncated data: shape (${shape.join(', ')}) needs ${needed} bytes, the file has ${buf.length - offset}`,
    );
  }
  const view = new DataView(buf.buffer, buf.byteOffset + offset, needed);
  const data = new Float64Array(count);
  if (dtype.size === 8) for (let i = 0; i < count; i++) data[i] = view.getFloat64(i * 8, dtype.little);
  else for (let i = 0; i < count; i++) data[i] = view.getFloat32(i * 4, dtype.little);
  return { shape, data, dtype: dtype.size === 8 ? 'float64' : 'float32' };
}

/** Writes a little-endian C-order .npy (version 1.0), header padded to 64 bytes as numpy does. */
export function writeNpy(
  data: ArrayLike<number>,
  shape: number[],
  dtype: 'float32' | 'float64' = 'float64',
): Buffer {
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count) {
    throw new Error(`writeNpy: ${data.length} values do not fill shape (${shape.join(', ')})`);
  }
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const size = dtype === 'float32' ? 4 : 8;
  let header = `{'descr': '<f${size}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const out = Buffer.alloc(10 + header.length + count * size);
  MAGIC.copy(out, 0);
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, 'latin1');
  const base = 10 + header.length;
  if (size === 4) for (let i = 0; i < count; i++) out.writeFloatLE(data[i]!, base + i * 4);
  else for (let i = 0; i < count; i++) out.writeDoubleLE(data[i]!, base + i * 8);
  return out;
}
