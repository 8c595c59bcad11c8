// Template files: the federation's atom template as a self-contained JSON document.
//
// A template describes only what the coordinator and every client must agree on — per atom layer
// its name, c_in, c_out, kernel size k, atom count m, the frozen coefficients α (c_out × c_in × m)
// and the federation's initial atoms (m × k × k), which layers are probed and the probe set's
// identity. How layers are wired (residual connections, normalisation, pooling, heads) stays with
// the client; the optional `network` section only describes the built-in demo CNN for the
// built-in client. The format is documented in docs/template-format.md and, as JSON Schema, in
// schemas/template.schema.json.
//
// Float arrays are base64 of little-endian float32 in C order, so a file round-trips bit for bit
// and α's fingerprint (alphaFingerprint in ./template.ts) can be recomputed and checked on load.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { mulberry32 } from './rng.js';
import {
  alphaFingerprint,
  type ConvLayerSpec,
  generateAlpha,
  type ModelTemplate,
  type ProbeSetSpec,
  type TemplateConfig,
} from './template.js';
import { allFinite, decodeFloat32, encodeFloat32 } from './tensor.js';

const TEMPLATE_FORMAT = 'atomlens-template';
const TEMPLATE_FORMAT_VERSION = 1;

/** One atom-factored layer: W[o,i] = Σ_j α[o,i,j] D[j] with D the (per-task) atoms. */
export interface AtomLayerTemplate {
  /** The layer's name, as the coordinator and reports call it. */
  name: string;
  /** Input channels c_in. */
  cIn: number;
  /** Output channels c_out. */
  cOut: number;
  /** Kernel size k (filters are k × k). */
  k: number;
  /** Atoms per layer m (at most k²). */
  m: number;
  /** Frozen coefficients, [cOut][cIn][m] in C order. */
  alpha: Float32Array;
  /** The federation's starting atoms, [m][k][k] in C order; every client and task starts here. */
  initialAtoms: Float32Array;
}

/** Identity of an operator-supplied probe set: SHA-256 of its float32 LE values in C order. */
export interface ProbeSetIdentity {
  /** Hex SHA-256 of the values as float32 little-endian in C order. */
  sha256: string;
  /** [n, ...input shape]. */
  shape: number[];
  /** Element type (always float32). */
  dtype: 'float32';
}

/** What a template says about probing: which layers, how outputs are pooled, which probe set. */
export interface TemplateProbe {
  /** Atom layers whose outputs are summarised for the sub-network analysis, in network order. */
  layers: string[];
  /** How a layer's output becomes a feature vector: mean over height and width, or flattened. */
  pooling: 'gap' | 'flatten';
  /** An operator-supplied probe set (an .npy of inputs that clients fetch and verify). */
  set?: ProbeSetIdentity;
  /** A probe set the built-in client generates itself (the demo's MNIST digits or noise). */
  builtin?: Pick<ProbeSetSpec, 'source' | 'size' | 'seed'>;
}

/** How the built-in demo CNN wires one atom layer. */
export interface BuiltinLayerWiring {
  /** The atom layer's name. */
  name: string;
  /** Convolution stride. */
  stride: number;
  /** Convolution padding. */
  padding: 'same' | 'valid';
  /** Activation after the convolution. */
  activation: 'relu' | 'linear';
  /** Max-pool window after the activation; 0 or 1 = none. */
  poolAfter: number;
}

/** How the built-in demo client wires the atom layers; opaque to the coordinator. */
export interface BuiltinNetwork {
  /** Input [height, width, channels]. */
  inputShape: [number, number, number];
  /** Per atom layer, in template order. */
  layers: BuiltinLayerWiring[];
  /** Units of the head's hidden dense layer (0 = none). */
  headHidden: number;
  /** How the head reads the last atom layer: flattened, or averaged over height and width. */
  headInput: 'flatten' | 'gap';
}

/** A template file's content: what the coordinator and every member must agree on. */
export interface AtomTemplate {
  /** The federation's id. */
  federationId: string;
  /** Template version (the operator's counter). */
  version: number;
  /** Free text, e.g. where α came from. */
  description?: string;
  /** The atom layers, in network order. */
  layers: AtomLayerTemplate[];
  /** Probed layers, pooling and probe set. */
  probe: TemplateProbe;
  /** Only for the built-in demo CNN: how its layers are wired. */
  network?: BuiltinNetwork;
  /** Hex SHA-256 of α in the canonical layout (alphaFingerprint in ./template.ts). */
  alphaFingerprint: string;
}

const NAME_RE = /^[A-Za-z0-9._/-]{1,64}$/;
const FEDERATION_RE = /^[A-Za-z0-9._-]{1,64}$/;
const HEX64 = /^[0-9a-f]{64}$/;

/** A template (file or object) that is not valid; `problems` lists every finding. */
export class TemplateFormatError extends Error {
  constructor(
    /** What was checked: a file path or a description. */
    readonly source: string,
    /** Each problem found, as a sentence. */
    readonly problems: string[],
  ) {
    super(`${source} is not a valid atomlens template: ${problems.join('; ')}`);
  }
}

/** SHA-256 of a probe set's values as float32 LE in C order (independent of the .npy header). */
export function probeSetIdentity(values: Float32Array, shape: number[]): ProbeSetIdentity {
  const wire = encodeFloat32(values, shape);
  return {
    sha256: createHash('sha256').update(wire.data).digest('hex'),
    shape: [...shape],
    dtype: 'float32',
  };
}

/** The α fingerprint of an atom template's layers. */
function atomTemplateFingerprint(layers: readonly AtomLayerTemplate[]): string {
  return alphaFingerprint(
    layers.map((l) => ({ name: l.name, cIn: l.cIn, cOut: l.cOut, m: l.m })) as ConvLayerSpec[],
    layers.map((l) => l.alpha),
  );
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1;
}

/** Problems with an in-memory template (shapes, names, finiteness, probe and network sections). */
function atomTemplateProblems(t: AtomTemplate): string[] {
  const problems: string[] = [];
  if (!FEDERATION_RE.test(t.federationId)) problems.push(`federationId must match ${FEDERATION_RE}`);
  if (!isPositiveInt(t.version)) problems.push('version must be a positive integer');
  if (t.layers.length === 0) problems.push('layers must not be empty');
  const names = new Set<string>();
  t.layers.forEach((l, i) => {
    const where = `layers[${i}] (${l.name})`;
    if (!NAME_RE.test(l.name)) problems.push(`${where}: name must match ${NAME_RE}`);
    if (names.has(l.name)) problems.push(`${where}: duplicate layer name`);
    names.add(l.name);
    let dimsOk = true;
    for (const key of ['cIn', 'cOut', 'k', 'm'] as const) {
      if (!isPositiveInt(l[key])) {
        problems.push(`${where}: ${key} must be a positive integer`);
        dimsOk = false;
      }
    }
    if (!dimsOk) return;
    if (l.m > l.k * l.k) problems.push(`${where}: m (${l.m}) exceeds k² (${l.k * l.k})`);
    const alphaCount = l.cOut * l.cIn * l.m;
    if (l.alpha.length !== alphaCount) {
      problems.push(`${where}: alpha has ${l.alpha.length} values, expected cOut·cIn·m = ${alphaCount}`);
    } else if (!allFinite(l.alpha)) problems.push(`${where}: alpha has non-finite values`);
    const atomCount = l.m * l.k * l.k;
    if (l.initialAtoms.length !== atomCount) {
      problems.push(
        `${where}: initialAtoms has ${l.initialAtoms.length} values, expected m·k·k = ${atomCount}`,
      );
    } else if (!allFinite(l.initialAtoms)) problems.push(`${where}: initialAtoms has non-finite values`);
  });
  for (const p of t.probe.layers) if (!names.has(p)) problems.push(`probe.layers: unknown layer ${p}`);
  if (t.probe.pooling !== 'gap' && t.probe.pooling !== 'flatten')
    problems.push('probe.pooling must be gap or flatten');
  if (t.probe.set && t.probe.builtin) problems.push('probe: give either set or builtin, not both');
  if (t.probe.set) {
    const s = t.probe.set;
    if (!HEX64.test(s.sha256)) problems.push('probe.set.sha256 must be 64 lowercase hex digits');
    if (!Array.isArray(s.shape) || s.shape.length < 2 || !s.shape.every(isPositiveInt))
      problems.push('probe.set.shape must be [n, ...input shape] of positive integers');
    if (s.dtype !== 'float32') problems.push('probe.set.dtype must be float32');
  }
  if (t.probe.builtin) {
    const b = t.probe.builtin;
    if (b.source !== 'mnist' && b.source !== 'noise')
      problems.push('probe.builtin.source must be mnist or noise');
    if (!Number.isInteger(b.size) || b.size < 2 || b.size > 4096)
      problems.push('probe.builtin.size must be an integer in [2, 4096]');
    if (!Number.isInteger(b.seed) || b.seed < 0) problems.push('probe.builtin.seed must be an integer >= 0');
  }
  if (t.network) problems.push(...networkProblems(t.network, t.layers));
  return problems;
}

function networkProblems(n: BuiltinNetwork, layers: readonly AtomLayerTemplate[]): string[] {
  const problems: string[] = [];
  if (n.inputShape.length !== 3 || !n.inputShape.every(isPositiveInt))
    problems.push('network.inputShape must be three positive integers [height, width, channels]');
  if (n.layers.length !== layers.length) {
    problems.push(
      `network.layers has ${n.layers.length} entries, expected one per atom layer (${layers.length})`,
    );
    return problems;
  }
  let channels = n.inputShape[2];
  n.layers.forEach((w, i) => {
    const l = layers[i]!;
    const where = `network.layers[${i}]`;
    if (w.name !== l.name) problems.push(`${where}: name ${w.name} should be ${l.name} (atom layer order)`);
    if (l.cIn !== channels)
      problems.push(`layers[${i}] (${l.name}): cIn is ${l.cIn} but the network gives ${channels}`);
    channels = l.cOut;
    if (!isPositiveInt(w.stride)) problems.push(`${where}: stride must be a positive integer`);
    if (w.padding !== 'same' && w.padding !== 'valid')
      problems.push(`${where}: padding must be same or valid`);
    if (w.activation !== 'relu' && w.activation !== 'linear')
      problems.push(`${where}: activation must be relu or linear`);
    if (!Number.isInteger(w.poolAfter) || w.poolAfter < 0) problems.push(`${where}: poolAfter must be >= 0`);
  });
  if (!Number.isInteger(n.headHidden) || n.headHidden < 0) problems.push('network.headHidden must be >= 0');
  if (n.headInput !== 'flatten' && n.headInput !== 'gap')
    problems.push('network.headInput must be flatten or gap');
  return problems;
}

/** Builds a template from layers (computing the fingerprint) and validates it. */
export function createAtomTemplate(fields: Omit<AtomTemplate, 'alphaFingerprint'>): AtomTemplate {
  const problems = atomTemplateProblems({ ...fields, alphaFingerprint: '' });
  if (problems.length > 0) throw new TemplateFormatError('the template', problems);
  return { ...fields, alphaFingerprint: atomTemplateFingerprint(fields.layers) };
}

// ---- JSON encoding ----

function floatsToBase64(values: Float32Array): string {
  return encodeFloat32(values, [values.length]).data.toString('base64');
}

function base64ToFloats(text: string): Float32Array | string {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return 'is not base64';
  const bytes = Buffer.from(text, 'base64');
  if (bytes.byteLength % 4 !== 0)
    return `decodes to ${bytes.byteLength} bytes, not a whole number of float32`;
  return decodeFloat32({ shape: [bytes.byteLength / 4], data: bytes });
}

/** The template as its JSON file text (stable key order, two-space indent). */
export function atomTemplateToJson(t: AtomTemplate): string {
  const doc = {
    format: TEMPLATE_FORMAT,
    formatVersion: TEMPLATE_FORMAT_VERSION,
    federationId: t.federationId,
    version: t.version,
    ...(t.description ? { description: t.description } : {}),
    alphaFingerprint: t.alphaFingerprint,
    layers: t.layers.map((l) => ({
      name: l.name,
      cIn: l.cIn,
      cOut: l.cOut,
      k: l.k,
      m: l.m,
      alpha: floatsToBase64(l.alpha),
      initialAtoms: floatsToBase64(l.initialAtoms),
    })),
    probe: {
      layers: [...t.probe.layers],
      pooling: t.probe.pooling,
      ...(t.probe.set ? { set: { ...t.probe.set, shape: [...t.probe.set.shape] } } : {}),
      ...(t.probe.builtin ? { builtin: { ...t.probe.builtin } } : {}),
    },
    ...(t.network ? { network: t.network } : {}),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads the JSON structure into a template, collecting every type problem with its path. */
function decodeDocument(doc: unknown, problems: string[]): AtomTemplate | undefined {
  if (!isObject(doc)) {
    problems.push('the file must hold a JSON object');
    return undefined;
  }
  if (doc.format !== TEMPLATE_FORMAT) problems.push(`format must be "${TEMPLATE_FORMAT}"`);
  if (doc.formatVersion !== TEMPLATE_FORMAT_VERSION)
    problems.push(
      `formatVersion ${String(doc.formatVersion)} is not supported (this version reads ${TEMPLATE_FORMAT_VERSION})`,
    );
  const str = (v: unknown, path: string) => {
    if (typeof v !== 'string') problems.push(`${path} must be a string`);
    return typeof v === 'string' ? v : '';
  };
  const num = (v: unknown, path: string) => {
    if (typeof v !== 'number') problems.push(`${path} must be a number`);
    return typeof v === 'number' ? v : 0;
  };
  if (!Array.isArray(doc.layers)) {
    problems.push('layers must be an array');
    return undefined;
  }
  const layers: AtomLayerTemplate[] = doc.layers.map((raw, i) => {
    const l = isObject(raw) ? raw : {};
    if (!isObject(raw)) problems.push(`layers[${i}] must be an object`);
    const floats = (key: 'alpha' | 'initialAtoms') => {
      const decoded = base64ToFloats(str(l[key], `layers[${i}].${key}`));
      if (typeof decoded === 'string') {
        problems.push(`layers[${i}].${key} ${decoded}`);
        return new Float32Array(0);
      }
      return decoded;
    };
    return {
      name: str(l.name, `layers[${i}].name`),
      cIn: num(l.cIn, `layers[${i}].cIn`),
      cOut: num(l.cOut, `layers[${i}].cOut`),
      k: num(l.k, `layers[${i}].k`),
      m: num(l.m, `layers[${i}].m`),
      alpha: floats('alpha'),
      initialAtoms: floats('initialAtoms'),
    };
  });
  const probe = isObject(doc.probe) ? doc.probe : {};
  if (!isObject(doc.probe)) problems.push('probe must be an object');
  const probeLayers = Array.isArray(probe.layers)
    ? probe.layers.map((v, i) => str(v, `probe.layers[${i}]`))
    : [];
  if (!Array.isArray(probe.layers)) problems.push('probe.layers must be an array of layer names');
  const template: AtomTemplate = {
    federationId: str(doc.federationId, 'federationId'),
    version: num(doc.version, 'version'),
    ...(doc.description !== undefined ? { description: str(doc.description, 'description') } : {}),
    layers,
    probe: {
      layers: probeLayers,
      pooling: probe.pooling as TemplateProbe['pooling'],
      ...(probe.set !== undefined ? { set: probe.set as ProbeSetIdentity } : {}),
      ...(probe.builtin !== undefined ? { builtin: probe.builtin as TemplateProbe['builtin'] } : {}),
    },
    ...(doc.network !== undefined ? { network: doc.network as BuiltinNetwork } : {}),
    alphaFingerprint: str(doc.alphaFingerprint, 'alphaFingerprint'),
  };
  if (template.probe.set && !isObject(template.probe.set)) problems.push('probe.set must be an object');
  if (template.probe.builtin && !isObject(template.probe.builtin))
    problems.push('probe.builtin must be an object');
  if (template.network && (!isObject(template.network) || !Array.isArray(template.network.layers)))
    problems.push('network must be an object with a layers array');
  return template;
}

/**
 * Parses and validates a template file's text; throws TemplateFormatError listing every problem
 * (with the JSON path) or, when the file is well formed, a mismatch between α and its fingerprint.
 */
export function parseAtomTemplate(text: string, source = 'the template'): AtomTemplate {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new TemplateFormatError(source, [`not JSON (${(err as Error).message})`]);
  }
  const problems: string[] = [];
  const template = decodeDocument(doc, problems);
  if (!template || problems.length > 0) throw new TemplateFormatError(source, problems);
  const semantic = atomTemplateProblems(template);
  if (semantic.length > 0) throw new TemplateFormatError(source, semantic);
  const fingerprint = atomTemplateFingerprint(template.layers);
  if (fingerprint !== template.alphaFingerprint) {
    throw new TemplateFormatError(source, [
      `alpha does not match alphaFingerprint (computed ${fingerprint}, file says ${template.alphaFingerprint})`,
    ]);
  }
  return template;
}

/** Reads and validates a template file (α is checked against its fingerprint). */
export function readTemplateFile(path: string): AtomTemplate {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(
      `cannot read template file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  return parseAtomTemplate(text, path);
}

/** Validates a template and writes it as a template file. */
export function writeTemplateFile(path: string, t: AtomTemplate): void {
  const problems = atomTemplateProblems(t);
  if (problems.length > 0) throw new TemplateFormatError('the template to write', problems);
  writeFileSync(path, atomTemplateToJson(t));
}

// ---- the built-in client's ModelTemplate ----

/**
 * The demo's template file, shipped with the package: the demo CNN with α and initial atoms from
 * a network trained on a base task (scripts/pretrain-demo-template.ts regenerates it).
 */
export const DEMO_TEMPLATE_PATH = fileURLToPath(
  new URL('../../templates/demo.template.json', import.meta.url),
);

/** Reads a template file into a ModelTemplate (see modelTemplateFromAtomTemplate). */
export function readModelTemplateFile(path: string, probeSetShape?: number[]): ModelTemplate {
  const t = readTemplateFile(path);
  try {
    return modelTemplateFromAtomTemplate(t, probeSetShape);
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
}

/**
 * The coordinator's and the built-in client's ModelTemplate from a template file. With a
 * `network` section it is the built-in demo CNN (needs a built-in probe set). Without one it is a
 * custom network the clients wire themselves (customNetwork): the probe set must then be the
 * operator's, and `probeSetShape` ([n, height, width, channels], from the .npy the coordinator
 * serves) gives the input shape when the file does not record the set.
 * @internal exported for its tests
 */
export function modelTemplateFromAtomTemplate(t: AtomTemplate, probeSetShape?: number[]): ModelTemplate {
  const network = t.network;
  const base = {
    federationId: t.federationId,
    version: t.version,
    alphaSeed: 0,
    probeLayers: [...t.probe.layers],
    alpha: t.layers.map((l) => l.alpha),
    alphaFingerprint: t.alphaFingerprint,
    initialAtoms: t.layers.map((l) => l.initialAtoms),
  };
  if (!network) {
    const shape = t.probe.set?.shape ?? probeSetShape;
    if (shape?.length !== 4) {
      throw new Error(
        'the template has no network section (a custom network), so it needs an operator probe set of shape [n, height, width, channels]: --probe-set probe.npy',
      );
    }
    return {
      ...base,
      customNetwork: true,
      inputShape: [shape[1]!, shape[2]!, shape[3]!],
      // Placeholders: a custom network's wiring stays with its clients.
      layers: t.layers.map((l) => ({
        name: l.name,
        cIn: l.cIn,
        cOut: l.cOut,
        k: l.k,
        m: l.m,
        stride: 1,
        padding: 'same' as const,
        activation: 'linear' as const,
        poolAfter: 0,
      })),
      headHidden: 0,
      headInput: 'flatten',
      probe: {
        source: 'operator',
        size: shape[0]!,
        seed: 0,
        pooling: t.probe.pooling,
        ...(t.probe.set ? { sha256: t.probe.set.sha256 } : {}),
        shape: [...shape],
      },
    };
  }
  const builtin = t.probe.builtin;
  if (!builtin)
    throw new Error(
      'the template has no built-in probe set (probe.builtin), which the built-in client needs',
    );
  const config: TemplateConfig = {
    ...base,
    inputShape: [...network.inputShape],
    layers: builtinLayers(t.layers, network),
    headHidden: network.headHidden,
    headInput: network.headInput,
    probe: { ...builtin, pooling: t.probe.pooling },
  };
  return {
    ...config,
    alpha: base.alpha,
    alphaFingerprint: base.alphaFingerprint,
    initialAtoms: base.initialAtoms,
  };
}

/**
 * A template file's content for a built-in ModelTemplate, with explicit initial atoms.
 * @internal exported for its tests
 */
export function atomTemplateFromModelTemplate(
  mt: ModelTemplate,
  initialAtoms: Float32Array[],
  description?: string,
): AtomTemplate {
  return createAtomTemplate({
    federationId: mt.federationId,
    version: mt.version,
    ...(description ? { description } : {}),
    layers: atomLayersOf(mt, initialAtoms),
    probe: {
      layers: [...mt.probeLayers],
      pooling: mt.probe.pooling,
      builtin: { source: mt.probe.source, size: mt.probe.size, seed: mt.probe.seed },
    },
    network: builtinNetworkOf(mt),
  });
}

/** A ModelTemplate's atom layers as a template file lists them: dimensions, α and initial atoms. */
export function atomLayersOf(
  mt: Pick<ModelTemplate, 'layers' | 'alpha'>,
  initialAtoms: readonly Float32Array[],
): AtomLayerTemplate[] {
  return mt.layers.map((l, i) => ({
    name: l.name,
    cIn: l.cIn,
    cOut: l.cOut,
    k: l.k,
    m: l.m,
    alpha: mt.alpha[i]!,
    initialAtoms: initialAtoms[i]!,
  }));
}

/** Each template layer's dimensions joined with its wiring from the built-in network section. */
export function builtinLayers(
  layers: readonly { name: string; cIn: number; cOut: number; k: number; m: number }[],
  network: BuiltinNetwork,
) {
  return layers.map((l, i) => ({
    ...network.layers[i]!,
    name: l.name,
    cIn: l.cIn,
    cOut: l.cOut,
    k: l.k,
    m: l.m,
  }));
}

/** The built-in network section (how the demo client wires its layers) of a built-in ModelTemplate. */
export function builtinNetworkOf(
  mt: Pick<ModelTemplate, 'inputShape' | 'headHidden' | 'headInput'> & {
    layers: readonly BuiltinLayerWiring[];
  },
): BuiltinNetwork {
  return {
    inputShape: [...mt.inputShape],
    layers: mt.layers.map((l) => ({
      name: l.name,
      stride: l.stride,
      padding: l.padding,
      activation: l.activation,
      poolAfter: l.poolAfter,
    })),
    headHidden: mt.headHidden,
    headInput: mt.headInput,
  };
}

// ---- templates for training from scratch ----

/** An atom layer's dimensions, as a user training from scratch lists them. */
export interface LayerDims {
  /** The layer's name. */
  name: string;
  /** Input channels c_in. */
  cIn: number;
  /** Output channels c_out. */
  cOut: number;
  /** Kernel size k. */
  k: number;
  /** Atoms m (at most k²). */
  m: number;
}

/** Options of {@link templateFromLayerList}. */
export interface LayerListOptions {
  /** Seed of the random α and initial atoms. */
  seed: number;
  /** The federation's id (default 'federation'). */
  federationId?: string;
  /** Template version (default 1). */
  version?: number;
  /** Free text stored in the file. */
  description?: string;
  /** Layers to probe (default: all). */
  probeLayers?: string[];
  /** How probed outputs are pooled (default 'gap'). */
  pooling?: 'gap' | 'flatten';
}

/**
 * A template for layers listed by their dimensions (no pretrained network): α uniform with
 * variance 2/(c_in·m) as generateAlpha draws it, initial atoms uniform with variance 1/k², so the
 * composed filters start He-initialised (see ./template.ts). Both are written into the file, which
 * is then the federation's single source of truth.
 */
export function templateFromLayerList(layers: LayerDims[], options: LayerListOptions): AtomTemplate {
  const asSpecs = layers as unknown as ConvLayerSpec[];
  const problems = layers.flatMap((l, i) =>
    (['cIn', 'cOut', 'k', 'm'] as const)
      .filter((key) => !isPositiveInt(l[key]))
      .map((key) => `layers[${i}] (${l.name}): ${key} must be a positive integer`),
  );
  if (problems.length > 0) throw new TemplateFormatError('the layer list', problems);
  const alpha = generateAlpha(asSpecs, options.seed);
  const templateLayers = layers.map((l, i) => {
    const rng = mulberry32((options.seed ^ Math.imul(i + 1, 0x85ebca6b) ^ 0x5bd1e995) >>> 0);
    const a = Math.sqrt(3) / l.k;
    const initialAtoms = new Float32Array(Math.max(0, l.m * l.k * l.k));
    for (let j = 0; j < initialAtoms.length; j++) initialAtoms[j] = (rng() * 2 - 1) * a;
    return { name: l.name, cIn: l.cIn, cOut: l.cOut, k: l.k, m: l.m, alpha: alpha[i]!, initialAtoms };
  });
  return createAtomTemplate({
    federationId: options.federationId ?? 'federation',
    version: options.version ?? 1,
    ...(options.description ? { description: options.description } : {}),
    layers: templateLayers,
    probe: { layers: options.probeLayers ?? layers.map((l) => l.name), pooling: options.pooling ?? 'gap' },
  });
}

/**
 * Parses a compact layer list: comma-separated `name:cIn:cOut:k:m` entries, e.g.
 * "conv1:3:16:3:9,conv2:16:32:3:9".
 */
export function parseLayerSpec(text: string): LayerDims[] {
  const entries = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (entries.length === 0) throw new Error('the layer list is empty (expected name:cIn:cOut:k:m,...)');
  return entries.map((entry) => {
    const parts = entry.split(':');
    const numbers = parts.slice(1).map(Number);
    if (parts.length !== 5 || numbers.some((n) => !Number.isInteger(n) || n < 1)) {
      throw new Error(`layer '${entry}' is not name:cIn:cOut:k:m with positive integers`);
    }
    const [cIn, cOut, k, m] = numbers as [number, number, number, number];
    return { name: parts[0]!, cIn, cOut, k, m };
  });
}
