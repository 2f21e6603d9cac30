import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ContinuumClient, discoverTarget, headerJson } from './client.ts';
import { CliError } from './errors.ts';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'continuum-client-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test('discovery: the local node.json and admin-token when CONTINUUM_URL is unset', () =>
  withDir(async (dir) => {
    await writeFile(path.join(dir, 'node.json'), JSON.stringify({ url: 'http://127.0.0.1:9999', pid: 1 }));
    await writeFile(path.join(dir, 'admin-token'), 'ctm_secret\n');
    const t = await discoverTarget({ dataDir: dir, env: {} });
    assert.deepEqual(t, { url: 'http://127.0.0.1:9999', token: 'ctm_secret', source: 'local', dataDir: dir, pid: 1 });
    const overridden = await discoverTarget({ dataDir: dir, env: { CONTINUUM_TOKEN: 'other' } });
    assert.equal(overridden.token, 'other');
  }));

test('discovery: CONTINUUM_URL wins; the local admin token never goes to a remote URL', () =>
  withDir(async (dir) => {
    await writeFile(path.join(dir, 'node.json'), JSON.stringify({ url: 'http://127.0.0.1:9999', pid: 1 }));
    await writeFile(path.join(dir, 'admin-token'), 'ctm_secret');
    const remote = await discoverTarget({ dataDir: dir, env: { CONTINUUM_URL: 'https://faas.example.com/' } });
    assert.deepEqual(remote, { url: 'https://faas.example.com', token: null, source: 'env' });
    const same = await discoverTarget({ dataDir: dir, env: { CONTINUUM_URL: 'http://127.0.0.1:9999' } });
    assert.equal(same.token, 'ctm_secret');
    const withToken = await discoverTarget({ dataDir: dir, env: { CONTINUUM_URL: 'https://faas.example.com', CONTINUUM_TOKEN: 't' } });
    assert.equal(withToken.token, 't');
    await assert.rejects(discoverTarget({ dataDir: dir, env: { CONTINUUM_URL: 'ftp://x' } }), (e: unknown) => e instanceof CliError && e.exitCode === 1);
  }));

test('discovery: no node.json and no CONTINUUM_URL is exit 2 with what to do', () =>
  withDir(async (dir) => {
    await assert.rejects(discoverTarget({ dataDir: dir, env: {} }), (e: unknown) => e instanceof CliError && e.exitCode === 2 && /continuum up/.test(e.message) && /CONTINUUM_URL/.test(e.message));
  }));

test('a closed port is one clear line and exit 2', async () => {
  const server = createServer();
  const url = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const client = new ContinuumClient({ url, token: null, source: 'local', dataDir: '/tmp/x', pid: 2 ** 22 + 7 });
  await assert.rejects(client.listFunctions(), (e: unknown) => {
    assert.ok(e instanceof CliError);
    assert.equal(e.exitCode, 2);
    assert.equal(e.code, 'unavailable');
    assert.match(e.message, new RegExp(`^cannot reach Continuum at ${url} \\(connection refused\\)`));
    assert.match(e.message, /is not running/);
    return true;
  });
});

test('API errors keep their code and message; the token is sent as a bearer; unknown bodies fall back to status', async () => {
  const seen: (string | undefined)[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers.authorization);
    if (req.url === '/v1/functions/missing') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'not_found', message: 'function "missing" not found', retryable: false } }));
    } else if (req.url === '/v1/functions/busy') {
      res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'overloaded', message: 'no capacity', retryable: true } }));
    } else if (req.url === '/v1/functions/proxy') {
      res.writeHead(502, { 'content-type': 'text/html' }).end('<html>Bad Gateway</html>');
    } else {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ items: [] }));
    }
  });
  const url = await listen(server);
  try {
    const traces: string[] = [];
    const client = new ContinuumClient({ url, token: 'ctm_t', source: 'env' }, { trace: (l) => traces.push(l) });
    assert.deepEqual(await client.listFunctions(), { items: [] });
    await assert.rejects(client.getFunction('missing'), (e: unknown) => e instanceof CliError && e.code === 'not_found' && e.exitCode === 1 && e.message === 'function "missing" not found');
    await assert.rejects(client.getFunction('busy'), (e: unknown) => e instanceof CliError && e.code === 'overloaded' && e.exitCode === 2 && e.retryable);
    await assert.rejects(client.getFunction('proxy'), (e: unknown) => e instanceof CliError && e.code === 'internal' && e.exitCode === 2 && /HTTP 502/.test(e.message));
    assert.ok(seen.every((h) => h === 'Bearer ctm_t'));
    assert.ok(traces.some((l) => l.startsWith('> GET ') && l.endsWith('/v1/functions')));
    assert.ok(traces.every((l) => !l.includes('ctm_t')), 'traces never show the token');
  } finally {
    server.close();
  }
});

test('headerJson keeps Continuum-Config Latin-1 clean', () => {
  const h = headerJson({ env: { GREETING: 'Grüß dich ✓' } });
  assert.ok(/^[\x20-\x7e]*$/.test(h));
  assert.deepEqual(JSON.parse(h), { env: { GREETING: 'Grüß dich ✓' } });
});
