// `atomlens template create|show`: write a federation template from a trained TensorFlow.js
// Layers model (decomposing its Conv2D kernels into α and atoms) or from a plain layer list, and
// inspect a template file.
import { readFileSync } from 'node:fs';
import { readNpy } from '../../shared/npy.js';
import {
  type AtomTemplate,
  type LayerDims,
  parseLayerSpec,
  probeSetIdentity,
  readTemplateFile,
  TemplateFormatError,
  templateFromLayerList,
  writeTemplateFile,
} from '../../shared/template-file.js';
import { CliError, type CommandSpec, choiceFlag, EXIT, intFlag, type Parsed, UsageError } from '../args.js';

export const spec: CommandSpec = {
  name: 'template',
  summary: 'Create a federation template (from a trained model or a layer list), or show one',
  usage:
    'atomlens template create (--model model.json | --layers-spec SPEC | --layers-file FILE) --out FILE [options]\n       atomlens template show FILE',
  positionals: [1, 2],
  options: {
    model: {
      type: 'string',
      value: 'model.json',
      description:
        'A trained TensorFlow.js Layers model (model.json with its weight files beside it) to decompose',
    },
    m: {
      type: 'string',
      value: 'N',
      description: 'Atoms per layer, at most k² (with --model: default k², an exact decomposition)',
    },
    layers: {
      type: 'string',
      value: 'A,B',
      description: 'With --model: the Conv2D layers to decompose (default: all of them)',
    },
    'layers-spec': {
      type: 'string',
      value: 'SPEC',
      description:
        'Layers to train from scratch, as name:cIn:cOut:k:m,... (e.g. conv1:3:16:3:9,conv2:16:32:3:9)',
    },
    'layers-file': {
      type: 'string',
      value: 'FILE',
      description: 'Layers to train from scratch, as JSON: {"layers":[{"name","cIn","cOut","k","m"}]}',
    },
    seed: {
      type: 'string',
      value: 'N',
      default: '1',
      description: 'With a layer list: seed of the random α and initial atoms',
    },
    out: { type: 'string', value: 'FILE', description: 'Template file to write (JSON)' },
    'save-model': {
      type: 'string',
      value: 'DIR',
      description: 'With --model: also write the atom-factored model (model.json + weights.bin) to DIR',
    },
    federation: { type: 'string', value: 'ID', default: 'federation', description: 'Federation id' },
    'probe-layers': {
      type: 'string',
      value: 'A,B',
      description: 'Layers the sub-network analysis probes (default: every atom layer)',
    },
    pooling: {
      type: 'string',
      value: 'HOW',
      default: 'gap',
      description: 'How probed activations become features: gap (mean over height and width) or flatten',
    },
    'probe-set': {
      type: 'string',
      value: 'probe.npy',
      description: 'Record this probe set (float32, n × input shape) by its SHA-256 in the template',
    },
    description: { type: 'string', value: 'TEXT', description: 'Free-text description stored in the file' },
    json: { type: 'boolean', description: 'Print one JSON object instead of text' },
  },
  details: `With --model each chosen Conv2D kernel W (c_out × c_in × k × k) is factorised as
W[o,i] ≈ Σ_j α[o,i,j] D[j] by the truncated SVD of the (c_out·c_in) × k² matrix (optimal for m
atoms; exact when m = k²); the template holds α and, as the federation's initial atoms, D. Each
layer's relative reconstruction error ‖W − αD‖/‖W‖ is printed. Supported: ordinary Conv2D layers
with square kernels, equal strides, dilation 1, channels last; batch norm, residual additions and
every other layer stay as they are in the model (use --save-model to get the atom-factored copy).

Exit codes: 0 ok, 2 bad flags, 4 unreadable model, layer list, probe set or template file.

Examples:
  atomlens template create --model pretrained/model.json --m 9 --out my.template.json
  atomlens template create --layers-spec conv1:3:16:3:9,conv2:16:32:3:9 --out scratch.template.json
  atomlens template show my.template.json`,
};

function list(raw: unknown): string[] | undefined {
  if (typeof raw !== 'string') return undefined;
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return items.length > 0 ? items : undefined;
}

function readLayersFile(path: string): LayerDims[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new CliError(`cannot read --layers-file ${path}: ${(err as Error).message}`, EXIT.badInput);
  }
  const layers = (doc as { layers?: unknown })?.layers;
  if (!Array.isArray(layers)) {
    throw new CliError(
      `--layers-file ${path} must hold {"layers": [{"name","cIn","cOut","k","m"}, ...]}`,
      EXIT.badInput,
    );
  }
  return layers.map((l, i) => {
    const o = (l ?? {}) as Record<string, unknown>;
    if (typeof o.name !== 'string')
      throw new CliError(`--layers-file ${path}: layers[${i}].name must be a string`, EXIT.badInput);
    return { name: o.name, cIn: Number(o.cIn), cOut: Number(o.cOut), k: Number(o.k), m: Number(o.m) };
  });
}

function probeSetFromFile(path: string): NonNullable<AtomTemplate['probe']['set']> {
  let npy: ReturnType<typeof readNpy>;
  try {
    npy = readNpy(readFileSync(path));
  } catch (err) {
    throw new CliError(`cannot read --probe-set ${path}: ${(err as Error).message}`, EXIT.badInput);
  }
  if (npy.dtype !== 'float32') {
    throw new CliError(
      `--probe-set ${path} holds ${npy.dtype}; save it as float32 (numpy: x.astype('float32'))`,
      EXIT.badInput,
    );
  }
  if (npy.shape.length < 2)
    throw new CliError(
      `--probe-set ${path} must be n × input shape, got [${npy.shape.join(', ')}]`,
      EXIT.badInput,
    );
  return probeSetIdentity(Float32Array.from(npy.data), npy.shape);
}

interface LayerReport {
  name: string;
  cIn: number;
  cOut: number;
  k: number;
  m: number;
  relativeError?: number;
}

async function fromModel(
  parsed: Parsed,
  common: CommonFields,
): Promise<{ template: AtomTemplate; layers: LayerReport[] }> {
  const v = parsed.values;
  const { initBackend } = await import('../../client/backend.js');
  const { createLogger } = await import('../../shared/log.js');
  await initBackend('auto', createLogger('backend', 'silent'));
  const { loadLayersModelFile, fileSaveHandler } = await import('../../client/model-files.js');
  const { decomposeModel, DecompositionError } = await import('../../client/decompose.js');
  let model: Awaited<ReturnType<typeof loadLayersModelFile>>;
  try {
    model = await loadLayersModelFile(String(v.model));
  } catch (err) {
    throw new CliError(`--model: ${(err as Error).message}`, EXIT.badInput);
  }
  const m = v.m === undefined ? undefined : intFlag(v, 'm', 1, 10_000);
  try {
    const result = await decomposeModel(model, {
      ...(m !== undefined ? { m } : {}),
      ...(list(v.layers) ? { layers: list(v.layers)! } : {}),
      ...common,
    });
    if (typeof v['save-model'] === 'string') await result.atomModel.save(fileSaveHandler(v['save-model']));
    result.atomModel.dispose();
    return { template: result.template, layers: result.layers };
  } catch (err) {
    if (err instanceof DecompositionError)
      throw new CliError(`--model ${String(v.model)}: ${err.message}`, EXIT.badInput);
    throw err;
  } finally {
    model.dispose();
  }
}

interface CommonFields {
  federationId: string;
  description?: string;
  probeLayers?: string[];
  pooling: 'gap' | 'flatten';
}

async function create(parsed: Parsed): Promise<number> {
  const v = parsed.values;
  const sources = ['model', 'layers-spec', 'layers-file'].filter((k) => typeof v[k] === 'string');
  if (sources.length !== 1) {
    throw new UsageError('give exactly one of --model, --layers-spec or --layers-file');
  }
  if (typeof v.out !== 'string')
    throw new UsageError('--out FILE is required (where the template is written)');
  if (sources[0] !== 'model') {
    for (const flag of ['m', 'layers', 'save-model']) {
      if (v[flag] !== undefined)
        throw new UsageError(`--${flag} applies to --model only (a layer list gives m per layer)`);
    }
  }
  const common: CommonFields = {
    federationId: String(v.federation),
    ...(typeof v.description === 'string' ? { description: v.description } : {}),
    ...(list(v['probe-layers']) ? { probeLayers: list(v['probe-layers'])! } : {}),
    pooling: choiceFlag(v, 'pooling', ['gap', 'flatten'] as const),
  };
  let template: AtomTemplate;
  let layers: LayerReport[];
  try {
    if (sources[0] === 'model') {
      ({ template, layers } = await fromModel(parsed, common));
    } else {
      let dims: LayerDims[];
      try {
        dims =
          sources[0] === 'layers-spec'
            ? parseLayerSpec(String(v['layers-spec']))
            : readLayersFile(String(v['layers-file']));
      } catch (err) {
        if (err instanceof CliError) throw err;
        throw new UsageError(`--layers-spec: ${(err as Error).message}`);
      }
      template = templateFromLayerList(dims, { seed: intFlag(v, 'seed', 0, 2 ** 32 - 1), ...common });
      layers = dims;
    }
  } catch (err) {
    if (err instanceof TemplateFormatError) throw new CliError(err.message, EXIT.badInput);
    throw err;
  }
  if (typeof v['probe-set'] === 'string') {
    template = { ...template, probe: { ...template.probe, set: probeSetFromFile(v['probe-set']) } };
  }
  writeTemplateFile(v.out, template);
  if (v.json) {
    process.stdout.write(
      `${JSON.stringify({ out: v.out, alphaFingerprint: template.alphaFingerprint, layers, probe: template.probe })}\n`,
    );
  } else {
    process.stdout.write(renderLayers(layers));
    process.stdout.write(`wrote ${v.out} (α fingerprint ${template.alphaFingerprint})\n`);
  }
  return EXIT.ok;
}

function renderLayers(layers: LayerReport[]): string {
  const width = Math.max(5, ...layers.map((l) => l.name.length)) + 2;
  const rows = layers.map((l) => {
    const err =
      l.relativeError === undefined ? 'from scratch' : `relative error ${l.relativeError.toExponential(2)}`;
    return `  ${l.name.padEnd(width)}${`${l.cIn}→${l.cOut}`.padEnd(10)}k=${l.k} m=${String(l.m).padEnd(4)}${err}\n`;
  });
  return `layer${' '.repeat(width - 3)}channels  atoms\n${rows.join('')}`;
}

function show(path: string, json: boolean): number {
  let t: AtomTemplate;
  try {
    t = readTemplateFile(path);
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.badInput);
  }
  if (json) {
    const layers = t.layers.map(({ name, cIn, cOut, k, m }) => ({ name, cIn, cOut, k, m }));
    process.stdout.write(
      `${JSON.stringify({ federationId: t.federationId, version: t.version, alphaFingerprint: t.alphaFingerprint, layers, probe: t.probe })}\n`,
    );
    return EXIT.ok;
  }
  const probe = t.probe.set
    ? `probe set sha256 ${t.probe.set.sha256} shape [${t.probe.set.shape.join(', ')}]`
    : t.probe.builtin
      ? `built-in probe set: ${t.probe.builtin.size} ${t.probe.builtin.source} inputs (seed ${t.probe.builtin.seed})`
      : 'no probe set recorded';
  process.stdout.write(
    `${path}: federation ${t.federationId} v${t.version}, α fingerprint ${t.alphaFingerprint}\n${t.description ? `${t.description}\n` : ''}${renderLayers(t.layers)}probed layers: ${t.probe.layers.join(', ')} (${t.probe.pooling})\n${probe}\n`,
  );
  return EXIT.ok;
}

export async function run(parsed: Parsed): Promise<number> {
  const [verb, file] = parsed.positionals;
  if (verb === 'create') {
    if (file !== undefined)
      throw new UsageError(`'template create' takes no file argument (use --out ${file})`);
    return create(parsed);
  }
  if (verb === 'show') {
    if (file === undefined) throw new UsageError('usage: atomlens template show FILE');
    return show(file, Boolean(parsed.values.json));
  }
  throw new UsageError(`unknown template command '${verb}' (create or show)`);
}
