/**
 * Child process of powerloss.test.ts, run under strace: performs acknowledged writes and prints
 * `ACK <n>` on stdout after each one resolved (the moment a client would be told "stored").
 *
 *   node powerloss-child.ts queue <dir>      SqliteQueueStore.send, as the node does for every 202
 *   node powerloss-child.ts dedupe <dir>     idempotent sends and dead-lettering (the other FULL paths)
 *   node powerloss-child.ts normal <dir>     a plain WAL database with synchronous=NORMAL (the detector's
 *                                            positive control: these acknowledgements are not durable)
 */
import { DatabaseSync } from 'node:sqlite';
import { writeSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteQueueStore } from './queues.ts';

const [mode, dir] = process.argv.slice(2);
const ack = (n: number) => writeSync(1, `ACK ${n}\n`);
const body = new TextEncoder().encode('x'.repeat(512));

if (mode === 'normal') {
  const db = new DatabaseSync(join(dir!, 'normal.db'));
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE m (id INTEGER PRIMARY KEY, b BLOB)');
  const insert = db.prepare('INSERT INTO m (b) VALUES (?)');
  for (let i = 0; i < 20; i++) {
    insert.run(body);
    ack(i);
  }
  db.close();
} else {
  const store = SqliteQueueStore.open(join(dir!, 'queues.db'));
  await store.createQueue('q');
  for (let i = 0; i < 20; i++) {
    if (mode === 'dedupe') {
      await store.send('q', [{ body, idempotencyKey: `k${i}`, track: true }]);
      const [m] = await store.receive('q', 1, 60_000);
      await store.settle('q', [{ id: m!.id, leaseToken: m!.leaseToken, action: 'dead', reason: 'test' }]);
    } else {
      await store.send('q', [{ body }]);
    }
    ack(i);
  }
  await store.close();
}
