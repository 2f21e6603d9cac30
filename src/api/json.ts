import { ContinuumError } from '../core/errors.ts';

/**
 * JSON.parse with a nesting bound checked before parsing (deep nesting would otherwise recurse in the
 * parser) and refusal of keys that poison prototypes when objects are later merged.
 */
export function parseJsonBounded(text: string, maxDepth: number): unknown {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > maxDepth) throw new ContinuumError('bad_request', `JSON nests deeper than ${maxDepth} levels`, { limit: maxDepth });
    } else if (c === 125 || c === 93) depth--;
  }
  let value: unknown;
  try {
    value = JSON.parse(text, (key, v) => {
      if (key === '__proto__' || key === 'constructor' || key === 'prototype') {
        throw new ContinuumError('bad_request', `JSON key "${key}" is not allowed`);
      }
      return v;
    });
  } catch (err) {
    if (err instanceof ContinuumError) throw err;
    throw new ContinuumError('bad_request', `malformed JSON: ${(err as Error).message}`);
  }
  return value;
}
