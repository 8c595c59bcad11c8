// The small YAML reader the deploy tests rely on: its behaviour on the constructs deploy/ uses,
// its refusals, and (where python3 with PyYAML exists) agreement with PyYAML on every YAML file in
// deploy/ and on kustomize's rendering of it.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  canRun,
  DEPLOY_DIR,
  filesUnder,
  K8S_DIR,
  readText,
  repoRelative,
  run,
  warnMissing,
} from './deploy-files.js';
import { parseYaml, parseYamlDocuments, type YamlValue } from './yaml-subset.js';

describe('yaml-subset', () => {
  it('reads block mappings, sequences (indented and compact) and scalar types', () => {
    const doc = parseYaml(
      [
        '# comment',
        'name: atomlens  # trailing comment',
        'port: 9464',
        'ratio: 0.35',
        'on_call: true',
        'nothing: ~',
        'empty:',
        'quoted: "50051"',
        "single: 'it''s'",
        'escaped: "a\\tb\\u00e9"',
        'list:',
        '  - a',
        '  - key: v',
        '    other: 2',
        'compact:',
        '- x',
        '- - nested',
        'flow: [1, "two", {k: v}]',
        'url: http://host:9090/path',
        'expr: up{job="x"} == 0',
      ].join('\n'),
    );
    expect(doc).toEqual({
      name: 'atomlens',
      port: 9464,
      ratio: 0.35,
      on_call: true,
      nothing: null,
      empty: null,
      quoted: '50051',
      single: "it's",
      escaped: 'a\tbé',
      list: ['a', { key: 'v', other: 2 }],
      compact: ['x', ['nested']],
      flow: [1, 'two', { k: 'v' }],
      url: 'http://host:9090/path',
      expr: 'up{job="x"} == 0',
    });
  });

  it('reads literal and folded block scalars with their chomping', () => {
    const doc = parseYaml(
      [
        'keep: |',
        '  line 1',
        '    # indented, not a comment',
        '',
        '  line 3',
        'strip: |-',
        '  a',
        '  b',
        'folded: >-',
        '  one',
        '  two',
        '',
        '  three',
        'after: x',
      ].join('\n'),
    );
    expect(doc).toEqual({
      keep: 'line 1\n  # indented, not a comment\n\nline 3\n',
      strip: 'a\nb',
      folded: 'one two\nthree',
      after: 'x',
    });
  });

  it('folds multi-line plain and quoted scalars as kustomize writes them', () => {
    const doc = parseYaml(
      [
        'a: first part',
        '  second part',
        "b: 'quoted first",
        "  quoted second'",
        'c: "escaped \\',
        '  join"',
        'd: x',
      ].join('\n'),
    );
    expect(doc).toEqual({
      a: 'first part second part',
      b: 'quoted first quoted second',
      c: 'escaped join',
      d: 'x',
    });
  });

  it('splits multi-document streams and drops empty documents', () => {
    expect(parseYamlDocuments('---\na: 1\n---\n# only a comment\n---\n- b\n')).toEqual([{ a: 1 }, ['b']]);
  });

  it.each([
    ['anchors', 'a: &x 1\nb: *x\n', /anchors, aliases and tags/],
    ['tags', 'a: !!str 1\n', /anchors, aliases and tags/],
    ['YAML 1.1 booleans', 'a: yes\n', /quote it/],
    ['base-60 numbers', 'ssh: 22:22\n', /base-60/],
    ['leading-zero octal', 'mode: 0440\n', /octal/],
    ['duplicate keys', 'a: 1\na: 2\n', /duplicate key "a"/],
    ['tabs', 'a:\n\tb: 1\n', /tab/],
    ['bad indentation', 'a:\n    b: 1\n  c: 2\n', /line 3/],
    ['unterminated quotes', 'a: "open\n', /unterminated/],
  ])('rejects %s with the line number', (_what, source, message) => {
    expect(() => parseYamlDocuments(source)).toThrow(message);
  });
});

const hasPyYaml = spawnSync('python3', ['-c', 'import yaml'], { stdio: 'ignore' }).status === 0;
if (!hasPyYaml)
  warnMissing(
    'python3 with PyYAML',
    'the PyYAML cross-check of the YAML reader',
    'apt-get install python3-yaml',
  );
const hasKubectl = canRun('kubectl', ['kustomize', '--help']);

/** PyYAML's reading of several YAML streams (all documents, empty ones dropped as we do), as JSON. */
function pyYamlDocuments(sources: string[]): YamlValue[][] {
  const script =
    'import sys, json, yaml\n' +
    'sources = json.loads(sys.stdin.read())\n' +
    'out = [[d for d in yaml.safe_load_all(s) if d is not None] for s in sources]\n' +
    'print(json.dumps(out, default=str))\n';
  const r = spawnSync('python3', ['-c', script], { input: JSON.stringify(sources), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`PyYAML failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as YamlValue[][];
}

describe.skipIf(!hasPyYaml)('yaml-subset agrees with PyYAML', () => {
  const files = filesUnder(DEPLOY_DIR, /\.ya?ml$/);
  const sources = files.map(readText);
  const expected = hasPyYaml ? pyYamlDocuments(sources) : [];

  it('finds the deploy YAML files', () => {
    expect(files.length).toBeGreaterThanOrEqual(12);
  });

  it.each(files.map((f, i) => [repoRelative(f), i] as const))('%s', (_name, i) => {
    expect(parseYamlDocuments(sources[i]!)).toEqual(expected[i]);
  });

  it.skipIf(!hasKubectl)('on kustomize output (wrapped long strings, compact sequences)', () => {
    const rendered = ['base', 'monitoring', 'examples'].map((dir) => {
      const r = run('kubectl', ['kustomize', `${K8S_DIR}/${dir}`]);
      expect(r.status, r.stderr).toBe(0);
      return r.stdout;
    });
    const theirs = pyYamlDocuments(rendered);
    rendered.forEach((text, i) => {
      expect(parseYamlDocuments(text)).toEqual(theirs[i]);
    });
  });
});
