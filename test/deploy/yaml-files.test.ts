// The deploy YAML is read by several programs (Docker Compose, kubectl/kustomize, Prometheus,
// promtool, Grafana) with different YAML libraries, some of them YAML 1.1. These checks keep every
// file to the part of YAML that all of them read the same way, and check the strict reader the
// deploy tests use (deploy-files.ts) refuses what would make a file ambiguous.

import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ATOMLENS_VERSION } from '../../src/shared/version.js';
import {
  canRun,
  DEPLOY_DIR,
  filesUnder,
  K8S_DIR,
  parseYamlDocuments,
  REPO_ROOT,
  readText,
  repoRelative,
  run,
} from './deploy-files.js';

const hasKubectl = canRun('kubectl', ['kustomize', '--help']);
const files = filesUnder(DEPLOY_DIR, /\.ya?ml$/);

/** Anchors, aliases and explicit tags in a YAML stream (none of them belong in deploy files). */
function fancyNodes(source: string): string[] {
  const found: string[] = [];
  const visit = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return;
    const n = node as {
      anchor?: string;
      tag?: string;
      source?: string;
      items?: unknown[];
      key?: unknown;
      value?: unknown;
    };
    if (n.anchor) found.push(`anchor &${n.anchor}`);
    if (n.tag && !n.tag.startsWith('tag:yaml.org,2002:')) found.push(`tag ${n.tag}`);
    if (n.constructor?.name === 'Alias') found.push(`alias *${n.source}`);
    for (const item of n.items ?? []) visit(item);
    visit(n.key);
    visit(n.value);
  };
  for (const doc of parseAllDocuments(source) as { contents: unknown }[]) visit(doc.contents);
  return found;
}

describe('deploy YAML files', () => {
  it('finds the deploy YAML files', () => {
    expect(files.length).toBeGreaterThanOrEqual(12);
  });

  it.each(files.map((f) => [repoRelative(f), f] as const))(
    '%s reads the same under YAML 1.1 and 1.2 and uses no anchors, aliases or tags',
    (_name, file) => {
      const source = readText(file);
      const documents = parseYamlDocuments(source);
      expect(documents.length).toBeGreaterThan(0);
      // yes/no/on/off, 0440, 22:22 … mean different things to YAML 1.1 readers (go-yaml v2, PyYAML).
      expect(parseYamlDocuments(source, '1.1')).toEqual(documents);
      expect(fancyNodes(source)).toEqual([]);
    },
  );

  it.skipIf(!hasKubectl)('kustomize output reads the same under YAML 1.1 and 1.2', () => {
    for (const dir of ['base', 'monitoring', 'examples']) {
      const r = run('kubectl', ['kustomize', `${K8S_DIR}/${dir}`]);
      expect(r.status, r.stderr).toBe(0);
      const documents = parseYamlDocuments(r.stdout);
      expect(documents.length).toBeGreaterThan(0);
      expect(parseYamlDocuments(r.stdout, '1.1')).toEqual(documents);
    }
  });
});

describe('image tags', () => {
  it('every atomlens image the deploy files name is tagged with the package version', () => {
    const sources = [...filesUnder(DEPLOY_DIR, /\.(ya?ml|md)$/), `${REPO_ROOT}Dockerfile`];
    const tags = sources.flatMap((file) =>
      [...readText(file).matchAll(/\batomlens:(\d[\w.-]*)/g)].map((m) => `${repoRelative(file)}: ${m[1]}`),
    );
    expect(tags.length).toBeGreaterThanOrEqual(4);
    for (const tag of tags) expect(tag).toMatch(new RegExp(`: ${ATOMLENS_VERSION.replaceAll('.', '\\.')}$`));
  });
});

describe('the strict YAML reader of the deploy tests', () => {
  it('reads block and flow collections, block scalars and the core schema types', () => {
    const [doc] = parseYamlDocuments(
      [
        'name: atomlens  # trailing comment',
        'port: 9464',
        'ratio: 0.35',
        'on_call: true',
        'nothing: ~',
        'quoted: "50051"',
        'list:',
        '  - a',
        '  - key: v',
        'compact:',
        '- x',
        'flow: [1, "two", {k: v}]',
        'keep: |',
        '  line 1',
        '  line 2',
        'folded: >-',
        '  one',
        '  two',
      ].join('\n'),
    );
    expect(doc).toEqual({
      name: 'atomlens',
      port: 9464,
      ratio: 0.35,
      on_call: true,
      nothing: null,
      quoted: '50051',
      list: ['a', { key: 'v' }],
      compact: ['x'],
      flow: [1, 'two', { k: 'v' }],
      keep: 'line 1\nline 2\n',
      folded: 'one two',
    });
  });

  it('splits multi-document streams and drops empty documents', () => {
    expect(parseYamlDocuments('---\na: 1\n---\n# only a comment\n---\n- b\n')).toEqual([{ a: 1 }, ['b']]);
  });

  it('tells apart what YAML 1.1 readers would read differently', () => {
    const source = 'a: yes\nmode: 0440\nssh: 22:22\n';
    expect(parseYamlDocuments(source)).toEqual([{ a: 'yes', mode: 440, ssh: '22:22' }]);
    expect(parseYamlDocuments(source, '1.1')).not.toEqual(parseYamlDocuments(source));
  });

  it('flags anchors, aliases and tags', () => {
    expect(fancyNodes('a: &x 1\nb: *x\nc: !custom 2\n')).toEqual(['anchor &x', 'alias *x', 'tag !custom']);
  });

  it.each([
    ['aliases', 'a: &x 1\nb: *x\n'],
    ['duplicate keys', 'a: 1\na: 2\n'],
    ['tabs as indentation', 'a:\n\tb: 1\n'],
    ['bad indentation', 'a:\n    b: 1\n  c: 2\n'],
    ['unterminated quotes', 'a: "open\n'],
  ])('refuses %s', (_what, source) => {
    expect(() => parseYamlDocuments(source)).toThrow();
  });
});
