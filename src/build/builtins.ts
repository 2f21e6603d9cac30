/**
 * Node built-ins on the isolate tier. Three classes:
 * - shimmed from npm (pure JS, the browserify set): buffer, events, util, path, url (+ WHATWG globals),
 *   querystring, string_decoder, assert, stream (readable-stream), punycode;
 * - shimmed by Continuum (src/build/shims): the in-memory half of http/https (IncomingMessage, ServerResponse,
 *   STATUS_CODES, METHODS — enough for express + serverless-http), crypto (hashes, HMAC, random, over
 *   @noble/hashes and Web Crypto), process, timers, tty (never a TTY), async_hooks (AsyncResource only),
 *   diagnostics_channel,
 *   stream/promises, util/types;
 * - unavailable: everything else (fs, net, tls, child_process, worker_threads, cluster, dgram, dns, os, zlib, vm,
 *   v8, module, …). Imported by the function's own code, or by any ESM `import` statement, the build is refused
 *   (`bad_bundle`, naming module and importer, pointing at tier: process). Reached only through `require()` /
 *   dynamic `import()` inside node_modules, the module is replaced by a stub that loads fine and throws on use,
 *   and the build carries a warning: packages such as express and debug require `fs`, `zlib`, `net` at load time
 *   but only touch them on paths a function does not take (static files, compressed bodies, …).
 *
 * Shims are pre-bundled once per process (CJS, built-ins left as `require`) and served to user builds from a
 * virtual namespace, so a user build only ever reads files from the upload itself.
 */
import { builtinModules, createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import type { Dependency } from '../core/types.ts';
import { dependenciesFromMetafile } from './deps.ts';

export const SHIMS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'shims');
export const SHIM_NAMESPACE = 'continuum-shim';
const require = createRequire(import.meta.url);
const REPO_ROOT = path.resolve(SHIMS_DIR, '..', '..', '..');

/** Internal shim that builds the throwing stubs; reachable only from stubs. */
export const UNAVAILABLE = 'continuum:unavailable';

/** built-in name (without `node:`) → entry of its shim: a package specifier or a file in shims/. */
const SHIM_ENTRIES: Record<string, { pkg: string } | { file: string }> = {
  buffer: { pkg: 'buffer/' },
  events: { pkg: 'events/' },
  util: { pkg: 'util/' },
  'util/types': { file: 'util-types.js' },
  path: { pkg: 'path-browserify' },
  'path/posix': { pkg: 'path-browserify' },
  url: { file: 'url.js' },
  querystring: { pkg: 'querystring-es3' },
  punycode: { pkg: 'punycode/' },
  string_decoder: { pkg: 'string_decoder/' },
  assert: { pkg: 'assert/' },
  stream: { pkg: 'readable-stream/lib/ours/browser.js' },
  'stream/promises': { file: 'stream-promises.js' },
  http: { file: 'http.js' },
  https: { file: 'http.js' },
  crypto: { file: 'crypto.js' },
  process: { file: 'process.js' },
  timers: { file: 'timers.js' },
  tty: { file: 'tty.js' },
  async_hooks: { file: 'async_hooks.js' },
  diagnostics_channel: { file: 'diagnostics_channel.js' },
  [UNAVAILABLE]: { file: 'unavailable.js' },
};

const ALL_BUILTINS = new Set(builtinModules.map((m) => m.replace(/^node:/, '')));

/** `fs`, `node:fs/promises`, `node:sqlite` … → `fs`, `fs/promises`, `sqlite`; null when not a built-in. */
export function builtinName(specifier: string): string | null {
  const bare = specifier.replace(/^node:/, '');
  if (ALL_BUILTINS.has(bare)) return bare;
  if (specifier.startsWith('node:')) return bare; // node:-only modules (node:test, node:sqlite, …)
  return null;
}

export function isShimmed(name: string): boolean {
  return name !== UNAVAILABLE && Object.hasOwn(SHIM_ENTRIES, name);
}

export interface Shim {
  code: string;
  dependencies: Dependency[];
}

let prebuilt: Promise<Map<string, Shim>> | null = null;

/** Pre-bundle every shim once per process. */
export function shims(): Promise<Map<string, Shim>> {
  prebuilt ??= buildShims().catch((err: unknown) => {
    prebuilt = null;
    throw err;
  });
  return prebuilt;
}

async function buildShims(): Promise<Map<string, Shim>> {
  const out = new Map<string, Shim>();
  const cache = new Map<string, Promise<Shim>>();
  for (const [name, entry] of Object.entries(SHIM_ENTRIES)) {
    const file = 'pkg' in entry ? require.resolve(entry.pkg) : path.join(SHIMS_DIR, entry.file);
    let p = cache.get(file);
    if (!p) {
      p = esbuild
        .build({
          entryPoints: [file],
          bundle: true,
          format: 'cjs',
          platform: 'browser',
          target: 'es2023',
          write: false,
          metafile: true,
          logLevel: 'silent',
          minifyWhitespace: true,
          minifySyntax: true,
          legalComments: 'none',
          absWorkingDir: REPO_ROOT,
          plugins: [builtinPackagesAsBuiltins],
          // Own shims are ESM with a default export that is the whole module (as Node's built-ins are): make
          // module.exports that object, so default and namespace imports agree in every interop mode.
          ...('file' in entry ? { footer: { js: DEFAULT_AS_MODULE } } : {}),
          outfile: 'shim.js',
          define: { 'process.env.NODE_ENV': '"production"', 'process.env.NODE_DEBUG': 'undefined', 'process.env.READABLE_STREAM': 'undefined' },
        })
        .then(async (r) => ({
          code: r.outputFiles[0]!.text,
          dependencies: await dependenciesFromMetafile(r.metafile, REPO_ROOT),
        }));
      cache.set(file, p);
    }
    out.set(name, await p);
  }
  return out;
}

const DEFAULT_AS_MODULE = `(()=>{const d=module.exports.default;if(d&&(typeof d=="object"||typeof d=="function")&&Object.isExtensible(d)){for(const k of Object.keys(module.exports))if(k!=="default"&&!(k in d))d[k]=module.exports[k];module.exports=d}})();`;

/**
 * Inside shim packages, `require('process/')`, `require('buffer/')` … name the npm stand-ins of built-ins: keep
 * them as built-in references so every shim shares one instance (the user build maps them to the shims).
 */
const builtinPackagesAsBuiltins: esbuild.Plugin = {
  name: 'builtin-packages',
  setup(b) {
    b.onResolve({ filter: /^(node:)?[a-z_][a-z0-9_/]*$/ }, (args) => {
      if (args.path.endsWith('/')) {
        const name = args.path.slice(0, -1);
        if (!ALL_BUILTINS.has(name) || !args.importer.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
        return { path: name, external: true };
      }
      return builtinName(args.path) === null ? undefined : { path: args.path, external: true };
    });
  },
};

/** Source of a stub module for an unavailable built-in. */
export function unavailableStub(name: string): string {
  return `module.exports = require(${JSON.stringify(UNAVAILABLE)}).unavailable(${JSON.stringify(name)});`;
}
