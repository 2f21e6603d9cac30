// Node's `url`: the legacy parser from npm `url`, plus the WHATWG classes the runtime provides as globals.
import legacy from 'url/';
export const parse = legacy.parse;
export const resolve = legacy.resolve;
export const resolveObject = legacy.resolveObject;
export const format = (u, ...rest) => (u instanceof globalThis.URL ? u.href : legacy.format(u, ...rest));
export const Url = legacy.Url;
export const URL = globalThis.URL;
export const URLSearchParams = globalThis.URLSearchParams;
export const domainToASCII = (d) => { try { return new globalThis.URL(`http://${d}`).hostname; } catch { return ''; } };
export const domainToUnicode = (d) => d;
export function fileURLToPath(u) {
  const url = typeof u === 'string' ? new globalThis.URL(u) : u;
  if (url.protocol !== 'file:') throw new TypeError('The URL must be of scheme file');
  return decodeURIComponent(url.pathname);
}
export const pathToFileURL = (p) => new globalThis.URL(`file://${encodeURI(p)}`);
export default { parse, resolve, resolveObject, format, Url, URL, URLSearchParams, domainToASCII, domainToUnicode, fileURLToPath, pathToFileURL };
