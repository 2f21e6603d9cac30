import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { CliError } from './errors.ts';
import { contentTypeFor, packDirectory, prepareUpload, DEFAULT_PACK_LIMITS } from './pack.ts';

async function untar(tgz: Buffer): Promise<Map<string, { body: string; mode: number | undefined; type: string | null | undefined }>> {
  const out = new Map<string, { body: string; mode: number | undefined; type: string | null | undefined }>();
  const extract = tar.extract();
  Readable.from([gunzipSync(tgz)]).pipe(extract);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    out.set(entry.header.name, { body: Buffer.concat(chunks).toString('utf8'), mode: entry.header.mode, type: entry.header.type });
  }
  return out;
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'continuum-pack-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a directory packs to a tgz with node_modules but without .git, .continuum or .bin shims', () =>
  withDir(async (root) => {
    const dir = path.join(root, 'my-fn');
    await mkdir(path.join(dir, 'src'), { recursive: true });
    await mkdir(path.join(dir, 'node_modules', 'left-pad'), { recursive: true });
    await mkdir(path.join(dir, 'node_modules', '.bin'), { recursive: true });
    await mkdir(path.join(dir, '.git', 'objects'), { recursive: true });
    await mkdir(path.join(dir, '.continuum'), { recursive: true });
    await writeFile(path.join(dir, 'package.json'), '{"name":"my-fn","main":"src/index.js"}');
    await writeFile(path.join(dir, 'src', 'index.js'), 'export default {}');
    await writeFile(path.join(dir, 'node_modules', 'left-pad', 'index.js'), 'module.exports = 1');
    await writeFile(path.join(dir, 'node_modules', '.bin', 'left-pad'), '#!/bin/sh');
    await writeFile(path.join(dir, '.git', 'HEAD'), 'ref: main');
    await writeFile(path.join(dir, '.continuum', 'state.db'), 'x');
    await writeFile(path.join(dir, 'run.sh'), '#!/bin/sh');
    await chmod(path.join(dir, 'run.sh'), 0o755);
    await symlink('src/index.js', path.join(dir, 'alias.js'));
    await symlink('/etc/hostname', path.join(dir, 'outside'));

    const upload = await packDirectory(dir);
    assert.equal(upload.contentType, 'application/gzip');
    assert.equal(upload.filename, 'my-fn.tgz');
    const entries = await untar(upload.body);
    assert.deepEqual([...entries.keys()], ['alias.js', 'node_modules/left-pad/index.js', 'package.json', 'run.sh', 'src/index.js']);
    assert.equal(entries.get('alias.js')?.body, 'export default {}', 'symlinks inside the directory are followed');
    assert.equal(entries.get('src/index.js')?.type, 'file');
    assert.equal(entries.get('run.sh')?.mode, 0o755);
    assert.equal(entries.get('package.json')?.mode, 0o644);
    assert.equal(upload.packed?.entries, 5);
    assert.deepEqual(upload.packed?.skipped, ['outside (symlink leaves the directory)']);

    const again = await packDirectory(dir);
    assert.ok(again.body.equals(upload.body), 'packing is deterministic');
  }));

test('packing stops with a clear user error over the size and entry limits', () =>
  withDir(async (dir) => {
    await writeFile(path.join(dir, 'a.js'), 'x'.repeat(2000));
    await writeFile(path.join(dir, 'b.js'), 'y'.repeat(2000));
    await assert.rejects(packDirectory(dir, { ...DEFAULT_PACK_LIMITS, maxEntries: 1 }), (err: unknown) => err instanceof CliError && err.exitCode === 1 && /more than 1 files/.test(err.message));
    await assert.rejects(packDirectory(dir, { ...DEFAULT_PACK_LIMITS, maxExtractedBytes: 3000 }), (err: unknown) => err instanceof CliError && /unpacked size limit/.test(err.message));
    await assert.rejects(packDirectory(dir, { ...DEFAULT_PACK_LIMITS, maxUploadBytes: 10 }), (err: unknown) => err instanceof CliError && /over the 10 B upload limit/.test(err.message));
  }));

test('an empty directory is refused', () =>
  withDir(async (dir) => {
    await assert.rejects(packDirectory(dir), (err: unknown) => err instanceof CliError && /empty/.test(err.message));
  }));

test('single files go as they are, typed by extension', () =>
  withDir(async (dir) => {
    assert.equal(contentTypeFor('a.mjs'), 'application/javascript');
    assert.equal(contentTypeFor('a.cjs'), 'application/javascript');
    assert.equal(contentTypeFor('a.mts'), 'application/typescript');
    assert.equal(contentTypeFor('a.zip'), 'application/zip');
    assert.equal(contentTypeFor('a.tar.gz'), 'application/gzip');
    assert.equal(contentTypeFor('a.py'), undefined);
    await writeFile(path.join(dir, 'hello.ts'), 'export default {}');
    const up = await prepareUpload(path.join(dir, 'hello.ts'));
    assert.equal(up.contentType, 'application/typescript');
    assert.equal(up.filename, 'hello.ts');
    assert.equal(up.body.toString(), 'export default {}');
    await writeFile(path.join(dir, 'main.py'), 'print(1)');
    await assert.rejects(prepareUpload(path.join(dir, 'main.py')), (err: unknown) => err instanceof CliError && err.exitCode === 1 && /cannot deploy main\.py/.test(err.message));
  }));
