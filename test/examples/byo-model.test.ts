// The worked example (examples/byo-model, `npm run example`) end to end in its --quick mode: the
// same processes and steps on tiny data — a ResNet-style model trained as plain tf.js, decomposed
// by `atomlens template create`, a coordinator with that template and an .npy probe set, four SDK
// members with their own training loop, an escalation on the member that runs away, and the
// reports. Runs from the TypeScript sources: `atomlens` resolves to src/index.ts (tsconfig paths)
// and the CLI is started through tsx (ATOMLENS_CLI), so no build is needed.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CONV_LAYERS } from '../../examples/byo-model/model.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tsx = import.meta.resolve('tsx');

describe('examples/byo-model', () => {
  const work = mkdtempSync(join(tmpdir(), 'atomlens-example-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('runs end to end: template from the user’s model, members, an escalation, reports naming its layers', async () => {
    const child = spawn(
      process.execPath,
      ['--import', tsx, join(root, 'examples', 'byo-model', 'run.ts'), '--quick', '--work', work],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ATOMLENS_CLI: `--import ${tsx} ${join(root, 'src', 'cli', 'main.ts')}` },
      },
    );
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code, out).toBe(0);

    // template create decomposed the six convolutions exactly (m = k² = 9).
    for (const layer of CONV_LAYERS) {
      const line = new RegExp(`\\[template\\]\\s+${layer}\\s.*relative error (\\S+)`).exec(out);
      expect(line, `no reconstruction error printed for ${layer}`).not.toBeNull();
      expect(Number(line![1])).toBeLessThanOrEqual(1e-6);
    }
    // Every member trained its rounds through the SDK.
    for (const member of ['site-a', 'site-b', 'site-c', 'site-d']) {
      expect(out).toContain(`[${member}] round 2/2:`);
    }
    // The coordinator escalated on its own, on the runaway member.
    const escalation = /escalation \(divergence\): report (\S+)/.exec(out);
    expect(escalation, out).not.toBeNull();
    expect(out).toMatch(/trigger divergence: site-d\/digits-5-9 diverges from its task/);
    expect(existsSync(join(work, 'reports', `${escalation![1]}.html`))).toBe(true);
    // The final analysis had every member's probe answers and names the user's layers.
    const final = out.slice(out.indexOf('analysis of every model at the end'));
    expect(final).toMatch(/models: 4, with probe data: 4/);
    const html = readFileSync(join(work, 'reports', 'final.html'), 'utf8');
    for (const layer of CONV_LAYERS) {
      expect(final).toContain(layer);
      expect(html).toContain(layer);
    }
  }, 300_000);
});
