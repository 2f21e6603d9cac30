/**
 * Every default and every hard ceiling, in one place. Schemas (config.ts) reference these; nothing else
 * hard-codes a limit. Units are in the names: Ms = milliseconds, Mb = mebibytes, Bytes = bytes.
 */

const MiB = 1024 * 1024;

export const FUNCTION_DEFAULTS = {
  limits: {
    timeoutMs: 30_000,
    cpuMs: 10_000,
    memoryMb: 128,
    responseBytes: 6 * MiB,
    requestBodyBytes: 6 * MiB,
    subrequests: 50,
    logBytes: 256 * 1024,
  },
  scale: {
    /** Concurrent invocations one instance serves (isolates multiplex on their event loop). */
    concurrency: 64,
    maxInstances: 8,
    minInstances: 0,
    idleTimeoutMs: 5 * 60_000,
    /** How long a request waits for capacity before `overloaded`. */
    queueTimeoutMs: 10_000,
    /** Requests that may wait for capacity at once, per function. */
    maxQueued: 10_000,
  },
} as const;

/** Event delivery defaults (ARCHITECTURE §6): queue triggers, async invocations, cron, queues. */
export const EVENT_DEFAULTS = {
  queueTrigger: {
    batchSize: 10,
    /** How long a consumer waits to fill a batch once it holds at least one message. */
    maxBatchWaitMs: 50,
    /** Batches of one trigger in flight at once. */
    maxConcurrency: 4,
    maxRetries: 3,
    retryBaseDelayMs: 1000,
    retryMaxDelayMs: 5 * 60_000,
    maxMessageAgeMs: 4 * 24 * 3600_000,
  },
  async: {
    /** Lambda's default: two retries. */
    maxRetries: 2,
    retryBaseDelayMs: 1000,
    retryMaxDelayMs: 5 * 60_000,
    /** Lambda's ceiling and default: six hours. */
    maxEventAgeMs: 6 * 3600_000,
  },
  queue: {
    /** A repeated idempotency key within this window returns the first message id. */
    dedupeWindowMs: 24 * 3600_000,
    /** Outcomes of tracked messages (async invocations) stay queryable this long. */
    outcomeRetentionMs: 7 * 24 * 3600_000,
    maxMessageBytes: 256 * 1024,
    maxSendBatch: 100,
    /** Longest delay a message may be sent with (SQS: 15 minutes; Cloudflare: 12 hours). */
    maxDelayMs: 12 * 3600_000,
    /** Errors kept per message (oldest dropped first). */
    maxErrorsKept: 10,
    /**
     * A delivery's lease; the consumer heartbeats every third of it while the function runs, so a long
     * invocation keeps its message, and a node that died gives its messages back within this time.
     */
    leaseMs: 10_000,
    /** Furthest ahead of its due time a message may be received (QueueStore.receive `aheadMs`). */
    maxReceiveAheadMs: 5_000,
  },
  cron: {
    missed: 'skip' as 'skip' | 'run-once',
    /**
     * A fire is enqueued this long before its scheduled time, and the function's async consumer takes it
     * this far ahead, so the durable writes of a burst of fires (100 triggers due the same second) are done
     * before the second starts; at the second, only the invocations remain. Half a second: a whole second
     * made the next second's synced writes land on the current fires.
     */
    leadMs: 500,
  },
} as const;

/** Function-to-function calls through service bindings (`env.USERS.fetch(…)`). */
export const SERVICE_DEFAULTS = {
  /**
   * Nested calls a request may make (A → B is depth 1): beyond it the call fails with
   * `call_depth_exceeded`, so a binding loop ends quickly instead of filling every pool.
   */
  maxCallDepth: 8,
} as const;

/** Trace export (OTLP/HTTP) when a node is given an endpoint. */
export const TRACE_DEFAULTS = {
  /** Spans are built and exported in batches this often, or sooner when maxBatch are waiting. */
  exportIntervalMs: 1000,
  maxBatch: 512,
  /** Invocations waiting to become spans; beyond it the oldest are dropped and counted. */
  maxQueued: 20_000,
  exportTimeoutMs: 10_000,
} as const;

/** What a function may ask for at most; the API rejects anything beyond (catalogue test 28). */
export const FUNCTION_CEILINGS = {
  limits: {
    timeoutMs: 15 * 60_000,
    cpuMs: 15 * 60_000,
    memoryMb: 4096,
    responseBytes: 256 * MiB,
    requestBodyBytes: 256 * MiB,
    subrequests: 10_000,
    logBytes: 16 * MiB,
  },
  scale: {
    concurrency: 1000,
    maxInstances: 1000,
    minInstances: 100,
    idleTimeoutMs: 24 * 3600_000,
    queueTimeoutMs: 15 * 60_000,
    maxQueued: 100_000,
  },
  routes: 64,
  triggers: 32,
  bindings: 64,
  queueTrigger: {
    batchSize: 100,
    maxBatchWaitMs: 60_000,
    maxConcurrency: 100,
    maxRetries: 100,
    retryBaseDelayMs: 3600_000,
    retryMaxDelayMs: 12 * 3600_000,
    maxMessageAgeMs: 14 * 24 * 3600_000,
  },
  async: {
    maxRetries: 10,
    maxEventAgeMs: 6 * 3600_000,
  },
  envVars: 256,
  envValueBytes: 32 * 1024,
} as const;

export const BUILD_DEFAULTS = {
  /** Largest bundle the builder stores. */
  maxBundleBytes: 50 * MiB,
  /** Largest upload accepted (archive or source). */
  maxUploadBytes: 64 * MiB,
  /** Total bytes an archive may expand to, per entry and as a ratio of its compressed size. */
  maxExtractedBytes: 256 * MiB,
  maxEntryBytes: 64 * MiB,
  maxCompressionRatio: 200,
  maxEntries: 20_000,
  maxPathDepth: 64,
  maxPathBytes: 1024,
  /** Longest single path segment (file or directory name). */
  maxNameBytes: 255,
  /** The compression-ratio cap applies once an archive has expanded past this many bytes. */
  ratioFloorBytes: 1 * MiB,
  /** Time budget for unpacking one archive. */
  extractTimeoutMs: 20_000,
} as const;

export const NODE_DEFAULTS = {
  port: 8080,
  host: '127.0.0.1',
  dataDir: '.continuum',
  /** Isolate host processes; one per core by default (0 = os.availableParallelism()). */
  isolateWorkers: 0,
  /** Control API request bodies other than uploads. */
  maxApiBodyBytes: 1 * MiB,
  maxJsonDepth: 64,
  http: {
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 5 * 60_000,
    keepAliveTimeoutMs: 5_000,
    maxHeaderBytes: 16 * 1024,
    maxConnections: 10_000,
    /** Open connections one client address may hold (slowloris and idle keep-alive floods). */
    maxConnectionsPerIp: 2048,
  },
  /**
   * How long before a held burst of work (cron fires due together) the node looks at its young generation,
   * and scavenges if it is past half full (see node/collect-ahead.ts): enough for a 65 ms scavenge to end
   * before the burst, and after the fires were taken (about 400 ms ahead of their time).
   */
  collectAheadMs: 150,
  /** Retention of invocation records and log lines (each bound applies; the oldest go first). */
  records: {
    maxAgeMs: 7 * 24 * 3600_000,
    maxRows: 1_000_000,
    /** Bytes the records database may hold (pages in use). */
    maxBytes: 1024 * MiB,
    pruneIntervalMs: 10 * 60_000,
  },
  logs: {
    /** SSE comment interval on idle live log streams (keeps proxies from closing them). */
    heartbeatMs: 15_000,
    /** Bytes a live log stream may have queued for a slow client before it is closed. */
    maxBufferedBytes: 4 * MiB,
  },
  /** The in-memory time series behind GET /v1/metrics/series (console charts). */
  series: {
    bucketMs: 10_000,
    /** Buckets kept per function: one hour of 10 s buckets. */
    buckets: 360,
    /** Functions tracked at once; the least recently active is dropped beyond this. */
    maxFunctions: 1000,
  },
  /** Console assets have content-hashed names, so browsers may keep them for a year without asking. */
  consoleAssetMaxAgeS: 365 * 24 * 3600,
} as const;

/** The process tier's sandboxes (src/drivers/process). */
export const PROCESS_TIER_DEFAULTS = {
  /** First uid/gid of the range reserved for sandboxes; each live sandbox holds one of `idCount`. */
  idBase: 200_000,
  idCount: 10_000,
  /** Size cap of each sandbox's private /tmp (tmpfs, counted against its memory too). */
  tmpBytes: 64 * MiB,
  /** CPU quota of one instance, in cores. */
  cpus: 1,
  /** Processes and threads one instance may hold (Node itself uses about a dozen). */
  pids: 256,
  /** Open files one sandbox process may hold (RLIMIT_NOFILE; Node itself uses about twenty). */
  nofile: 1024,
  /** Output a sandbox writes outside any invocation that reaches the node's diagnostics, over its life. */
  strayOutputBytes: 64 * 1024,
  /** Sandboxes started ahead of need; a cold start claims one (0: every instance spawns its own). */
  poolSize: 2,
  /**
   * A claimed sandbox is replaced this long after the claim: starting one forks the node (milliseconds of a
   * blocked event loop), which must not land between a cold start and its first request.
   */
  poolRefillDelayMs: 25,
  /** How often the CPU time of an instance with invocations in flight is read (cpuMs enforcement). */
  cpuCheckMs: 20,
  startTimeoutMs: 10_000,
  createTimeoutMs: 30_000,
} as const;

/** Container images (container and gvisor tiers): caps on an upload and what it unpacks to. */
export const IMAGE_DEFAULTS = {
  /** The uploaded tarball (OCI layout or `docker save`), as sent. */
  uploadBytes: 1024 * MiB,
  /** Files in the uploaded tarball. */
  uploadEntries: 10_000,
  /** Layers of one image. */
  layers: 64,
  /** All layers unpacked, in total: the decompressed size caps gzip bombs. */
  unpackedBytes: 2048 * MiB,
  /** Entries in all layers together. */
  unpackedEntries: 200_000,
  /** Manifest, index and config JSON documents. */
  documentBytes: 1 * MiB,
} as const;

/** The container (runc) and gvisor (runsc) tiers' instances (src/drivers/container). */
export const CONTAINER_TIER_DEFAULTS = {
  /** First host uid of each tier's range (gvisor's follows container's); each live container holds one of `idCount`. */
  idBase: 300_000,
  idCount: 10_000,
  /** Size cap of each container's private /tmp (tmpfs, counted against its memory too); /dev/shm gets a quarter. */
  tmpBytes: 64 * MiB,
  /** CPU quota of one instance, in cores. */
  cpus: 1,
  /** Processes and threads one container may hold (gVisor's sandbox counts its own threads too). */
  pids: 256,
  /** Open files per container process (RLIMIT_NOFILE). */
  nofile: 4096,
  /** From `run` to a TCP connect on $PORT. */
  startTimeoutMs: 30_000,
  /** Network namespaces made ahead of need: a cold start then runs no `ip` (three runs, 10-150 ms by load). */
  spareNetworks: 2,
  /** A taken spare network is replaced this long after: making one runs `ip` (forks of the node) that must not slow the start of the container that took it. */
  spareNetworkRefillDelayMs: 500,
  /**
   * Containers of the runtime image started ahead of need: a cold start of a function then writes its
   * bundle and loads it (tens of ms) instead of starting a container (hundreds).
   */
  spareContainers: 1,
  /** A taken spare container is replaced this long after: the runtime's start must not slow the first request of the one that took it. */
  spareContainerRefillDelayMs: 250,
  /** How often an instance reads its leaf's CPU time while invocations run: the `cpuMs` budget's resolution. */
  cpuCheckMs: 20,
} as const;
