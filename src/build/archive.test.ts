import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as vm from 'node:vm';
import * as zlib from 'node:zlib';
import { ContinuumError } from '../core/errors.ts';
import { extractZip } from './archive.ts';
import { build, type BuildInput } from './index.ts';
import { resolveLimits } from './limits.ts';
import { makeTgz, makeZip, tarFile, tarHeader } from './testing.ts';

// A private temp dir: the builder's staging dirs live here, so the tests can see that nothing is left behind and
// nothing lands outside the staging dir (canaries).
let tmp: string;
const savedTmp = process.env.TMPDIR;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'continuum-archive-test-'));
  process.env.TMPDIR = tmp;
});
after(async () => {
  process.env.TMPDIR = savedTmp;
  if (savedTmp === undefined) delete process.env.TMPDIR;
  await fsp.rm(tmp, { recursive: true, force: true });
});

const INDEX = 'export default { fetch() { return new Response("ok"); } };\n';
const handler = { format: 'auto' as const, export: null };

async function refused(input: Omit<BuildInput, 'tier' | 'handler'>, match: RegExp): Promise<ContinuumError> {
  let caught: unknown;
  try {
    await build({ tier: 'isolate', handler, ...input });
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ContinuumError, `expected a ContinuumError, got ${String(caught)}`);
  assert.equal(caught.code, 'bad_bundle', caught.message);
  assert.match(caught.message, match);
  assert.doesNotMatch(caught.message, new RegExp(tmp.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'message leaks a host path');
  // Staging removed, nothing else written anywhere under the temp dir.
  assert.deepEqual(await fsp.readdir(tmp), []);
  return caught;
}

const zip = (entries: Parameters<typeof makeZip>[0]) => ({ kind: 'zip' as const, bytes: makeZip(entries) });
const tgz = (blocks: Buffer[]) => ({ kind: 'tgz' as const, bytes: makeTgz(blocks) });

describe('path traversal (catalogue 24)', () => {
  const names = ['../../canary.js', '/etc/canary.js', '////home/canary.js', '..\\canary.js', 'C:\\canary.js', 'C:/canary.js', 'a/../../canary.js', '%2e%2e/canary.js', 'a/%2E%2E/%2e%2e/canary.js', './../canary.js'];
  for (const name of names) {
    test(`zip entry ${JSON.stringify(name)} refuses the whole upload`, async () => {
      const err = await refused(zip([{ name: 'index.js', data: INDEX }, { name, data: 'pwned' }]), /archive entry/);
      assert.ok(err.message.includes(JSON.stringify(name).slice(1, -1).slice(0, 8)), err.message);
    });
    test(`tar entry ${JSON.stringify(name)} refuses the whole upload`, async () => {
      await refused(tgz([tarFile('index.js', INDEX), tarFile(name, 'pwned')]), /archive entry/);
    });
  }
  test('no canary appears outside the staging dir', () => {
    for (const p of [path.join(tmp, 'canary.js'), path.join(path.dirname(tmp), 'canary.js'), '/etc/canary.js', '/home/canary.js']) {
      assert.equal(fs.existsSync(p), false, p);
    }
  });
});

describe('links, special files, collisions (catalogue 25)', () => {
  test('tar symlink x → / followed by x/etc/passwd', async () => {
    await refused(tgz([tarFile('index.js', INDEX), Buffer.from(tarHeader({ name: 'x', type: '2', linkname: '/' })), tarFile('x/etc/passwd', 'root')]), /symbolic link/);
  });
  test('tar directory then a symlink with the same name', async () => {
    await refused(tgz([tarHeader({ name: 'd/', type: '5', mode: 0o755 }), tarHeader({ name: 'd', type: '2', linkname: '/tmp' })]), /symbolic link/);
  });
  test('tar hard link to an outside path', async () => {
    await refused(tgz([tarFile('index.js', INDEX), tarHeader({ name: 'h', type: '1', linkname: '../../../etc/passwd' })]), /hard link/);
  });
  for (const [type, what] of [['3', 'character-device'], ['4', 'block-device'], ['6', 'fifo']] as const) {
    test(`tar ${what} entry`, async () => {
      await refused(tgz([tarFile('index.js', INDEX), tarHeader({ name: 'dev', type })]), new RegExp(`type ${what}`));
    });
  }
  test('zip symlink entry (unix mode 0120777)', async () => {
    await refused(zip([{ name: 'index.js', data: INDEX }, { name: 'link', data: '/etc/passwd', mode: 0o120777 }]), /symbolic link/);
  });
  test('zip socket entry', async () => {
    await refused(zip([{ name: 'index.js', data: INDEX }, { name: 'sock', mode: 0o140777 }]), /device, FIFO or socket/);
  });
  test('duplicate names', async () => {
    await refused(zip([{ name: 'index.js', data: INDEX }, { name: 'index.js', data: 'x' }]), /appears twice/);
    await refused(tgz([tarFile('index.js', INDEX), tarFile('index.js', 'x')]), /appears twice/);
  });
  test('names colliding after NFC normalisation', async () => {
    await refused(zip([{ name: 'caf\u00e9.js', data: '1' }, { name: 'cafe\u0301.js', data: '2' }]), /collide/);
  });
  test('names colliding after case folding', async () => {
    await refused(tgz([tarFile('Index.js', INDEX), tarFile('index.js', INDEX)]), /collide/);
    await refused(zip([{ name: 'lib/A.js', data: '1' }, { name: 'LIB/b.js', data: '2' }]), /collide/);
  });
  test('a file that is also a directory', async () => {
    await refused(tgz([tarFile('a', 'x'), tarFile('a/b.js', 'y')]), /also a file/);
    await refused(zip([{ name: 'x/', method: 0 }, { name: 'x', data: 'y' }]), /both a file and a directory/);
  });
});

describe('structural extremes (catalogue 27)', () => {
  test('NUL and control characters in names', async () => {
    await refused(tgz([tarFile('a\u0001b.js', 'x')]), /control character/);
    await refused(zip([{ name: 'a\u001bb.js', data: 'x' }]), /control character/);
    await refused(zip([{ name: 'a\u0000b.js', data: 'x' }]), /control character/);
  });
  test('invalid UTF-8 names', async () => {
    await refused(tgz([tarFile(Buffer.from([0x61, 0xff, 0xfe, 0x2e, 0x6a, 0x73]), 'x')]), /invalid UTF-8/);
    await refused(zip([{ name: Buffer.from([0x61, 0xc3, 0x28, 0x2e, 0x6a, 0x73]), data: 'x' }]), /invalid UTF-8/);
  });
  test('4096-byte names and 10 000-deep paths', async () => {
    await refused(zip([{ name: `${'n'.repeat(4096)}.js`, data: 'x' }]), /longer than 1024 bytes/);
    await refused(zip([{ name: `${'a/'.repeat(10_000)}x.js`, data: 'x' }]), /longer than|deeper than/);
    await refused(zip([{ name: `${'a/'.repeat(100)}x.js`, data: 'x' }]), /deeper than 64/);
    await refused(zip([{ name: `${'n'.repeat(300)}.js`, data: 'x' }]), /segment longer than 255/);
  });
  test('100 000 entries are refused within a bounded time (zip: 65 000, the most without zip64; tar: 100 000)', async () => {
    const many = Array.from({ length: 65_000 }, (_, i) => ({ name: `f${i}.js`, data: '', method: 0 as const }));
    let t = performance.now();
    await refused(zip(many), /65000 entries, more than 20000/);
    const zipMs = performance.now() - t;
    const blocks = Array.from({ length: 100_000 }, (_, i) => tarHeader({ name: `f${i}.js` }));
    t = performance.now();
    await refused(tgz(blocks), /more than 20000 entries/);
    const tarMs = performance.now() - t;
    // ~1 s each on an idle core; the bound leaves room for a test run sharing the machine, and still
    // fails any per-entry cost that grows with the entry count.
    assert.ok(zipMs < 5000, `zip took ${zipMs} ms`);
    assert.ok(tarMs < 5000, `tar took ${tarMs} ms`);
  });
  test('truncated and corrupt archives', async () => {
    const good = makeZip([{ name: 'index.js', data: INDEX.repeat(50) }]);
    await refused({ kind: 'zip', bytes: good.subarray(0, good.length - 30) }, /corrupt|truncated/);
    const corrupt = Buffer.from(good);
    corrupt.fill(0x41, 40, 80); // inside the deflate stream
    await refused({ kind: 'zip', bytes: corrupt }, /corrupt|truncated|disagree/);
    const gz = makeTgz([tarFile('index.js', INDEX.repeat(100))]);
    await refused({ kind: 'tgz', bytes: gz.subarray(0, gz.length - 40) }, /corrupt|truncated/);
    await refused({ kind: 'tgz', bytes: zlib.gzipSync(Buffer.alloc(2048, 0x41)) }, /corrupt|truncated/);
  });
  test('wrong magic bytes', async () => {
    await refused({ kind: 'zip', bytes: Buffer.from(INDEX) }, /wrong magic|not a zip/);
    await refused({ kind: 'tgz', bytes: makeZip([{ name: 'index.js', data: INDEX }]) }, /declared as tgz but its content is a zip/);
  });
});

describe('decompression bombs (catalogue 26)', () => {
  test('ratio bomb: 100 MB of zeros in a 100 KB zip entry aborts on real output', async () => {
    const t = performance.now();
    await refused(zip([{ name: 'index.js', data: INDEX }, { name: 'zeros.bin', data: Buffer.alloc(100 * 1024 * 1024) }]), /200× its compressed size|per-file limit/);
    assert.ok(performance.now() - t < 5000);
  });
  test('per-entry cap counts actual bytes', async () => {
    await refused({ ...zip([{ name: 'big.txt', data: Buffer.alloc(2 * 1024 * 1024, 0x61) }]), limits: { maxEntryBytes: 1024 * 1024, maxCompressionRatio: 1e9 } }, /per-file limit/);
  });
  test('10 GB of zeros gzipped aborts early with bounded memory', async () => {
    const member = zlib.gzipSync(Buffer.alloc(100 * 1024 * 1024), { level: 9 });
    const bytes = Buffer.concat(Array.from({ length: 100 }, () => member)); // 100 gzip members = 10 GB of zeros
    const rss0 = process.memoryUsage().rss;
    const t = performance.now();
    await refused({ kind: 'tgz', bytes }, /tar stream expands/);
    const ms = performance.now() - t;
    const grew = process.memoryUsage().rss - rss0;
    assert.ok(ms < 10_000, `took ${ms} ms`);
    assert.ok(grew < 256 * 1024 * 1024, `RSS grew by ${grew} bytes`);
  });
  test('tar whose headers declare small sizes but whose stream expands large', async () => {
    const lie = Buffer.concat([tarHeader({ name: 'index.js', size: 10 }), Buffer.alloc(512)]);
    const bytes = Buffer.concat([zlib.gzipSync(lie), zlib.gzipSync(Buffer.alloc(100 * 1024 * 1024))]);
    await refused({ kind: 'tgz', bytes }, /expands/);
  });
  test('overlapping entries (Fifield-style) are refused', async () => {
    // Entry "a" (stored) contains entry "b"'s local header and data; the central directory lists both.
    const inner = makeZip([{ name: 'b', data: 'x'.repeat(1000), method: 0 }]);
    const innerLocal = inner.subarray(0, 30 + 1 + 1000);
    const outer = makeZip([{ name: 'a', data: innerLocal, method: 0 }]);
    // Hand-add a central record for "b" pointing inside "a".
    const cdStart = outer.readUInt32LE(outer.length - 22 + 16);
    const cdA = outer.subarray(cdStart, outer.length - 22);
    const innerCdStart = inner.readUInt32LE(inner.length - 22 + 16);
    const cdB = Buffer.from(inner.subarray(innerCdStart, inner.length - 22));
    cdB.writeUInt32LE(30 + 1, 42); // b's local header sits right after a's local header + name
    const cd = Buffer.concat([cdA, cdB]);
    const end = Buffer.from(outer.subarray(outer.length - 22));
    end.writeUInt16LE(2, 8);
    end.writeUInt16LE(2, 10);
    end.writeUInt32LE(cd.length, 12);
    await refused({ kind: 'zip', bytes: Buffer.concat([outer.subarray(0, cdStart), cd, end]) }, /overlap/);
  });
  test('central directory disagreeing with the local header', async () => {
    await refused(zip([{ name: 'index.js', data: INDEX, centralName: 'other.js' }]), /disagree on the name/);
  });
  test('two central records sharing one local header', async () => {
    await refused(zip([{ name: 'index.js', data: INDEX }, { name: 'index.js', data: INDEX, centralName: 'copy.js', sameOffsetAs: 0 }]), /disagree|overlap/);
  });
  test('nested archives are stored, never extracted', async () => {
    const inner = makeZip([{ name: 'evil.js', data: 'x' }]);
    const dir = await fsp.mkdtemp(path.join(tmp, 'nested-'));
    await extractZip(makeZip([{ name: 'index.js', data: INDEX }, { name: 'inner.zip', data: inner }]), dir, resolveLimits());
    assert.deepEqual((await fsp.readdir(dir)).sort(), ['index.js', 'inner.zip']);
    assert.deepEqual(await fsp.readFile(path.join(dir, 'inner.zip')), inner);
    await fsp.rm(dir, { recursive: true });
  });
});

describe('compiled artefacts (catalogue 5)', () => {
  test('native .node addon and .so in an upload', async () => {
    await refused(zip([{ name: 'index.js', data: INDEX }, { name: 'build/Release/addon.node', data: '\u007fELF' }]), /native or compiled code.*tier: process/);
    await refused(tgz([tarFile('index.js', INDEX), tarFile('libevil.so.1', 'x')]), /native or compiled code/);
  });
  test('ELF bytes under an innocent name', async () => {
    await refused(zip([{ name: 'index.js', data: INDEX }, { name: 'data.js', data: Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(100)]) }]), /native code/);
  });
  test('V8 cachedData blob', async () => {
    const cached = new vm.Script('1 + 1').createCachedData();
    await refused(zip([{ name: 'index.js', data: INDEX }, { name: 'cache.bin', data: cached }]), /V8 code cache/);
    // … refused on the process tier too: tenants never hand V8 compiled code to the platform.
    await assert.rejects(build({ tier: 'process', handler, ...zip([{ name: 'index.js', data: INDEX }, { name: 'cache.bin', data: cached }]) }), /V8 code cache/);
  });
});

describe('extraction writes real files', () => {
  test('a valid tgz with a top-level folder and ./ prefixes unpacks and builds', async () => {
    const out = await build({
      tier: 'isolate',
      handler,
      ...tgz([tarHeader({ name: './pkg/', type: '5', mode: 0o755 }), tarFile('./pkg/package.json', '{"name":"p","main":"src/main.js"}'), tarFile('./pkg/src/main.js', INDEX)]),
    });
    assert.equal(out.format, 'fetch');
    assert.deepEqual(await fsp.readdir(tmp), []);
  });
});
