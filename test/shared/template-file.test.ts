// Template files: bit-exact round trip, the α fingerprint checked on load, every malformed field
// named with its path, the JSON Schema agreeing with what the writer produces.
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { buildTemplate } from '../../src/shared/template.js';
import {
  atomTemplateFromModelTemplate,
  atomTemplateToJson,
  modelTemplateFromAtomTemplate,
  parseAtomTemplate,
  parseLayerSpec,
  probeSetIdentity,
  templateFromLayerList,
} from '../../src/shared/template-file.js';

const schema = JSON.parse(
  readFileSync(new URL('../../schemas/template.schema.json', import.meta.url), 'utf8'),
);
const validateSchema = new Ajv({ allErrors: true, strict: true }).compile(schema);

const layers = parseLayerSpec('conv1:3:8:3:9, conv2:8:16:3:4');
const template = templateFromLayerList(layers, { seed: 5, federationId: 'own', probeLayers: ['conv2'] });

// biome-ignore lint/suspicious/noExplicitAny: tests edit the JSON document field by field, types included.
type Doc = Record<string, any>;

function edit(mutate: (doc: Doc) => void): string {
  const doc = JSON.parse(atomTemplateToJson(template));
  mutate(doc);
  return JSON.stringify(doc);
}

describe('template files', () => {
  it('round-trip bit for bit, with the fingerprint over α', () => {
    const text = atomTemplateToJson(template);
    const back = parseAtomTemplate(text);
    expect(back.alphaFingerprint).toBe(template.alphaFingerprint);
    expect(back.layers.map((l) => [l.name, l.cIn, l.cOut, l.k, l.m])).toEqual([
      ['conv1', 3, 8, 3, 9],
      ['conv2', 8, 16, 3, 4],
    ]);
    for (let i = 0; i < 2; i++) {
      expect(Buffer.from(back.layers[i]!.alpha.buffer)).toEqual(
        Buffer.from(template.layers[i]!.alpha.buffer),
      );
      expect(Array.from(back.layers[i]!.initialAtoms)).toEqual(Array.from(template.layers[i]!.initialAtoms));
    }
    expect(back.probe).toEqual({ layers: ['conv2'], pooling: 'gap' });
    expect(validateSchema(JSON.parse(text))).toBe(true);
  });

  it('from a layer list: He-scaled α and unit-scale atoms, the same for the same seed', () => {
    const again = templateFromLayerList(layers, { seed: 5, federationId: 'own', probeLayers: ['conv2'] });
    expect(again.alphaFingerprint).toBe(template.alphaFingerprint);
    expect(templateFromLayerList(layers, { seed: 6 }).alphaFingerprint).not.toBe(template.alphaFingerprint);
    const atoms = template.layers[0]!.initialAtoms;
    const variance = atoms.reduce((s, v) => s + v * v, 0) / atoms.length;
    expect(variance).toBeGreaterThan(0.5 / 9);
    expect(variance).toBeLessThan(2 / 9);
  });

  it('rejects α that does not match its fingerprint', () => {
    const text = edit((doc) => {
      const bytes = Buffer.from(doc.layers[0].alpha, 'base64');
      bytes.writeFloatLE(bytes.readFloatLE(0) + 1e-3, 0);
      doc.layers[0].alpha = bytes.toString('base64');
    });
    expect(() => parseAtomTemplate(text, 'own.json')).toThrow(
      /own.json .*alpha does not match alphaFingerprint/,
    );
  });

  it('names every malformed field with its path', () => {
    const cases: [(doc: Doc) => void, RegExp][] = [
      [(d) => (d.format = 'other'), /format must be "atomlens-template"/],
      [(d) => (d.formatVersion = 2), /formatVersion 2 is not supported/],
      [
        (d) => (d.layers[1].alpha = 'AAAAAA=='),
        /layers\[1\] \(conv2\): alpha has 1 values, expected cOut·cIn·m = 512/,
      ],
      [(d) => (d.layers[0].initialAtoms = '%%%'), /layers\[0\].initialAtoms is not base64/],
      [
        (d) => (d.layers[0].initialAtoms = 'AAAA'),
        /initialAtoms decodes to 3 bytes, not a whole number of float32/,
      ],
      [(d) => (d.layers[1].m = 10), /layers\[1\] \(conv2\): m \(10\) exceeds k² \(9\)/],
      [(d) => (d.layers[0].cIn = 'three'), /layers\[0\].cIn must be a number/],
      [(d) => (d.probe.layers = ['conv9']), /probe.layers: unknown layer conv9/],
      [
        (d) => (d.probe.set = { sha256: 'abc', shape: [4], dtype: 'float64' }),
        /sha256 must be 64.*shape must be.*dtype must be float32/,
      ],
      [(d) => (d.layers[1].name = d.layers[0].name), /duplicate layer name/],
    ];
    for (const [mutate, message] of cases) expect(() => parseAtomTemplate(edit(mutate))).toThrow(message);
    expect(() => parseAtomTemplate('{nope')).toThrow(/not JSON/);
    const nan = edit((d) => {
      const bytes = Buffer.from(d.layers[0].initialAtoms, 'base64');
      bytes.writeFloatLE(Number.NaN, 8);
      d.layers[0].initialAtoms = bytes.toString('base64');
    });
    expect(() => parseAtomTemplate(nan)).toThrow(/initialAtoms has non-finite values/);
  });

  it('carries the built-in client’s network and round-trips to its ModelTemplate', () => {
    const built = buildTemplate();
    const atoms = built.layers.map((l) => new Float32Array(l.m * l.k * l.k).fill(0.25));
    const file = atomTemplateFromModelTemplate(built, atoms, 'demo');
    const text = atomTemplateToJson(file);
    expect(validateSchema(JSON.parse(text))).toBe(true);
    const back = modelTemplateFromAtomTemplate(parseAtomTemplate(text));
    expect(back.alphaFingerprint).toBe(built.alphaFingerprint);
    expect(back.layers).toEqual(built.layers);
    expect(back.probe).toEqual(built.probe);
    expect(back.initialAtoms![2]![0]).toBe(0.25);
    expect(() => modelTemplateFromAtomTemplate(template)).toThrow(/no network section/);
  });

  it('identifies a probe set by the SHA-256 of its float32 values', () => {
    const values = Float32Array.from({ length: 2 * 3 }, (_, i) => i / 2);
    const id = probeSetIdentity(values, [2, 3, 1, 1]);
    expect(id.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(id.shape).toEqual([2, 3, 1, 1]);
    values[5] = 0;
    expect(probeSetIdentity(values, [2, 3, 1, 1]).sha256).not.toBe(id.sha256);
  });

  it('parses compact layer lists and rejects malformed entries', () => {
    expect(parseLayerSpec('a:1:2:3:4')).toEqual([{ name: 'a', cIn: 1, cOut: 2, k: 3, m: 4 }]);
    expect(() => parseLayerSpec('a:1:2:3')).toThrow(/'a:1:2:3' is not name:cIn:cOut:k:m/);
    expect(() => parseLayerSpec('')).toThrow(/empty/);
  });
});
