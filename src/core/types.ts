import type { ErrorCode } from './errors.ts';
import type { FunctionConfig } from './config.ts';

export const TIERS = ['isolate', 'process', 'container', 'gvisor', 'microvm'] as const;
export type Tier = (typeof TIERS)[number];

/** How the runtime calls the function. `auto` is resolved at build time from the module's exports. */
export const HANDLER_FORMATS = ['fetch', 'lambda', 'openwhisk'] as const;
export type HandlerFormat = (typeof HANDLER_FORMATS)[number];

/** One dependency found in a bundle's metafile. */
export interface Dependency {
  name: string;
  version: string;
  license: string;
}

/** The result of a build: immutable, addressed by the hash of bundle + config. */
export interface VersionRecord {
  /** `v_` + first 24 hex of sha256(bundle digest + canonical config). */
  id: string;
  functionName: string;
  /** sha256 hex of the bundle bytes; the artifact store key. */
  bundleDigest: string;
  bundleBytes: number;
  format: HandlerFormat;
  /** Export that holds the handler: `default`, `handler`, `main`, or a configured name. */
  exportName: string;
  config: FunctionConfig;
  dependencies: Dependency[];
  /** Files beside the bundle (native addons), each an artifact of its own; absent when there are none. */
  files?: VersionFile[];
  /**
   * Container tiers: the uploaded OCI image (`sha256:<hex>` of its config) the version runs instead of a
   * bundle; `bundleDigest` is then that hex, and the image lives in the tier's image store.
   */
  image?: string;
  createdAt: string;
}

/** A file a version carries beside its bundle, stored content-addressed in the artifact store. */
export interface VersionFile {
  /** Relative to the bundle, e.g. `addons/<sha256>.node`. */
  path: string;
  digest: string;
  bytes: number;
}

export interface FunctionRecord {
  name: string;
  config: FunctionConfig;
  /** The version new invocations use; null until the first deploy. */
  activeVersion: string | null;
  createdAt: string;
  updatedAt: string;
}

export type InvocationOutcome = 'ok' | 'error';
/** `binding`: another function called this one through a service binding (`env.USERS.fetch`). */
export type Trigger = 'http' | 'api' | 'queue' | 'cron' | 'event' | 'binding';

/** One execution, as stored and as returned by the API. Durations in milliseconds (fractional). */
export interface InvocationRecord {
  id: string;
  functionName: string;
  versionId: string;
  tier: Tier;
  trigger: Trigger;
  startedAt: string;
  coldStart: boolean;
  /**
   * Where the time went. queueMs + initMs + execMs + overheadMs = totalMs (see docs/observability.md);
   * initMs = sandboxMs + runtimeInitMs + moduleLoadMs, all 0 when warm.
   */
  phases: {
    /** Waiting for capacity (an instance slot), not counting the cold start of the instance it got. */
    queueMs: number;
    initMs: number;
    /** Cold start: creating the sandbox (0 when a pre-made spare was taken). */
    sandboxMs: number;
    /** Cold start: loading the runtime (globals, polyfills) into the sandbox. */
    runtimeInitMs: number;
    /** Cold start: evaluating the function's module and finding its handler. */
    moduleLoadMs: number;
    /** From handing the request to the instance until its response body was complete. */
    execMs: number;
    /** Node time in no other phase: routing, handing code to the sandbox host, IPC of the instance start. */
    overheadMs: number;
    /** From the node taking the request (head parsed) until the response body was complete. */
    totalMs: number;
  };
  outcome: InvocationOutcome;
  status: number | null;
  errorCode: ErrorCode | null;
  errorMessage: string | null;
  cpuMs: number;
  peakMemoryBytes: number;
  instanceId: string | null;
  node: string;
  logBytes: number;
  logsTruncated: boolean;
  /** For event executions: the message or async invocation this executed, and which attempt it was. */
  event?: { id: string; attempt: number; queue: string };
  /** For service-binding calls: the calling invocation (null when it had already ended) and its function. */
  parentInvocationId?: string | null;
  callerFunction?: string;
  /** The W3C trace id of this invocation's spans, when the node exports traces. */
  traceId?: string;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'log';

export interface LogLine {
  invocationId: string;
  functionName: string;
  /** Milliseconds since epoch. */
  ts: number;
  level: LogLevel;
  message: string;
}
