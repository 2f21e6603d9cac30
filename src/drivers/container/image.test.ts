/**
 * Image import: OCI layouts and `docker save` tarballs crafted here (no registry), applied layer by layer,
 * and the unsafe ones refused with nothing stored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { ImageStore, type ImageLimits } from './image.ts';

type E = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo'; data?: string | Buffer; mode?: number; linkname?: string };

async function tarOf(entries: E[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((r) => pack.on('end', () => r()));
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = { name: e.name, type, mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644), linkname: e.linkname, devmajor: 1, devminor: 3 };
    if (type === 'file') pack.entry(header, Buffer.from(e.data ?? ''));
    else pack.entry(header);
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Build {
  layers: Buffer[];
  config?: Record<string, unknown>;
  gzip?: boolean;
  /** Corrupt the first layer's bytes after its digest was taken. */
  tamper?: boolean;
}

async function ociImage(b: Build): Promise<Buffer> {
  const blobsOut = b.layers.map((l) => (b.gzip ? gzipSync(l) : l));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/app'], ...(b.config ?? {}) }, rootfs: { type: 'layers', diff_ids: b.layers.map((l) => `sha256:${sha(l)}`) } }));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { digest: `sha256:${sha(config)}` }, layers: blobsOut.map((l) => ({ digest: `sha256:${sha(l)}` })) }));
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ digest: `sha256:${sha(manifest)}` }] }));
  const files: E[] = [{ name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' }, { name: 'index.json', data: index }];
  for (const blob of [config, manifest]) files.push({ name: `blobs/sha256/${sha(blob)}`, data: blob });
  blobsOut.forEach((l, i) => files.push({ name: `blobs/sha256/${sha(l)}`, data: b.tamper && i === 0 ? Buffer.concat([l, Buffer.alloc(512)]) : l }));
  return tarOf(files);
}

async function dockerSave(layers: Buffer[]): Promise<Buffer> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Entrypoint: ['/bin/app'], User: 'app' }, rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${sha(l)}`) } }));
  const files: E[] = [{ name: `${sha(config)}.json`, data: config }, { name: 'manifest.json', data: JSON.stringify([{ Config: `${sha(config)}.json`, RepoTags: ['x:1'], Layers: layers.map((_, i) => `l${i}/layer.tar`) }]) }];
  layers.forEach((l, i) => files.push({ name: `l${i}/layer.tar`, data: l }));
  return tarOf(files);
}

function store(limits: Partial<Record<keyof ImageLimits, number>> = {}): { s: ImageStore; dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'continuum-image-test-'));
  return { s: new ImageStore(dir, limits), dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function nothingStored(dir: string): void {
  assert.deepEqual(readdirSync(join(dir, 'images')), []);
  assert.deepEqual(readdirSync(join(dir, 'rootfs')), []);
  assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
}

test('an OCI layout (gzip layers) is stored content-addressed; layers apply in order with whiteouts', async () => {
  const { s, dir, cleanup } = store();
  try {
    const base = await tarOf([
      { name: 'bin', type: 'directory' },
      { name: 'tmp', type: 'directory', mode: 0o1777 },
      { name: 'opt', type: 'directory', mode: 0o777 },
      { name: 'bin/app', data: 'v1', mode: 0o4755 },
      { name: 'etc/gone', data: 'x' },
      { name: 'data', type: 'directory' },
      { name: 'data/old1', data: 'o' },
      { name: 'data/sub/old2', data: 'o' },
      { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
      { name: 'usr/lib/libx.so', data: 'lib' },
    ]);
    const top = await tarOf([
      { name: 'bin/app', data: 'v2', mode: 0o6755 },
      { name: 'etc/.wh.gone' },
      { name: 'data/.wh..wh..opq' },
      { name: 'data/new', data: 'n' },
      { name: 'lib/liby.so', data: 'through the symlink' },
      { name: 'bin/hard', type: 'link', linkname: 'bin/app' },
    ]);
    const image = await s.import(Readable.from([await ociImage({ layers: [base, top], gzip: true })]));
    const r = image.rootfs;
    assert.equal(readFileSync(join(r, 'bin/app'), 'utf8'), 'v2');
    assert.equal(statSync(join(r, 'bin/app')).mode & 0o7777, 0o755, 'setuid/setgid dropped');
    assert.equal(statSync(join(r, 'tmp')).mode & 0o7777, 0o1777, 'a sticky world-writable /tmp stays one');
    assert.equal(statSync(join(r, 'opt')).mode & 0o7777, 0o755, 'world-writable without sticky is not kept');
    assert.equal(existsSync(join(r, 'etc/gone')), false);
    assert.deepEqual(readdirSync(join(r, 'data')), ['new']);
    assert.equal(readlinkSync(join(r, 'lib')), 'usr/lib');
    assert.equal(readFileSync(join(r, 'usr/lib/liby.so'), 'utf8'), 'through the symlink');
    assert.equal(statSync(join(r, 'bin/hard')).ino, statSync(join(r, 'bin/app')).ino);
    assert.deepEqual(image.config.args, ['/bin/app']);
    assert.equal(image.config.uid, 0);
    for (const d of image.layers) assert.ok(existsSync(join(dir, 'blobs/sha256', d.slice(7))), d);
    assert.ok(existsSync(join(dir, 'blobs/sha256', image.id.slice(7))));
    assert.deepEqual(await s.get(image.id), image);
    // The same upload again is the same image.
    assert.equal((await s.import(Readable.from([await ociImage({ layers: [base, top], gzip: true })]))).id, image.id);
  } finally {
    cleanup();
  }
});

test('a docker save tarball (plain layers, a named user) imports', async () => {
  const { s, cleanup } = store();
  try {
    const layer = await tarOf([{ name: 'bin/app', data: '#!x', mode: 0o755 }, { name: 'etc/passwd', data: 'root:x:0:0::/root:/bin/sh\napp:x:1234:4321::/home/app:/bin/sh\n' }]);
    const image = await s.import(Readable.from([await dockerSave([layer])]));
    assert.deepEqual(image.config.args, ['/bin/app']);
    assert.deepEqual([image.config.uid, image.config.gid], [1234, 4321]);
  } finally {
    cleanup();
  }
});

const unsafe: Array<[string, () => Promise<Buffer>, RegExp]> = [
  ['a `..` entry', async () => ociImage({ layers: [await tarOf([{ name: '../escape', data: 'x' }])] }), /leaves the root/],
  ['an absolute entry', async () => ociImage({ layers: [await tarOf([{ name: '/etc/passwd', data: 'x' }])] }), /absolute/],
  ['a symlink out of the rootfs', async () => ociImage({ layers: [await tarOf([{ name: 'x', type: 'symlink', linkname: '../../../etc' }])] }), /outside the image/],
  ['a hardlink to a host file', async () => ociImage({ layers: [await tarOf([{ name: 'x', type: 'link', linkname: '../../etc/passwd' }])] }), /leaves the root/],
  ['a hardlink to nothing of the image', async () => ociImage({ layers: [await tarOf([{ name: 'x', type: 'link', linkname: 'etc/shadow' }])] }), /does not point to a file/],
  ['a device node', async () => ociImage({ layers: [await tarOf([{ name: 'dev/mem', type: 'character-device' }])] }), /character-device/],
  ['a FIFO', async () => ociImage({ layers: [await tarOf([{ name: 'p', type: 'fifo' }])] }), /fifo/],
  ['a layer whose digest does not match', async () => ociImage({ layers: [await tarOf([{ name: 'a', data: 'x' }])], tamper: true }), /does not match its digest/],
  ['a privileged port', async () => ociImage({ layers: [await tarOf([{ name: 'a', data: 'x' }])], config: { ExposedPorts: { '80/tcp': {} } } }), /port 80/],
  ['a user the image does not define', async () => ociImage({ layers: [await tarOf([{ name: 'a', data: 'x' }])], config: { User: 'ghost' } }), /not in its \/etc\/passwd/],
  ['a WORKDIR through /proc/self/fd (CVE-2024-21626)', async () => ociImage({ layers: [await tarOf([{ name: 'a', data: 'x' }])], config: { WorkingDir: '/proc/self/fd/7' } }), /WorkingDir/],
  ['a non-canonical WORKDIR', async () => ociImage({ layers: [await tarOf([{ name: 'a', data: 'x' }])], config: { WorkingDir: '/app/../proc/self/fd/8' } }), /WorkingDir/],
  ['an upload escaping itself', async () => tarOf([{ name: '../index.json', data: '{}' }]), /leaves the root/],
  ['neither format', async () => tarOf([{ name: 'hello', data: 'x' }]), /neither an OCI/],
];

for (const [what, make, message] of unsafe) {
  test(`refused: ${what}, nothing stored`, async () => {
    const { s, dir, cleanup } = store();
    try {
      await assert.rejects(s.import(Readable.from([await make()])), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'bad_bundle', err.message);
        assert.match(err.message, message);
        return true;
      });
      nothingStored(dir);
    } finally {
      cleanup();
    }
  });
}

test('caps: a gzip bomb stops at the unpacked cap; too many entries; a big upload', async () => {
  const { s, dir, cleanup } = store({ unpackedBytes: 1024 * 1024, unpackedEntries: 50, uploadBytes: 4 * 1024 * 1024 });
  try {
    const bomb = await tarOf([{ name: 'zeros', data: Buffer.alloc(8 * 1024 * 1024) }]);
    const up = await ociImage({ layers: [bomb], gzip: true });
    assert.ok(up.length < 100_000, `the bomb is small (${up.length} bytes)`);
    await assert.rejects(s.import(Readable.from([up])), { code: 'payload_too_large' });
    await assert.rejects(s.import(Readable.from([await ociImage({ layers: [await tarOf(Array.from({ length: 60 }, (_, i) => ({ name: `f${i}`, data: 'x' })))] })])), { code: 'payload_too_large' });
    await assert.rejects(s.import(Readable.from([await ociImage({ layers: [await tarOf([{ name: 'big', data: Buffer.alloc(5 * 1024 * 1024, 1) }])] })])), { code: 'payload_too_large' });
    nothingStored(dir);
    assert.equal(lstatSync(join(dir, 'blobs/sha256')).isDirectory(), true);
    assert.deepEqual(readdirSync(join(dir, 'blobs/sha256')), []);
  } finally {
    cleanup();
  }
});

test('prune: images neither kept nor leased go with their unshared blobs; a crash\'s leftovers go too', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'img-prune-'));
  try {
    const store = new ImageStore(dir);
    const shared = await tarOf([{ name: 'bin/app', data: 'shared' }]);
    const layerOf = (s: string) => tarOf([{ name: `etc/${s}`, data: s }]);
    const kept = await store.import(Readable.from([await ociImage({ layers: [shared, await layerOf('kept')] })]));
    // The same bytes are imported again below (tar entries carry the time they were packed).
    const goneTar = await ociImage({ layers: [shared, await layerOf('gone')] });
    const gone = await store.import(Readable.from([goneTar]));
    const held = await store.importLeased(Readable.from([await ociImage({ layers: [await layerOf('held')] })]));
    // What a crash could leave: a rootfs without its record, an import's staging directory.
    const orphan = join(dir, 'rootfs', 'f'.repeat(64));
    const staging = join(dir, 'tmp', 'import-x');
    for (const d of [orphan, staging]) mkdirSync(d, { recursive: true });

    assert.deepEqual(await store.prune(new Set([kept.id])), [gone.id]);
    assert.deepEqual([await store.get(gone.id), existsSync(gone.rootfs), existsSync(orphan), existsSync(staging)], [null, false, false, false]);
    assert.ok(await store.get(kept.id));
    assert.ok(await store.get(held.image.id), 'a leased image stays');
    const blobs = new Set(readdirSync(join(dir, 'blobs', 'sha256')));
    const hexes = (i: { id: string; layers: string[] }) => [i.id, ...i.layers].map((d) => d.slice(7));
    assert.deepEqual(blobs, new Set([...hexes(kept), ...hexes(held.image)]), 'the shared layer stays with the kept image; the removed one\'s own blobs go');

    held.release();
    held.release(); // once only
    assert.deepEqual(await store.prune(new Set([kept.id])), [held.image.id]);
    // A pruned image imports again, whole.
    const again = await store.import(Readable.from([goneTar]));
    assert.equal(again.id, gone.id);
    assert.equal(readFileSync(join(again.rootfs, 'etc', 'gone'), 'utf8'), 'gone');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
