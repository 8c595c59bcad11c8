// `npm run bench [-- name…]`: runs every bench/*.bench.ts (or the named ones), prints each
// table as Markdown and writes them all to bench-results/RESULTS.md (git-ignored).
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface BenchTable {
  title: string;
  columns: string[];
  rows: (string | number)[][];
  notes?: string[];
}

export interface BenchModule {
  /** Runs the benchmark and returns its tables. `log` reports progress on stderr. */
  run(log: (msg: string) => void): Promise<BenchTable[]>;
}

function cell(v: string | number): string {
  if (typeof v === 'string') return v;
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(1) : Math.abs(v) >= 1 ? v.toFixed(3) : v.toPrecision(4);
}

export function markdownTable(t: BenchTable): string {
  const head = `| ${t.columns.join(' | ')} |\n| ${t.columns.map(() => '---').join(' | ')} |`;
  const body = t.rows.map((r) => `| ${r.map(cell).join(' | ')} |`).join('\n');
  const notes = (t.notes ?? []).map((n) => `\n- ${n}`).join('');
  return `### ${t.title}\n\n${head}\n${body}\n${notes}\n`;
}

async function main(): Promise<void> {
  const here = dirname(fileURLToPath(import.meta.url));
  const wanted = process.argv.slice(2);
  const files = readdirSync(here)
    .filter((f) => f.endsWith('.bench.ts'))
    .filter((f) => wanted.length === 0 || wanted.some((w) => f.startsWith(w)))
    .sort();
  if (files.length === 0) {
    process.stderr.write(`no benchmark matches ${wanted.join(', ')}\n`);
    process.exitCode = 2;
    return;
  }
  const header = `# atomlens benchmarks\n\n${new Date().toISOString()} · Node ${process.version} · ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}\n`;
  const sections: string[] = [header];
  for (const file of files) {
    process.stderr.write(`== ${file}\n`);
    const mod = (await import(pathToFileURL(join(here, file)).href)) as BenchModule;
    const tables = await mod.run((msg) => process.stderr.write(`   ${msg}\n`));
    for (const t of tables) {
      const md = markdownTable(t);
      process.stdout.write(`${md}\n`);
      sections.push(md);
    }
  }
  const out = join(here, '..', 'bench-results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'RESULTS.md'), sections.join('\n'));
  process.stderr.write(`tables written to ${join(out, 'RESULTS.md')}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    () => process.exit(process.exitCode ?? 0),
    (err) => {
      process.stderr.write(`${(err as Error).stack}\n`);
      process.exit(1);
    },
  );
}
