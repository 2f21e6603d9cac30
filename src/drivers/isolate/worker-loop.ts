/**
 * The data-plane side of the isolate tier: runs inside a worker process (see worker.ts), hosts many
 * sandboxes (one isolate each) and speaks the frame protocol of frames.ts with the driver over fd 3.
 *
 * It holds no token and no store handle: everything it knows arrives in `create` frames. Per
 * invocation it attributes CPU time, samples heap and caps log output (the driver caps again).
 */
import { Socket } from 'node:net';
import { F, FrameReader, FrameWriter, LOG_LEVELS } from './frames.ts';
import { decodeServiceResponse, encodeQueueSend, encodeServiceFetch } from './bindings.ts';
import type { BindingMessage, ServiceRequest, ServiceResponse } from '../../core/driver.ts';
import { ContinuumError, isErrorCode, type ErrorCode } from '../../core/errors.ts';
import type { LogLevel } from '../../core/types.ts';
import type { WireLoadOptions } from '../../runtime/isolate/protocol.ts';

/** What the worker needs from the engine (engine.ts provides it). */
export interface WorkerSandboxCallbacks {
  onRespond(invocationId: string, head: { status: number; headers: Array<[string, string]> }, headJson?: string): void;
  onChunk(invocationId: string, bytes: Uint8Array): void;
  onFinish(invocationId: string, error: { code: ErrorCode; message: string } | null): void;
  onLog(invocationId: string, level: LogLevel, message: string): void;
  /** A response that completed inside dispatch (head JSON [+ NUL + body text]); nothing else follows. */
  onWhole(invocationId: string, whole: string): void;
  /** A queue binding's send: forwarded to the driver, which resolves the binding through the instance's spec. */
  onQueueSend(invocationId: string, binding: string, messages: BindingMessage[]): Promise<string[]>;
  /** A service binding's call: forwarded to the driver likewise; resolves with the callee's whole response. */
  onServiceFetch(invocationId: string, binding: string, request: ServiceRequest): Promise<ServiceResponse>;
}

export interface WorkerSandbox {
  readonly timing: { sandboxMs: number; runtimeMs: number; moduleMs: number };
  readonly format: string;
  readonly exportName: string;
  readonly disposed: boolean;
  /** Start an invocation given as a dispatch line (runtime/isolate/protocol.ts). */
  dispatchLine(invocationId: string, line: string): void;
  push(invocationId: string, chunk: Uint8Array | null): void;
  abort(invocationId: string, reason: string): void;
  cpuTimeMs(): number;
  heapUsedBytes(): number;
  dispose(): void;
}

export interface WorkerEngine {
  createSandbox(opts: { code: string; load: WireLoadOptions; callbacks: WorkerSandboxCallbacks }): WorkerSandbox;
}

/** The `create` frame's payload. */
export interface CreatePayload {
  code: string;
  load: WireLoadOptions;
  /** Log bytes kept per invocation; output past it is dropped here, before it crosses the pipe. */
  logBytes: number;
}

/** The `finish` frame's payload. */
export interface FinishPayload {
  e: { code: string; message: string } | null;
  /** CPU ms attributed to this invocation. */
  c: number;
  /** Heap bytes in use when it finished. */
  m: number;
}

interface Inv {
  num: number;
  id: string;
  /** Value of the sandbox's per-invocation CPU accumulator at dispatch. */
  cpuStart: number;
  logBytes: number;
  truncated: boolean;
}

const CHUNK_SPLIT = 1024 * 1024;
/**
 * A heap sample costs ≈ 3.5 µs (a synchronous call onto the isolate's thread), as much as the rest of a warm
 * request's bookkeeping here; invocations finishing within this many ms of a sample share it.
 */
const HEAP_SAMPLE_MS = 1;
const LEVEL_INDEX = new Map<string, number>(LOG_LEVELS.map((l, i) => [l, i]));

class Slot {
  readonly num: number;
  readonly sandbox: WorkerSandbox;
  readonly logCap: number;
  readonly byId = new Map<string, Inv>();
  readonly byNum = new Map<number, Inv>();
  /** CPU time seen at the last sample, and the running share-per-invocation accumulator. */
  cpuLast = 0;
  cpuAcc = 0;
  heapBytes = 0;
  heapAt = -Infinity;
  dying: { code: string; message: string } | null = null;
  dyingScheduled = false;
  /** Binding calls (queue sends, service calls) waiting for the driver's answer, by call number. */
  readonly calls = new Map<number, PendingCall>();
  nextCall = 0;

  constructor(num: number, sandbox: WorkerSandbox, logCap: number) {
    this.num = num;
    this.sandbox = sandbox;
    this.logCap = logCap;
    this.cpuLast = safeNumber(() => sandbox.cpuTimeMs());
  }

  /** Split CPU used since the last sample evenly over the invocations in flight. */
  sampleCpu(): void {
    const now = safeNumber(() => this.sandbox.cpuTimeMs());
    const delta = now - this.cpuLast;
    this.cpuLast = now;
    const n = this.byNum.size;
    if (delta > 0 && n > 0) this.cpuAcc += delta / n;
  }

  /** Heap bytes in use, sampled at most every HEAP_SAMPLE_MS. */
  heap(): number {
    const now = performance.now();
    if (now - this.heapAt >= HEAP_SAMPLE_MS) {
      this.heapBytes = safeNumber(() => this.sandbox.heapUsedBytes());
      this.heapAt = now;
    }
    return this.heapBytes;
  }

  /** The sandbox is going away: sends still waiting will not be answered. */
  failCalls(): void {
    const err = new ContinuumError('instance_crashed', 'the instance stopped before the call was answered');
    for (const c of this.calls.values()) c.reject(err);
    this.calls.clear();
  }
}

interface PendingCall {
  /** Reads the driver's answer frame. */
  settle(payload: Buffer): void;
  reject(err: ContinuumError): void;
}

/** The driver's answer to a queue send: `{ ids }` or `{ error: { code, message } }`. */
function settleSend(call: { resolve: (ids: string[]) => void; reject: (err: ContinuumError) => void }, payload: Buffer): void {
  let answer: { ids?: unknown; error?: { code?: unknown; message?: unknown } };
  try {
    answer = JSON.parse(payload.toString('utf8'));
  } catch {
    answer = {};
  }
  if (Array.isArray(answer.ids) && answer.ids.every((id) => typeof id === 'string')) {
    call.resolve(answer.ids);
    return;
  }
  const e = answer.error;
  const code = isErrorCode(e?.code) ? e.code : 'internal';
  call.reject(new ContinuumError(code, typeof e?.message === 'string' ? e.message : 'the queue send failed'));
}

function safeNumber(fn: () => number): number {
  try {
    const v = fn();
    return Number.isFinite(v) ? v : 0;
  } catch {
    return 0;
  }
}

function toWireError(err: unknown, fallback: ErrorCode): { code: string; message: string } {
  if (err && typeof err === 'object' && typeof (err as { code?: unknown }).code === 'string') {
    const e = err as { code: string; message?: unknown };
    return { code: e.code, message: typeof e.message === 'string' ? e.message : String(e.message) };
  }
  return { code: fallback, message: err instanceof Error ? err.message : String(err) };
}

/** Starts the engine from the driver's `init` payload; `fatal` reports a catastrophic isolate error. */
export type EngineFactory = (init: unknown, fatal: (message: string) => void) => Promise<WorkerEngine> | WorkerEngine;

/** Serve the driver on fd 3 until it closes the channel. */
export function runWorker(createEngine: EngineFactory): void {
  const socket = new Socket({ fd: 3, readable: true, writable: true });
  const out = new FrameWriter(socket);
  const slots = new Map<number, Slot>();
  let fatal = false;
  let engine: WorkerEngine | null = null;

  const report = (type: number, message: string) => {
    try {
      out.text(type, 0, 0, message.slice(0, 4096));
      out.flush();
    } catch {
      // the channel is gone; nothing else to tell
    }
  };
  process.on('uncaughtException', (err) => report(F.workerError, `uncaughtException: ${err?.stack ?? String(err)}`));
  process.on('unhandledRejection', (err) => report(F.workerError, `unhandledRejection: ${err instanceof Error ? err.stack : String(err)}`));
  const onFatal = (message: string) => {
    fatal = true;
    report(F.fatal, message);
  };
  const init = async (payload: unknown) => {
    try {
      engine = await createEngine(payload, onFatal);
      out.text(F.ready, 0, 0, JSON.stringify({ pid: process.pid }));
    } catch (err) {
      out.text(F.ready, 0, 0, JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
    }
  };

  /** Close an invocation's books: its share of the sandbox's CPU since dispatch. */
  const settle = (slot: Slot, inv: Inv): number => {
    slot.sampleCpu();
    slot.byId.delete(inv.id);
    slot.byNum.delete(inv.num);
    return slot.cpuAcc - inv.cpuStart;
  };

  const finish = (slot: Slot, inv: Inv, error: { code: string; message: string } | null) => {
    const cpu = settle(slot, inv);
    if (error === null) {
      out.doubles(F.finishOk, slot.num, inv.num, cpu, slot.heap());
    } else {
      const payload: FinishPayload = { e: error, c: cpu, m: slot.heap() };
      out.text(F.finish, slot.num, inv.num, JSON.stringify(payload));
    }
    if (slot.sandbox.disposed) {
      // The engine finishes every in-flight invocation of a disposed sandbox in one go; report the
      // instance's end once that is over, with the limit that caused it rather than the collateral code.
      if (error && (!slot.dying || slot.dying.code === 'instance_crashed')) slot.dying = error;
      if (!slot.dyingScheduled) {
        slot.dyingScheduled = true;
        queueMicrotask(() => dropSlot(slot, slot.dying ?? { code: 'instance_crashed', message: 'sandbox disposed' }));
      }
    }
  };

  const dropSlot = (slot: Slot, reason: { code: string; message: string }) => {
    if (slots.get(slot.num) !== slot) return;
    slots.delete(slot.num);
    slot.failCalls();
    for (const inv of [...slot.byNum.values()]) {
      out.text(F.finish, slot.num, inv.num, JSON.stringify({ e: { code: 'instance_crashed', message: reason.message }, c: 0, m: 0 }));
    }
    slot.byId.clear();
    slot.byNum.clear();
    try {
      if (!slot.sandbox.disposed) slot.sandbox.dispose();
    } catch {
      // already gone
    }
    out.text(F.exited, slot.num, 0, JSON.stringify(reason));
  };

  const create = (num: number, payload: CreatePayload) => {
    if (fatal) {
      out.text(F.createFailed, num, 0, JSON.stringify({ code: 'instance_crashed', message: 'worker is shutting down' }));
      return;
    }
    let slot: Slot | undefined;
    const callbacks: WorkerSandboxCallbacks = {
      onRespond(id, head, headJson) {
        const inv = slot?.byId.get(id);
        if (inv) out.text(F.respond, num, inv.num, headJson ?? JSON.stringify(head));
      },
      onChunk(id, bytes) {
        const inv = slot?.byId.get(id);
        if (!inv) return;
        for (let off = 0; off < bytes.byteLength; off += CHUNK_SPLIT) {
          out.bytes(F.chunk, num, inv.num, off === 0 && bytes.byteLength <= CHUNK_SPLIT ? bytes : bytes.subarray(off, off + CHUNK_SPLIT));
        }
      },
      onFinish(id, error) {
        const inv = slot?.byId.get(id);
        if (slot && inv) finish(slot, inv, error);
      },
      onWhole(id, whole) {
        const inv = slot?.byId.get(id);
        if (!slot || !inv) return;
        const cpu = settle(slot, inv);
        out.doublesText(F.whole, num, inv.num, cpu, slot.heap(), whole);
      },
      onLog(id, level, message) {
        const inv = slot?.byId.get(id);
        if (!slot || !inv || inv.truncated) return;
        const text = typeof message === 'string' ? message : String(message);
        const room = slot.logCap - inv.logBytes;
        let bytes = text.length <= room / 3 ? text.length : Buffer.byteLength(text);
        let kept = text;
        if (bytes > room) {
          kept = Buffer.from(text, 'utf8').subarray(0, Math.max(0, room)).toString('utf8');
          // A cut multi-byte character decodes as U+FFFD (3 bytes); trim until it fits.
          while (kept.length > 0 && Buffer.byteLength(kept) > room) kept = kept.slice(0, -1);
          bytes = Buffer.byteLength(kept);
          inv.truncated = true;
        }
        inv.logBytes += bytes;
        if (kept.length > 0 || !inv.truncated) out.text(F.log, num, inv.num, kept, LEVEL_INDEX.get(level) ?? 0);
        if (inv.truncated) out.bytes(F.logTruncated, num, inv.num);
      },
      onQueueSend(id, binding, messages) {
        return new Promise((resolve, reject) =>
          startCall(reject, (payload) => settleSend({ resolve, reject }, payload), (call, inv) => out.bytes(F.queueSend, num, call, encodeQueueSend(binding, inv, messages)), id),
        );
      },
      onServiceFetch(id, binding, request) {
        return new Promise((resolve, reject) =>
          startCall(
            reject,
            (payload) => {
              const answer = decodeServiceResponse(payload);
              if ('error' in answer) reject(new ContinuumError(isErrorCode(answer.error.code) ? answer.error.code : 'internal', String(answer.error.message)));
              else resolve(answer);
            },
            (call, inv) => out.bytes(F.serviceFetch, num, call, encodeServiceFetch(binding, inv, request)),
            id,
          ),
        );
      },
    };
    /** Send a binding call to the driver, naming the calling invocation by its number (0: none running). */
    const startCall = (reject: (err: ContinuumError) => void, settle: (payload: Buffer) => void, send: (call: number, inv: number) => void, owner: string) => {
      if (!slot || slots.get(num) !== slot) {
        reject(new ContinuumError('instance_crashed', 'the instance is gone'));
        return;
      }
      const call = (slot.nextCall = (slot.nextCall + 1) >>> 0 || 1);
      slot.calls.set(call, { settle, reject });
      send(call, slot.byId.get(owner)?.num ?? 0);
    };
    try {
      if (!engine) throw Object.assign(new Error('engine not started'), { code: 'internal' });
      const sandbox = engine.createSandbox({ code: payload.code, load: payload.load, callbacks });
      slot = new Slot(num, sandbox, Math.max(0, payload.logBytes));
      slots.set(num, slot);
      out.text(F.created, num, 0, JSON.stringify({ timing: sandbox.timing, format: sandbox.format, exportName: sandbox.exportName }));
    } catch (err) {
      out.text(F.createFailed, num, 0, JSON.stringify(toWireError(err, 'bad_bundle')));
    }
  };

  const onFrame = (type: number, a: number, b: number, payload: Buffer) => {
    switch (type) {
      case F.dispatch: {
        const slot = slots.get(a);
        if (!slot) {
          out.text(F.finish, a, b, JSON.stringify({ e: { code: 'instance_crashed', message: 'instance is gone' }, c: 0, m: 0 }));
          return;
        }
        const text = payload.toString('utf8');
        const i1 = text.indexOf('\n');
        slot.sampleCpu();
        const inv: Inv = { num: b, id: text.slice(0, i1), cpuStart: slot.cpuAcc, logBytes: 0, truncated: false };
        slot.byId.set(inv.id, inv);
        slot.byNum.set(b, inv);
        try {
          slot.sandbox.dispatchLine(inv.id, text);
        } catch (err) {
          if (slot.byNum.get(b) === inv) finish(slot, inv, toWireError(err, 'internal'));
        }
        return;
      }
      case F.push:
      case F.end: {
        const slot = slots.get(a);
        const inv = slot?.byNum.get(b);
        if (!slot || !inv) return;
        try {
          // The engine copies the bytes into the isolate; the view into the read buffer is not kept.
          // A plain Uint8Array, not the Buffer: Buffer#slice() is a view, Uint8Array#slice() a copy.
          slot.sandbox.push(inv.id, type === F.end ? null : new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength));
        } catch (err) {
          if (slot.byNum.get(b) === inv) finish(slot, inv, toWireError(err, 'internal'));
        }
        return;
      }
      case F.abort: {
        const slot = slots.get(a);
        const inv = slot?.byNum.get(b);
        if (!slot || !inv) return;
        // The driver has already answered the caller; from here on the invocation is only cleanup.
        slot.byId.delete(inv.id);
        slot.byNum.delete(inv.num);
        try {
          slot.sandbox.abort(inv.id, payload.toString('utf8'));
        } catch {
          // the sandbox may be disposed by now
        }
        if (slot.sandbox.disposed) dropSlot(slot, { code: 'instance_crashed', message: 'sandbox disposed' });
        return;
      }
      case F.queueSent:
      case F.serviceResponse: {
        const slot = slots.get(a);
        const call = slot?.calls.get(b);
        if (!slot || !call) return;
        slot.calls.delete(b);
        try {
          call.settle(payload);
        } catch (err) {
          call.reject(err instanceof ContinuumError ? err : new ContinuumError('internal', 'malformed answer'));
        }
        return;
      }
      case F.create:
        create(a, JSON.parse(payload.toString('utf8')) as CreatePayload);
        return;
      case F.dispose: {
        const slot = slots.get(a);
        if (!slot) return;
        slots.delete(a);
        slot.failCalls();
        try {
          slot.sandbox.dispose();
        } catch {
          // already disposed
        }
        return;
      }
      case F.ping:
        out.bytes(F.pong, a, 0);
        return;
      case F.init:
        void init(JSON.parse(payload.toString('utf8')));
        return;
      default:
        report(F.workerError, `unknown frame type ${type}`);
    }
  };

  const reader = new FrameReader(onFrame);
  socket.on('data', (chunk: Buffer) => reader.push(chunk));
  // The driver went away: nothing left to serve.
  const bye = () => process.exit(0);
  socket.on('end', bye);
  socket.on('close', bye);
  socket.on('error', bye);
}
