import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readNpy, writeNpy } from '../../src/shared/npy.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'gw', 'npy');
const file = (name: string) => readFileSync(join(DIR, name));

describe('readNpy on files numpy wrote', () => {
  it('reads float32 C-order arrays', () => {
    const { shape, data } = readNpy(file('f4_3x4.npy'));
    expect(shape).toEqual([3, 4]);
    expect(Array.from(data)).toEqual(Array.from({ length: 12 }, (_, i) => i / 8));
  });

  it('reads float64 exactly, including extreme values', () => {
    const { shape, data } = readNpy(file('f8_2x3.npy'));
    expect(shape).toEqual([2, 3]);
    expect(Array.from(data)).toEqual([1.5, -2.25, 3e-300, Math.PI, 0, -1e300]);
  });

  it('reads big-endian data and format version 2.0 headers', () => {
    expect(Array.from(readNpy(file('f8_big_endian.npy')).data)).toEqual([1, 2, 3, 4]);
    const v2 = readNpy(file('f8_v2.npy'));
    expect(v2.shape).toEqual([2, 2]);
    expect(Array.from(v2.data)).toEqual([1, 1, 1, 1]);
  });

  it('refuses Fortran order, other dtypes and truncated files with a hint', () => {
    expect(() => readNpy(file('f8_fortran.npy'))).toThrow(/Fortran order.*C order/);
    expect(() => readNpy(file('i8_2x2.npy'))).toThrow(/dtype '<i8'.*float/);
    const whole = file('f8_2x3.npy');
    expect(() => readNpy(whole.subarray(0, whole.length - 8))).toThrow(/truncated data/);
    expect(() => readNpy(whole.subarray(0, 20))).toThrow(/truncated header/);
    expect(() => readNpy(Buffer.from('{"not": "npy"}'))).toThrow(/magic/);
  });
});

describe('writeNpy', () => {
  it('round-trips through readNpy and pads the header to 64 bytes as numpy does', () => {
    const data = Float64Array.from([1, -2, 0.1, 1e-310, 5, 6]);
    const buf = writeNpy(data, [3, 2]);
    expect((10 + buf.readUInt16LE(8)) % 64).toBe(0);
    const back = readNpy(buf);
    expect(back.shape).toEqual([3, 2]);
    expect(Array.from(back.data)).toEqual(Array.from(data));
    expect(readNpy(writeNpy([7], [1])).shape).toEqual([1]);
  });

  it('writes the same bytes as numpy.save for the same array', () => {
    expect(writeNpy(Float64Array.from([1, 1, 1, 1]), [2, 2]).equals(file('f8_ones_2x2.npy'))).toBe(true);
    expect(writeNpy([0, 1, 2], [3]).equals(file('f8_range_3.npy'))).toBe(true);
  });

  it('refuses data that does not fill the shape', () => {
    expect(() => writeNpy([1, 2, 3], [2, 2])).toThrow(/do not fill/);
  });
});
