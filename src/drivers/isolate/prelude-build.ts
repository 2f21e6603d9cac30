/**
 * Builds the in-isolate runtime (src/runtime/isolate/entry.ts: Web-API prelude + handler adapters) into
 * one minified, ASCII-only IIFE with esbuild, and caches the result on disk so that worker start-up
 * does not run esbuild every time.
 *
 * Cache: `<os.tmpdir()>/continuum-prelude/<key>.js`, where key = sha256 over the esbuild version,
 * package-lock.json and every source file under src/runtime/isolate. A change to any of them produces a
 * new key; stale files are harmless. Writes go to a temp file and are renamed into place, so concurrent
 * workers never read a half-written file. Pass `cacheDir: null` to disable the cache.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '../../..');
const runtimeDir = join(repoRoot, 'src/runtime/isolate');
const shims = join(runtimeDir, 'shims');

export interface PreludeBuildOptions {
  /** Directory for the cached bundle; null disables caching. Default: os.tmpdir()/continuum-prelude. */
  cacheDir?: string | null;
}

export interface BuiltPrelude {
  source: string;
  /** True when the bundle came from the file cache. */
  cached: boolean;
  key: string;
}

function listSources(dir: string, out: string[]): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) listSources(path, out);
    else if (/\.(ts|js|cjs)$/.test(entry.name) && !entry.name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

export function preludeCacheKey(): string {
  const hash = createHash('sha256');
  hash.update(esbuild.version);
  hash.update(readFileSync(fileURLToPath(import.meta.url)));
  try {
    hash.update(readFileSync(join(repoRoot, 'package-lock.json')));
  } catch {
    hash.update('no-lockfile');
  }
  for (const file of listSources(runtimeDir, [])) {
    hash.update(file.slice(runtimeDir.length));
    hash.update(readFileSync(file));
  }
  return hash.digest('hex').slice(0, 32);
}

/**
 * Build-time edits to dependencies, each [file suffix, [from, to] pairs]; every `from` must occur exactly
 * once or the build fails (a dependency update must be looked at, never silently half-applied).
 *
 * undici's extractBody creates a byte ReadableStream for every body, also for the string/bytes bodies of
 * `new Response('hello')`, which costs more than the rest of the Response. The edit creates that stream
 * on first access of `body.stream` instead (Response#body, bodyUsed, consumers, clone all go through it,
 * so tenants see the same object and semantics); `lazyStreamPending` tells runtime.ts that nobody has
 * looked at the stream yet, so the fixed source can be sent as is. The lazy body is an instance of a class
 * with accessors on its prototype: an object literal with getters defines them on every body at run time
 * (V8's slow DefineAccessorProperty path, ≈ 5 % of an isolate worker's time serving hello at full load).
 */
const PATCHES: Array<[string, Array<[string, string]>]> = [
  // The ternary search tree of well-known header names serves undici's HTTP/1 client (header names as
  // bytes), which the isolate never runs; built at load it held ≈ 940 nodes in every context of every
  // isolate (≈ 0.12 MB per isolate). Without it the same lookups lower-case the bytes directly.
  ['undici/lib/core/util.js', [["const { tree } = require('./tree')", 'const tree = { lookup: () => null }']]],
  // WebIDL integer conversion runs on every `new Response()` (ResponseInit.status, 200 by default). For a
  // number that is already an integer in range every branch of the algorithm returns it unchanged (−0 as
  // +0); the fast path skips the ten steps that prove so (≈ 10 % of serving a hello request).
  [
    'undici/lib/web/webidl/index.js',
    [['  // 4. Let x be ? ToNumber(V).\n', '  if (typeof V === \'number\' && Number.isInteger(V) && V >= lowerBound && V <= upperBound) return V === 0 ? 0 : V\n\n  // 4. Let x be ? ToNumber(V).\n']],
  ],
  // UTF-8 decoding (TextDecoder, and so every body read as text or JSON) takes the host's native decoder
  // for inputs of 1 KB and more (shims/host-utf8.js): a queue batch of ten 1 KB messages spent ≈ 40 µs
  // decoding in JavaScript. The BOM is handled before this function, as before.
  [
    '@exodus/bytes/fallback/utf8.js',
    [
      ["import { E_STRICT_UNICODE } from './_utils.js'\n", `import { E_STRICT_UNICODE } from './_utils.js'\nimport { hostUtf8Decode } from ${JSON.stringify(join(shims, 'host-utf8.js'))}\n`],
      ['export function decodeFast(arr, loose) {\n', 'export function decodeFast(arr, loose) {\n  const viaHost = hostUtf8Decode(arr, loose)\n  if (viaHost === null) throw new TypeError(E_STRICT)\n  if (viaHost !== undefined) return viaHost\n'],
    ],
  ],
  // EventTarget keeps each instance's listener map in a WeakMap; every request has an AbortSignal, and a
  // WeakMap entry for a young key costs the scavenger ephemeron work (as AbortSignal's own state did, see
  // 40-events.ts). A private field holds it instead; the brand check stays (`#listeners in target`).
  [
    'event-target-shim/index.mjs',
    [
      ['    constructor() {\n        internalDataMap$2.set(this, createListenerListMap());\n    }\n', '    #listeners = createListenerListMap();\n    static { listenersOf = (target) => (typeof target === "object" && target !== null && #listeners in target ? target.#listeners : undefined); }\n'],
      ['const internalDataMap$2 = new WeakMap();\n', 'var listenersOf;\n'],
      ['    const retv = internalDataMap$2.get(target);\n', '    const retv = listenersOf(target);\n'],
    ],
  ],
  [
    'undici/lib/web/fetch/body.js',
    [
      [
        'function extractBody (object, keepalive = false) {\n  // 1. Let stream be null.\n  let stream = null\n',
        'const kLazyStream = Symbol(\'lazy stream\')\nclass LazyBody {\n  #stream = kLazyStream\n  #make\n  constructor (make, source, length) { this.#make = make; this.source = source; this.length = length }\n  get stream () { if (this.#stream === kLazyStream) this.#stream = this.#make(); return this.#stream }\n  set stream (v) { this.#stream = v }\n  get lazyStreamPending () { return this.#stream === kLazyStream }\n}\nfunction extractBody (object, keepalive = false) {\n  // 1. Let stream be null.\n  let stream = null\n  let makeStream = null\n',
      ],
      ['    stream = new ReadableStream({\n      start () {},', '    stream = kLazyStream\n    makeStream = () => new ReadableStream({\n      start () {},'],
      ['  assert(webidl.is.ReadableStream(stream))', '  assert(stream === kLazyStream || webidl.is.ReadableStream(stream))'],
      [
        '  const body = { stream, source, length }',
        '  const body = stream === kLazyStream ? new LazyBody(makeStream, source, length) : { stream, source, length }',
      ],
    ],
  ],
];

function patchPlugin(): esbuild.Plugin {
  return {
    name: 'continuum-patches',
    setup(b) {
      b.onLoad({ filter: /\.m?js$/ }, (args) => {
        const path = args.path.replace(/\\/g, '/');
        const entry = PATCHES.find(([suffix]) => path.endsWith(`/node_modules/${suffix}`));
        if (!entry) return undefined;
        let text = readFileSync(args.path, 'utf8');
        for (const [from, to] of entry[1]) {
          const at = text.indexOf(from);
          if (at < 0 || text.indexOf(from, at + 1) >= 0) throw new Error(`prelude patch for ${entry[0]} does not apply: ${from.slice(0, 60)}`);
          text = text.slice(0, at) + to + text.slice(at + from.length);
        }
        return { contents: text, loader: 'js' };
      });
    },
  };
}

export async function buildPreludeSource(minify = true): Promise<string> {
  const result = await esbuild.build({
    entryPoints: [join(runtimeDir, 'entry.ts')],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    conditions: ['import', 'default'],
    target: 'es2022',
    minify,
    charset: 'ascii',
    legalComments: 'none',
    logLevel: 'silent',
    inject: [join(shims, 'inject-globals.js')],
    define: { 'process.env.NODE_ENV': '"production"' },
    alias: {
      'node:assert': join(shims, 'node-assert.cjs'),
      'node:util': join(shims, 'node-util.js'),
      'node:util/types': join(shims, 'node-util-types.js'),
      'node:stream': join(shims, 'node-stream.js'),
      'node:stream/web': join(shims, 'node-stream-web.js'),
      'node:events': join(shims, 'node-events.js'),
      'node:http': join(shims, 'node-misc.js'),
      'node:net': join(shims, 'node-misc.js'),
      'node:querystring': join(shims, 'node-misc.js'),
      'node:perf_hooks': join(shims, 'node-misc.js'),
      'node:zlib': join(shims, 'node-misc.js'),
      'node:worker_threads': join(shims, 'node-misc.js'),
      'node:crypto': join(shims, 'node-misc.js'),
      'node:sqlite': join(shims, 'node-misc.js'),
      tr46: join(shims, 'tr46.js'),
      '@exodus/bytes/encoding.js': join(repoRoot, 'node_modules/@exodus/bytes/encoding-lite.js'),
    },
    nodePaths: [join(repoRoot, 'node_modules')],
    plugins: [patchPlugin()],
  });
  const file = result.outputFiles[0];
  if (!file) throw new Error('prelude build produced no output');
  return file.text;
}

/** The prelude source, from the file cache when the key matches, else built (and cached). */
export async function loadPrelude(options: PreludeBuildOptions = {}): Promise<BuiltPrelude> {
  const cacheDir = options.cacheDir === undefined ? join(tmpdir(), 'continuum-prelude') : options.cacheDir;
  const key = preludeCacheKey();
  if (cacheDir !== null) {
    try {
      return { source: readFileSync(join(cacheDir, `${key}.js`), 'utf8'), cached: true, key };
    } catch {
      // not cached yet
    }
  }
  const source = await buildPreludeSource();
  if (cacheDir !== null) {
    try {
      mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
      const tmp = join(cacheDir, `${key}.${process.pid}.${Date.now()}.tmp`);
      writeFileSync(tmp, source, { mode: 0o600 });
      renameSync(tmp, join(cacheDir, `${key}.js`));
    } catch {
      // a read-only tmpdir only costs a rebuild next time
    }
  }
  return { source, cached: false, key };
}
