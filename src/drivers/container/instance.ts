/**
 * A container instance: an OCI container serving HTTP on `$PORT`, reached through the driver's network
 * bridge. Each invocation is one HTTP request (keep-alive connections, streamed both ways); the host
 * enforces the wall-clock timeout, the request and response size caps, and reads usage from the
 * instance's cgroup leaf (peak memory of the whole container; CPU time over the invocation, shared out
 * between concurrent ones). Continuum function images add `x-continuum-error` and `x-continuum-logs`
 * (trailers, or headers on a 500 before the response began); any other image's answers are taken as they are.
 *
 * When the container dies (its runtime process exits) every in-flight invocation ends with
 * `instance_crashed` (`memory_limit` after an OOM kill in the leaf, `pids_limit` after a refused fork).
 * A timeout retires the instance: its server may be stuck in a loop. So does an invocation over its CPU
 * budget (`cpu_limit`): the leaf's CPU time is read every `cpuCheckMs` while invocations run, and counts
 * against each invocation in flight (concurrent ones of an instance share it, as on the process tier).
 */
import { Agent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { ContinuumError, type ErrorCode } from '../../core/errors.ts';
import type {
  BindingMessage,
  CapturedLog,
  Completion,
  InitTiming,
  Instance,
  InstanceServices,
  InstanceSpec,
  InstanceState,
  InvokeRequest,
  InvokeResult,
  ServiceRequest,
  ServiceResponse,
} from '../../core/driver.ts';
import type { LogLevel, Tier } from '../../core/types.ts';
import { INVOCATION_HEADER } from '../../runtime/container/host-channel.ts';
import { bindingCaller, callThroughBinding, sendThroughBinding } from '../isolate/bindings.ts';
import type { CgroupLeaf, CgroupUsage } from '../process/cgroup.ts';

/** The container's own cgroup, under the instance's leaf. */
export const CONTAINER_CGROUP = 'c';

type ExitReason = { code: ErrorCode | null; message: string };

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'trailer', 'upgrade', 'proxy-connection', 'te']);

interface Inflight {
  req: ClientRequest | null;
  fail: (code: ErrorCode, message: string) => void;
  /** The leaf's CPU time when it began, ms: its budget counts the container's CPU while it runs. */
  cpuStart: number;
}

export interface ContainerInstanceInit {
  spec: InstanceSpec;
  tier: Tier;
  initTiming: InitTiming;
  leaf: CgroupLeaf;
  /** What the container's bindings reach (through its host channel, driver.ts). */
  services: InstanceServices | undefined;
  connect: () => Socket;
  /** Resolves when the container has exited (its runtime process ended). */
  exited: Promise<void>;
  /** Kills and removes the container, its leaf and namespace. */
  teardown: () => Promise<void>;
  /** How often the CPU budget is checked while invocations run, ms. */
  cpuCheckMs: number;
}

function level(value: string): LogLevel {
  return (['log', 'debug', 'info', 'warn', 'error'] as const).find((l) => l === value) ?? 'log';
}

function parseLogs(value: string | string[] | undefined): { logs: CapturedLog[]; truncated: boolean } {
  if (typeof value !== 'string') return { logs: [], truncated: false };
  try {
    const parsed = JSON.parse(Buffer.from(value, 'base64').toString('utf8')) as { logs: Array<{ ts: number; level: string; message: string }>; truncated: boolean };
    return { logs: parsed.logs.map((l) => ({ ts: Number(l.ts), level: level(String(l.level)), message: String(l.message) })), truncated: parsed.truncated === true };
  } catch {
    return { logs: [], truncated: false };
  }
}

export class ContainerInstance implements Instance {
  readonly id: string;
  readonly tier: Tier;
  readonly initTiming: InitTiming;
  readonly #spec: InstanceSpec;
  readonly #leaf: CgroupLeaf;
  readonly #agent: Agent;
  readonly #teardown: () => Promise<void>;
  #state: InstanceState = 'ready';
  #exited = false;
  #inflight = new Set<Inflight>();
  /** The requests in flight by invocation id: who a binding call comes from. */
  readonly #requests = new Map<string, InvokeRequest>();
  readonly #services: InstanceServices | undefined;
  /** The deepest caller seen: the depth of a service call made after its invocation ended. */
  #maxDepth = 0;
  #listeners: Array<(r: ExitReason) => void> = [];
  #exitReason: ExitReason | null = null;
  #drainWaiters: Array<() => void> = [];
  #atStart: CgroupUsage;
  #final: CgroupUsage | null = null;
  /**
   * The usage as last read for a limit check. An invocation reads only the CPU time and the peak (one
   * file each); the rest is read when one fails: a failure is a limit's doing when the counters moved since.
   */
  #seen: CgroupUsage;
  #stopping: Promise<void> | null = null;
  readonly #cpuCheckMs: number;
  #cpuTimer: NodeJS.Timeout | null = null;

  constructor(init: ContainerInstanceInit) {
    this.#spec = init.spec;
    this.id = init.spec.instanceId;
    this.tier = init.tier;
    this.initTiming = init.initTiming;
    this.#leaf = init.leaf;
    this.#teardown = init.teardown;
    this.#services = init.services;
    this.#cpuCheckMs = init.cpuCheckMs;
    this.#atStart = this.#read();
    this.#seen = this.#atStart;
    this.#agent = new Agent({ keepAlive: true, maxSockets: Math.max(1, init.spec.concurrency) });
    // Every connection goes through the bridge to this container.
    (this.#agent as unknown as { createConnection: () => Socket }).createConnection = init.connect;
    void init.exited.then(() => {
      this.#exited = true;
      const code = this.#limitCode(this.#atStart) ?? 'instance_crashed';
      this.#end(code === 'instance_crashed' ? { code, message: 'the container exited' } : { code, message: this.#limitMessage(code) });
    });
  }

  /** A queue send from the container (its host channel); `invocationId` as the container named it. */
  sendFromContainer(invocationId: string | null, binding: string, messages: BindingMessage[]): Promise<string[]> {
    const traceparent = invocationId === null ? undefined : this.#requests.get(invocationId)?.traceparent;
    return sendThroughBinding(this.#spec, this.#services, binding, messages, traceparent);
  }

  /** A service call from the container; an invocation not in flight here counts as ended (depth from #maxDepth). */
  callFromContainer(invocationId: string | null, binding: string, request: ServiceRequest): Promise<ServiceResponse> {
    const caller = bindingCaller(this.#spec.functionName, invocationId === null ? undefined : this.#requests.get(invocationId), this.#maxDepth);
    return callThroughBinding(this.#spec, this.#services, caller, binding, request);
  }

  /** The stored image this instance runs (undefined: a function bundle on the runtime image). */
  get image(): string | undefined {
    return this.#spec.image;
  }

  get state(): InstanceState {
    return this.#state;
  }

  /** The processes of the container's cgroup leaf (operations and tests). */
  pids(): number[] {
    const pids = new Set<number>();
    for (const dir of this.#leaf.dirs) {
      try {
        for (const pid of readFileSync(join(dir, CONTAINER_CGROUP, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) pids.add(Number(pid));
      } catch {
        // gone with the container
      }
    }
    return [...pids];
  }

  /**
   * The leaf's usage, with the forks refused in the container's own cgroup added: the kernel counts a
   * fork refused at the leaf's pids.max in the cgroup of the forking task (cgroup v1).
   */
  #read(): CgroupUsage {
    const usage = this.#leaf.usage();
    let refused = 0;
    for (const dir of this.#leaf.dirs) {
      try {
        refused += Number(/^max (\d+)$/m.exec(readFileSync(join(dir, CONTAINER_CGROUP, 'pids.events'), 'utf8'))?.[1] ?? 0);
      } catch {
        // not the pids hierarchy, or gone with the container
      }
    }
    return { ...usage, pidsLimitHits: usage.pidsLimitHits + refused };
  }

  #usage(): CgroupUsage {
    return this.#final ?? this.#read();
  }

  /**
   * Which limit ended the container, if one did. cgroup v1 counts an OOM kill, and a fork refused at
   * pids.max, in the container's own cgroup, which the runtime removes as the container ends: a container
   * that died with the leaf's memory peak at its limit was OOM-killed, and one that died with the leaf's
   * task peak at pids.max met the process limit (gVisor's sentry exits when it cannot start the host
   * tasks a fork in the sandbox needs). v2's events on the leaf count its children's already.
   */
  #limitCode(before: CgroupUsage, now = this.#usage()): ErrorCode | null {
    const atMemoryLimit = now.peakMemoryBytes >= this.#spec.limits.memoryMb * 1024 * 1024 - 1024 * 1024;
    if (now.oomKills > before.oomKills || (this.#exited && atMemoryLimit)) return 'memory_limit';
    const atPidsLimit = now.pidsPeak >= this.#leaf.limits.pids && before.pidsPeak < this.#leaf.limits.pids;
    if (now.pidsLimitHits > before.pidsLimitHits || (this.#exited && atPidsLimit)) return 'pids_limit';
    return null;
  }

  /** The limit met since the last check, if any. */
  #newLimit(): ErrorCode | null {
    const now = this.#usage();
    const code = this.#limitCode(this.#seen, now);
    this.#seen = now;
    return code;
  }

  #cpuNow(): number {
    return this.#final?.cpuMs ?? this.#leaf.cpuMs();
  }

  /** Ends the invocations over their CPU budget; the instance then retires (its server may never yield). */
  #checkCpu(): void {
    const cpu = this.#cpuNow();
    const budget = this.#spec.limits.cpuMs;
    const over = [...this.#inflight].filter((f) => cpu - f.cpuStart > budget);
    if (over.length === 0) return;
    for (const f of over) f.fail('cpu_limit', `the invocation exceeded its CPU-time limit of ${budget} ms`);
    this.#retire('cpu_limit', 'retired after an invocation exceeded its CPU-time limit');
  }

  #stopCpuChecks(): void {
    if (this.#cpuTimer) clearInterval(this.#cpuTimer);
    this.#cpuTimer = null;
  }

  #limitMessage(code: ErrorCode): string {
    return code === 'memory_limit' ? `the instance exceeded its memory limit of ${this.#spec.limits.memoryMb} MB` : 'the instance reached its process limit';
  }

  /** Ends the instance once: in-flight invocations fail with the reason, listeners hear it, the container goes. */
  #end(reason: ExitReason): void {
    if (this.#exitReason !== null) return;
    this.#exitReason = reason;
    this.#state = 'stopped';
    this.#final = this.#read();
    this.#stopCpuChecks();
    for (const f of [...this.#inflight]) f.fail(reason.code ?? 'instance_crashed', reason.code === null ? 'the instance was stopped' : reason.message);
    this.#agent.destroy();
    for (const l of this.#listeners) l(reason);
    for (const w of this.#drainWaiters.splice(0)) w();
    this.#stopping = this.#teardown();
  }

  async invoke(request: InvokeRequest): Promise<InvokeResult> {
    const errorResult = (code: ErrorCode, message: string): InvokeResult => ({ kind: 'error', completion: { error: { code, message }, cpuMs: 0, peakMemoryBytes: 0, logs: [], logBytes: 0, logsTruncated: false } });
    if (this.#state !== 'ready') return errorResult(this.#state === 'stopped' ? 'instance_crashed' : 'unavailable', `the instance is ${this.#state}`);
    const limits = this.#spec.limits;
    const cpuStart = this.#cpuNow();
    const started = performance.now();
    const url = new URL(request.request.url);
    const headers: Array<[string, string]> = request.request.headers.filter(([k]) => !HOP_BY_HOP.has(k.toLowerCase()) && !k.toLowerCase().startsWith('x-continuum-') && k.toLowerCase() !== 'host');
    headers.push(['host', url.host], ['x-continuum-url', url.href], [INVOCATION_HEADER, request.invocationId]);
    if (request.request.event) headers.push(['x-continuum-event', JSON.stringify(request.request.event)]);
    if (request.traceparent) headers.push(['traceparent', request.traceparent]);

    let settled = false;
    let resolveHead!: (r: InvokeResult) => void;
    const head = new Promise<InvokeResult>((r) => (resolveHead = r));
    let resolveCompletion!: (c: Completion) => void;
    const completion = new Promise<Completion>((r) => (resolveCompletion = r));
    let bodyError: ((err: Error) => void) | null = null;
    const slot: Inflight = { req: null, fail: () => {}, cpuStart };

    const finish = (reported: Completion['error'], logs: { logs: CapturedLog[]; truncated: boolean } = { logs: [], truncated: false }) => {
      if (settled) return;
      settled = true;
      // A function error after a fork refused at pids.max is the limit's doing: say so, and retire what
      // the bomb left behind.
      const limit = reported?.code === 'function_error' ? this.#newLimit() : null;
      const error = limit ? { code: limit, message: `${this.#limitMessage(limit)} (${reported!.message.slice(0, 200)})` } : reported;
      if (limit) queueMicrotask(() => this.#retire(limit, this.#limitMessage(limit)));
      clearTimeout(timer);
      this.#inflight.delete(slot);
      if (this.#inflight.size === 0) this.#stopCpuChecks();
      this.#requests.delete(request.invocationId);
      const share = 1 + this.#inflight.size;
      const c: Completion = {
        error,
        cpuMs: Math.max(0, (this.#cpuNow() - cpuStart) / share),
        peakMemoryBytes: this.#final?.peakMemoryBytes ?? this.#leaf.peakMemoryBytes(),
        logs: logs.logs,
        logBytes: logs.logs.reduce((n, l) => n + Buffer.byteLength(l.message), 0),
        logsTruncated: logs.truncated,
      };
      resolveCompletion(c);
      resolveHead({ kind: 'error', completion: c });
      if (this.#state === 'draining' && this.#inflight.size === 0) for (const w of this.#drainWaiters.splice(0)) w();
    };
    slot.fail = (code, message) => {
      slot.req?.destroy();
      bodyError?.(new ContinuumError(code, message));
      finish({ code, message });
    };
    // An upstream failure: the container is probably dying; give its exit a moment to say why.
    const upstreamFailed = async () => {
      if (settled) return;
      await Promise.race([new Promise((r) => setTimeout(r, 1000)), new Promise<void>((r) => (this.#exited ? r() : this.onExit(() => r())))]);
      const code = this.#newLimit() ?? 'instance_crashed';
      slot.fail(code, code === 'instance_crashed' ? 'the connection to the container failed' : this.#limitMessage(code));
      if (code !== 'instance_crashed') this.#end({ code, message: this.#limitMessage(code) });
    };
    this.#inflight.add(slot);
    this.#cpuTimer ??= setInterval(() => this.#checkCpu(), this.#cpuCheckMs);
    this.#requests.set(request.invocationId, request);
    if (request.caller && request.caller.depth > this.#maxDepth) this.#maxDepth = request.caller.depth;
    const timer = setTimeout(() => {
      slot.fail('timeout', `the invocation exceeded its timeout of ${limits.timeoutMs} ms`);
      this.#retire('timeout', 'retired after a timeout');
    }, limits.timeoutMs);

    const req = httpRequest({
      agent: this.#agent,
      method: request.request.method,
      path: `${url.pathname}${url.search}`,
      headers: headers.flat() as unknown as Record<string, string>,
      maxHeaderSize: Math.max(16 * 1024, limits.logBytes * 2),
      setHost: false,
    });
    slot.req = req;
    req.on('error', () => void upstreamFailed());
    req.on('response', (res: IncomingMessage) => {
      const errorHeader = res.headers['x-continuum-error'];
      if (res.statusCode === 500 && typeof errorHeader === 'string') {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let message = 'the function failed';
          try {
            message = String((JSON.parse(Buffer.concat(chunks).toString()) as { error: { message: string } }).error.message);
          } catch {
            // not the server's JSON
          }
          finish({ code: errorHeader === 'bad_request' ? 'bad_request' : 'function_error', message }, parseLogs(res.headers['x-continuum-logs']));
        });
        return;
      }
      const outHeaders: Array<[string, string]> = [];
      for (let i = 0; i < res.rawHeaders.length; i += 2) {
        const k = res.rawHeaders[i]!;
        if (!HOP_BY_HOP.has(k.toLowerCase()) && !k.toLowerCase().startsWith('x-continuum-') && k.toLowerCase() !== 'content-length') outHeaders.push([k, res.rawHeaders[i + 1]!]);
      }
      let sent = 0;
      const body = (async function* (self: ContainerInstance) {
        const failure = new Promise<never>((_, reject) => (bodyError = reject));
        failure.catch(() => {});
        const it = res[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
        let consumerLeft = true;
        try {
          for (;;) {
            const next = await Promise.race([it.next(), failure]);
            if (next.done) break;
            sent += next.value.length;
            if (sent > limits.responseBytes) {
              slot.fail('output_too_large', `the response exceeded ${limits.responseBytes} bytes`);
              throw new ContinuumError('output_too_large', `the response exceeded ${limits.responseBytes} bytes`);
            }
            yield new Uint8Array(next.value.buffer, next.value.byteOffset, next.value.length);
          }
          consumerLeft = false;
        } catch (err) {
          consumerLeft = false;
          if (!settled) void upstreamFailed();
          throw err;
        } finally {
          // The consumer stopped reading (the client went away): the invocation ends here, as the isolate
          // tier's does, instead of waiting for its timeout. A response still arriving is cut, which tells
          // the container's server the caller left.
          if (consumerLeft && !settled) {
            if (!res.complete) slot.req?.destroy();
            finish(null, parseLogs(res.complete ? res.trailers['x-continuum-logs'] : undefined));
          }
        }
        if (!res.complete) {
          await upstreamFailed();
          throw new ContinuumError('instance_crashed', 'the response ended early');
        }
        const trailerError = res.trailers['x-continuum-error'];
        finish(trailerError ? { code: 'function_error', message: 'the function failed while streaming its response' } : null, parseLogs(res.trailers['x-continuum-logs']));
        void self;
      })(this);
      if (!settled) resolveHead({ kind: 'response', status: res.statusCode ?? 502, headers: outHeaders, body, completion });
    });

    // The request body, capped.
    void (async () => {
      try {
        let size = 0;
        if (request.body) {
          for await (const chunk of request.body) {
            size += chunk.length;
            if (size > limits.requestBodyBytes) {
              slot.fail('payload_too_large', `the request body exceeded ${limits.requestBodyBytes} bytes`);
              return;
            }
            if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
          }
        }
        req.end();
      } catch {
        slot.fail('bad_request', 'the request body failed');
      }
    })();
    void started;
    return head;
  }

  #retire(code: ErrorCode, message: string): void {
    if (this.#state === 'stopped') return;
    this.#end({ code, message });
  }

  async drain(): Promise<void> {
    if (this.#state === 'ready') this.#state = 'draining';
    if (this.#inflight.size === 0 || this.#state === 'stopped') return;
    await new Promise<void>((r) => this.#drainWaiters.push(r));
  }

  async stop(): Promise<void> {
    this.#end({ code: null, message: 'stopped' });
    await this.#stopping;
  }

  onExit(listener: (reason: ExitReason) => void): void {
    if (this.#exitReason !== null) listener(this.#exitReason);
    else this.#listeners.push(listener);
  }
}
