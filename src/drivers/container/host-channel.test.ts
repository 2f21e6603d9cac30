import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { BindingMessage, ServiceRequest } from '../../core/driver.ts';
import { ContinuumError } from '../../core/errors.ts';
import { HostChannel } from './host-channel.ts';

const dir = mkdtempSync(join(tmpdir(), 'host-channel-'));
const socketPath = join(dir, 'host.sock');
const sends: Array<{ inv: string | null; binding: string; messages: BindingMessage[] }> = [];
const calls: Array<{ inv: string | null; binding: string; request: ServiceRequest }> = [];
let channel: HostChannel;

before(async () => {
  channel = await HostChannel.open(
    socketPath,
    process.getuid!(),
    {
      sendToQueue: async (inv, binding, messages) => {
        if (binding === 'FULL') throw new ContinuumError('unavailable', 'the store is out of disk space');
        sends.push({ inv, binding, messages });
        return messages.map((_, i) => `id${i}`);
      },
      callService: async (inv, binding, req) => {
        calls.push({ inv, binding, request: req });
        return { status: 201, headers: [['x-a', 'b']], body: new TextEncoder().encode('made') };
      },
    },
    1024,
  );
});
after(async () => {
  await channel.close();
  rmSync(dir, { recursive: true, force: true });
});

function post(path: string, body: string, headers: Record<string, string> = {}, method = 'POST'): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, agent: false, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('the socket belongs to the container uid alone', () => {
  const st = statSync(socketPath);
  assert.equal(st.uid, process.getuid!());
  assert.equal(st.mode & 0o777, 0o600);
});

test('a queue send is decoded (base64 bodies, content type, delay) and names the calling invocation', async () => {
  const body = JSON.stringify({ messages: [{ body: Buffer.from('hello').toString('base64'), contentType: 'text/plain' }, { body: '', contentType: 'application/json', delayMs: 5000 }] });
  const r = await post('/v1/queues/OUT', body, { 'x-continuum-invocation': 'inv-1' });
  assert.deepEqual(r, { status: 200, json: { ids: ['id0', 'id1'] } });
  const sent = sends.at(-1)!;
  assert.deepEqual([sent.inv, sent.binding, new TextDecoder().decode(sent.messages[0]!.body), sent.messages[1]!.delayMs], ['inv-1', 'OUT', 'hello', 5000]);
});

test('a service call goes out decoded and its answer comes back with the body in base64', async () => {
  const r = await post('/v1/services/USERS', JSON.stringify({ method: 'PUT', url: 'http://users/u/1', headers: [['a', 'b']], body: Buffer.from('x').toString('base64') }));
  assert.deepEqual(r, { status: 200, json: { status: 201, headers: [['x-a', 'b']], body: Buffer.from('made').toString('base64') } });
  assert.deepEqual([calls.at(-1)!.inv, calls.at(-1)!.request.method, calls.at(-1)!.request.url], [null, 'PUT', 'http://users/u/1']);
});

test('bad input of every kind is refused with its code, and nothing reaches a queue or a function', async () => {
  const before = [sends.length, calls.length];
  const msg = (m: object) => JSON.stringify({ messages: [m] });
  const cases: Array<[string, string, number, string, string?]> = [
    ['/v1/queues/OUT', 'not json', 400, 'bad_request'],
    ['/v1/queues/OUT', '[]', 400, 'bad_request'],
    ['/v1/queues/OUT', JSON.stringify({ messages: [] }), 400, 'bad_request'],
    ['/v1/queues/OUT', msg({ body: 'not base64!', contentType: 'text/plain' }), 400, 'bad_request'],
    ['/v1/queues/OUT', msg({ body: 'eA==' }), 400, 'bad_request'],
    ['/v1/queues/OUT', msg({ body: 'eA==', contentType: 'text/plain\n' }), 400, 'bad_request'],
    ['/v1/queues/OUT', msg({ body: 'eA==', contentType: 'text/plain', delayMs: -1 }), 400, 'bad_request'],
    ['/v1/queues/OUT', msg({ body: 'eA==', contentType: 'text/plain', delayMs: '5' }), 400, 'bad_request'],
    ['/v1/queues/OUT', msg({ body: Buffer.alloc(300 * 1024).toString('base64'), contentType: 'text/plain' }), 413, 'payload_too_large'],
    ['/v1/queues/OUT', JSON.stringify({ messages: Array.from({ length: 101 }, () => ({ body: '', contentType: 'text/plain' })) }), 400, 'bad_request'],
    ['/v1/queues/lower', msg({ body: '', contentType: 'text/plain' }), 404, 'not_found'],
    ['/v1/queues/OUT/x', msg({ body: '', contentType: 'text/plain' }), 404, 'not_found'],
    ['/v1/topics/OUT', '{}', 404, 'not_found'],
    ['/v1/queues/OUT', '{}', 405, 'method_not_allowed', 'GET'],
    ['/v1/services/USERS', JSON.stringify({ method: 'GET', url: 'relative', headers: [], body: null }), 400, 'bad_request'],
    ['/v1/services/USERS', JSON.stringify({ method: 'G ET', url: 'http://x/', headers: [], body: null }), 400, 'bad_request'],
    ['/v1/services/USERS', JSON.stringify({ method: 'GET', url: 'http://x/', headers: [['a']], body: null }), 400, 'bad_request'],
    ['/v1/services/USERS', JSON.stringify({ method: 'POST', url: 'http://x/', headers: [], body: Buffer.alloc(2048).toString('base64') }), 413, 'payload_too_large'],
  ];
  for (const [path, body, status, code, method] of cases) {
    const r = await post(path, body, {}, method);
    assert.deepEqual([r.status, r.json.error?.code], [status, code], `${method ?? 'POST'} ${path} ${body.slice(0, 80)}`);
  }
  assert.deepEqual([sends.length, calls.length], before);
});

test("a handler's refusal keeps its code (here the store's)", async () => {
  const r = await post('/v1/queues/FULL', JSON.stringify({ messages: [{ body: '', contentType: 'text/plain' }] }));
  assert.deepEqual([r.status, r.json.error.code], [503, 'unavailable']);
});
