import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RoutingTable } from './router.ts';

const table = new RoutingTable([
  { name: 'hello', routes: [], requestBodyBytes: 10 },
  { name: 'api', routes: [{ path: '/api', methods: ['GET', 'POST'] }, { path: '/api/admin', host: 'admin.example.com' }], requestBodyBytes: 20 },
  { name: 'wild', routes: [{ path: '/', host: '*.tenant.test' }], requestBodyBytes: 30 },
]);

test('route table', () => {
  const rows: Array<[string, string, string, string | null, string | null]> = [
    // method, host, path → function, function path
    ['GET', 'x', '/fn/hello', 'hello', '/'],
    ['GET', 'x', '/fn/hello/', 'hello', '/'],
    ['POST', 'x', '/fn/hello/a/b', 'hello', '/a/b'],
    ['GET', 'x', '/fn/nope/a', null, null],
    ['GET', 'x', '/fn/Bad_Name/a', null, null],
    ['GET', 'x', '/fn/../etc', null, null],
    ['GET', 'x', '/api', 'api', '/api'],
    ['GET', 'x:8080', '/api/users/1', 'api', '/api/users/1'],
    ['GET', 'x', '/apix', null, null],
    ['GET', 'admin.example.com:8080', '/api/admin/x', 'api', '/api/admin/x'],
    ['DELETE', 'admin.example.com', '/api/admin', 'api', '/api/admin'],
    ['GET', 'a.tenant.test', '/anything', 'wild', '/anything'],
    ['GET', 'tenant.test', '/anything', null, null],
    ['GET', 'evil-tenant.test', '/x', null, null],
  ];
  for (const [method, host, path, fn, fnPath] of rows) {
    const m = table.match(method, host, path);
    if (fn === null) assert.equal(m, null, `${method} ${host}${path}`);
    else {
      assert.equal(m?.kind, 'function', `${method} ${host}${path}`);
      if (m?.kind === 'function') {
        assert.equal(m.target.functionName, fn);
        assert.equal(m.path, fnPath);
      }
    }
  }
});

test('wrong method on a custom route says which are allowed', () => {
  assert.deepEqual(table.match('DELETE', 'x', '/api/users'), { kind: 'method_not_allowed', allowed: ['GET', 'POST'] });
  assert.equal(table.match('HEAD', 'x', '/api')?.kind, 'function');
});

test('adversarial paths match in linear time', () => {
  const long = '/api' + '/a'.repeat(50_000);
  const t0 = performance.now();
  for (let i = 0; i < 100; i++) table.match('GET', 'x'.repeat(1000), long);
  assert.ok(performance.now() - t0 < 1000);
});
