// Pagination for the list RPCs (page_size, page_token, next_page_token). Pages are cut by key
// (the sort key of the last item returned), not by offset, so items added between two calls
// neither repeat nor go missing. A token is base64url of a small JSON object naming the RPC that
// issued it and that key; clients treat it as opaque.
import { invalid } from '../calls.js';

/** A sort key: the fields an RPC orders its items by, compared left to right. */
export type PageKey = readonly (string | number)[];

/** The types of a key's fields, to check a token before trusting it. */
export type PageKeyShape = readonly ('string' | 'number')[];

export interface PageLimits {
  /** Page size when the request says 0. */
  defaultSize: number;
  /** Larger requests are cut to this. */
  maxSize: number;
}

export interface PageRequest {
  pageSize: number;
  pageToken: string;
}

/** The page size to use: 0 → the default, above the maximum → the maximum, negative → INVALID_ARGUMENT. */
export function pageSize(requested: number, limits: PageLimits): number {
  if (!Number.isInteger(requested) || requested < 0) {
    throw invalid(`page_size must be 0 (server default, ${limits.defaultSize}) or a positive integer`);
  }
  return requested === 0 ? limits.defaultSize : Math.min(requested, limits.maxSize);
}

export function encodePageToken(rpc: string, key: PageKey): string {
  return Buffer.from(JSON.stringify({ rpc, key }), 'utf8').toString('base64url');
}

/**
 * The key a token carries; undefined for the empty token (first page). A token that is not
 * one this RPC issued (garbled, from another RPC, wrong key shape) is INVALID_ARGUMENT.
 */
/** Longest page token accepted (the proto states it); the ones issued are far shorter. */
const PAGE_TOKEN_MAX_CHARS = 512;

export function decodePageToken(rpc: string, token: string, shape: PageKeyShape): PageKey | undefined {
  if (token === '') return undefined;
  const refuse = () =>
    invalid(
      `page_token is not a token ${rpc} issued: pass next_page_token unchanged, or '' for the first page`,
    );
  let parsed: unknown;
  try {
    if (token.length > PAGE_TOKEN_MAX_CHARS || !/^[A-Za-z0-9_-]+$/.test(token)) throw refuse();
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw refuse();
  }
  const body = parsed as { rpc?: unknown; key?: unknown };
  if (typeof parsed !== 'object' || parsed === null || body.rpc !== rpc || !Array.isArray(body.key))
    throw refuse();
  const key = body.key as unknown[];
  if (key.length !== shape.length) throw refuse();
  key.forEach((v, i) => {
    const ok = shape[i] === 'number' ? typeof v === 'number' && Number.isFinite(v) : typeof v === 'string';
    if (!ok) throw refuse();
  });
  return key as PageKey;
}

function compareKeys(a: PageKey, b: PageKey): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x < y) return -1;
    if (x > y) return 1;
  }
  return 0;
}

/**
 * One page of `items`, which must be sorted ascending by `keyOf`: the first `page_size` items
 * after the token's key, and the token for the next page ('' after the last one).
 */
export function pageOf<T>(
  rpc: string,
  items: readonly T[],
  keyOf: (item: T) => PageKey,
  shape: PageKeyShape,
  request: PageRequest,
  limits: PageLimits,
): { items: T[]; nextPageToken: string } {
  const size = pageSize(request.pageSize, limits);
  const after = decodePageToken(rpc, request.pageToken, shape);
  const start = after === undefined ? 0 : items.findIndex((item) => compareKeys(keyOf(item), after) > 0);
  const rest = start < 0 ? [] : items.slice(start);
  const page = rest.slice(0, size);
  const nextPageToken = rest.length > size ? encodePageToken(rpc, keyOf(page[page.length - 1]!)) : '';
  return { items: page, nextPageToken };
}
