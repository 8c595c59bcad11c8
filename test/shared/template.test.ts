import { describe, expect, it } from 'vitest';
import { loadAtomlensProto } from '../../src/shared/proto.js';
import {
  alphaFingerprint,
  buildTemplate,
  DEFAULT_TEMPLATE_CONFIG,
  generateAlpha,
  templateFromWire,
  templateToWire,
} from '../../src/shared/template.js';
import { DEMO_TEMPLATE_PATH, readModelTemplateFile } from '../../src/shared/template-file.js';
import { decodeFloat32, encodeFloat32 } from '../../src/shared/tensor.js';

describe('model template', () => {
  it('generates the same alpha and fingerprint from the same seed', () => {
    const a = buildTemplate();
    const b = buildTemplate();
    expect(a.alphaFingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(b.alphaFingerprint).toBe(a.alphaFingerprint);
    expect(Array.from(b.alpha[2]!)).toEqual(Array.from(a.alpha[2]!));
  });

  it('changes the fingerprint when the seed or a single value changes', () => {
    const a = buildTemplate();
    const other = buildTemplate({
      ...DEFAULT_TEMPLATE_CONFIG,
      alphaSeed: DEFAULT_TEMPLATE_CONFIG.alphaSeed + 1,
    });
    expect(other.alphaFingerprint).not.toBe(a.alphaFingerprint);
    const tweaked = a.alpha.map((x) => x.slice());
    tweaked[0]![0] = tweaked[0]![0]! + 1e-6;
    expect(alphaFingerprint(a.layers, tweaked)).not.toBe(a.alphaFingerprint);
  });

  it('has alpha of shape [cOut, cIn, m] with variance 2/(cIn·m)', () => {
    const t = buildTemplate();
    const alpha = generateAlpha(t.layers, 1);
    t.layers.forEach((l, i) => {
      const a = alpha[i]!;
      expect(a.length).toBe(l.cOut * l.cIn * l.m);
      const variance = a.reduce((s, v) => s + v * v, 0) / a.length;
      const expected = 2 / (l.cIn * l.m);
      // Uniform variance estimate over ≥48 samples: within 40%.
      expect(Math.abs(variance - expected) / expected).toBeLessThan(0.4);
    });
  });

  it('round-trips through the wire form and rejects tampered alpha', () => {
    const t = buildTemplate();
    const wire = templateToWire(t);
    const back = templateFromWire(
      JSON.parse(JSON.stringify(wire), (_k, v) => (v && v.type === 'Buffer' ? Buffer.from(v.data) : v)),
    );
    expect(back.alphaFingerprint).toBe(t.alphaFingerprint);
    expect(back.layers).toEqual(t.layers);
    const values = decodeFloat32(wire.alpha![1] as { shape: number[]; data: Buffer });
    values[3] = 0.5;
    const bad = {
      ...wire,
      alpha: wire.alpha!.map((x, i) => (i === 1 ? encodeFloat32(values, x.shape as number[]) : x)),
    };
    expect(() => templateFromWire(bad as never)).toThrow(/does not match its fingerprint/);
  });

  it('travels as the proto message, enums by name; an unset head_input means flatten', () => {
    const message = loadAtomlensProto().atomlens.v1.ModelTemplate;
    const t = buildTemplate({ ...DEFAULT_TEMPLATE_CONFIG, headInput: 'gap' });
    const wire = templateToWire(t);
    expect(wire.layers![0]).toMatchObject({ padding: 'PADDING_SAME', activation: 'ACTIVATION_RELU' });
    expect(wire.probe).toMatchObject({ source: 'PROBE_SOURCE_MNIST', pooling: 'POOLING_GLOBAL_AVERAGE' });
    expect(wire.headInput).toBe('POOLING_GLOBAL_AVERAGE');
    const decoded = message.deserialize(message.serialize(wire));
    const back = templateFromWire(decoded);
    expect({ ...back, alpha: undefined }).toEqual({ ...t, alpha: undefined });
    const unset = message.deserialize(message.serialize({ ...wire, headInput: 'POOLING_UNSPECIFIED' }));
    expect(templateFromWire(unset).headInput).toBe('flatten');
    // The zero value elsewhere, or a value this version does not define, is refused by name.
    const noPadding = {
      ...wire,
      layers: wire.layers!.map((l, i) => (i === 2 ? { ...l, padding: 0 as const } : l)),
    };
    expect(() => templateFromWire(message.deserialize(message.serialize(noPadding)))).toThrow(
      /layers\[2\]\.padding is PADDING_UNSPECIFIED/,
    );
    const newer = { ...wire, probe: { ...wire.probe, source: 7 as unknown as 'PROBE_SOURCE_MNIST' } };
    expect(() => templateFromWire(message.deserialize(message.serialize(newer)))).toThrow(
      /probe\.source is 7/,
    );
  });

  it('carries a template file’s explicit initial atoms through the proto message', () => {
    const message = loadAtomlensProto().atomlens.v1.ModelTemplate;
    const t = readModelTemplateFile(DEMO_TEMPLATE_PATH);
    expect(t.initialAtoms).toHaveLength(t.layers.length);
    const back = templateFromWire(message.deserialize(message.serialize(templateToWire(t))));
    expect(back.alphaFingerprint).toBe(t.alphaFingerprint);
    back.initialAtoms!.forEach((atoms, i) => {
      expect(Array.from(atoms)).toEqual(Array.from(t.initialAtoms![i]!));
    });
    // A seed-generated template sends none; a short or non-finite set is refused.
    expect(
      templateFromWire(message.deserialize(message.serialize(templateToWire(buildTemplate())))).initialAtoms,
    ).toBeUndefined();
    const wire = templateToWire(t);
    const short = { ...wire, initialAtoms: wire.initialAtoms!.slice(1) };
    expect(() => templateFromWire(message.deserialize(message.serialize(short)))).toThrow(
      /initial atoms for 4 of 5 layers/,
    );
    const nan = templateToWire({
      ...t,
      initialAtoms: t.initialAtoms!.map((a, i) => (i === 1 ? a.map(() => Number.NaN) : a)),
    });
    expect(() => templateFromWire(message.deserialize(message.serialize(nan)))).toThrow(
      /initial atoms for conv2 are not 81 finite values/,
    );
  });

  it('rejects inconsistent architectures with a precise message', () => {
    const layers = structuredClone(DEFAULT_TEMPLATE_CONFIG.layers);
    layers[1]!.cIn = 5;
    expect(() => buildTemplate({ ...DEFAULT_TEMPLATE_CONFIG, layers })).toThrow(
      /conv2.*cIn is 5 but the previous layer gives 8/,
    );
    expect(() => buildTemplate({ ...DEFAULT_TEMPLATE_CONFIG, probeLayers: ['nope'] })).toThrow(
      /unknown layer nope/,
    );
  });
});

describe('wire tensors', () => {
  it('encodes little-endian float32 and refuses mismatched shapes', () => {
    const t = encodeFloat32(new Float32Array([1, -2.5, 3]), [3]);
    expect(t.data.readFloatLE(4)).toBe(-2.5);
    expect(Array.from(decodeFloat32(t))).toEqual([1, -2.5, 3]);
    expect(() => encodeFloat32([1, 2], [3])).toThrow(/needs 3/);
    expect(() => decodeFloat32({ shape: [2, 2], data: Buffer.alloc(12) })).toThrow(/needs 16 bytes, got 12/);
  });
});
