import { randomFillSync } from 'node:crypto';

const POOL = 4096;
const pool = Buffer.allocUnsafe(POOL);
let offset = POOL;

/**
 * A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Invocation ids sort by
 * time, so appending them to a B-tree index stays cheap (random v4 ids cost about twice as much per
 * record once the table is large), and listing by id is listing by start time.
 */
export function uuidv7(now = Date.now()): string {
  if (offset + 10 > POOL) {
    randomFillSync(pool);
    offset = 0;
  }
  const r = pool.subarray(offset, offset + 10);
  offset += 10;
  const ms = now.toString(16).padStart(12, '0');
  const hex = r.toString('hex');
  return (
    `${ms.slice(0, 8)}-${ms.slice(8, 12)}-7${hex.slice(1, 4)}-` +
    `${((r[2]! & 0x3f) | 0x80).toString(16)}${hex.slice(6, 8)}-${hex.slice(8, 20)}`
  );
}
