/**
 * Test helper: evaluate a CommonJS bundle the way the isolate runtime does — wrapped as
 * (function (module, exports, require) {…}) in a fresh V8 context that has the Web-standard globals of the
 * isolate prelude but no Node globals (no Buffer, process, require, setImmediate). Tests only; never for
 * untrusted code (node:vm is not a security boundary).
 */
import * as vm from 'node:vm';

const WEB_GLOBALS = [
  'URL', 'URLSearchParams', 'TextEncoder', 'TextDecoder', 'Request', 'Response', 'Headers', 'FormData', 'Blob', 'File',
  'ReadableStream', 'WritableStream', 'TransformStream', 'AbortController', 'AbortSignal', 'Event', 'EventTarget',
  'DOMException', 'atob', 'btoa', 'structuredClone', 'queueMicrotask', 'setTimeout', 'clearTimeout', 'setInterval',
  'clearInterval', 'crypto', 'performance', 'console',
] as const;

export function loadBundle(code: string): Record<string, unknown> {
  const sandbox: Record<string, unknown> = {};
  for (const name of WEB_GLOBALS) sandbox[name] = (globalThis as Record<string, unknown>)[name];
  const context = vm.createContext(sandbox);
  const factory = vm.runInContext(`(function (module, exports, require) {${code}\n})`, context) as (m: unknown, e: unknown, r: unknown) => void;
  const module = { exports: {} as Record<string, unknown> };
  const require = (id: string): never => {
    throw new Error(`require(${JSON.stringify(id)}) is not available`);
  };
  factory(module, module.exports, require);
  return module.exports;
}
