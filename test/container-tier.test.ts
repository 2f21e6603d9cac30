/**
 * The container tier (runc) through a real node: deploy with `tier: container`, and the abuse catalogue
 * (reliability tests 7, 8, 9, 11, 12, 13 and the cpuMs budget, 15, 17, 18, 19, 21), each while a canary
 * function on another container keeps answering; 16 on a driver with a small pids.max, with a canary
 * container on the same driver; spare containers; queue and service bindings through the
 * instance's host channel. Then images: one built by `continuum image build` (image-build.ts) runs from
 * the store on the container and gvisor tiers and under a bare `runc run`, answering the same; catalogue
 * 10 (cwd through /proc/self/fd) is refused at import (image.test.ts) and checked from inside here.
 * Skips, with the reason, where the host cannot run the tier.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import type { InstanceSpec, InvokeRequest } from '../src/core/driver.ts';
import { ContainerDriver } from '../src/drivers/container/driver.ts';
import { testSpec } from '../src/drivers/isolate/testing.ts';
import type { ContainerInstance } from '../src/drivers/container/instance.ts';
import { buildFunctionImage, IMAGE_PORT } from '../src/drivers/container/image-build.ts';
import { startTestNode, type TestNode } from './helpers/node.ts';
import { withCanary as withCanaryOf, withCanaryAsking } from './helpers/canary.ts';
import { buildSyscallProbe, FORBIDDEN_SYSCALLS } from './helpers/syscall-probe.ts';
import { checkNoCrossFunctionSecrets } from './helpers/secrets-probe.ts';

const run = promisify(execFile);

/** Why each tier cannot run here, or null. */
const unavailableTier: Record<'container' | 'gvisor', string | null> = { container: null, gvisor: null };
for (const runtime of ['runc', 'runsc'] as const) {
  const probe = new ContainerDriver({ runtime });
  await probe.start();
  unavailableTier[probe.tier] = probe.status().available ? null : (probe.status().reason ?? 'unavailable');
  await probe.stop();
}
const unavailable = unavailableTier.container;

/** An instance of a stored image. */
const imageSpec = (id: string): InstanceSpec => ({ ...testSpec('', {}, 'img'), concurrency: 4, image: id });

const fetchModule = (imports: string, body: string) => `${imports}\nexport default { async fetch(request, env) { ${body} } };`;
const HELLO = fetchModule(`import os from 'node:os';`, `return new Response(JSON.stringify({ greeting: env.GREETING, platform: os.platform(), path: new URL(request.url).pathname }));`);

type NodeStatus = { tiers: Array<{ tier: string; available: boolean; reason: string }> };

/** Waits until no tier of the node is still starting (the container tiers start in the background). */
async function tiersStarted(node: TestNode): Promise<NodeStatus> {
  for (;;) {
    const status = (await node.api('GET', '/v1/status')).json as NodeStatus;
    if (!status.tiers.some((t) => t.reason.startsWith('starting'))) return status;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('container tiers start in the background', { skip: unavailable ? `container tier unavailable: ${unavailable}` : false }, () => {
  test('the node is ready while they start; status says so; an instance asked for meanwhile waits for them', async () => {
    const node = await startTestNode({ config: { containerTiers: true } });
    try {
      const early = (await node.api('GET', '/v1/status')).json as NodeStatus;
      const container = early.tiers.find((t) => t.tier === 'container');
      assert.equal(container?.available, false, JSON.stringify(early));
      assert.match(container!.reason, /^starting: probing runc/);
      const d = await node.deploy('early', HELLO, 'index.mjs', { tier: 'container', env: { GREETING: 'early' } });
      assert.equal(d.status, 201, JSON.stringify(d.json));
      const res = await node.fn('/fn/early/x');
      assert.equal(res.status, 200);
      assert.equal((await res.json()).greeting, 'early');
      const later = await tiersStarted(node);
      assert.equal(later.tiers.find((t) => t.tier === 'container')?.available, true);
    } finally {
      await node.stop();
    }
  });
});

for (const tier of ['container', 'gvisor'] as const) {
const p = tier === 'container' ? 'c' : 'g';
describe(`${tier} tier`, { skip: unavailableTier[tier] ? `${tier} tier unavailable: ${unavailableTier[tier]}` : false }, () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode({ config: { containerTiers: true } });
    await tiersStarted(node);
    for (const name of [`${p}-hello`, `${p}-canary`]) {
      const r = await node.deploy(name, HELLO, 'index.mjs', { tier, env: { GREETING: 'hi' } });
      assert.equal(r.status, 201, JSON.stringify(r.json));
    }
  });
  after(async () => {
    await node?.stop();
  });

  const withCanary = <T>(abuse: () => Promise<T>): Promise<T> => withCanaryOf(node, `/fn/${p}-canary/`, abuse);

  async function deploy(name: string, code: string, config: Record<string, unknown> = {}): Promise<void> {
    const d = await node.deploy(name, code, 'index.mjs', { tier, ...config });
    assert.equal(d.status, 201, JSON.stringify(d.json));
  }

  test('deploy with tier: container serves the function over $PORT; the API shows the tier', async () => {
    const res = await node.fn(`/fn/${p}-hello/some/path`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { greeting: 'hi', platform: 'linux', path: '/some/path' });
    assert.equal((await node.api('GET', `/v1/functions/${p}-hello`)).json.tier, tier);
    // The node's status names every tier, with how it runs: gVisor's detected platform, or why not.
    const status = (await node.api('GET', '/v1/status')).json as { tiers: Array<{ tier: string; available: boolean; reason: string }> };
    const byTier = Object.fromEntries(status.tiers.map((t) => [t.tier, t]));
    assert.equal(byTier.container?.available, true);
    assert.match(byTier.container!.reason, /runc containers, cgroup v[12]/);
    assert.ok(byTier.gvisor, JSON.stringify(status));
    if (byTier.gvisor.available) assert.match(byTier.gvisor.reason, /platform (ptrace|kvm|systrap)/);
    else assert.ok(byTier.gvisor.reason.length > 0);
  });

  // The exported image does not depend on the tier that serves the function: checked once, on container.
  if (tier === 'container') test('GET /v1/functions/{name}/image (continuum image build) exports an image that answers as the function does', async () => {
    const res = await fetch(`${node.url}/v1/functions/${p}-hello/image`, { headers: { authorization: `Bearer ${node.token}` } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-tar');
    const tarball = Buffer.from(await res.arrayBuffer());
    const driver = new ContainerDriver({ runtime: 'runc' });
    await driver.start();
    try {
      const stored = await driver.images.import(Readable.from([tarball]));
      const inst = await driver.createInstance({ ...imageSpec(stored.id), env: { GREETING: 'hi' } });
      const r = await inst.invoke({ kind: 'http', invocationId: 'exported', request: { method: 'GET', url: 'http://fn.test/some/path', headers: [] }, body: null });
      assert.equal(r.kind, 'response');
      if (r.kind !== 'response') return;
      let text = '';
      for await (const c of r.body) text += Buffer.from(c).toString();
      assert.deepEqual(JSON.parse(text), await (await node.fn(`/fn/${p}-hello/some/path`)).json());
      await inst.stop();
    } finally {
      await driver.stop();
    }
    assert.equal((await fetch(`${node.url}/v1/functions/nope/image`, { headers: { authorization: `Bearer ${node.token}` } })).status, 404);
  });

  test('catalogue 12: another function\'s variables, /tmp and log, and the node\'s secrets, are out of a container\'s sight', async () => {
    await checkNoCrossFunctionSecrets(node, tier, `${p}-c12`);
  });

  test('catalogue 7: forbidden syscalls fail with EPERM inside the container', async (t) => {
    const probeBinary = buildSyscallProbe();
    if (typeof probeBinary === 'string') return t.skip(probeBinary);
    await deploy(`${p}-syscalls`, fetchModule(`import { writeFileSync } from 'node:fs'; import { execFileSync } from 'node:child_process';`, `
      writeFileSync('/tmp/probe', new Uint8Array(await request.arrayBuffer()), { mode: 0o755 });
      return new Response(execFileSync('/tmp/probe', { encoding: 'utf8' }));`), { limits: { requestBodyBytes: 8 * 1024 * 1024 } });
    const out = await withCanary(async () => {
      const res = await node.fn(`/fn/${p}-syscalls/`, { method: 'POST', body: probeBinary });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      return text;
    });
    const results = Object.fromEntries(out.trim().split('\n').map((l) => l.split(' ')));
    for (const name of FORBIDDEN_SYSCALLS) assert.equal(results[name], '1', `${name}: errno ${results[name]} (want EPERM)`);
    assert.ok(Number(results.getpid) > 1);
    assert.equal((await node.fn(`/fn/${p}-hello/`)).status, 200);
  });

  test('catalogue 8 and 10: the filesystem is the image and the bundle, read-only; /proc shows the container; no host fd', async () => {
    await deploy(`${p}-fs`, fetchModule(`import fs from 'node:fs';`, `
      const tryIt = (f) => { try { return String(f()).slice(0, 200); } catch (e) { return e.code; } };
      fs.symlinkSync('/', '/tmp/root');
      return Response.json({
        shadow: tryIt(() => fs.readFileSync('/etc/shadow', 'utf8')),
        root: fs.readdirSync('/').sort(),
        viaSymlink: fs.readdirSync('/tmp/root').sort(),
        procPids: fs.readdirSync('/proc').filter((n) => /^\\d+$/.test(n)).length,
        writeFn: tryIt(() => fs.writeFileSync('/fn/x', 'x')),
        writeRoot: tryIt(() => fs.writeFileSync('/x', 'x')),
        procMem: tryIt(() => fs.writeFileSync('/proc/self/mem', 'x')),
        environ1: tryIt(() => fs.readFileSync('/proc/1/environ', 'utf8').split('\\0').filter((e) => e.startsWith('CONTINUUM_') || e.includes('TOKEN')).join(',')),
        fds: fs.readdirSync('/proc/self/fd').map((fd) => tryIt(() => fs.readlinkSync('/proc/self/fd/' + fd))),
        cwd: process.cwd(),
      });`));
    const r = await withCanary(async () => (await node.fn(`/fn/${p}-fs/`)).json() as Promise<Record<string, unknown>>);
    assert.equal(r.shadow, 'ENOENT');
    assert.deepEqual(r.root, ['dev', 'fn', 'lib', 'lib64', 'proc', 'runtime', 'sys', 'tmp']);
    assert.deepEqual(r.viaSymlink, r.root);
    assert.ok((r.procPids as number) <= 3, `pids visible: ${r.procPids}`);
    // gVisor's own kernel checks permission before the read-only mount: EACCES there.
    assert.ok(['EROFS', 'EACCES'].includes(r.writeFn as string), String(r.writeFn));
    assert.ok(['EROFS', 'EACCES'].includes(r.writeRoot as string), String(r.writeRoot));
    // Its own memory only (the write lands nowhere: offset 0 is unmapped); nothing of the host's.
    assert.ok(['EACCES', 'EPERM', 'EROFS', 'EIO'].includes(r.procMem as string), String(r.procMem));
    // The container's first environment: nothing but the (empty) list of the function's variables, or
    // nothing at all for a spare that took its function later.
    assert.match(r.environ1 as string, /^(CONTINUUM_ENV_KEYS=)?$/);
    assert.equal(r.cwd, '/');
    // Every descriptor is the container's own: pipes, sockets, anon inodes or its own files; no host path.
    // (gVisor names the stdio it was handed `host:[n]`: pipes from the runtime, not paths.)
    for (const target of r.fds as string[]) assert.match(target, /^(pipe:|socket:|anon_inode:|host:\[\d+\]$|\/dev\/null|\/proc\/|\/runtime\/|\/fn\/|\/tmp\/|EACCES|ENOENT)/, target);
  });

  test('catalogue 9: unprivileged unique uid, no capabilities, no_new_privs, seccomp, its own cgroup leaf', async () => {
    await deploy(`${p}-posture`, fetchModule(`import fs from 'node:fs';`, `
      const status = Object.fromEntries(fs.readFileSync('/proc/self/status', 'utf8').split('\\n').map((l) => l.split(':\\t')));
      return Response.json({ uid: process.getuid(), gid: process.getgid(), capEff: status.CapEff, capBnd: status.CapBnd, noNewPrivs: status.NoNewPrivs, seccomp: status.Seccomp, cgroup: fs.readFileSync('/proc/self/cgroup', 'utf8') });`));
    await deploy(`${p}-posture2`, fetchModule(`import fs from 'node:fs';`, `return Response.json({ uid: process.getuid() });`));
    const a = await withCanary(async () => (await node.fn(`/fn/${p}-posture/`)).json() as Promise<Record<string, string | number>>);
    const b = (await (await node.fn(`/fn/${p}-posture2/`)).json()) as { uid: number };
    assert.ok((a.uid as number) >= 300_000, String(a.uid));
    assert.notEqual(a.uid, b.uid);
    assert.equal(a.capEff, '0000000000000000');
    assert.equal(a.capBnd, '0000000000000000');
    // gVisor's /proc/self/status has no NoNewPrivs line (its kernel, not the host's, runs the process; the
    // spec sets noNewPrivileges all the same).
    if (tier === 'container') assert.equal(a.noNewPrivs, '1');
    else assert.ok(a.noNewPrivs === undefined || a.noNewPrivs === '1', String(a.noNewPrivs));
    assert.equal(a.seccomp, '2');
    // gVisor shows its own cgroup view; the leaf is checked from the host on the container tier.
    if (tier === 'container') assert.match(a.cgroup as string, /memory:\/continuum\/p\d+-c\d+-\d+\/c/);
  });

  test('catalogue 11: names become nothing on the host: counters name cgroups, namespaces and directories', async () => {
    for (const bad of ['..%2F..%2Fetc', 'a%2Fb', 'x'.repeat(70), 'A%00b']) {
      const r = await node.deploy(bad, HELLO, 'index.mjs', { tier });
      assert.ok(r.status === 400 || r.status === 404, `${bad}: ${r.status}`);
    }
    const leaves = readdirSync('/sys/fs/cgroup/memory/continuum', { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    for (const leaf of leaves) assert.match(leaf, /^p\d+-(c)?\d+$|^p\d+-/);
    const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    assert.doesNotMatch(netns, /hello|canary|etc/);
  });

  /** Deploys `for (;;) {}` with `limits` and calls it while the canary answers: the error, and how long the call took. */
  async function spin(name: string, limits: Record<string, number>): Promise<{ error: { code: string; message: string }; ms: number; invocationId: string | null }> {
    await deploy(name, fetchModule('', `for (;;) {}`), { limits });
    let ms = 0;
    const res = await withCanary(async () => {
      const t0 = performance.now();
      const r = await node.fn(`/fn/${name}/`);
      ms = performance.now() - t0;
      return r;
    });
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    return { error, ms, invocationId: res.headers.get('x-continuum-invocation-id') };
  }

  test('catalogue 13: a runaway CPU loop ends with timeout while the canary answers', async () => {
    const { error, ms } = await spin(`${p}-spin`, { timeoutMs: 1000 });
    assert.equal(error.code, 'timeout');
    assert.ok(ms >= 900 && ms < 2000, `${ms} ms`);
    assert.equal((await node.fn(`/fn/${p}-hello/`)).status, 200);
  });

  test('catalogue 13, CPU budget: a loop under a long timeout ends with cpu_limit near its budget while the canary answers', async () => {
    const { error, ms, invocationId } = await spin(`${p}-burn`, { timeoutMs: 60_000, cpuMs: 500 });
    assert.equal(error.code, 'cpu_limit', error.message);
    // Ended by its budget, never by its timeout (a minute).
    assert.ok(ms < 30_000, `${ms} ms`);
    const record = (await node.api('GET', `/v1/invocations/${invocationId}`)).json as { errorCode: string };
    assert.equal(record.errorCode, 'cpu_limit');
  });

  test('catalogue 15: a memory bomb ends with memory_limit; only that container dies', async () => {
    await deploy(`${p}-bomb`, fetchModule('', `const a = []; for (;;) a.push(Buffer.alloc(1024 * 1024, 1));`), { limits: { memoryMb: tier === 'gvisor' ? 192 : 128, timeoutMs: 20_000 } });
    const res = await withCanary(() => node.fn(`/fn/${p}-bomb/`));
    const body = (await res.json()) as { error: { code: string } };
    assert.equal(body.error.code, 'memory_limit');
  });

  test('catalogue 17 and 18: descriptors end at EMFILE and /tmp at ENOSPC, inside the container only', async () => {
    await deploy(`${p}-fds`, fetchModule(`import fs from 'node:fs';`, `
      const fds = []; let fdError = null;
      try { for (let i = 0; i < 100000; i++) fds.push(fs.openSync('/proc/self/status', 'r')); } catch (e) { fdError = e.code; }
      for (const fd of fds) fs.closeSync(fd);
      let diskError = null; const chunk = Buffer.alloc(1024 * 1024, 1); let written = 0;
      try { const fd = fs.openSync('/tmp/fill', 'w'); for (;;) { fs.writeSync(fd, chunk); written++; } } catch (e) { diskError = e.code; }
      fs.rmSync('/tmp/fill', { force: true });
      return Response.json({ fdError, opened: fds.length, diskError, writtenMb: written });`), { limits: { memoryMb: 256 } });
    const r = (await withCanary(async () => (await node.fn(`/fn/${p}-fds/`)).json())) as { fdError: string; opened: number; diskError: string; writtenMb: number };
    assert.equal(r.fdError, 'EMFILE');
    assert.ok(r.opened > 1000 && r.opened < 5000, String(r.opened));
    assert.equal(r.diskError, 'ENOSPC');
    assert.ok(r.writtenMb <= 64, String(r.writtenMb));
  });

  test('catalogue 19: a log flood is truncated at the cap and marked', async () => {
    await deploy(`${p}-logs`, fetchModule('', `for (let i = 0; i < 20000; i++) console.log('x'.repeat(1000) + i); return new Response('done');`), { limits: { logBytes: 64 * 1024 } });
    const res = await withCanary(() => node.fn(`/fn/${p}-logs/`));
    assert.equal(await res.text(), 'done');
    let rec: { logsTruncated?: boolean; logBytes?: number } | undefined;
    for (let i = 0; i < 50 && !rec; i++) {
      rec = (await node.api('GET', `/v1/invocations?function=${p}-logs`)).json.items[0];
      if (!rec) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(rec, 'no invocation record');
    assert.equal(rec.logsTruncated, true, JSON.stringify(rec));
    assert.ok((rec.logBytes ?? 0) <= 64 * 1024, JSON.stringify(rec));
  });

  test('bindings: env.OUT.send/sendBatch and env.HELLO.fetch reach the node through the instance\'s host channel, which answers only for what was granted', async () => {
    await node.api('POST', '/v1/queues', { name: `${p}-out` });
    // The function also speaks to the channel directly, as any image could: a binding it was not granted,
    // a malformed body and an oversized message are refused with their codes, and nothing is enqueued.
    await deploy(`${p}-producer`, fetchModule(`import http from 'node:http';`, `
      const raw = (path, body) => new Promise((resolve, reject) => {
        const req = http.request({ socketPath: process.env.CONTINUUM_HOST_SOCKET, method: 'POST', path, headers: { 'content-type': 'application/json' } }, (res) => {
          let text = ''; res.on('data', (c) => (text += c)); res.on('end', () => resolve([res.statusCode, JSON.parse(text).error?.code]));
        });
        req.on('error', reject); req.end(body);
      });
      const sent = await env.OUT.send({ hello: 'world' });
      const batch = await env.OUT.sendBatch([{ body: 'a' }, { body: 'b', delaySeconds: 30 }]);
      const hello = await (await env.HELLO.fetch('http://hello/from-a-container')).json();
      let tooBig = null;
      try { await env.OUT.send('x'.repeat(300 * 1024)); } catch (e) { tooBig = e.code; }
      const refused = [
        await raw('/v1/queues/OTHER', JSON.stringify({ messages: [{ body: 'eA==', contentType: 'text/plain' }] })),
        await raw('/v1/queues/OUT', '{"messages": [{ "body": "not base64!", "contentType": "text/plain" }]}'),
        await raw('/v1/queues/OUT', 'not json'),
        await raw('/v1/services/OUT', JSON.stringify({ method: 'GET', url: 'http://x/', headers: [], body: null })),
      ];
      return Response.json({ keys: Object.keys(env).sort(), ids: [sent.ids.length, batch.ids.length], hello, tooBig, refused });`), {
      bindings: { OUT: { queue: `${p}-out` }, HELLO: { function: `${p}-hello` } },
    });
    const res = await node.fn(`/fn/${p}-producer/`);
    const out = await res.json();
    assert.equal(res.status, 200, JSON.stringify(out));
    assert.deepEqual(out, {
      keys: ['HELLO', 'OUT'],
      ids: [1, 2],
      hello: { greeting: 'hi', platform: 'linux', path: '/from-a-container' },
      tooBig: 'payload_too_large',
      refused: [[403, 'forbidden'], [400, 'bad_request'], [400, 'bad_request'], [403, 'forbidden']],
    });
    const stats = (await node.api('GET', `/v1/queues/${p}-out`)).json.stats;
    assert.deepEqual([stats.depth, stats.delayed], [3, 1]);
    // The callee's record names the calling invocation (the channel's x-continuum-invocation): the service map.
    const parent = res.headers.get('x-continuum-invocation-id');
    let callee: { callerFunction?: string; parentInvocationId?: string | null } | undefined;
    for (let i = 0; i < 100 && !callee; i++) {
      const items = (await node.api('GET', `/v1/invocations?function=${p}-hello&limit=50`)).json.items as Array<{ callerFunction?: string; parentInvocationId?: string | null }>;
      callee = items.find((r) => r.callerFunction === `${p}-producer`);
      if (!callee) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(callee?.parentInvocationId, parent);
  });

  test('catalogue 21: an outbound flood reaches nothing beyond the container\'s link to the hub, while the canary answers', async () => {
    // The container's one interface is a /30 link to the node's private hub: no route beyond it. 50,000
    // connects and a UDP flood to the outside fail inside the container; connects to the hub's end of the
    // link are refused (nothing listens there).
    await deploy(`${p}-netflood`, fetchModule(`import net from 'node:net'; import dgram from 'node:dgram'; import os from 'node:os';`, `
      const errors = {}; const count = (e) => { errors[e.code] = (errors[e.code] ?? 0) + 1; };
      const own = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal);
      const parts = own.address.split('.').map(Number); parts[3] -= 1; const hub = parts.join('.');
      let tried = 0, connected = 0, sent = 0, hubConnected = 0;
      const attempt = (host, onConnect) => new Promise((done) => {
        const s = net.connect({ host, port: 80 });
        s.once('connect', () => { onConnect(); s.destroy(); done(); });
        s.once('error', (e) => { count(e); done(); });
      });
      await Promise.all(Array.from({ length: 50 }, async () => { while (tried < 50000) { tried++; await attempt('198.51.100.7', () => connected++); } }));
      for (let k = 0; k < 200; k++) await attempt(hub, () => hubConnected++);
      const udp = dgram.createSocket('udp4'); const payload = new Uint8Array(1200);
      for (let k = 0; k < 20000; k++) await new Promise((done) => udp.send(payload, 53, '198.51.100.7', (e) => { if (e) count(e); else sent++; done(); }));
      udp.close();
      return Response.json({ tried, connected, sent, hubConnected, errors });`), { limits: { timeoutMs: 120_000, cpuMs: 120_000, memoryMb: 512 } });
    const res = await withCanary(() => node.fn(`/fn/${p}-netflood/`));
    const out = (await res.json()) as { tried: number; connected: number; sent: number; hubConnected: number; errors: Record<string, number> };
    assert.equal(res.status, 200, JSON.stringify(out));
    assert.equal(out.tried, 50_000);
    assert.deepEqual([out.connected, out.sent, out.hubConnected], [0, 0, 0], JSON.stringify(out.errors));
    assert.equal(Object.values(out.errors).reduce((a, b) => a + b, 0), 50_000 + 200 + 20_000, JSON.stringify(out.errors));
  });
});
}

for (const [tier, runtime] of [['container', 'runc'], ['gvisor', 'runsc']] as const) {
describe(`${tier} tier, driver level`, { skip: unavailableTier[tier] ? `${tier} tier unavailable: ${unavailableTier[tier]}` : false }, () => {
  test('catalogue 16: a fork bomb meets pids.max → pids_limit while a canary container answers; every process of the container goes with its leaf', async () => {
    // A small pids.max, so that the pids limit, not memory, is what a Node-only bomb meets first. gVisor's
    // sentry and gofer need host tasks of their own (about 40 to start here).
    // No spares: the leaves left after the test are then all this instance's.
    const driver = new ContainerDriver({ runtime, pids: runtime === 'runsc' ? 100 : 40, spareContainers: 0 });
    await driver.start();
    try {
      const canary = await driver.createInstance({ ...testSpec(`module.exports = { default: { fetch: () => new Response('still here') } };`, {}, 'canary'), concurrency: 1 });
      let asked = 0;
      const askCanary = async (): Promise<string | null> => {
        const r = await canary.invoke({ kind: 'http', invocationId: `canary-${++asked}`, request: { method: 'GET', url: 'http://fn.test/', headers: [] }, body: null });
        if (r.kind !== 'response') return JSON.stringify(r.completion.error);
        const parts: Uint8Array[] = [];
        for await (const c of r.body) parts.push(c);
        const text = Buffer.concat(parts).toString();
        return text === 'still here' ? null : text;
      };
      const inst = (await driver.createInstance({
        ...testSpec(
          `const { spawn } = require('node:child_process');
          module.exports = { default: { async fetch() {
            const kids = [];
            for (let i = 0; i < 1000; i++) {
              const kid = spawn('/runtime/node', ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
              await new Promise((resolve, reject) => kid.once('spawn', resolve).once('error', reject));
              kids.push(kid);
            }
            return new Response('spawned ' + kids.length);
          } } };`,
          { memoryMb: 1024, timeoutMs: 20_000 },
          'forks',
        ),
        concurrency: 1,
      })) as ContainerInstance;
      const exits: Array<string | null> = [];
      inst.onExit((x) => exits.push(x.code));
      const r = await withCanaryAsking(askCanary, () => inst.invoke({ kind: 'http', invocationId: 'bomb', request: { method: 'GET', url: 'http://fn.test/', headers: [] }, body: null }));
      assert.equal(r.kind, 'error');
      assert.equal(r.completion.error?.code, 'pids_limit', JSON.stringify(r.completion.error));
      for (let i = 0; i < 100 && inst.state !== 'stopped'; i++) await new Promise((res) => setTimeout(res, 50));
      assert.equal(inst.state, 'stopped');
      assert.deepEqual(exits, ['pids_limit']);
      await inst.stop();
      assert.deepEqual(inst.pids(), []);
      await canary.stop();
      const leaves = readdirSync('/sys/fs/cgroup/pids/continuum', { withFileTypes: true }).filter((d) => d.isDirectory() && d.name.startsWith(`p${process.pid}-`));
      assert.deepEqual(leaves.map((d) => d.name), []);
    } finally {
      await driver.stop();
    }
  });

  test('spares: a cold start takes a pre-started container, which loads its function then; a module that throws is bad_bundle', async () => {
    const driver = new ContainerDriver({ runtime, spareContainers: 1, spareContainerRefillDelayMs: 0 });
    await driver.start();
    const spareReady = async () => {
      for (let i = 0; i < 300 && driver.spares < 1; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(driver.spares, 1, 'no spare container within 30 s');
    };
    const spec = (code: string): InstanceSpec => ({ ...testSpec(code, {}, 'spare'), concurrency: 4, env: { GREETING: 'from a spare' } });
    try {
      await spareReady();
      const inst = await driver.createInstance(spec(`module.exports = { default: { async fetch(request, env) {
        return Response.json({ greeting: env.GREETING, processEnv: process.env.GREETING, keys: process.env.CONTINUUM_ENV_KEYS });
      } } };`));
      assert.equal(inst.initTiming.sandboxMs, 0, 'the container was started before the instance was asked for');
      const r = await inst.invoke({ kind: 'http', invocationId: 'first', request: { method: 'GET', url: 'http://fn.test/', headers: [] }, body: null });
      assert.equal(r.kind, 'response');
      if (r.kind === 'response') {
        const parts: Uint8Array[] = [];
        for await (const c of r.body) parts.push(c);
        assert.deepEqual(JSON.parse(Buffer.concat(parts).toString()), { greeting: 'from a spare', processEnv: 'from a spare', keys: 'GREETING' });
      }
      await spareReady();
      await assert.rejects(driver.createInstance(spec(`throw new Error('boom at load')`)), (err: { code?: string; message: string }) => err.code === 'bad_bundle' && /boom at load/.test(err.message));
      // The spare that failed is not handed on: the next one serves.
      await spareReady();
      const next = await driver.createInstance(spec(`module.exports = { default: { fetch: () => new Response('next') } };`));
      assert.equal(await inst.invoke({ kind: 'http', invocationId: 'again', request: { method: 'GET', url: 'http://fn.test/', headers: [] }, body: null }).then((x) => x.kind), 'response');
      await next.stop();
      await inst.stop();
    } finally {
      await driver.stop();
    }
  });
});
}

/** A free TCP port on the host (for the bare runc run, which shares the host's network). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

const IMAGE_FN = `module.exports = { default: { async fetch(request, env) { return new Response('image says ' + (env.GREETING ?? 'nothing') + ' at ' + new URL(request.url).pathname, { headers: { 'x-from': 'image' } }); } } };`;

describe('images built by continuum image build', { skip: unavailable ? `container tier unavailable: ${unavailable}` : false }, () => {
  let image: Buffer;
  before(async () => {
    image = await buildFunctionImage({
      nodePath: process.execPath,
      code: IMAGE_FN,
      load: { functionName: 'img', versionId: 'v1', format: 'fetch', exportName: 'default', payload: '2.0', memoryLimitMb: 128, timeoutMs: 10_000, cpuMs: 10_000, responseBytes: 1 << 20, subrequests: 10, logBytes: 1 << 16 },
    });
  });

  const request: () => InvokeRequest = () => ({ kind: 'http', invocationId: `img-${Math.random()}`, request: { method: 'GET', url: 'http://fn.test/hello', headers: [] }, body: null });

  for (const runtime of ['runc', 'runsc'] as const) {
    test(`the image runs from the store on the ${runtime === 'runc' ? 'container' : 'gvisor'} tier`, async (t) => {
      const driver = new ContainerDriver({ runtime });
      await driver.start();
      try {
        if (!driver.status().available) return t.skip(`unavailable: ${driver.status().reason}`);
        const stored = await driver.images.import(Readable.from([image]));
        const inst = await driver.createInstance(imageSpec(stored.id));
        const r = await inst.invoke(request());
        assert.equal(r.kind, 'response');
        if (r.kind !== 'response') return;
        let text = '';
        for await (const c of r.body) text += Buffer.from(c).toString();
        assert.equal(text, 'image says hi at /hello');
        assert.equal(r.headers.find(([k]) => k === 'x-from')?.[1], 'image');
        await inst.stop();
      } finally {
        await driver.stop();
      }
    });
  }

  test('an uploaded image deploys as a version of a container-tier function and answers; on another tier it is refused, nothing stored', async () => {
    const node = await startTestNode({ config: { containerTiers: true } });
    const deploy = (name: string, type: string, config: Record<string, unknown>) =>
      fetch(`${node.url}/v1/functions/${name}/deploy`, {
        method: 'POST',
        headers: { authorization: `Bearer ${node.token}`, 'content-type': type, 'continuum-config': JSON.stringify(config) },
        body: image,
      });
    try {
      const refused = await deploy('img-iso', 'application/x-tar', { tier: 'isolate' });
      assert.equal(refused.status, 400);
      const body = (await refused.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'bad_bundle');
      assert.match(body.error.message, /container or gvisor tier/);
      assert.equal((await node.api('GET', '/v1/functions/img-iso')).status, 404, 'nothing stored');
      const ok = await deploy('img-fn', 'application/vnd.oci.image.layout.v1+tar', { tier: 'container', env: { GREETING: 'hi' } });
      const deployed = (await ok.json()) as { version: { id: string; image?: string; bundleDigest: string } };
      assert.equal(ok.status, 201, JSON.stringify(deployed));
      assert.match(deployed.version.image ?? '', /^sha256:[0-9a-f]{64}$/);
      assert.equal(deployed.version.bundleDigest, deployed.version.image!.slice(7));
      const res = await node.fn('/fn/img-fn/hello');
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'image says hi at /hello');
      assert.equal(res.headers.get('x-from'), 'image');
      // A config change makes a new version of the same image.
      const updated = await node.api('PATCH', '/v1/functions/img-fn', { config: { env: { GREETING: 'yo' } } });
      assert.equal(updated.status, 200, JSON.stringify(updated.json));
      assert.equal(await (await node.fn('/fn/img-fn/hello')).text(), 'image says yo at /hello');
      // The CLI deploys an image file the same way.
      const dir = mkdtempSync(join(tmpdir(), 'continuum-image-cli-'));
      try {
        writeFileSync(join(dir, 'fn.tar'), image);
        const cli = await run(process.execPath, [new URL('../bin/continuum.mjs', import.meta.url).pathname, 'deploy', join(dir, 'fn.tar'), '--name', 'img-cli', '--tier', 'container', '--json'], {
          env: { ...process.env, CONTINUUM_URL: node.url, CONTINUUM_TOKEN: node.token, CI: 'true' },
        });
        assert.match(JSON.parse(cli.stdout).version.image, /^sha256:/);
        assert.equal(await (await node.fn('/fn/img-cli/hello')).text(), 'image says nothing at /hello');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      // Garbage collection: the image stays while a version uses it, and goes (record, rootfs, blobs)
      // with the last function that does; the runtime image stays.
      const store = join(node.dataDir, 'images', 'runc');
      const hex = deployed.version.image!.slice(7);
      assert.equal((await node.api('DELETE', '/v1/functions/img-cli')).status, 204);
      assert.ok(existsSync(join(store, 'images', `${hex}.json`)), 'img-fn still uses the image');
      // A deploy of the same image in flight holds it: the collection after img-fn's delete (which finds
      // no stored version naming it) keeps it, and img-late's cold start runs from it.
      const late = deploy('img-late', 'application/vnd.oci.image.layout.v1+tar', { tier: 'container' });
      await new Promise((r) => setTimeout(r, 100));
      assert.equal((await node.api('DELETE', '/v1/functions/img-fn')).status, 204);
      assert.equal((await late).status, 201);
      await node.api('DELETE', '/v1/functions/img-late/instances');
      assert.equal(await (await node.fn('/fn/img-late/x')).text(), 'image says nothing at /x');
      assert.equal((await node.api('DELETE', '/v1/functions/img-late')).status, 204);
      assert.deepEqual([existsSync(join(store, 'images', `${hex}.json`)), existsSync(join(store, 'rootfs', hex))], [false, false]);
      const left = readdirSync(join(store, 'images'));
      assert.equal(left.length, 1, 'the runtime image stays');
      const runtime = JSON.parse(readFileSync(join(store, 'images', left[0]!), 'utf8')) as { id: string; layers: string[] };
      // Blobs the runtime image shares with the removed one (its Node layer) stay; none other.
      assert.deepEqual(readdirSync(join(store, 'blobs', 'sha256')).sort(), [runtime.id, ...runtime.layers].map((d) => d.slice(7)).sort());
      assert.match(node.logs.join('\n'), /container tier: removed 1 unused image\(s\): sha256:/);
    } finally {
      await node.stop();
    }
  });

  test('the image runs under a bare `runc run` and answers the same', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'continuum-bare-runc-'));
    const driver = new ContainerDriver({ runtime: 'runc', imageDir: join(dir, 'store') });
    await driver.start();
    const id = `bare-${process.pid}`;
    try {
      const stored = await driver.images.import(Readable.from([image]));
      const bundle = join(dir, 'bundle');
      mkdirSync(bundle);
      // runc's own default spec, pointed at the unpacked image, sharing the host network on a free port.
      execFileSync('runc', ['spec', '--bundle', bundle]);
      const port = await freePort();
      const config = JSON.parse(execFileSync('cat', [join(bundle, 'config.json')], { encoding: 'utf8' }));
      config.process.terminal = false;
      config.process.args = stored.config.args;
      config.process.env = [...stored.config.env.filter((e: string) => !e.startsWith('PORT=')), `PORT=${port}`, 'GREETING=hi', 'CONTINUUM_ENV_KEYS=GREETING'];
      config.process.user = { uid: stored.config.uid, gid: stored.config.gid };
      config.root = { path: stored.rootfs, readonly: true };
      config.linux.namespaces = config.linux.namespaces.filter((n: { type: string }) => n.type !== 'network');
      config.mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] });
      writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
      const child = spawn('runc', ['run', '--bundle', bundle, id], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise((r) => child.once('exit', r));
      try {
        let res: Response | null = null;
        for (let i = 0; i < 100 && !res; i++) {
          res = await fetch(`http://127.0.0.1:${port}/hello`).catch(() => null);
          if (!res) await new Promise((r) => setTimeout(r, 50));
        }
        assert.ok(res, `the container never answered: ${stderr}`);
        assert.equal(await res.text(), 'image says hi at /hello');
        assert.equal(res.headers.get('x-from'), 'image');
      } finally {
        await run('runc', ['kill', id, 'KILL']).catch(() => {});
        await exited;
        await run('runc', ['delete', '-f', id]).catch(() => {});
      }
      assert.equal(IMAGE_PORT, 8080);
    } finally {
      await driver.stop();
      rmSync(dir, { recursive: true, force: true });
      assert.equal(existsSync(dir), false);
    }
  });
});
