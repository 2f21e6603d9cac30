/**
 * The composition root of one node: opens the stores, starts the drivers, the scheduler, telemetry, the
 * HTTP front (ingress + control API), restores deployed functions, and optionally deploys the examples.
 * Configuration is passed in; the CLI entry point reads the environment.
 */
import { randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, extname, basename } from 'node:path';
import type { AddressInfo } from 'node:net';
import { NODE_DEFAULTS } from '../core/defaults.ts';
import type { InstanceServices, SandboxDriver } from '../core/driver.ts';
import type { Tier } from '../core/types.ts';
import type { QueueDurability } from '../store/contract.ts';
import { openSqliteStores } from '../store/sqlite/index.ts';
import { openNatsQueueStore } from '../store/nats/index.ts';
import { IsolateDriver } from '../drivers/isolate/driver.ts';
import { ProcessDriver } from '../drivers/process/driver.ts';
import { ContainerDriver } from '../drivers/container/driver.ts';
import { buildFunctionImage } from '../drivers/container/image-build.ts';
import { Scheduler } from '../scheduler/scheduler.ts';
import { serviceCaller } from '../scheduler/service-calls.ts';
import { checkOtlp, Tracer } from '../telemetry/traces.ts';
import { RecordSink } from '../telemetry/sink.ts';
import { Metrics } from '../telemetry/metrics.ts';
import { TimeSeries } from '../telemetry/series.ts';
import { RoutingTable } from '../gateway/router.ts';
import { createIngress, invokeHttp } from '../gateway/ingress.ts';
import { FunctionService } from '../api/service.ts';
import { EventsService } from '../events/service.ts';
import { CollectAhead, minorCollector } from './collect-ahead.ts';
import { ContinuumError } from '../core/errors.ts';
import { buildApp } from '../api/app.ts';

export interface NodeConfig {
  port: number;
  host: string;
  dataDir: string;
  deployExamples: boolean;
  /** Isolate worker processes; 0 = one per core. */
  isolateWorkers?: number;
  /** Directory of example functions (default: the repository's examples/). */
  examplesDir?: string;
  /** HTTP server limits (timeouts, header size, connection caps) over NODE_DEFAULTS.http. */
  http?: { [K in keyof (typeof NODE_DEFAULTS)['http']]?: number };
  /**
   * NATS server URL(s) (comma-separated): queues, async invocations and cron cursors live in JetStream
   * instead of the embedded SQLite queue store.
   */
  nats?: string;
  /**
   * Fault-injection points that kill this process with SIGKILL when reached (crash tests only):
   * `after-invoke` — an event execution finished but its settlement is not yet stored.
   */
  failpoints?: string[];
  /** Retention of invocation records and logs over NODE_DEFAULTS.records. */
  records?: { [K in keyof (typeof NODE_DEFAULTS)['records']]?: number };
  /** SSE keep-alive interval of live log streams (default NODE_DEFAULTS.logs.heartbeatMs). */
  logHeartbeatMs?: number;
  /**
   * Export traces over OTLP/HTTP (JSON) to this collector: `endpoint` is the base URL (`/v1/traces` is
   * appended unless present), `headers` go with every export. Absent: no tracing at all.
   */
  otlp?: { endpoint: string; headers?: Record<string, string> };
  /** The built web console served at `/` (default: the repository's console/dist). */
  consoleDir?: string;
  /** Where diagnostics go (default: stderr). */
  log?: (line: string) => void;
  /** Refuse to start (NotPowerSafeError) unless acknowledged queue writes are known to survive a power loss. */
  requirePowerSafe?: boolean;
  /**
   * Run the container (runc) and gvisor (runsc) tiers. Their start-up imports the runtime image into
   * `<dataDir>/images` and probes the runtimes (gVisor's platforms), seconds of CPU: it runs in the
   * background (the node is ready before; instances asked for meanwhile wait). `continuum up` turns them on;
   * off here by default, for nodes that never need them (tests).
   */
  containerTiers?: boolean;
}

export interface RunningNode {
  url: string;
  tokenPath: string;
  token: string;
  service: FunctionService;
  /** What an acknowledged queue write survives on this node's queue store (told to the operator at start). */
  queueDurability: QueueDurability;
  close(): Promise<void>;
}

const VERSION = '0.1.0';
const CLOSE_GRACE_MS = 5_000;

/** The queue store cannot promise that acknowledged writes survive a power loss; the message says why. */
export class NotPowerSafeError extends ContinuumError {
  constructor(detail: string) {
    super('bad_request', detail);
  }
}

export async function startNode(config: NodeConfig): Promise<RunningNode> {
  const log = config.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const sqlite = await openSqliteStores(config.dataDir);
  // With NATS, queues, async invocations and cron cursors live in JetStream; the rest stays embedded.
  const stores = config.nats ? { ...sqlite, queues: await openNatsQueueStore({ servers: config.nats }) } : sqlite;
  if (config.nats) await sqlite.queues.close();
  const queueDurability = stores.queues.durability();
  if (config.requirePowerSafe && queueDurability.powerLoss !== true) {
    // Before anything listens or runs: a refused node never serves.
    for (const store of [stores.state, stores.records, stores.queues, stores.artifacts]) await store.close();
    throw new NotPowerSafeError(queueDurability.detail);
  }
  const { token, tokenPath } = await ensureAdminToken(config.dataDir);
  const nodeName = (await stores.state.getMeta('node-name')) ?? hostname();

  const isolate = new IsolateDriver({ workers: config.isolateWorkers ?? NODE_DEFAULTS.isolateWorkers, onDiagnostic: (m) => log(`isolate: ${m}`) });
  await isolate.start();
  // The process tier probes the host once (root, bwrap, cgroups); when it cannot run here it stays
  // registered as unavailable, and its instances are refused with the reason.
  const processTier = new ProcessDriver({ onDiagnostic: (m) => log(`process: ${m}`) });
  await processTier.start();
  if (!processTier.status().available) log(`process tier unavailable: ${processTier.status().reason}`);
  const drivers = new Map<Tier, SandboxDriver>([['isolate', isolate], ['process', processTier]]);
  const containerTiers = config.containerTiers
    ? (['runc', 'runsc'] as const).map((runtime) => new ContainerDriver({ runtime, imageDir: join(config.dataDir, 'images', runtime), onDiagnostic: (m) => log(`${runtime}: ${m}`) }))
    : [];
  // Image garbage collection, driven by the function service (it knows which images stored versions name).
  const collectImages = async (referenced: Set<string>): Promise<void> => {
    for (const d of containerTiers) {
      if (!d.status().available) continue;
      try {
        const removed = await d.collectImages(referenced);
        if (removed.length > 0) log(`${d.tier} tier: removed ${removed.length} unused image(s): ${removed.join(', ')}`);
      } catch (err) {
        log(`${d.tier} tier: image collection failed: ${(err as Error).message}`);
      }
    }
  };
  // A tier that starts after the node's first collection (below) gets one of its own.
  let collectGarbage: (() => Promise<unknown>) | null = null;
  for (const d of containerTiers) {
    drivers.set(d.tier, d);
    void d.start().then(async () => {
      log(`${d.tier} tier: ${d.status().available ? '' : 'unavailable: '}${d.status().reason}`);
      await collectGarbage?.().catch((err: unknown) => log(`garbage collection failed: ${(err as Error).message}`));
    });
  }

  // Metrics and the console's time series are fed from records in the sink's batches, off the request path;
  // their gauges read the scheduler and the queue store when scraped.
  const metrics = new Metrics({
    pools: () =>
      scheduler.poolStats().map((p) => ({
        functionName: p.functionName,
        tier: p.tier,
        instances: { starting: p.starting, idle: p.idle, busy: p.busy, draining: p.draining },
        waiting: p.waiting,
      })),
    queues: async () => Promise.all((await stores.queues.listQueues()).map(async (q) => ({ name: q.name, stats: await stores.queues.stats(q.name) }))),
    dropped: (): number => sink.dropped,
  });
  const series = new TimeSeries();
  const retention = { ...NODE_DEFAULTS.records, ...config.records };
  const sink = new RecordSink({
    store: stores.records,
    onError: (err) => log(`records: ${(err as Error).message}`),
    retention: { maxAgeMs: retention.maxAgeMs, maxRows: retention.maxRows, maxBytes: retention.maxBytes, intervalMs: retention.pruneIntervalMs },
    observers: [(batch) => metrics.observe(batch), (batch) => series.observe(batch)],
  });
  const tracer = config.otlp ? new Tracer({ ...checkOtlp(config.otlp), nodeName, onError: (m) => log(`traces: ${m}`) }) : null;
  // Instances reach the events service (queue bindings) and other functions (service bindings) through
  // the scheduler; both exist only once the scheduler does, so the services object forwards.
  let events: EventsService | null = null;
  let callFunction: InstanceServices['callFunction'] = undefined;
  const scheduler: Scheduler = new Scheduler({
    drivers,
    nodeName,
    services: {
      sendToQueue: (fn, queue, messages, traceparent) => {
        if (!events) throw new ContinuumError('unavailable', 'the events service is not running');
        return events.instanceServices.sendToQueue(fn, queue, messages, traceparent);
      },
      callFunction: (caller, target, request) => callFunction!(caller, target, request),
    },
    ...(tracer ? { tracer } : {}),
    loadArtifact: async (digest) => {
      const bytes = await stores.artifacts.get(digest);
      if (!bytes) throw new Error(`artifact ${digest} is missing from the artifact store`);
      return bytes;
    },
    onRecord: (record, completion) => sink.add(record, completion),
  });
  callFunction = serviceCaller(scheduler);

  // Held cron fires tell when a burst starts; the node scavenges before it rather than in it.
  const collect = minorCollector();
  const collectAhead = collect ? new CollectAhead({ collect, aheadMs: NODE_DEFAULTS.collectAheadMs }) : null;
  const eventsService = new EventsService({
    queues: stores.queues,
    ...(collectAhead ? { onHold: (dueAt: number) => collectAhead.expect(dueAt) } : {}),
    invoke: (fn, request, trigger, event) => scheduler.invoke(fn, request, trigger, event),
    log,
    ...(config.failpoints?.length
      ? {
          failpoint: (name: string) => {
            if (config.failpoints!.includes(name)) {
              log(`failpoint ${name}: killing the node`);
              process.kill(process.pid, 'SIGKILL');
            }
          },
        }
      : {}),
  });
  events = eventsService;

  let routes = new RoutingTable([]);
  const service = new FunctionService({
    ...stores,
    scheduler,
    sink,
    checkConfig: (config) => eventsService.checkConfig(config),
    collectImages,
    importImage: async (tier, upload) => {
      const driver = containerTiers.find((d) => d.tier === tier);
      if (!driver) throw new ContinuumError('unavailable', `the ${tier} tier is not running on this node`);
      await driver.start();
      if (!driver.status().available) throw new ContinuumError('unavailable', `the ${tier} tier is not available: ${driver.status().reason}`);
      let bytes = 0;
      const counted = (async function* () {
        for await (const chunk of upload) {
          bytes += chunk.byteLength;
          yield chunk;
        }
      })();
      const { image, release } = await driver.images.importLeased(counted);
      return { id: image.id, bytes, release };
    },
    onFunctionsChanged: (functions) => {
      routes = new RoutingTable(functions.map((f) => ({ name: f.name, routes: f.config.routes, requestBodyBytes: f.config.limits.requestBodyBytes })));
      return eventsService.sync(functions.map((f) => ({ name: f.name, config: f.config, format: scheduler.activeFormat(f.name) })));
    },
  });
  await service.restore();
  collectGarbage = () => service.collectGarbage();
  // What a crash between storing code and its version left; a failure here is logged, not fatal.
  await collectGarbage().catch((err: unknown) => log(`garbage collection failed: ${(err as Error).message}`));

  const app = await buildApp({
    service,
    tiers: () => [...drivers.values()].map((d) => d.status()),
    exportImage: async (version) => {
      const load = async (digest: string) => {
        const bytes = await stores.artifacts.get(digest);
        if (!bytes) throw new ContinuumError('internal', 'an artifact of this version is missing from the artifact store');
        return bytes;
      };
      const limits = version.config.limits;
      return buildFunctionImage({
        nodePath: process.execPath,
        code: Buffer.from(await load(version.bundleDigest)).toString('utf8'),
        files: await Promise.all((version.files ?? []).map(async (f) => ({ path: f.path, bytes: await load(f.digest) }))),
        load: {
          functionName: version.functionName,
          versionId: version.id,
          format: version.format,
          exportName: version.exportName,
          payload: version.config.handler.lambdaPayload,
          memoryLimitMb: limits.memoryMb,
          timeoutMs: limits.timeoutMs,
          cpuMs: limits.cpuMs,
          responseBytes: limits.responseBytes,
          subrequests: limits.subrequests,
          logBytes: limits.logBytes,
        },
      });
    },
    adminToken: token,
    version: VERSION,
    ingress: createIngress({ scheduler, routes: () => routes }),
    events: eventsService,
    invoke: (req, res, fn) => {
      const key = req.headers['idempotency-key'];
      return invokeHttp(scheduler, req, res, fn.name, '/', fn.config.limits.requestBodyBytes, 'api', 'POST', {
        kind: 'invoke',
        attempt: 1,
        idempotencyKey: typeof key === 'string' ? key : null,
      });
    },
    followLogs: (listener) => sink.follow(listener),
    metrics: async () => {
      await sink.flush();
      return metrics.render();
    },
    series: async (fn) => {
      await sink.flush();
      return series.view(fn);
    },
    consoleDir: config.consoleDir ?? new URL('../../console/dist/', import.meta.url).pathname,
    ...(config.http ? { http: config.http } : {}),
    ...(config.logHeartbeatMs ? { logHeartbeatMs: config.logHeartbeatMs } : {}),
  });
  // A deep accept queue: bursts of new connections (a thousand clients at once) must not be dropped.
  await app.listen({ port: config.port, host: config.host, backlog: 4096 });
  const address = app.server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  await writeFile(join(config.dataDir, 'node.json'), JSON.stringify({ url, pid: process.pid }) + '\n', { mode: 0o600 });

  if (config.deployExamples) await deployExamples(service, config.examplesDir ?? defaultExamplesDir(), log);

  // Instance counts for the series are sampled once per bucket, not tracked per request.
  const sampler = setInterval(() => {
    const counts = new Map<string, number>();
    for (const p of scheduler.poolStats()) counts.set(p.functionName, (counts.get(p.functionName) ?? 0) + p.starting + p.idle + p.busy + p.draining);
    series.sampleInstances(counts);
  }, Math.min(series.bucketMs, 5_000));
  sampler.unref();

  let closing: Promise<void> | null = null;
  return {
    url,
    tokenPath,
    token,
    service,
    queueDurability,
    close: () =>
      (closing ??= (async () => {
        // Stop accepting; invocations in flight get a grace period, then their instances stop (answering
        // instance_crashed), and any connection still open after that is cut.
        clearInterval(sampler);
        const force = setTimeout(() => app.server.closeAllConnections(), CLOSE_GRACE_MS + 1000);
        // All at once: app.close waits for in-flight HTTP requests, which end when the scheduler's grace does.
        await Promise.all([app.close(), eventsService.close(CLOSE_GRACE_MS), scheduler.close(CLOSE_GRACE_MS)]);
        collectAhead?.stop();
        clearTimeout(force);
        await Promise.all([isolate.stop(), processTier.stop(), ...containerTiers.map((d) => d.stop())]);
        await sink.close();
        await tracer?.close();
        await stores.state.close();
        await stores.records.close();
        await stores.queues.close();
        await stores.artifacts.close();
        await rm(join(config.dataDir, 'node.json'), { force: true });
      })()),
  };
}

/** The admin token lives in `<data dir>/admin-token` (0600), created at first start. */
async function ensureAdminToken(dataDir: string): Promise<{ token: string; tokenPath: string }> {
  const tokenPath = join(dataDir, 'admin-token');
  if (existsSync(tokenPath)) return { token: (await readFile(tokenPath, 'utf8')).trim(), tokenPath };
  const token = `ctm_${randomBytes(32).toString('base64url')}`;
  await writeFile(tokenPath, token + '\n', { mode: 0o600, flag: 'wx' });
  return { token, tokenPath };
}

function defaultExamplesDir(): string {
  return new URL('../../examples/', import.meta.url).pathname;
}

/** Each file (or directory with package.json) in examples/ becomes a function named after it. */
async function deployExamples(service: FunctionService, dir: string, log: (line: string) => void): Promise<void> {
  if (!existsSync(dir)) return;
  for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.isFile() || !['.js', '.ts', '.mjs'].includes(extname(entry.name))) continue;
    const name = basename(entry.name, extname(entry.name));
    try {
      const bytes = await readFile(join(dir, entry.name));
      const { version } = await service.deploy(name, { bytes, filename: entry.name }, undefined);
      log(`example ${name} deployed (${version.format}, ${version.id}) at /fn/${name}/`);
    } catch (err) {
      log(`example ${name} failed to deploy: ${(err as Error).message}`);
    }
  }
}
