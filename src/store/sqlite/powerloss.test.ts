/**
 * Power loss (catalogue 42), simulated from a system-call trace: a power cut loses every write that was
 * not fsynced, so an acknowledgement is durable only if every write to the WAL before it was followed by
 * an fsync/fdatasync of the WAL before it. The child runs under strace; the trace is replayed and, at each
 * `ACK` written to stdout, the WAL must have no unsynced writes.
 *
 * The positive control — a plain database with synchronous=NORMAL — must show unsynced acknowledged
 * writes, proving the check can fail. (The main database file may be dirty at an ACK during a checkpoint:
 * the WAL still holds those pages until the database is synced, so only the WAL is checked.)
 *
 * LazyFS or dm-flakey would cut power for real; neither is available here (no device-mapper, no LazyFS
 * package), so the trace is the oracle. Needs strace (scripts/setup-host.sh installs it).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const strace = spawnSync('which', ['strace'], { encoding: 'utf8' }).stdout.trim();
const skip = strace ? false : 'strace is not installed (scripts/setup-host.sh installs it)';
const child = new URL('./powerloss-child.ts', import.meta.url).pathname;

interface Replay {
  acks: number;
  /** ACKs at which the WAL held writes not yet synced. */
  unsyncedAcks: number;
  walWrites: number;
  walSyncs: number;
}

/** Replay an strace log: track fd → path, dirty WAL paths, and check each ACK. */
function replay(trace: string): Replay {
  const fds = new Map<string, string>();
  const dirty = new Set<string>();
  const r: Replay = { acks: 0, unsyncedAcks: 0, walWrites: 0, walSyncs: 0 };
  for (const line of trace.split('\n')) {
    const m = /^(\w+)\((.*)\)\s+=\s+(-?\d+)/.exec(line);
    if (!m) continue;
    const [, call, args, ret] = m;
    const fd = args!.split(',')[0]!.trim();
    if (call === 'openat' && Number(ret) >= 0) {
      const path = /"([^"]+)"/.exec(args!)?.[1] ?? '';
      fds.set(ret!, path);
    } else if (call === 'close') {
      fds.delete(fd);
    } else if ((call === 'pwrite64' || call === 'write' || call === 'pwritev') && fd !== '1') {
      const path = fds.get(fd) ?? '';
      if (path.endsWith('-wal')) {
        dirty.add(path);
        r.walWrites++;
      }
    } else if (call === 'fsync' || call === 'fdatasync') {
      const path = fds.get(fd) ?? '';
      if (path.endsWith('-wal')) r.walSyncs++;
      dirty.delete(path);
    } else if (call === 'write' && fd === '1' && args!.includes('ACK')) {
      r.acks++;
      if (dirty.size > 0) r.unsyncedAcks++;
    }
  }
  return r;
}

async function traced(mode: string): Promise<Replay> {
  const dir = await mkdtemp(join(tmpdir(), 'continuum-powerloss-'));
  try {
    // One trace file per thread (-ff): in a shared file, a system call that another thread interrupts is
    // split into "unfinished" and "resumed" lines. SQLite's writes and syncs and the ACKs are all made by
    // the main thread, so its file alone holds the order that matters.
    const base = join(dir, 'trace');
    const res = spawnSync(strace, ['-ff', '-qq', '-e', 'trace=openat,close,write,pwrite64,pwritev,fsync,fdatasync', '-o', base, process.execPath, child, mode, dir], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(res.status, 0, `child failed: ${res.stderr}`);
    const traces = await Promise.all((await readdir(dir)).filter((f) => f.startsWith('trace.')).map((f) => readFile(join(dir, f), 'utf8')));
    const main = traces.filter((t) => t.includes('ACK'));
    assert.equal(main.length, 1, 'the ACKs come from one thread');
    return replay(main[0]!);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('every acknowledged send is on disk: the WAL is synced before each ACK', { skip }, async () => {
  const r = await traced('queue');
  assert.equal(r.acks, 20);
  assert.ok(r.walWrites >= 20 && r.walSyncs >= 20, `saw ${r.walWrites} WAL writes and ${r.walSyncs} syncs`);
  assert.equal(r.unsyncedAcks, 0, 'an acknowledged send would be lost at a power cut');
});

test('idempotent sends and dead-lettering are synced before they are acknowledged', { skip }, async () => {
  const r = await traced('dedupe');
  assert.equal(r.acks, 20);
  assert.equal(r.unsyncedAcks, 0);
});

test('positive control: synchronous=NORMAL acknowledges writes a power cut would lose', { skip }, async () => {
  const r = await traced('normal');
  assert.equal(r.acks, 20);
  assert.ok(r.unsyncedAcks > 0, 'the check must be able to fail');
});
