/**
 * Durability under SIGKILL (reliability claim 7): every write whose acknowledgement a child printed before
 * it was killed is present after reopening, and the databases open cleanly. SIGKILL loses the process, not
 * the page cache; power loss is covered by synchronous=FULL + fsync (not simulated here).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openSqliteStores } from './index.ts';

const CHILD = fileURLToPath(new URL('./crash-child.ts', import.meta.url));
const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/**
 * Run the child until it has printed `killAfter` acknowledgements, then SIGKILL it `delayMs` later (so the
 * kill lands at varying points inside the next write); return the complete lines.
 */
function runAndKill(args: string[], killAfter: number, delayMs: number): Promise<{ lines: string[]; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    let stderr = '';
    const lines: string[] = [];
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, 60_000);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (stderr += d));
    child.stdout.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      if (!killed && lines.length - 1 >= killAfter) {
        killed = true;
        setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    });
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      clearTimeout(timer);
      resolve({ lines, signal, stderr }); // a partial last line (no newline) is not an acknowledgement
    });
  });
}

function integrityOk(path: string): void {
  const db = new DatabaseSync(path);
  try {
    assert.deepEqual(db.prepare('PRAGMA integrity_check').all().map((r) => r.integrity_check), ['ok']);
    assert.deepEqual(db.prepare('PRAGMA foreign_key_check').all(), []);
  } finally {
    db.close();
  }
}

describe('concurrent open', () => {
  test('several processes opening a new data dir at once all migrate and write cleanly', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'continuum-open-'));
    dirs.push(dir);
    const dataDir = join(dir, 'data');
    const n = 6;
    const codes = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        new Promise<number | null>((resolve, reject) => {
          const child = spawn(process.execPath, [CHILD, 'open', dataDir, String(i)], { stdio: 'ignore' });
          child.on('error', reject);
          child.on('close', (code) => resolve(code));
        }),
      ),
    );
    assert.deepEqual(codes, Array.from({ length: n }, () => 0));
    integrityOk(join(dataDir, 'state.db'));
    const s = await openSqliteStores(dataDir);
    try {
      for (let i = 0; i < n; i++) assert.ok(await s.state.getMeta(`opened.${i}`));
      assert.equal((await s.records.queryLogs({ functionName: 'open', limit: 100 })).length, n);
    } finally {
      await Promise.all([s.state.close(), s.records.close()]);
    }
  });
});

describe('crash durability (SIGKILL)', () => {
  test('state: every acknowledged function and version survives, DBs stay consistent', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'continuum-crash-'));
    dirs.push(dir);
    const dataDir = join(dir, 'data');
    const acked: string[] = [];
    let start = 0;
    for (const [killAfter, delayMs] of [[150, 0], [37, 1], [301, 2], [80, 5]] as const) {
      const { lines, signal, stderr } = await runAndKill(['state', dataDir, String(start)], killAfter, delayMs);
      assert.equal(signal, 'SIGKILL', `child ended on its own: ${stderr}`);
      assert.equal(lines[0], 'READY');
      acked.push(...lines.slice(1));
      start += 1000;
    }
    assert.ok(acked.length >= 150 + 37 + 301 + 80);

    integrityOk(join(dataDir, 'state.db'));
    integrityOk(join(dataDir, 'records.db'));
    const s = await openSqliteStores(dataDir);
    try {
      for (const line of acked) {
        const [kind, name = '', id = ''] = line.split(' ');
        if (kind === 'F') assert.ok(await s.state.getFunction(name), `acknowledged function ${name} is missing`);
        else if (kind === 'V') assert.ok(await s.state.getVersion(name, id), `acknowledged version ${name}/${id} is missing`);
        else if (kind === 'A') assert.equal((await s.state.getFunction(name))?.activeVersion, id, `acknowledged activation of ${name}`);
        else assert.fail(`unexpected line ${line}`);
      }
      // Nothing half-written: every function has at most its one version, and an active version that exists.
      for (const f of await s.state.listFunctions()) {
        const versions = await s.state.listVersions(f.name);
        assert.ok(versions.length <= 1);
        if (f.activeVersion) assert.equal(versions[0]?.id, f.activeVersion);
      }
    } finally {
      await Promise.all([s.state.close(), s.records.close()]);
    }
  });

  test('artifacts: every acknowledged blob is intact and no partial file has a digest name', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'continuum-crash-'));
    dirs.push(dir);
    const dataDir = join(dir, 'data');
    const acked: string[] = [];
    for (const [seed, killAfter, delayMs] of [[1, 12, 0], [2, 5, 2], [3, 20, 5], [4, 8, 9], [5, 3, 14]] as const) {
      const { lines, signal, stderr } = await runAndKill(['artifacts', dataDir, String(seed)], killAfter, delayMs);
      assert.equal(signal, 'SIGKILL', `child ended on its own: ${stderr}`);
      acked.push(...lines.slice(1).map((l) => l.replace(/^P /, '')));
    }
    assert.ok(acked.length >= 12 + 5 + 20 + 8 + 3);

    const blobs = join(dataDir, 'artifacts', 'sha256');
    let named = 0;
    let interrupted = 0;
    for (const prefix of await readdir(blobs)) {
      for (const name of await readdir(join(blobs, prefix))) {
        if (name.startsWith('.tmp-')) {
          interrupted += 1; // a write cut by the kill: invisible to list/get
          continue;
        }
        named += 1;
        const bytes = await readFile(join(blobs, prefix, name));
        assert.equal(createHash('sha256').update(bytes).digest('hex'), name, `${name} holds partial or wrong content`);
        assert.ok(name.startsWith(prefix));
      }
    }
    t.diagnostic(`${acked.length} acknowledged blobs, ${named} stored, ${interrupted} writes interrupted by SIGKILL`);
    const s = await openSqliteStores(dataDir);
    try {
      const listed = await s.artifacts.list();
      assert.equal(listed.length, named);
      for (const d of acked) {
        const bytes = await s.artifacts.get(d);
        assert.ok(bytes, `acknowledged artifact ${d} is missing`);
        assert.equal(createHash('sha256').update(bytes).digest('hex'), d);
      }
    } finally {
      await Promise.all([s.state.close(), s.records.close()]);
    }
  });
});
