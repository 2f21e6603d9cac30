/** Function names from paths: `./src/Hello World.ts` → `hello-world`, fitted to the core name grammar. */
import path from 'node:path';
import { isValidName } from '../core/names.ts';
import { userError } from './errors.ts';

const GENERIC_BASENAMES = new Set(['index', 'main', 'handler', 'function', 'mod', 'worker', 'src', 'dist']);
const EXTENSIONS = /\.(?:tar\.gz|tgz|zip|mjs|cjs|mts|cts|js|ts|yaml|yml)$/i;

/** Lower-case, non-name characters → '-', no leading digit or dash, at most 63 characters; '' if nothing is left. */
export function sanitizeName(raw: string): string {
  let s = raw
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[^a-z]+/, '');
  s = s.slice(0, 63).replace(/-+$/, '');
  return isValidName(s) ? s : '';
}

/**
 * Default name for a deploy PATH: the file's basename without extension, or the directory's name. Generic
 * basenames (`index.ts`, `handler.js`) take the name of the directory that holds them.
 */
export function deriveName(target: string): string {
  const abs = path.resolve(target);
  let base = path.basename(abs).replace(EXTENSIONS, '');
  if (GENERIC_BASENAMES.has(base.toLowerCase())) {
    const parent = path.basename(path.dirname(abs));
    const parentName = sanitizeName(parent);
    if (parentName && !GENERIC_BASENAMES.has(parentName)) base = parent;
    else {
      const grand = sanitizeName(path.basename(path.dirname(path.dirname(abs))));
      if (parentName && grand) base = grand;
    }
  }
  const name = sanitizeName(base);
  if (!name) throw userError(`cannot derive a function name from ${JSON.stringify(target)}: pass --name <name> ([a-z][a-z0-9-]{0,62})`);
  return name;
}
