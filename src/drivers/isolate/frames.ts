/**
 * Binary framing for the driver ↔ isolate-worker channel (one duplex socket on the worker's fd 3).
 *
 * Frame: u32 length (of everything after it) | u8 type | u32 a | u32 b | payload.
 * `a` is usually the instance number, `b` the invocation number; the payload is raw bytes or UTF-8.
 * Writes made in one turn of the event loop are coalesced into one writev (flushed in setImmediate, so every
 * request parsed in the same I/O phase shares it); small frames are copied into a shared arena, so under
 * load many requests cost one syscall each way.
 */
import type { Socket } from 'node:net';

export const HEADER_BYTES = 13;
/** Hard ceiling for one frame; bigger payloads are split by the sender (body chunks) or refused. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** Frame types. Driver → worker are < 0x40, worker → driver are ≥ 0x40. */
export const F = {
  // driver → worker
  create: 0x01, // a=inst; payload JSON { code, load, logBytes }
  dispose: 0x02, // a=inst
  dispatch: 0x03, // a=inst b=inv; payload UTF-8 'invocationId\n0or1 (has body)\ntraceparent\nhead JSON'
  push: 0x04, // a=inst b=inv; payload bytes
  end: 0x05, // a=inst b=inv (request body ended)
  abort: 0x06, // a=inst b=inv; payload reason (UTF-8)
  ping: 0x07, // a=seq
  init: 0x08, // payload JSON (engine start options, e.g. the prelude source); answered with ready
  queueSent: 0x09, // a=inst b=call; payload JSON { ids } or { error: { code, message } } (answers queueSend)
  serviceResponse: 0x0a, // a=inst b=call; payload see bindings.ts encodeServiceResponse (answers serviceFetch)
  // worker → driver
  ready: 0x40, // payload JSON { pid } or { error } when the engine could not start
  created: 0x41, // a=inst; payload JSON { timing, format, exportName }
  createFailed: 0x42, // a=inst; payload JSON { code, message }
  respond: 0x43, // a=inst b=inv; payload JSON head
  chunk: 0x44, // a=inst b=inv; payload bytes
  finish: 0x45, // a=inst b=inv; payload JSON { e, c, m }
  log: 0x46, // a=inst b=inv; payload: u8 level index + UTF-8 message
  logTruncated: 0x47, // a=inst b=inv
  exited: 0x48, // a=inst; payload JSON { code, message } (the sandbox is gone: disposed by a limit)
  pong: 0x49, // a=seq
  fatal: 0x4a, // payload UTF-8 (catastrophic error: stop taking work)
  workerError: 0x4b, // payload UTF-8 (uncaught error in the worker, kept alive)
  queueSend: 0x4c, // a=inst b=call; payload see bindings.ts encodeQueueSend (a queue binding's send)
  serviceFetch: 0x4d, // a=inst b=call; payload see bindings.ts encodeServiceFetch (a service binding's call)
  finishOk: 0x4e, // a=inst b=inv; payload f64 LE cpu ms, f64 LE heap bytes (finish without error: no JSON either side)
  whole: 0x4f, // a=inst b=inv; payload f64 LE cpu ms, f64 LE heap bytes, UTF-8 'head JSON' [+ NUL + body text] (respond, chunk and finishOk in one; the head is unchecked)
} as const;

/** Worker → driver frames about one instance (`a` names it), handed to that instance. */
export const INSTANCE_FRAMES: ReadonlySet<number> = new Set([F.respond, F.chunk, F.finish, F.finishOk, F.whole, F.log, F.logTruncated, F.queueSend, F.serviceFetch]);

export const LOG_LEVELS = ['log', 'debug', 'info', 'warn', 'error'] as const;

const ARENA_BYTES = 64 * 1024;
/** Payloads at most this big are copied into the arena; bigger ones are written as their own buffer. */
const COPY_LIMIT = 8 * 1024;

const EMPTY = new Uint8Array(0);

export class FrameWriter {
  readonly #socket: Socket;
  #arena: Buffer = Buffer.allocUnsafe(ARENA_BYTES);
  /** Start of bytes not yet handed to the socket. */
  #start = 0;
  #pos = 0;
  #parts: Buffer[] = [];
  #scheduled = false;
  #closed = false;
  #waiters: Array<() => void> = [];
  #blocked = false;
  readonly #flushBound = (): void => this.flush();

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('drain', () => {
      this.#blocked = false;
      const w = this.#waiters;
      this.#waiters = [];
      for (const fn of w) fn();
    });
  }

  /** True while the socket's buffer is over its high-water mark; wait with `drained()`. */
  get blocked(): boolean {
    return this.#blocked;
  }

  drained(): Promise<void> {
    if (!this.#blocked || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  close(): void {
    this.#closed = true;
    const w = this.#waiters;
    this.#waiters = [];
    for (const fn of w) fn();
  }

  #reserve(n: number): void {
    if (this.#arena.length - this.#pos >= n) return;
    this.#cut();
    this.#arena = Buffer.allocUnsafe(Math.max(ARENA_BYTES, n));
    this.#start = 0;
    this.#pos = 0;
  }

  /** Move the arena's pending bytes into the part list (they are never rewritten afterwards). */
  #cut(): void {
    if (this.#pos > this.#start) {
      this.#parts.push(this.#arena.subarray(this.#start, this.#pos));
      this.#start = this.#pos;
    }
  }

  #header(type: number, a: number, b: number, payloadBytes: number): void {
    const buf = this.#arena;
    let p = this.#pos;
    buf.writeUInt32LE(9 + payloadBytes, p);
    buf[p + 4] = type;
    buf.writeUInt32LE(a >>> 0, p + 5);
    buf.writeUInt32LE(b >>> 0, p + 9);
    p += HEADER_BYTES;
    this.#pos = p;
  }

  #schedule(): void {
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flushBound);
    }
  }

  /** A frame with a byte payload (copied now if small, else kept by reference until flushed). */
  bytes(type: number, a: number, b: number, payload: Uint8Array = EMPTY): void {
    if (this.#closed) return;
    const n = payload.byteLength;
    if (n > MAX_FRAME_BYTES - 9) throw new RangeError('frame too large');
    if (n <= COPY_LIMIT) {
      this.#reserve(HEADER_BYTES + n);
      this.#header(type, a, b, n);
      if (n > 0) {
        this.#arena.set(payload, this.#pos);
        this.#pos += n;
      }
    } else {
      this.#reserve(HEADER_BYTES);
      this.#header(type, a, b, n);
      this.#cut();
      this.#parts.push(Buffer.from(payload.buffer, payload.byteOffset, n));
    }
    this.#schedule();
  }

  /** A frame whose payload is two float64 (LE), written straight into the arena. */
  doubles(type: number, a: number, b: number, x: number, y: number): void {
    if (this.#closed) return;
    this.#reserve(HEADER_BYTES + 16);
    this.#header(type, a, b, 16);
    this.#arena.writeDoubleLE(x, this.#pos);
    this.#arena.writeDoubleLE(y, this.#pos + 8);
    this.#pos += 16;
    this.#schedule();
  }

  /** A frame whose payload is a string, encoded as UTF-8 straight into the arena. */
  text(type: number, a: number, b: number, text: string, prefixByte = -1): void {
    this.#text(type, a, b, text, prefixByte >= 0 ? Buffer.of(prefixByte) : EMPTY);
  }

  /** A frame whose payload is two float64 (LE) followed by a string as UTF-8. */
  doublesText(type: number, a: number, b: number, x: number, y: number, text: string): void {
    const prefix = Buffer.allocUnsafe(16);
    prefix.writeDoubleLE(x, 0);
    prefix.writeDoubleLE(y, 8);
    this.#text(type, a, b, text, prefix);
  }

  #text(type: number, a: number, b: number, text: string, prefix: Uint8Array): void {
    if (this.#closed) return;
    const extra = prefix.byteLength;
    const max = text.length * 3 + extra;
    if (max > MAX_FRAME_BYTES - 9) {
      const payload = Buffer.from(text, 'utf8');
      if (payload.length + extra > MAX_FRAME_BYTES - 9) throw new RangeError('frame too large');
      this.bytes(type, a, b, extra ? Buffer.concat([prefix, payload]) : payload);
      return;
    }
    this.#reserve(HEADER_BYTES + max);
    const at = this.#pos;
    this.#pos += HEADER_BYTES;
    if (extra) {
      this.#arena.set(prefix, this.#pos);
      this.#pos += extra;
    }
    const written = this.#arena.write(text, this.#pos, 'utf8');
    this.#pos = at;
    this.#header(type, a, b, written + extra);
    this.#pos = at + HEADER_BYTES + extra + written;
    this.#schedule();
  }

  flush(): void {
    this.#scheduled = false;
    if (this.#closed) {
      this.#parts = [];
      this.#start = this.#pos;
      return;
    }
    this.#cut();
    const parts = this.#parts;
    if (parts.length === 0) return;
    this.#parts = [];
    const s = this.#socket;
    let ok = true;
    if (parts.length === 1) {
      ok = s.write(parts[0]!);
    } else {
      s.cork();
      for (const p of parts) ok = s.write(p);
      s.uncork();
    }
    if (!ok) this.#blocked = true;
    // Start a fresh arena when little room is left, so the next tick's frames stay in one piece.
    if (this.#arena.length - this.#pos < 4096) {
      this.#arena = Buffer.allocUnsafe(ARENA_BYTES);
      this.#start = 0;
      this.#pos = 0;
    }
  }
}

export type FrameHandler = (type: number, a: number, b: number, payload: Buffer) => void;

/**
 * Incremental frame parser. Payloads are views into the received chunk when a frame lies in one chunk
 * (no copy), else one concatenation. A frame larger than MAX_FRAME_BYTES is a protocol error.
 */
export class FrameReader {
  readonly #onFrame: FrameHandler;
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  constructor(onFrame: FrameHandler) {
    this.#onFrame = onFrame;
  }

  push(chunk: Buffer): void {
    let buf: Buffer;
    if (this.#pendingBytes > 0) {
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
      // Wait until the whole pending frame arrived before concatenating (no quadratic copies).
      const head = this.#pending[0]!;
      if (head.length >= 4) {
        const need = head.readUInt32LE(0) + 4;
        if (this.#pendingBytes < need) return;
      } else if (this.#pendingBytes < 4) {
        return;
      }
      buf = Buffer.concat(this.#pending, this.#pendingBytes);
      this.#pending = [];
      this.#pendingBytes = 0;
    } else {
      buf = chunk;
    }
    let p = 0;
    const n = buf.length;
    while (n - p >= 4) {
      const len = buf.readUInt32LE(p);
      if (len < 9 || len > MAX_FRAME_BYTES) throw new RangeError(`bad frame length ${len}`);
      if (n - p - 4 < len) break;
      const type = buf[p + 4]!;
      const a = buf.readUInt32LE(p + 5);
      const b = buf.readUInt32LE(p + 9);
      const payload = buf.subarray(p + HEADER_BYTES, p + 4 + len);
      p += 4 + len;
      this.#onFrame(type, a, b, payload);
    }
    if (p < n) {
      const rest = buf.subarray(p);
      this.#pending.push(rest);
      this.#pendingBytes = rest.length;
    }
  }
}
