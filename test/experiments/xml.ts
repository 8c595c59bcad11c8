// A strict, minimal XML well-formedness parser for the SVG files the experiments write (no XML
// library is installed): elements must nest and close properly, attributes must be quoted and
// unique, text may only contain the five predefined entities or numeric character references.
// Returns the element tree so tests can look for the elements a figure should have.

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const NAME = /^[A-Za-z_:][-A-Za-z0-9_:.]*/;
const ENTITY = /&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9A-Fa-f]+);/y;

function checkText(text: string, where: number): void {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '<') throw new Error(`unexpected '<' in text near offset ${where + i}`);
    if (text[i] === '&') {
      ENTITY.lastIndex = i;
      if (!ENTITY.test(text))
        throw new Error(`bad entity near offset ${where + i}: ${text.slice(i, i + 12)}`);
    }
  }
}

export function parseXml(source: string): XmlElement {
  let pos = 0;
  const fail = (msg: string): never => {
    throw new Error(`${msg} at offset ${pos}: ${JSON.stringify(source.slice(pos, pos + 40))}`);
  };
  const skipSpace = () => {
    while (pos < source.length && /\s/.test(source[pos]!)) pos++;
  };
  if (source.startsWith('<?xml')) {
    const end = source.indexOf('?>');
    if (end < 0) fail('unterminated XML declaration');
    pos = end + 2;
  }
  skipSpace();
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  while (pos < source.length) {
    if (source.startsWith('<!--', pos)) {
      const end = source.indexOf('-->', pos);
      if (end < 0) fail('unterminated comment');
      pos = end + 3;
      continue;
    }
    if (source.startsWith('</', pos)) {
      pos += 2;
      const m = NAME.exec(source.slice(pos));
      if (!m) fail('bad closing tag');
      const name = m![0];
      pos += name.length;
      skipSpace();
      if (source[pos] !== '>') fail('expected > after closing tag name');
      pos++;
      const open = stack.pop();
      if (!open || open.name !== name) fail(`closing </${name}> does not match <${open?.name ?? 'nothing'}>`);
      continue;
    }
    if (source[pos] === '<') {
      pos++;
      const m = NAME.exec(source.slice(pos));
      if (!m) fail('bad tag name');
      const el: XmlElement = { name: m![0], attributes: {}, children: [], text: '' };
      pos += el.name.length;
      for (;;) {
        const before = pos;
        skipSpace();
        if (source.startsWith('/>', pos)) {
          pos += 2;
          break;
        }
        if (source[pos] === '>') {
          pos++;
          stack.push(el);
          break;
        }
        if (pos === before) fail('expected whitespace before an attribute');
        const a = NAME.exec(source.slice(pos));
        if (!a) fail('bad attribute name');
        const attr = a![0];
        pos += attr.length;
        if (source[pos] !== '=') fail(`attribute ${attr} has no value`);
        pos++;
        const quote = source[pos];
        if (quote !== '"' && quote !== "'") fail(`attribute ${attr} value is not quoted`);
        const end = source.indexOf(quote!, pos + 1);
        if (end < 0) fail('unterminated attribute value');
        const value = source.slice(pos + 1, end);
        checkText(value, pos + 1);
        if (attr in el.attributes) fail(`duplicate attribute ${attr}`);
        el.attributes[attr] = value;
        pos = end + 1;
      }
      const parent =
        stack.length > 0 && stack[stack.length - 1] !== el
          ? stack[stack.length - 1]
          : stack[stack.length - 2];
      if (parent) parent.children.push(el);
      else if (root) fail('more than one root element');
      else root = el;
      continue;
    }
    const next = source.indexOf('<', pos);
    const text = source.slice(pos, next < 0 ? source.length : next);
    if (stack.length === 0) {
      if (text.trim() !== '') fail('text outside the root element');
    } else {
      checkText(text, pos);
      stack[stack.length - 1]!.text += text;
    }
    pos = next < 0 ? source.length : next;
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack[stack.length - 1]!.name}>`);
  if (!root) throw new Error('no root element');
  return root;
}

/** Every element named `name` in the tree, depth first. */
export function findAll(el: XmlElement, name: string): XmlElement[] {
  const out: XmlElement[] = [];
  const walk = (e: XmlElement) => {
    if (e.name === name) out.push(e);
    for (const c of e.children) walk(c);
  };
  walk(el);
  return out;
}
