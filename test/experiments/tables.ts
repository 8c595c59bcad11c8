// Reading back the Markdown tables the experiments write, for structure checks.

export interface MarkdownTable {
  headers: string[];
  rows: string[][];
}

function splitRow(line: string): string[] {
  // Cells are separated by '|' not preceded by a backslash (escaped pipes stay in the cell).
  const inner = line.trim().replace(/^\|/, '').replace(/\|$/, '');
  return inner.split(/(?<!\\)\|/).map((c) => c.trim().replaceAll('\\|', '|'));
}

/** Every table in a Markdown document that follows a heading line equal to `heading`. */
export function tableAfter(markdown: string, heading: string): MarkdownTable {
  const lines = markdown.split('\n');
  const at = lines.findIndex((l) => l.trim() === heading);
  if (at < 0) throw new Error(`no heading '${heading}'`);
  let i = at + 1;
  while (i < lines.length && !lines[i]!.startsWith('|')) {
    if (lines[i]!.startsWith('#')) throw new Error(`no table under '${heading}'`);
    i++;
  }
  const block: string[] = [];
  while (i < lines.length && lines[i]!.startsWith('|')) block.push(lines[i++]!);
  if (block.length < 2 || !/^\|( --- \|)+$/.test(block[1]!))
    throw new Error(`malformed table under '${heading}'`);
  const headers = splitRow(block[0]!);
  const rows = block.slice(2).map(splitRow);
  for (const r of rows) {
    if (r.length !== headers.length)
      throw new Error(`row with ${r.length} cells under '${heading}': ${r.join(' | ')}`);
  }
  return { headers, rows };
}

/** A table's column as numbers ('—' → NaN). */
export function column(t: MarkdownTable, header: string): number[] {
  const i = t.headers.indexOf(header);
  if (i < 0) throw new Error(`no column '${header}' (have ${t.headers.join(', ')})`);
  return t.rows.map((r) => (r[i] === '—' ? Number.NaN : Number(r[i]!.replaceAll(',', ''))));
}

/** "[low, high]" → [low, high]. */
export function interval(text: string): [number, number] {
  const m = /^\[(-?[\d.]+|—), (-?[\d.]+|—)\]$/.exec(text);
  if (!m) throw new Error(`not an interval: ${text}`);
  return [Number(m[1] === '—' ? Number.NaN : m[1]), Number(m[2] === '—' ? Number.NaN : m[2])];
}
