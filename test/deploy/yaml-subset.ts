// A small, strict parser for the subset of YAML that deploy/ is written in, so the tests can check
// the compose file, the Kubernetes manifests and the Prometheus files structurally without a YAML
// dependency. Supported: block mappings and sequences (including the compact "key:\n- item" form
// kustomize emits), plain / single- / double-quoted scalars, literal and folded block scalars with
// chomping indicators, one-line flow collections, comments and `---` document separators.
// Everything else (anchors, aliases, tags, complex keys, multi-line plain scalars, tabs) is
// rejected with the line number, so a file cannot silently mean something else than the tests see.
// Plain scalars are resolved with the YAML 1.2 core schema; plain words that YAML 1.1 readers
// (PyYAML, go-yaml v2) would turn into booleans or sexagesimal numbers are rejected: quote them.

export type YamlValue = null | boolean | number | string | YamlValue[] | { [key: string]: YamlValue };
export type YamlMap = { [key: string]: YamlValue };

export class YamlSubsetError extends Error {
  constructor(message: string, line: number) {
    super(`line ${line}: ${message}`);
  }
}

interface Line {
  /** 1-based line number in the source. */
  number: number;
  indent: number;
  /** Text after the indentation, with trailing whitespace removed. */
  text: string;
}

const YAML11_WORDS = /^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$/;
const SEXAGESIMAL = /^[-+]?\d+(:[0-5]?\d)+(\.\d*)?$/;

/** Parses every document of a multi-document YAML stream (empty documents are dropped). */
export function parseYamlDocuments(source: string): YamlValue[] {
  const raw = source.replace(/\r\n/g, '\n').split('\n');
  const documents: YamlValue[] = [];
  let start = 0;
  for (let i = 0; i <= raw.length; i++) {
    if (i === raw.length || /^---(\s|$)/.test(raw[i]!)) {
      if (i < raw.length && raw[i]!.trim() !== '---' && !/^---\s+#/.test(raw[i]!)) {
        throw new YamlSubsetError('content after --- is not supported', i + 1);
      }
      const doc = new DocumentParser(raw.slice(start, i), start).parse();
      if (doc !== undefined) documents.push(doc);
      start = i + 1;
    }
  }
  return documents;
}

/** Parses a single-document YAML file. */
export function parseYaml(source: string): YamlValue {
  const docs = parseYamlDocuments(source);
  if (docs.length !== 1) throw new Error(`expected one YAML document, found ${docs.length}`);
  return docs[0]!;
}

class DocumentParser {
  private readonly lines: Line[];
  private pos = 0;

  constructor(raw: string[], firstLine: number) {
    this.lines = raw.map((text, i) => {
      const number = firstLine + i + 1;
      const indentMatch = /^[ \t]*/.exec(text)![0];
      if (indentMatch.includes('\t') && text.trim() !== '') {
        throw new YamlSubsetError('tab in indentation', number);
      }
      return { number, indent: indentMatch.length, text: text.slice(indentMatch.length).trimEnd() };
    });
  }

  parse(): YamlValue | undefined {
    this.skipBlank();
    if (this.pos >= this.lines.length) return undefined;
    const first = this.lines[this.pos]!;
    if (first.text.startsWith('%')) throw new YamlSubsetError('directives are not supported', first.number);
    const value = this.parseBlock(first.indent);
    this.skipBlank();
    if (this.pos < this.lines.length) {
      const line = this.lines[this.pos]!;
      throw new YamlSubsetError(`unexpected content at indentation ${line.indent}`, line.number);
    }
    return value;
  }

  private skipBlank(): void {
    while (this.pos < this.lines.length) {
      const text = this.lines[this.pos]!.text;
      if (text === '' || text.startsWith('#')) this.pos++;
      else break;
    }
  }

  private current(): Line | undefined {
    this.skipBlank();
    return this.lines[this.pos];
  }

  private parseBlock(indent: number): YamlValue {
    const line = this.current()!;
    if (isSequenceItem(line.text)) return this.parseSequence(indent);
    if (splitKey(line.text, line.number) !== null) return this.parseMapping(indent);
    // A lone scalar document or value on its own line.
    this.pos++;
    return parseInlineValue(line.text, line.number);
  }

  private parseSequence(indent: number): YamlValue[] {
    const items: YamlValue[] = [];
    for (;;) {
      const line = this.current();
      if (!line || line.indent < indent) break;
      if (line.indent > indent)
        throw new YamlSubsetError('unexpected indentation in a sequence', line.number);
      if (!isSequenceItem(line.text)) break;
      const rest = line.text.slice(1).replace(/^ +/, '');
      const restIndent = line.indent + (line.text.length - rest.length);
      if (rest === '' || rest.startsWith('#')) {
        this.pos++;
        items.push(this.parseNestedOrNull(indent, false));
      } else if (isSequenceItem(rest) || splitKey(rest, line.number) !== null) {
        // "- key: value" / "- - x": the item is a block collection starting on this line. Re-read the
        // line as if its content began at its own column.
        this.lines[this.pos] = { number: line.number, indent: restIndent, text: rest };
        items.push(this.parseBlock(restIndent));
      } else {
        this.pos++;
        items.push(this.parseValueText(rest, line.number, indent));
      }
    }
    return items;
  }

  private parseMapping(indent: number): YamlMap {
    const map: YamlMap = {};
    for (;;) {
      const line = this.current();
      if (!line || line.indent < indent) break;
      if (line.indent > indent) throw new YamlSubsetError('unexpected indentation in a mapping', line.number);
      if (isSequenceItem(line.text)) break;
      const split = splitKey(line.text, line.number);
      if (split === null) throw new YamlSubsetError(`expected "key: value", got "${line.text}"`, line.number);
      const [key, rest] = split;
      if (Object.hasOwn(map, key)) throw new YamlSubsetError(`duplicate key "${key}"`, line.number);
      this.pos++;
      if (rest === '' || rest.startsWith('#')) {
        map[key] = this.parseNestedOrNull(indent, true);
      } else {
        map[key] = this.parseValueText(rest, line.number, indent);
      }
    }
    return map;
  }

  /** The value of "key:" or "-" with nothing after it: a nested block, or null. */
  private parseNestedOrNull(parentIndent: number, allowCompactSequence: boolean): YamlValue {
    const next = this.current();
    if (!next) return null;
    if (next.indent > parentIndent) return this.parseBlock(next.indent);
    if (allowCompactSequence && next.indent === parentIndent && isSequenceItem(next.text)) {
      return this.parseSequence(parentIndent);
    }
    return null;
  }

  /** A value written after "key: " or "- ": a block scalar header or an inline value. */
  private parseValueText(text: string, lineNumber: number, parentIndent: number): YamlValue {
    const header = /^([|>])([-+]?)(\d?)([-+]?)\s*(#.*)?$/.exec(text);
    if (header) {
      if (header[3]) throw new YamlSubsetError('explicit block indentation is not supported', lineNumber);
      const chomp = header[2] || header[4] || '';
      return this.readBlockScalar(header[1] === '|' ? 'literal' : 'folded', chomp, parentIndent, lineNumber);
    }
    return parseInlineValue(this.joinContinuationLines(text, parentIndent), lineNumber);
  }

  /**
   * A plain or quoted scalar may continue on more-indented lines (kustomize wraps long strings
   * this way). Line folding (YAML 1.2 §6.5): a line break becomes a space, each empty line a
   * newline; in double quotes an escaped line break joins the lines without a space.
   */
  private joinContinuationLines(text: string, parentIndent: number): string {
    const first = text[0];
    if (first === '[' || first === '{') return text;
    const quoted = first === '"' || first === "'";
    if (quoted && quotedEnd(text) >= 0) return text;
    if (!quoted && / #/.test(text)) return text;
    let out = text;
    let look = this.pos;
    let blank = 0;
    while (look < this.lines.length) {
      const line = this.lines[look]!;
      if (line.text === '') {
        blank++;
        look++;
        continue;
      }
      if (line.indent <= parentIndent || (!quoted && line.text.startsWith('#'))) break;
      if (first === '"' && /(^|[^\\])(\\\\)*\\$/.test(out)) out = out.slice(0, -1);
      else out += blank > 0 ? '\n'.repeat(blank) : ' ';
      out += line.text;
      blank = 0;
      look++;
      this.pos = look;
      if (quoted && quotedEnd(out) >= 0) break;
      if (!quoted && / #/.test(line.text)) break;
    }
    return out;
  }

  private readBlockScalar(
    style: 'literal' | 'folded',
    chomp: string,
    parentIndent: number,
    headerLine: number,
  ): string {
    // Raw lines (comments included: inside a block scalar they are content).
    const body: string[] = [];
    let contentIndent = -1;
    while (this.pos < this.lines.length) {
      const line = this.lines[this.pos]!;
      if (line.text === '') {
        body.push('');
        this.pos++;
        continue;
      }
      if (line.indent <= parentIndent) break;
      if (contentIndent < 0) contentIndent = line.indent;
      if (line.indent < contentIndent) {
        throw new YamlSubsetError('block scalar line indented less than its first line', line.number);
      }
      body.push(' '.repeat(line.indent - contentIndent) + line.text);
      this.pos++;
    }
    if (contentIndent < 0) throw new YamlSubsetError('empty block scalar', headerLine);
    let trailing = 0;
    while (body.length > 0 && body[body.length - 1] === '') {
      body.pop();
      trailing++;
    }
    let text: string;
    if (style === 'literal') {
      text = body.join('\n');
    } else {
      // Folding (YAML 1.2 §8.1.3): a line break between two non-empty, non-indented lines becomes a
      // space; empty lines stand for line breaks; more-indented lines keep their breaks.
      text = '';
      let emptyRun = 0;
      let seenContent = false;
      let prevMoreIndented = false;
      for (const line of body) {
        if (line === '') {
          emptyRun++;
          continue;
        }
        const moreIndented = line.startsWith(' ');
        if (!seenContent) text += '\n'.repeat(emptyRun);
        else if (emptyRun > 0)
          text += '\n'.repeat(prevMoreIndented || moreIndented ? emptyRun + 1 : emptyRun);
        else text += prevMoreIndented || moreIndented ? '\n' : ' ';
        text += line;
        emptyRun = 0;
        seenContent = true;
        prevMoreIndented = moreIndented;
      }
    }
    if (chomp === '-') return text;
    if (chomp === '+') return text + '\n'.repeat(trailing + 1);
    return text + '\n';
  }
}

function isSequenceItem(text: string): boolean {
  return text === '-' || text.startsWith('- ');
}

/** Splits "key: rest" (key plain or quoted); null when the text is not a mapping entry. */
function splitKey(text: string, lineNumber: number): [string, string] | null {
  if (text.startsWith('? ')) throw new YamlSubsetError('complex keys are not supported', lineNumber);
  if (text.startsWith('"') || text.startsWith("'")) {
    const [key, end] = readQuoted(text, 0, lineNumber);
    const after = text.slice(end);
    const m = /^\s*:(\s+|$)/.exec(after);
    if (!m) return null;
    return [key, after.slice(m[0].length)];
  }
  if (text.startsWith('[') || text.startsWith('{')) return null;
  const m = /^([^#\s][^#]*?)\s*:(\s+|$)/.exec(text);
  if (!m) return null;
  const key = m[1]!;
  if (/^[&*!|>%@`]/.test(key)) throw new YamlSubsetError(`unsupported key "${key}"`, lineNumber);
  return [key, text.slice(m[0].length)];
}

/** Index after the closing quote of the quoted scalar at the start of text, or -1 if unclosed. */
function quotedEnd(text: string): number {
  try {
    return readQuoted(text, 0, 0)[1];
  } catch {
    return -1;
  }
}

/** Reads a quoted scalar starting at `start`; returns its value and the index after the closing quote. */
function readQuoted(text: string, start: number, lineNumber: number): [string, number] {
  const quote = text[start];
  let out = '';
  let i = start + 1;
  while (i < text.length) {
    const c = text[i]!;
    if (quote === "'") {
      if (c === "'") {
        if (text[i + 1] === "'") {
          out += "'";
          i += 2;
          continue;
        }
        return [out, i + 1];
      }
      out += c;
      i++;
    } else {
      if (c === '"') return [out, i + 1];
      if (c === '\\') {
        const e = text[i + 1];
        const simple: Record<string, string> = {
          n: '\n',
          t: '\t',
          '"': '"',
          '\\': '\\',
          '/': '/',
          '0': '\0',
        };
        if (e !== undefined && simple[e] !== undefined) {
          out += simple[e];
          i += 2;
        } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(Number.parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
        } else {
          throw new YamlSubsetError(`unsupported escape "\\${e ?? ''}"`, lineNumber);
        }
        continue;
      }
      out += c;
      i++;
    }
  }
  throw new YamlSubsetError(
    'unterminated quoted string (multi-line quoted scalars are not supported)',
    lineNumber,
  );
}

/** A value on one line: quoted or plain scalar, or a flow collection. */
function parseInlineValue(text: string, lineNumber: number): YamlValue {
  const cursor = { i: 0 };
  const value = parseFlowValue(text, cursor, lineNumber, false);
  const rest = text.slice(cursor.i);
  const comment = rest.trimStart().startsWith('#') && (/^\s/.test(rest) || text[cursor.i - 1] === ' ');
  if (rest.trim() !== '' && !comment) {
    throw new YamlSubsetError(`unexpected "${rest.trim()}" after value`, lineNumber);
  }
  return value;
}

function skipSpaces(text: string, cursor: { i: number }): void {
  while (text[cursor.i] === ' ') cursor.i++;
}

function parseFlowValue(text: string, cursor: { i: number }, lineNumber: number, inFlow: boolean): YamlValue {
  skipSpaces(text, cursor);
  const c = text[cursor.i];
  if (c === '&' || c === '*' || c === '!') {
    throw new YamlSubsetError('anchors, aliases and tags are not supported', lineNumber);
  }
  if (c === '"' || c === "'") {
    const [value, end] = readQuoted(text, cursor.i, lineNumber);
    cursor.i = end;
    return value;
  }
  if (c === '[') {
    cursor.i++;
    const items: YamlValue[] = [];
    skipSpaces(text, cursor);
    if (text[cursor.i] === ']') {
      cursor.i++;
      return items;
    }
    for (;;) {
      items.push(parseFlowValue(text, cursor, lineNumber, true));
      skipSpaces(text, cursor);
      const d = text[cursor.i];
      cursor.i++;
      if (d === ']') return items;
      if (d !== ',') throw new YamlSubsetError('expected "," or "]" in a flow sequence', lineNumber);
    }
  }
  if (c === '{') {
    cursor.i++;
    const map: YamlMap = {};
    skipSpaces(text, cursor);
    if (text[cursor.i] === '}') {
      cursor.i++;
      return map;
    }
    for (;;) {
      const key = parseFlowValue(text, cursor, lineNumber, true);
      skipSpaces(text, cursor);
      if (text[cursor.i] !== ':') throw new YamlSubsetError('expected ":" in a flow mapping', lineNumber);
      cursor.i++;
      map[String(key)] = parseFlowValue(text, cursor, lineNumber, true);
      skipSpaces(text, cursor);
      const d = text[cursor.i];
      cursor.i++;
      if (d === '}') return map;
      if (d !== ',') throw new YamlSubsetError('expected "," or "}" in a flow mapping', lineNumber);
    }
  }
  // Plain scalar: up to " #" (comment), or in flow context up to , ] } or ": ".
  let end = cursor.i;
  while (end < text.length) {
    const ch = text[end]!;
    if (ch === '#' && (end === 0 || text[end - 1] === ' ')) break;
    if (inFlow && (ch === ',' || ch === ']' || ch === '}')) break;
    if (inFlow && ch === ':' && (text[end + 1] === ' ' || text[end + 1] === undefined)) break;
    end++;
  }
  const plain = text.slice(cursor.i, end).trim();
  cursor.i = end;
  return resolvePlain(plain, lineNumber);
}

function resolvePlain(plain: string, lineNumber: number): YamlValue {
  if (plain === '' || plain === '~' || /^(null|Null|NULL)$/.test(plain)) return null;
  if (/^(true|True|TRUE)$/.test(plain)) return true;
  if (/^(false|False|FALSE)$/.test(plain)) return false;
  if (YAML11_WORDS.test(plain)) {
    throw new YamlSubsetError(`"${plain}" is a boolean to YAML 1.1 readers: quote it`, lineNumber);
  }
  if (SEXAGESIMAL.test(plain)) {
    throw new YamlSubsetError(`"${plain}" is a base-60 number to YAML 1.1 readers: quote it`, lineNumber);
  }
  if (/^[-+]?0[0-9]+$/.test(plain)) {
    throw new YamlSubsetError(
      `"${plain}" is octal to YAML 1.1 readers but decimal to YAML 1.2: write it in decimal without the leading zero`,
      lineNumber,
    );
  }
  if (/^[-+]?[0-9]+$/.test(plain)) return Number(plain);
  if (/^0x[0-9a-fA-F]+$/.test(plain)) return Number.parseInt(plain.slice(2), 16);
  if (/^0o[0-7]+$/.test(plain)) return Number.parseInt(plain.slice(2), 8);
  if (/^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/.test(plain)) return Number(plain);
  if (/^[-+]?\.(inf|Inf|INF)$/.test(plain)) return plain.startsWith('-') ? -Infinity : Infinity;
  if (/^\.(nan|NaN|NAN)$/.test(plain)) return Number.NaN;
  if (/^[&*!|>%@`]/.test(plain)) throw new YamlSubsetError(`unsupported plain scalar "${plain}"`, lineNumber);
  return plain;
}
