// Reads the SVG files the experiments write with saxes, a conforming XML 1.0 parser that reports
// every well-formedness error (nesting, quoting, duplicate attributes, entities, a single root),
// and returns the element tree so tests can look for the elements a figure should have.
import { SaxesParser } from 'saxes';

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

/** The element tree of a well-formed XML document; throws on the first well-formedness error. */
export function parseXml(source: string): XmlElement {
  const parser = new SaxesParser();
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  let error: Error | undefined;
  parser.on('error', (e) => {
    error ??= e;
  });
  parser.on('opentag', (tag) => {
    const el: XmlElement = {
      name: tag.name,
      attributes: { ...(tag.attributes as Record<string, string>) },
      children: [],
      text: '',
    };
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(el);
    else root ??= el;
    stack.push(el);
  });
  parser.on('text', (text) => {
    const open = stack[stack.length - 1];
    if (open) open.text += text;
  });
  parser.on('closetag', () => {
    stack.pop();
  });
  parser.write(source).close();
  if (error) throw error;
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
