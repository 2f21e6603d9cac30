import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import type { Socket } from 'node:net';
import { F, FrameReader, FrameWriter } from './frames.ts';

test('every frame kind decodes to what was written, whatever the read boundaries', () => {
  const wire = new PassThrough();
  const out = new FrameWriter(wire as unknown as Socket);
  const big = new Uint8Array(20_000).map((_, i) => i % 251);
  out.text(F.respond, 1, 2, '{"status":200,"headers":[]}');
  out.text(F.log, 1, 2, 'ünïcode', 3);
  out.doubles(F.finishOk, 1, 2, 1.25, 4096);
  out.doublesText(F.whole, 7, 8, 0.5, 123456, '{"status":200,"headers":[["a","b"]]}\0héllo ✓');
  out.bytes(F.chunk, 1, 2, big);
  out.bytes(F.pong, 9, 0);
  out.flush();
  const parts: Buffer[] = [];
  for (let c = wire.read(); c !== null; c = wire.read()) parts.push(c);
  const bytes = Buffer.concat(parts);
  for (const step of [1, 7, 4096, bytes.length]) {
    const seen: Array<{ type: number; a: number; b: number; payload: Buffer }> = [];
    const reader = new FrameReader((type, a, b, payload) => seen.push({ type, a, b, payload: Buffer.from(payload) }));
    for (let i = 0; i < bytes.length; i += step) reader.push(bytes.subarray(i, i + step));
    assert.deepEqual(
      seen.map((f) => [f.type, f.a, f.b]),
      [
        [F.respond, 1, 2],
        [F.log, 1, 2],
        [F.finishOk, 1, 2],
        [F.whole, 7, 8],
        [F.chunk, 1, 2],
        [F.pong, 9, 0],
      ],
      `read in pieces of ${step}`,
    );
    assert.equal(seen[0]!.payload.toString('utf8'), '{"status":200,"headers":[]}');
    assert.equal(seen[1]!.payload[0], 3);
    assert.equal(seen[1]!.payload.toString('utf8', 1), 'ünïcode');
    assert.deepEqual([seen[2]!.payload.readDoubleLE(0), seen[2]!.payload.readDoubleLE(8)], [1.25, 4096]);
    const whole = seen[3]!.payload;
    assert.deepEqual([whole.readDoubleLE(0), whole.readDoubleLE(8)], [0.5, 123456]);
    assert.equal(whole.toString('utf8', 16), '{"status":200,"headers":[["a","b"]]}\0héllo ✓');
    assert.deepEqual(new Uint8Array(seen[4]!.payload), big);
    assert.equal(seen[5]!.payload.length, 0);
  }
});
