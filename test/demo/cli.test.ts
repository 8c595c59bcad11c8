// The `atomlens` command as one tool: every subcommand has --help that documents each of its
// flags, a bad flag is a usage error (exit 2) that points at --help, and operator tools pointed at
// no coordinator exit 3 with a message saying what to check. Runs main() in-process.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';

const COMMANDS = ['coordinator', 'client', 'demo', 'template', 'report', 'status', 'gw', 'experiment'];

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out.push(String(chunk));
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    err.push(String(chunk));
    return true;
  });
  return { out: () => out.join(''), err: () => err.join('') };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('atomlens', () => {
  it('lists every command in its top-level help; an unknown command is a usage error', async () => {
    let io = capture();
    expect(await main(['--help'])).toBe(0);
    for (const c of COMMANDS) expect(io.out()).toMatch(new RegExp(`^  ${c}\\s+\\S`, 'm'));
    vi.restoreAllMocks();
    io = capture();
    expect(await main(['frobnicate'])).toBe(2);
    expect(io.err()).toContain("unknown command 'frobnicate'");
  });

  it.each(COMMANDS)(
    '%s: --help documents every flag; an unknown flag exits 2 and points at --help',
    async (name) => {
      const { spec } = (await import(`../../src/cli/commands/${name}.ts`)) as {
        spec: { options: Record<string, { type: string }> };
      };
      let io = capture();
      expect(await main([name, '--help'])).toBe(0);
      const help = io.out();
      expect(help).toContain(`Usage: atomlens ${name}`);
      for (const flag of Object.keys(spec.options)) expect(help).toContain(`--${flag}`);
      vi.restoreAllMocks();
      io = capture();
      expect(await main([name, '--no-such-flag'])).toBe(2);
      expect(io.err()).toContain('--no-such-flag');
      expect(io.err()).toContain(`atomlens ${name} --help`);
    },
  );

  it.each([
    ['status', ['--coordinator', '127.0.0.1:1', '--timeout', '1000']],
    ['report', ['--coordinator', '127.0.0.1:1', '--timeout', '1000', '--list']],
  ])('%s against no coordinator exits 3 and says what to check', async (name, args) => {
    const io = capture();
    expect(await main([name, ...args])).toBe(3);
    expect(io.err()).toMatch(/cannot reach the coordinator at 127\.0\.0\.1:1 .*is it running/);
  });
});
