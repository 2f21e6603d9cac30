import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ContinuumError } from '../../core/errors.ts';
import { CliError } from '../errors.ts';
import { planDeploy } from './deploy.ts';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'continuum-deploy-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a single file: name from the file, --name and --tier override', () =>
  withDir(async (dir) => {
    const file = path.join(dir, 'Image_Resize.ts');
    await writeFile(file, 'export default {}');
    assert.deepEqual(await planDeploy(file, {}), { manifest: undefined, jobs: [{ name: 'image-resize', path: file, config: {} }] });
    assert.deepEqual((await planDeploy(file, { name: 'thumbs', tier: 'isolate' })).jobs, [{ name: 'thumbs', path: file, config: { tier: 'isolate' } }]);
    await assert.rejects(planDeploy(file, { name: 'Not Valid' }), (e: unknown) => e instanceof ContinuumError && e.code === 'bad_name');
  }));

test('a directory holding continuum.yaml deploys its functions; --name picks one; --tier overrides all', () =>
  withDir(async (dir) => {
    await mkdir(path.join(dir, 'api'));
    await writeFile(path.join(dir, 'hello.ts'), 'export default {}');
    await writeFile(path.join(dir, 'api', 'index.js'), 'export default {}');
    await writeFile(path.join(dir, 'continuum.yaml'), 'functions:\n  hello:\n    path: hello.ts\n    scale: { maxInstances: 2 }\n  api:\n    path: ./api\n');
    const all = await planDeploy(dir, {});
    assert.equal(all.manifest, path.join(dir, 'continuum.yaml'));
    assert.deepEqual(all.jobs, [
      { name: 'hello', path: path.join(dir, 'hello.ts'), line: 2, config: { scale: { maxInstances: 2 } } },
      { name: 'api', path: path.join(dir, 'api'), line: 5, config: {} },
    ]);
    const one = await planDeploy(path.join(dir, 'continuum.yaml'), { name: 'api', tier: 'isolate' });
    assert.deepEqual(one.jobs, [{ name: 'api', path: path.join(dir, 'api'), line: 5, config: { tier: 'isolate' } }]);
    await assert.rejects(planDeploy(dir, { name: 'other' }), (e: unknown) => e instanceof CliError && e.exitCode === 1 && /has no function "other" \(it has hello, api\)/.test(e.message));
  }));

test('a directory without a manifest is one function named after the directory', () =>
  withDir(async (dir) => {
    const fn = path.join(dir, 'orders-api');
    await mkdir(fn);
    await writeFile(path.join(fn, 'index.js'), 'export default {}');
    assert.deepEqual((await planDeploy(fn, {})).jobs, [{ name: 'orders-api', path: fn, config: {} }]);
  }));

test('triggers, bindings and async settings in continuum.yaml reach the deploy as given', () =>
  withDir(async (dir) => {
    await writeFile(path.join(dir, 'worker.js'), 'export default {}');
    await writeFile(path.join(dir, 'continuum.yaml'), [
      'functions:',
      '  worker:',
      '    path: worker.js',
      '    triggers:',
      '      - { type: queue, queue: jobs, batchSize: 5, maxRetries: 1 }',
      "      - { type: cron, schedule: '*/5 * * * *', timezone: Europe/Paris }",
      '    bindings: { OUT: { queue: results } }',
      '    async: { maxRetries: 0, onFailure: { queue: failures }, onSuccess: { function: audit } }',
    ].join('\n'));
    const { jobs } = await planDeploy(dir, { tier: 'isolate' });
    assert.deepEqual(jobs[0]?.config, {
      triggers: [
        { type: 'queue', queue: 'jobs', batchSize: 5, maxRetries: 1 },
        { type: 'cron', schedule: '*/5 * * * *', timezone: 'Europe/Paris' },
      ],
      bindings: { OUT: { queue: 'results' } },
      async: { maxRetries: 0, onFailure: { queue: 'failures' }, onSuccess: { function: 'audit' } },
      tier: 'isolate',
    });
  }));
