import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { resolveFunctionConfig } from '../core/config.ts';
import { ContinuumError } from '../core/errors.ts';
import { build, detectUploadKind, removeStaleStaging, versionId, type BuildInput, type BuildOutput } from './index.ts';
import { loadBundle, makeTgz, makeZip, tarFile } from './testing.ts';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test/fixtures/build');
const auto = { format: 'auto' as const, export: null };

function source(code: string, filename = 'index.js', extra: Partial<BuildInput> = {}): Promise<BuildOutput> {
  return build({ kind: 'source', bytes: Buffer.from(code), filename, tier: 'isolate', handler: auto, ...extra });
}

async function refusal(p: Promise<unknown>): Promise<ContinuumError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ContinuumError, String(err));
    assert.equal(err.code, 'bad_bundle');
    assert.doesNotMatch(err.message, /\/tmp\/|continuum-build-|\/work\//, 'message leaks a host path');
    return err;
  }
  assert.fail('expected a bad_bundle refusal');
}

const dir = (name: string, extra: Partial<BuildInput> = {}): Promise<BuildOutput> =>
  build({ kind: 'directory', directory: path.join(FIXTURES, name), tier: 'isolate', handler: auto, ...extra });

describe('sources and directories', () => {
  test('a .ts file becomes a fetch handler that runs without Node globals', async () => {
    const out = await build({ kind: 'directory', directory: path.join(FIXTURES, 'hello'), tier: 'isolate', handler: auto });
    assert.equal(out.format, 'fetch');
    assert.equal(out.exportName, 'default');
    assert.deepEqual(out.dependencies, []);
    const mod = loadBundle(out.code) as { default: { fetch(r: Request, env: object): Promise<Response> } };
    const res = await mod.default.fetch(new Request('http://x/abc'), { GREETING: 'hi' });
    assert.equal(await res.text(), 'hi from /abc\n');
    const single = await source('export default { fetch: (r: Request): Response => new Response("ts " + r.method) };', 'hello.ts');
    const res2 = await (loadBundle(single.code) as { default: { fetch(r: Request): Response } }).default.fetch(new Request('http://x/'));
    assert.equal(await res2.text(), 'ts GET');
  });

  test('Hono app from a directory resolves node_modules and serves', async () => {
    const out = await dir('hono');
    assert.equal(out.format, 'fetch');
    const hono = out.dependencies.find((d) => d.name === 'hono');
    assert.deepEqual(hono, { name: 'hono', version: '4.13.19', license: 'MIT' });
    const app = (loadBundle(out.code) as { default: { fetch(r: Request): Promise<Response> } }).default;
    const res = await app.fetch(new Request('http://x/json/bob'));
    assert.deepEqual(await res.json(), { hello: 'bob' });
  });

  test('Express + serverless-http runs on the isolate tier (shimmed http/crypto, lazy fs/zlib/net)', async () => {
    const out = await dir('express');
    assert.equal(out.format, 'lambda');
    assert.equal(out.exportName, 'handler');
    const names = out.dependencies.map((d) => d.name);
    for (const n of ['express', 'serverless-http', 'body-parser', 'buffer', 'readable-stream']) assert.ok(names.includes(n), n);
    assert.deepEqual([...names].sort(), names, 'sorted');
    assert.ok(out.warnings.some((w) => w.includes("'fs'") && w.includes('tier: process')), out.warnings.join('\n'));
    const { handler } = loadBundle(out.code) as { handler(e: unknown, c: unknown): Promise<{ statusCode: number; body: string; headers: Record<string, string> }> };
    const event = (method: string, p: string, body?: string) => ({
      version: '2.0', routeKey: '$default', rawPath: p, rawQueryString: '', headers: { host: 'x', 'content-type': 'application/json' },
      requestContext: { http: { method, path: p, sourceIp: '10.0.0.1' }, requestId: 'r1' }, body, isBase64Encoded: false,
    });
    const hello = await handler(event('GET', '/'), {});
    assert.equal(hello.statusCode, 200);
    assert.equal(hello.body, 'hello from express');
    // etag is sha1 via the crypto shim: the same value Node computes.
    const sha = createHash('sha1').update('hello from express').digest('base64').slice(0, 27);
    assert.equal(hello.headers.etag, `W/"12-${sha}"`);
    const echo = await handler(event('POST', '/echo', '{"a":1}'), {});
    assert.deepEqual(JSON.parse(echo.body), { got: { a: 1 }, path: '/echo' });
    assert.equal((await handler(event('GET', '/nope'), {})).statusCode, 404);
  });

  test('mustache (ESM main) is an OpenWhisk action', async () => {
    const out = await dir('mustache');
    assert.equal(out.format, 'openwhisk');
    assert.ok(out.dependencies.some((d) => d.name === 'mustache' && d.license === 'MIT'));
    const { main } = loadBundle(out.code) as { main(p: object): { body: string } };
    assert.equal(main({ name: 'Ada' }).body, 'Hello Ada!');
  });

  test('zip with a top-level folder and package.json main', async () => {
    const bytes = makeZip([
      { name: 'proj/', method: 0 },
      { name: 'proj/package.json', data: '{"name":"p","main":"lib/handler.js"}' },
      { name: 'proj/lib/handler.js', data: 'const msg = require("./msg.js");\nexports.handler = async () => ({ statusCode: 200, body: msg });\n' },
      { name: 'proj/lib/msg.js', data: 'module.exports = "from zip";\n' },
    ]);
    const out = await build({ kind: 'zip', bytes, tier: 'isolate', handler: auto });
    assert.equal(out.format, 'lambda');
    const { handler } = loadBundle(out.code) as { handler(): Promise<{ body: string }> };
    assert.equal((await handler()).body, 'from zip');
  });

  test('an upload cannot pull in files from outside its tree', async () => {
    const err = await refusal(source(`import data from ${JSON.stringify(path.join(FIXTURES, 'hono', 'package.json'))};\nexport default { fetch: () => new Response(data.name) };`));
    assert.match(err.message, /outside the uploaded project/);
    const viaTgz = makeTgz([tarFile('index.js', 'import "../../../../../etc/hostname.json";\nexport default { fetch() {} };')]);
    await refusal(build({ kind: 'tgz', bytes: viaTgz, tier: 'isolate', handler: auto }));
  });

  test('progress is reported per step', async () => {
    const steps: string[] = [];
    await source('export default { fetch() {} };', 'index.js', { onProgress: (s) => steps.push(s) });
    assert.deepEqual(steps, ['unpack', 'bundle', 'analyze']);
  });
});

describe('handler detection', () => {
  const cases: Array<[string, string, string, string]> = [
    ['ESM default object', 'export default { fetch() {} };', 'fetch', 'default'],
    ['ESM handler', 'export const handler = async (event) => ({ statusCode: 200 });', 'lambda', 'handler'],
    ['ESM main', 'export function main(params) { return params; }', 'openwhisk', 'main'],
    ['CJS exports.handler', 'exports.handler = async () => 1;', 'lambda', 'handler'],
    ['CJS module.exports.main', 'module.exports.main = (p) => p;', 'openwhisk', 'main'],
    ['CJS object literal with fetch', 'module.exports = { async fetch(req) { return new Response("x"); } };', 'fetch', 'default'],
    ['CJS object literal with handler shorthand', 'const handler = async () => 1;\nmodule.exports = { handler, other: 1 };', 'lambda', 'handler'],
  ];
  for (const [name, code, format, exportName] of cases) {
    test(name, async () => {
      const out = await source(code);
      assert.equal(out.format, format);
      assert.equal(out.exportName, exportName);
    });
  }
  test('ambiguous exports prefer fetch > lambda > openwhisk, with a warning', async () => {
    const out = await source('export default { fetch() {} };\nexport const handler = () => 1;\nexport const main = () => 1;');
    assert.equal(out.format, 'fetch');
    assert.ok(out.warnings.some((w) => /several handler shapes/.test(w)));
  });
  test('configured format and export override detection', async () => {
    const out = await source('export default { fetch() {} };\nexport const handler = () => 1;', 'index.js', { handler: { format: 'lambda', export: null } });
    assert.equal(out.format, 'lambda');
    assert.equal(out.exportName, 'handler');
    const custom = await source('export const run = async () => 1;', 'index.js', { handler: { format: 'lambda', export: 'run' } });
    assert.deepEqual([custom.format, custom.exportName], ['lambda', 'run']);
  });
  test('missing handler is refused', async () => {
    assert.match((await refusal(source('export const x = 1;'))).message, /no handler found/);
    assert.match((await refusal(source('exports.helper = 1;'))).message, /no handler found/);
    assert.match((await refusal(source('export const handler = 1;', 'index.js', { handler: { format: 'auto', export: 'run' } }))).message, /"run" is not exported/);
    assert.match((await refusal(source('export const handler = 1;', 'index.js', { handler: { format: 'openwhisk', export: null } }))).message, /needs an export named "main"/);
  });
});

describe('refusals', () => {
  test('syntax errors carry file:line:column (relative, 1-based)', async () => {
    const err = await refusal(source('export default {\n  fetch() {\n    return new Response("x";\n  }\n};\n', 'broken.js'));
    assert.equal(err.details?.file, 'broken.js');
    assert.equal(err.details?.line, 3);
    assert.equal(err.details?.column, 28);
    assert.match(err.message, /^broken\.js:3:28: /);
  });
  test('Node-only built-ins imported by the function refuse at deploy on the isolate tier', async () => {
    for (const mod of ['fs', 'node:child_process', 'net', 'worker_threads', 'zlib', 'os', 'vm', 'node:module']) {
      const err = await refusal(source(`import * as m from '${mod}';\nexport default { fetch() { return m; } };`, 'fn.js'));
      assert.match(err.message, new RegExp(`'${mod}'.*fn\\.js.*tier: process`));
      assert.equal(err.details?.file, 'fn.js');
    }
    const cjs = await refusal(source(`const fs = require('fs');\nexports.handler = () => fs.readFileSync('/etc/passwd');`, 'fn.cjs'));
    assert.match(cjs.message, /'fs'.*fn\.cjs/);
  });
  test('the process tier keeps built-ins external', async () => {
    const out = await build({ kind: 'source', bytes: Buffer.from("import { readFileSync } from 'node:fs';\nexport const handler = () => readFileSync;"), filename: 'p.mjs', tier: 'process', handler: auto });
    assert.match(out.code, /require\("node:fs"\)/);
  });
  test('shimmed built-ins bundle on the isolate tier', async () => {
    const out = await source("import { Buffer } from 'node:buffer';\nimport path from 'path';\nimport { EventEmitter } from 'events';\nimport { createHash } from 'crypto';\nexport const handler = () => [Buffer.from('hi').toString('base64'), path.join('a', '..', 'b'), typeof EventEmitter, createHash('sha256').update('x').digest('hex')];");
    const { handler } = loadBundle(out.code) as { handler(): unknown[] };
    assert.deepEqual(JSON.parse(JSON.stringify(handler())), ['aGk=', 'b', 'function', createHash('sha256').update('x').digest('hex')]);
  });
  test('native addon imported by code', async () => {
    const err = await refusal(source("const addon = require('./build/Release/addon.node');\nexports.handler = addon.run;"));
    assert.match(err.message, /native addon.*tier: process/);
  });
  test('bundles over maxBundleBytes', async () => {
    const big = `export default { fetch() { return ${JSON.stringify('x'.repeat(200_000))}; } };`;
    const err = await refusal(source(big, 'index.js', { limits: { maxBundleBytes: 100_000 } }));
    assert.equal(err.details?.limit, 100_000);
    assert.match(err.message, /100000-byte limit/);
  });
  test('bad source file names', async () => {
    await refusal(source('export default {}', 'evil.sh'));
    await refusal(source('export default {}', '.hidden.js'));
    await refusal(source('export default {}', 'a\u0000b.js'));
    // Directory parts are dropped: only the base name is ever used.
    assert.equal((await source('export default { fetch() {} };', '../../x/evil.js')).format, 'fetch');
  });
});

describe('determinism and ids', () => {
  test('same input → same digest and version id', async () => {
    const a = await dir('express');
    const b = await dir('express');
    assert.equal(a.bundleDigest, b.bundleDigest);
    assert.equal(a.bundleDigest, createHash('sha256').update(a.code).digest('hex'));
    assert.equal(a.bundleBytes, Buffer.byteLength(a.code));
    const zipA = await build({ kind: 'zip', bytes: makeZip([{ name: 'index.js', data: 'export default { fetch() {} };' }]), tier: 'isolate', handler: auto });
    const zipB = await build({ kind: 'zip', bytes: makeZip([{ name: 'index.js', data: 'export default { fetch() {} };' }]), tier: 'isolate', handler: auto });
    assert.equal(zipA.bundleDigest, zipB.bundleDigest);
    const config = resolveFunctionConfig({});
    const id = versionId(a.bundleDigest, config);
    assert.match(id, /^v_[0-9a-f]{24}$/);
    assert.equal(id, versionId(b.bundleDigest, resolveFunctionConfig({})));
    assert.notEqual(id, versionId(a.bundleDigest, resolveFunctionConfig({ limits: { timeoutMs: 1000 } })));
  });
});

describe('detectUploadKind', () => {
  test('magic bytes first', () => {
    assert.equal(detectUploadKind(makeZip([{ name: 'a', data: 'b' }]), 'whatever.js'), 'zip');
    assert.equal(detectUploadKind(makeTgz([tarFile('a', 'b')]), 'x.ts'), 'tgz');
    assert.equal(detectUploadKind(Buffer.from('export default {}'), 'a.ts'), 'source');
    assert.equal(detectUploadKind(Buffer.from('export default {}')), 'source');
  });
  test('a file claiming to be an archive without the magic is refused', () => {
    assert.throws(() => detectUploadKind(Buffer.from('hello'), 'code.zip'), /magic bytes/);
    assert.throws(() => detectUploadKind(Buffer.from('hello'), undefined, 'application/gzip'), /magic bytes/);
    assert.throws(() => detectUploadKind(Buffer.from([1, 2, 0, 4])), /binary/);
  });
});

describe('what the function can see', () => {
  test('the bundle names no host path (the platform layout stays private)', async () => {
    const repoRoot = path.resolve(FIXTURES, '../../..');
    const out = await build({ bytes: Buffer.from('export default { fetch() { return new Response(Buffer.from("x") + process.env.X + global.y) } }'), kind: 'source', filename: 'i.js', tier: 'isolate', handler: auto });
    assert.ok(out.code.includes('continuum:shims/'), 'the shims are injected');
    assert.doesNotMatch(out.code, /\.\.\/\.\.\//);
    assert.ok(!out.code.includes(repoRoot), 'no absolute repository path');
  });
});

test('a start removes the staging dirs of builders that died; those of live processes stay', async () => {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'continuum-staging-test-'));
  try {
    const dead = spawnSync(process.execPath, ['-e', '']).pid; // has exited
    await fsp.mkdir(path.join(tmp, `continuum-build-${dead}-aaaaaa`, 'tree'), { recursive: true });
    await fsp.mkdir(path.join(tmp, `continuum-build-${process.pid}-bbbbbb`));
    await fsp.mkdir(path.join(tmp, 'continuum-build-cccccc')); // no process named: not judged
    assert.equal(await removeStaleStaging(tmp), 1);
    assert.deepEqual((await fsp.readdir(tmp)).sort(), [`continuum-build-${process.pid}-bbbbbb`, 'continuum-build-cccccc']);
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
});
