import { ContinuumError } from '../core/errors.ts';

/**
 * JSON.parse with the checks a control API needs before it: a nesting bound (deep nesting would
 * otherwise recurse in the parser), refusal of duplicate keys (JSON.parse silently keeps the last, so
 * a validator and a later reader could disagree), and refusal of keys that poison prototypes when
 * objects are merged later. One linear scan (strings are skipped with the native indexOf: queue sends
 * carry hundreds of kilobytes of them), then the native parser with no reviver, which would call back
 * into JavaScript for every value.
 */
export function parseJsonBounded(text: string, maxDepth: number): unknown {
  // One entry per open container: the keys seen so far for an object, null for an array.
  const open: Array<Set<string> | null> = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      const start = i;
      i = closingQuote(text, i);
      const keys = open[open.length - 1];
      if (keys) {
        let j = i + 1;
        while (j < text.length && (text.charCodeAt(j) === 32 || text.charCodeAt(j) === 9 || text.charCodeAt(j) === 10 || text.charCodeAt(j) === 13)) j++;
        if (text.charCodeAt(j) === 58 /* : */) {
          const key = decodeKey(text.slice(start, i + 1));
          if (key === '__proto__' || key === 'constructor' || key === 'prototype') throw new ContinuumError('bad_request', `JSON key "${key}" is not allowed`);
          if (keys.has(key)) throw new ContinuumError('bad_request', `JSON object has the key ${JSON.stringify(key.slice(0, 100))} twice`);
          keys.add(key);
        }
      }
    } else if (c === 123 /* { */ || c === 91 /* [ */) {
      open.push(c === 123 ? new Set() : null);
      if (open.length > maxDepth) throw new ContinuumError('bad_request', `JSON nests deeper than ${maxDepth} levels`, { limit: maxDepth });
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      open.pop();
    }
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ContinuumError('bad_request', `malformed JSON: ${(err as Error).message}`);
  }
}

/** The index of the quote that ends the string opening at `open` (text.length when there is none). */
function closingQuote(text: string, open: number): number {
  for (let q = text.indexOf('"', open + 1); q !== -1; q = text.indexOf('"', q + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(q - 1 - backslashes) === 92 /* \ */) backslashes++;
    if (backslashes % 2 === 0) return q;
  }
  return text.length;
}

/** A key token as the parser will read it (escapes resolved), so "a" and "\u0061" count as one key. */
function decodeKey(token: string): string {
  if (!token.includes('\\')) return token.slice(1, -1);
  try {
    return JSON.parse(token) as string;
  } catch {
    return token; // malformed: JSON.parse below reports it
  }
}
