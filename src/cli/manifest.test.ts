import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CliError } from './errors.ts';
import { loadManifest, parseManifest, queueRefs } from './manifest.ts';

function failsAt(source: string, line: number, pattern: RegExp): void {
  assert.throws(
    () => parseManifest(source, '/proj/continuum.yaml'),
    (err: unknown) => {
      assert.ok(err instanceof CliError, String(err));
      assert.equal(err.exitCode, 1);
      assert.equal(err.details?.line, line, err.message);
      assert.match(err.message, pattern);
      return true;
    },
  );
}

test('a valid manifest gives each function its absolute path and validated config', () => {
  const m = parseManifest(
    [
      'functions:',
      '  hello:',
      '    path: ./hello.ts',
      '  api:',
      '    path: src/api',
      '    tier: isolate',
      '    limits: { timeoutMs: 5000, memoryMb: 256 }',
      '    routes:',
      '      - path: /api',
      '        methods: [GET, POST]',
      '    env:',
      '      LOG_LEVEL: debug',
    ].join('\n'),
    '/proj/continuum.yaml',
  );
  assert.deepEqual(m.functions.map((f) => [f.name, f.path, f.line]), [
    ['hello', '/proj/hello.ts', 2],
    ['api', '/proj/src/api', 4],
  ]);
  assert.deepEqual(m.functions[0]?.config, {});
  assert.deepEqual(m.functions[1]?.config, {
    tier: 'isolate',
    limits: { timeoutMs: 5000, memoryMb: 256 },
    routes: [{ path: '/api', methods: ['GET', 'POST'] }],
    env: { LOG_LEVEL: 'debug' },
  });
});

test('a value out of range points at its line and names the dotted field', () => {
  failsAt(['functions:', '  hello:', '    path: ./hello.ts', '    limits:', '      timeoutMs: 99999999'].join('\n'), 5, /continuum\.yaml:5:18: functions\.hello\.limits\.timeoutMs must be <= 900000$/);
});

test('an unknown key points at the key itself', () => {
  failsAt(['functions:', '  hello:', '    path: ./hello.ts', '    limits:', '      timeoutMs: 1000', '      memory: 128'].join('\n'), 6, /:6:7: functions\.hello\.limits\.memory is not a known field/);
  failsAt(['functions:', '  hello:', '    path: ./hello.ts', '    runtime: node22'].join('\n'), 4, /functions\.hello\.runtime is not a known field/);
  failsAt(['functions: {}', 'stage: prod'].join('\n'), 2, /stage is not a known field/);
});

test('an invalid item inside a list points at that item', () => {
  failsAt(['functions:', '  hello:', '    path: ./hello.ts', '    routes:', '      - path: /ok', '      - path: no-slash'].join('\n'), 6, /functions\.hello\.routes\[1\]\.path/);
});

test('wrong types, bad names and a missing path are reported with lines', () => {
  failsAt(['functions:', '  hello:', '    path: ./hello.ts', '    env:', '      PORT: 8080'].join('\n'), 5, /functions\.hello\.env\.PORT must be string/);
  failsAt(['functions:', '  Hello_World:', '    path: ./a.ts'].join('\n'), 2, /function name "Hello_World" is invalid/);
  failsAt(['functions:', '  hello:', '    tier: isolate'].join('\n'), 2, /functions\.hello\.path is missing/);
  failsAt(['functions:', '  hello:', '    path: ./a.ts', '    tier: quantum'].join('\n'), 4, /functions\.hello\.tier must be one of: isolate, process, container, gvisor, microvm/);
});

test('event settings: triggers, bindings and async pass through validated', () => {
  const m = parseManifest(
    [
      'functions:',
      '  worker:',
      '    path: ./worker.js',
      '    triggers:',
      '      - type: queue',
      '        queue: jobs',
      '        batchSize: 5',
      '        retryBaseDelayMs: 100',
      '        retryMaxDelayMs: 1000',
      '      - type: cron',
      "        schedule: '0 * * * *'",
      '        missed: run-once',
      '    bindings:',
      '      OUT: { queue: results }',
      '    async:',
      '      maxRetries: 1',
      '      onFailure: { queue: failures }',
      '      onSuccess: { function: audit }',
    ].join('\n'),
    '/proj/continuum.yaml',
  );
  const config = m.functions[0]?.config;
  assert.deepEqual(config, {
    triggers: [
      { type: 'queue', queue: 'jobs', batchSize: 5, retryBaseDelayMs: 100, retryMaxDelayMs: 1000 },
      { type: 'cron', schedule: '0 * * * *', missed: 'run-once' },
    ],
    bindings: { OUT: { queue: 'results' } },
    async: { maxRetries: 1, onFailure: { queue: 'failures' }, onSuccess: { function: 'audit' } },
  });
  assert.deepEqual(queueRefs(config ?? {}), [
    { queue: 'jobs', field: 'triggers[0].queue' },
    { queue: 'results', field: 'bindings.OUT.queue' },
    { queue: 'failures', field: 'async.onFailure.queue' },
  ]);
});

test('a bad trigger is judged by the type it names, not by the first kind of trigger', () => {
  const fn = ['functions:', '  w:', '    path: ./w.js', '    triggers:'];
  failsAt([...fn, '      - type: cron', '        schedule: x'].join('\n'), 6, /:6:19: functions\.w\.triggers\[0\]\.schedule must NOT have fewer than 9 characters$/);
  failsAt([...fn, '      - type: cron', '        queue: jobs', "        schedule: '* * * * *'"].join('\n'), 6, /:6:9: functions\.w\.triggers\[0\]\.queue is not a known field$/);
  failsAt([...fn, '      - type: sqs', '        queue: jobs'].join('\n'), 5, /functions\.w\.triggers\[0\]\.type must be one of: queue, cron$/);
  failsAt([...fn, '      - queue: jobs'].join('\n'), 5, /functions\.w\.triggers\[0\]\.type must be one of: queue, cron$/);
  failsAt([...fn, '      - type: queue', '        queue: jobs', '        batchSize: 0'].join('\n'), 7, /functions\.w\.triggers\[0\]\.batchSize must be >= 1$/);
  failsAt([...fn, '      - type: queue', '        queue: jobs', '        retryBaseDelayMs: 5000', '        retryMaxDelayMs: 10'].join('\n'), 5, /functions\.w\.triggers: retryMaxDelayMs must not be below retryBaseDelayMs$/);
});

test('bad binding names and destinations say what is expected', () => {
  const fn = ['functions:', '  w:', '    path: ./w.js'];
  failsAt([...fn, '    bindings:', '      out: { queue: results }'].join('\n'), 5, /:5:7: functions\.w\.bindings\.out is not a valid key here \(keys must match \^\[A-Z\]/);
  failsAt([...fn, '    bindings:', '      OUT: { topic: results }'].join('\n'), 5, /functions\.w\.bindings\.OUT must be \{ queue: … \} or \{ function: … \}$/);
  failsAt([...fn, '    async:', '      onFailure: { topic: x }'].join('\n'), 5, /functions\.w\.async\.onFailure must be \{ queue: … \} or \{ function: … \}$/);
  failsAt([...fn, '    async:', '      maxRetries: 99'].join('\n'), 5, /functions\.w\.async\.maxRetries must be <= /);
});

test('YAML syntax errors and duplicate keys carry the line too', () => {
  failsAt(['functions:', '  hello:', '    path: ./a.ts', '  hello:', '    path: ./b.ts'].join('\n'), 4, /invalid YAML/);
  failsAt(['functions:', '  hello:', '    path: [unclosed'].join('\n'), 3, /invalid YAML/);
});

test('a manifest without functions is explained', () => {
  failsAt('hello: world', 1, /hello is not a known field/);
  failsAt('functions:', 1, /functions must map function names/);
});

test('loadManifest checks that every path exists, relative to the manifest', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'continuum-manifest-'));
  try {
    await writeFile(path.join(dir, 'a.ts'), 'export default { fetch() { return new Response("a") } }');
    await writeFile(path.join(dir, 'continuum.yaml'), 'functions:\n  a:\n    path: a.ts\n  b:\n    path: ./missing.ts\n');
    await assert.rejects(loadManifest(path.join(dir, 'continuum.yaml')), (err: unknown) => {
      assert.ok(err instanceof CliError);
      assert.equal(err.details?.line, 4);
      assert.match(err.message, /functions\.b\.path: .*missing\.ts does not exist/);
      return true;
    });
    await writeFile(path.join(dir, 'continuum.yaml'), 'functions:\n  a:\n    path: a.ts\n');
    const m = await loadManifest(path.join(dir, 'continuum.yaml'));
    assert.equal(m.functions[0]?.path, path.join(dir, 'a.ts'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
