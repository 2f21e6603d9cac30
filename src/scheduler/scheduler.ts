/**
 * The scheduler owns one InstancePool per deployed version and knows which version of each function is
 * active. `invoke` is the single path every trigger (HTTP, API, later queues and cron) takes: lease →
 * driver invoke → release when the response body is done → one invocation record.
 */
import { ContinuumError, toContinuumError, type ErrorCode } from '../core/errors.ts';
import type { Completion, InstanceServices, InvokeRequest, InvokeResult, SandboxDriver } from '../core/driver.ts';
import type { InvocationRecord, Tier, Trigger, VersionRecord } from '../core/types.ts';
import { InstancePool, OverloadedError, type ColdStart, type PoolSettings } from './pool.ts';

export interface SchedulerOptions {
  drivers: ReadonlyMap<Tier, SandboxDriver>;
  /** Fetch a bundle or a file beside it by digest (from the artifact store); throws when it is missing. */
  loadArtifact: (digest: string) => Promise<Uint8Array>;
  /** Receives every finished invocation. */
  onRecord: (record: InvocationRecord, completion: Completion) => void;
  nodeName: string;
  /** What instances may call back into (queue bindings); absent, binding calls fail with `unavailable`. */
  services?: InstanceServices;
  /** How often idle instances are looked for. */
  sweepIntervalMs?: number;
  /** Tracing, when the node exports traces; absent, invocations pay nothing for it. */
  tracer?: InvocationTracer;
}

/**
 * What the scheduler tells a tracer: `start` before the lease (it may give the request the execution
 * span's traceparent, which the function sees), `end` with the finished record. Spans are built later,
 * off the hot path, from the timestamps these carry.
 */
export interface InvocationTracer {
  start(request: InvokeRequest): TraceHandle | null;
  end(handle: TraceHandle, record: InvocationRecord, request: InvokeRequest): void;
}

export interface TraceHandle {
  readonly traceId: string;
}

export interface Invocation {
  result: InvokeResult;
  /** Set when the request never reached an instance (overloaded, no such function). */
  retryAfterSeconds?: number;
}

export class Scheduler {
  private readonly opts: SchedulerOptions;
  /** Keyed by poolKey(version): two functions with the same code and config share a version id, never a pool. */
  private readonly pools = new Map<string, InstancePool>();
  private readonly versions = new Map<string, VersionRecord>();
  /** Function name → pool key of its active version. */
  private readonly active = new Map<string, string>();
  private readonly codeCache = new Map<string, Promise<string>>();
  private readonly sweepTimer: NodeJS.Timeout;

  constructor(opts: SchedulerOptions) {
    this.opts = opts;
    this.sweepTimer = setInterval(() => this.sweep(), opts.sweepIntervalMs ?? 1000);
    this.sweepTimer.unref();
  }

  /** Make freshly built code available before it reaches the artifact store (deploy validates first). */
  stageCode(digest: string, code: string): void {
    this.codeCache.set(digest, Promise.resolve(code));
  }

  /** Start one instance of a version that is not yet active; throws bad_bundle if it cannot load. */
  async prewarm(version: VersionRecord): Promise<void> {
    const pool = this.poolFor(version);
    try {
      await pool.ensureInstances(Math.max(1, version.config.scale.minInstances));
    } catch (err) {
      if (this.active.get(version.functionName) !== poolKey(version)) await this.dropPool(poolKey(version));
      throw err;
    }
  }

  /** Route new invocations of the function to this version; the previous version's pool drains. */
  async activate(version: VersionRecord): Promise<void> {
    this.poolFor(version);
    const key = poolKey(version);
    const previous = this.active.get(version.functionName);
    this.active.set(version.functionName, key);
    if (previous && previous !== key) await this.dropPool(previous);
  }

  async deactivate(functionName: string): Promise<void> {
    const id = this.active.get(functionName);
    this.active.delete(functionName);
    if (id) await this.dropPool(id);
  }

  /** Scale a function to zero now. */
  async evict(functionName: string): Promise<number> {
    const id = this.active.get(functionName);
    const pool = id ? this.pools.get(id) : undefined;
    return pool ? pool.evictAll() : 0;
  }

  /** Handler format of the function's active version, or null when it has none. */
  activeFormat(functionName: string): VersionRecord['format'] | null {
    const key = this.active.get(functionName);
    return (key && this.versions.get(key)?.format) || null;
  }

  instances(functionName: string): number {
    const id = this.active.get(functionName);
    return (id && this.pools.get(id)?.instanceCount) || 0;
  }

  /** Every pool (active and replaced versions still draining) with its instances by state. */
  poolStats(): Array<{ functionName: string; tier: Tier; starting: number; idle: number; busy: number; draining: number; waiting: number }> {
    const out = [];
    for (const [key, pool] of this.pools) {
      const version = this.versions.get(key);
      if (version) out.push({ functionName: version.functionName, tier: version.config.tier, ...pool.stats() });
    }
    return out;
  }

  /** `event` names the message or async invocation an event execution serves (kept in its record). */
  async invoke(functionName: string, request: InvokeRequest, trigger: Trigger, event?: InvocationRecord['event']): Promise<Invocation> {
    const startedAt = Date.now();
    const t0 = performance.now();
    const key = this.active.get(functionName);
    const pool = key ? this.pools.get(key) : undefined;
    const version = key ? this.versions.get(key) : undefined;
    if (!pool || !version) {
      return { result: errorResult('not_found', `function ${functionName} is not deployed`) };
    }
    const trace = this.opts.tracer ? this.opts.tracer.start(request) : null;
    let lease;
    try {
      lease = await pool.acquire();
    } catch (err) {
      const e = toContinuumError(err);
      const result = errorResult(e.code, e.message);
      const waited = performance.now() - t0;
      this.record(version, request, trigger, startedAt, phasesOf(waited, null, waited, 0, waited), null, null, result.completion, null, event, trace);
      return { result, ...(err instanceof OverloadedError ? { retryAfterSeconds: err.retryAfterSeconds } : {}) };
    }
    const execStart = performance.now();
    let result: InvokeResult;
    try {
      result = await lease.instance.invoke(request);
    } catch (err) {
      const e = toContinuumError(err);
      result = errorResult(e.code, e.message);
    }
    const finish = (completion: Completion, status: number | null) => {
      lease.release();
      const end = performance.now();
      const phases = phasesOf(lease.queueMs, lease.coldStart, execStart - t0, end - execStart, end - t0);
      this.record(version, request, trigger, startedAt, phases, lease.instance.id, status, completion, lease.coldStart !== null, event, trace);
    };
    if (result.kind === 'error') {
      finish(result.completion, null);
    } else {
      const status = result.status;
      result.completion.then(
        (c) => finish(c, status),
        (err) => finish(errorResult(toContinuumError(err).code, 'invocation failed').completion, status),
      );
    }
    return { result };
  }

  /** Stop everything; in-flight invocations get `graceMs` to finish. */
  async close(graceMs = Infinity): Promise<void> {
    clearInterval(this.sweepTimer);
    await Promise.all([...this.pools.keys()].map((key) => this.dropPool(key, graceMs)));
  }

  private sweep(): void {
    for (const pool of this.pools.values()) pool.sweep();
  }

  private poolFor(version: VersionRecord): InstancePool {
    const key = poolKey(version);
    let pool = this.pools.get(key);
    if (pool) return pool;
    const driver = this.opts.drivers.get(version.config.tier);
    if (!driver) throw new ContinuumError('unavailable', `tier ${version.config.tier} is not available on this node`);
    this.versions.set(key, version);
    pool = new InstancePool({
      functionName: version.functionName,
      versionId: version.id,
      driver,
      services: this.opts.services,
      settings: poolSettings(version),
      spec: async () => ({
        functionName: version.functionName,
        versionId: version.id,
        // An image version has no bundle: the container runs the image.
        code: version.image ? '' : await this.code(version.bundleDigest),
        ...(version.image ? { image: version.image } : {}),
        files: await Promise.all((version.files ?? []).map(async (f) => ({ path: f.path, bytes: await this.opts.loadArtifact(f.digest) }))),
        format: version.format,
        exportName: version.exportName,
        lambdaPayload: version.config.handler.lambdaPayload ?? '2.0',
        limits: version.config.limits,
        concurrency: version.config.scale.concurrency,
        env: version.config.env,
        bindings: version.config.bindings ?? {},
      }),
    });
    this.pools.set(key, pool);
    return pool;
  }

  private code(digest: string): Promise<string> {
    let code = this.codeCache.get(digest);
    if (!code) {
      code = this.opts.loadArtifact(digest).then((bytes) => new TextDecoder().decode(bytes));
      code.catch(() => this.codeCache.delete(digest));
      this.codeCache.set(digest, code);
    }
    return code;
  }

  private async dropPool(key: string, graceMs = Infinity): Promise<void> {
    const pool = this.pools.get(key);
    this.pools.delete(key);
    const version = this.versions.get(key);
    this.versions.delete(key);
    if (version && ![...this.versions.values()].some((v) => v.bundleDigest === version.bundleDigest)) {
      this.codeCache.delete(version.bundleDigest);
    }
    await pool?.close(graceMs);
  }

  private record(
    version: VersionRecord,
    request: InvokeRequest,
    trigger: Trigger,
    startedAt: number,
    phases: InvocationRecord['phases'],
    instanceId: string | null,
    status: number | null,
    completion: Completion,
    coldStart: boolean | null,
    event: InvocationRecord['event'],
    trace: TraceHandle | null,
  ): void {
    const caller = request.caller;
    const record: InvocationRecord = {
      id: request.invocationId,
      functionName: version.functionName,
      versionId: version.id,
      tier: version.config.tier,
      trigger,
      startedAt: new Date(startedAt).toISOString(),
      coldStart: coldStart ?? false,
      phases,
      outcome: completion.error ? 'error' : 'ok',
      status,
      errorCode: completion.error?.code ?? null,
      errorMessage: completion.error?.message ?? null,
      cpuMs: completion.cpuMs,
      peakMemoryBytes: completion.peakMemoryBytes,
      instanceId,
      node: this.opts.nodeName,
      logBytes: completion.logBytes,
      logsTruncated: completion.logsTruncated,
      ...(event ? { event } : {}),
    };
    if (caller) {
      record.parentInvocationId = caller.invocationId;
      record.callerFunction = caller.functionName;
    }
    if (trace) record.traceId = trace.traceId;
    this.opts.onRecord(record, completion);
    if (trace) this.opts.tracer!.end(trace, record, request);
  }
}

/**
 * Splits a request's time into phases that add up to `totalMs`. A cold lease waited (at least partly) for
 * its own instance to start: that part of the wait is the cold start, reported as the driver's phases, and
 * the rest of the start's wall time (code load, IPC with the sandbox host) is overhead, as is the node's
 * own time before the lease. Overhead is clamped at 0 for the rare request that joined a start already
 * under way (it waited less than the instance's whole init).
 */
function phasesOf(waitedMs: number, cold: ColdStart | null, beforeExecMs: number, execMs: number, totalMs: number): InvocationRecord['phases'] {
  const sandboxMs = cold?.sandboxMs ?? 0;
  const runtimeInitMs = cold?.runtimeMs ?? 0;
  const moduleLoadMs = cold?.moduleMs ?? 0;
  const initMs = sandboxMs + runtimeInitMs + moduleLoadMs;
  const queueMs = cold ? Math.max(0, waitedMs - cold.wallMs) : waitedMs;
  const overheadMs = Math.max(0, beforeExecMs - queueMs - initMs);
  return { queueMs, initMs, sandboxMs, runtimeInitMs, moduleLoadMs, execMs, overheadMs, totalMs };
}

function poolKey(version: VersionRecord): string {
  return `${version.functionName}/${version.id}`;
}

function poolSettings(version: VersionRecord): PoolSettings {
  const s = version.config.scale;
  return {
    concurrency: s.concurrency,
    maxInstances: s.maxInstances,
    minInstances: s.minInstances,
    idleTimeoutMs: s.idleTimeoutMs,
    queueTimeoutMs: s.queueTimeoutMs,
    maxQueued: s.maxQueued,
  };
}

function errorResult(code: ErrorCode, message: string): InvokeResult & { kind: 'error' } {
  return {
    kind: 'error',
    completion: { error: { code, message }, cpuMs: 0, peakMemoryBytes: 0, logs: [], logBytes: 0, logsTruncated: false },
  };
}
