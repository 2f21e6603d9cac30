/**
 * The command line grammar, kept apart from what the verbs do so parsing can be tested on its own:
 * createProgram(handlers) wires each verb to a handler that receives typed, checked options.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { EVENT_DEFAULTS, NODE_DEFAULTS } from '../core/defaults.ts';
import { TIERS, type Tier } from '../core/types.ts';
import { parseDuration } from './duration.ts';

export interface CommonOptions {
  json?: boolean;
  verbose?: boolean;
  /** --data-dir: where the local node keeps node.json and admin-token. */
  dataDir?: string;
}

export interface UpOptions extends CommonOptions {
  port?: number;
  host?: string;
  examples?: boolean;
  /** NATS server URL(s), comma-separated: queues and async invocations in JetStream. */
  nats?: string;
  /** Refuse to start unless acknowledged queue writes are known to survive a power loss. */
  requirePowerSafe?: boolean;
  /** OTLP/HTTP endpoint to export traces to. */
  otlpEndpoint?: string;
  /** Retention of invocation records and logs. */
  recordsMaxAge?: number;
  recordsMaxSize?: number;
}

export interface DeployOptions extends CommonOptions {
  name?: string;
  tier?: Tier;
}

export interface InvokeOptions extends CommonOptions {
  data?: string;
  header: string[];
  method?: string;
  path?: string;
  /** Accept and run later; prints the invocation id. */
  async?: boolean;
  idempotencyKey?: string;
}

export interface InvocationOptions extends CommonOptions {
  wait?: boolean;
  /** --timeout in ms (implies --wait). */
  timeout?: number;
}

export interface QueueSendOptions extends CommonOptions {
  /** One message per --data. */
  data: string[];
  /** --delay in whole seconds. */
  delay?: number;
  /** One per message, in order. */
  idempotencyKey: string[];
  /** The --data values are base64. */
  base64?: boolean;
}

export interface QueueDlqOptions extends CommonOptions {
  limit?: number;
}

export interface QueueRedriveOptions extends CommonOptions {
  id: string[];
}

export interface ImageBuildOptions extends CommonOptions {
  output?: string;
}

export interface QueueHandlers {
  create(name: string, opts: CommonOptions): Promise<number>;
  ls(opts: CommonOptions): Promise<number>;
  show(name: string, opts: CommonOptions): Promise<number>;
  rm(name: string, opts: CommonOptions): Promise<number>;
  purge(name: string, opts: CommonOptions): Promise<number>;
  send(name: string, opts: QueueSendOptions): Promise<number>;
  dlq(name: string, opts: QueueDlqOptions): Promise<number>;
  redrive(name: string, opts: QueueRedriveOptions): Promise<number>;
}

export interface LogsOptions extends CommonOptions {
  follow?: boolean;
  invocation?: string;
  since?: string;
  until?: string;
  search?: string;
}

export interface InvocationsOptions extends CommonOptions {
  outcome?: 'ok' | 'error';
  errorCode?: string;
  cold?: boolean;
  warm?: boolean;
  tier?: string;
  since?: string;
  until?: string;
  limit?: number;
  cursor?: string;
  all?: boolean;
}

/** How long `invocation --wait` waits without --timeout. */
export const WAIT_TIMEOUT_MS = 5 * 60_000;
/** Dead letters `queue dlq` lists without --limit. */
export const DLQ_LIMIT = 100;

/** Each handler resolves with the process exit code. */
export interface Handlers {
  up(opts: UpOptions): Promise<number>;
  deploy(target: string, opts: DeployOptions): Promise<number>;
  ls(opts: CommonOptions): Promise<number>;
  status(opts: CommonOptions): Promise<number>;
  versions(name: string, opts: CommonOptions): Promise<number>;
  rm(name: string, opts: CommonOptions): Promise<number>;
  invoke(name: string, opts: InvokeOptions): Promise<number>;
  logs(name: string, opts: LogsOptions): Promise<number>;
  invocation(id: string, opts: InvocationOptions): Promise<number>;
  invocations(name: string | undefined, opts: InvocationsOptions): Promise<number>;
  queue: QueueHandlers;
  image: { build(target: string, opts: ImageBuildOptions): Promise<number> };
}

export function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be an integer from 0 to 65535 (0 picks a free port)');
  return n;
}

function parseMethod(value: string): string {
  const m = value.trim().toUpperCase();
  if (!/^[A-Z]{1,16}$/.test(m)) throw new InvalidArgumentError('must be an HTTP method such as GET or POST');
  return m;
}

function parsePath(value: string): string {
  if (!value.startsWith('/')) throw new InvalidArgumentError("must start with '/'");
  return value;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 1 || n > 1000) throw new InvalidArgumentError('must be an integer from 1 to 1000');
  return n;
}

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30 };

/** `500MB`, `2GiB`, `1048576` → bytes. */
export function parseSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = SIZE_UNITS[(m?.[2] || 'b').toLowerCase()];
  if (!m || unit === undefined || Number(m[1]) * unit < 1) throw new InvalidArgumentError('must be a size such as 500MB or 2GiB');
  return Math.floor(Number(m[1]) * unit);
}

function durationMs(value: string): number {
  try {
    return parseDuration(value);
  } catch {
    throw new InvalidArgumentError('must be a duration such as 30s, 10m or 1h30m');
  }
}

const MAX_DELAY_S = EVENT_DEFAULTS.queue.maxDelayMs / 1000;
const DEDUPE_H = EVENT_DEFAULTS.queue.dedupeWindowMs / 3_600_000;

/** --delay: a duration in whole seconds, up to the queue's longest delay. */
export function parseDelay(value: string): number {
  const ms = durationMs(value);
  if (ms % 1000 !== 0) throw new InvalidArgumentError('must be whole seconds (messages are delayed by the second)');
  if (ms > EVENT_DEFAULTS.queue.maxDelayMs) throw new InvalidArgumentError(`must be at most ${MAX_DELAY_S / 3600}h`);
  return ms / 1000;
}

function parseTimeout(value: string): number {
  const ms = durationMs(value);
  if (ms <= 0) throw new InvalidArgumentError('must be longer than 0s');
  return ms;
}

function parseIdempotencyKey(value: string): string {
  if (value.length < 1 || value.length > 256) throw new InvalidArgumentError('must be 1 to 256 characters');
  return value;
}

function collectIdempotencyKey(value: string, previous: string[]): string[] {
  return [...previous, parseIdempotencyKey(value)];
}

/** Every command in the tree (error handling is configured on each one). */
export function* allCommands(cmd: Command): Generator<Command> {
  for (const sub of cmd.commands) {
    yield sub;
    yield* allCommands(sub);
  }
}

function common(cmd: Command): Command {
  return cmd
    .option('--json', 'print only JSON on stdout')
    .option('-v, --verbose', 'print HTTP calls on stderr')
    .option('--data-dir <dir>', 'data dir of the local node (default: $CONTINUUM_DATA or ./.continuum)');
}

/** `done` receives the exit code of the verb that ran. */
export function createProgram(handlers: Handlers, version: string, done: (exitCode: number) => void = () => {}): Command {
  const program = new Command('continuum')
    .description('Continuum: a self-hosted serverless platform')
    .version(version, '-V, --version')
    .showSuggestionAfterError(true)
    .allowExcessArguments(false)
    .addHelpText('after', `
Environment:
  CONTINUUM_URL    control API of the node to talk to (default: the local node in the data dir)
  CONTINUUM_TOKEN  bearer token (default: <data dir>/admin-token for the local node)
  CONTINUUM_DATA   data dir (default: ./.continuum); PORT: default port for 'up'
  CONTINUUM_NATS   NATS server URL(s) for 'up' (default: embedded SQLite queues)
  CONTINUUM_OTLP_ENDPOINT  OTLP/HTTP endpoint 'up' exports traces to (default: none, no tracing);
  CONTINUUM_OTLP_HEADERS   its request headers, as name=value pairs, comma-separated

Exit codes: 0 ok, 1 user error, 2 platform or network error.`);


  common(program.command('up'))
    .description('start a node in this process')
    .option('--port <n>', 'port to listen on (default: $PORT or 8080; 0 = any free port)', parsePort)
    .option('--host <host>', 'address to listen on (default: 127.0.0.1)')
    .option('--examples', 'deploy the bundled examples')
    .option('--nats <url>', 'keep queues and async invocations in NATS JetStream at this URL (comma-separated for several; default: $CONTINUUM_NATS, else SQLite in the data dir)')
    .option('--require-power-safe', 'refuse to start unless acknowledged queue messages are known to survive a power loss (the embedded store syncs each one; a NATS server must be known to)')
    .option('--otlp-endpoint <url>', 'export traces over OTLP/HTTP to this collector URL (/v1/traces is appended; default: $CONTINUUM_OTLP_ENDPOINT, else no tracing)')
    .option('--records-max-age <duration>', `keep invocation records and logs this long (default ${NODE_DEFAULTS.records.maxAgeMs / 86_400_000}d)`, durationMs)
    .option('--records-max-size <size>', `and at most this much of them on disk, e.g. 500MB, 2GiB (default ${NODE_DEFAULTS.records.maxBytes / 2 ** 30}GiB)`, parseSize)
    .action(async (opts: UpOptions) => done(await handlers.up(opts)));

  common(program.command('deploy'))
    .description('deploy a file, a directory, an archive (.zip/.tgz) or a continuum.yaml')
    .argument('<path>', 'code to deploy')
    .option('-n, --name <name>', 'function name (default: from the file or directory name; with continuum.yaml: deploy only this one)')
    .addOption(new Option('--tier <tier>', 'execution tier').choices(TIERS))
    .action(async (target: string, opts: DeployOptions) => done(await handlers.deploy(target, opts)));

  common(program.command('ls').alias('list'))
    .description('list functions')
    .action(async (opts: CommonOptions) => done(await handlers.ls(opts)));

  common(program.command('status'))
    .description("the node's tiers: which run here, why the others do not, how each runs (e.g. the gVisor platform)")
    .action(async (opts: CommonOptions) => done(await handlers.status(opts)));

  common(program.command('versions'))
    .description("list a function's versions")
    .argument('<name>', 'function name')
    .action(async (name: string, opts: CommonOptions) => done(await handlers.versions(name, opts)));

  common(program.command('rm').alias('remove'))
    .description('remove a function (no prompt)')
    .argument('<name>', 'function name')
    .action(async (name: string, opts: CommonOptions) => done(await handlers.rm(name, opts)));

  common(program.command('invoke'))
    .description('call a function and print its response body')
    .argument('<name>', 'function name')
    .option('-d, --data <data>', "request body: JSON text, @file, or - for stdin")
    .option('-H, --header <k:v>', 'request header (repeatable)', collect, [] as string[])
    .option('-X, --method <method>', 'HTTP method (default POST)', parseMethod)
    .option('--path <path>', "request path inside the function (default /)", parsePath)
    .option('--async', 'accept and run later: print the invocation id (follow it with `continuum invocation ID`)')
    .option('--idempotency-key <key>', `with --async: a repeat within ${DEDUPE_H} h returns the first invocation id`, parseIdempotencyKey)
    .action(async (name: string, opts: InvokeOptions) => done(await handlers.invoke(name, opts)));

  common(program.command('invocation'))
    .description('show an invocation: its execution record, or the state and result of an async invocation')
    .argument('<id>', 'invocation id')
    .option('-w, --wait', 'poll until an async invocation finishes (exit 1 if it failed)')
    .addOption(new Option('--timeout <duration>', `how long --wait waits (implies --wait; default ${WAIT_TIMEOUT_MS / 60_000}m)`).argParser(parseTimeout).implies({ wait: true }))
    .action(async (id: string, opts: InvocationOptions) => done(await handlers.invocation(id, opts)));

  common(program.command('invocations'))
    .description('list invocation records, newest first, with their phases; filter by function, outcome, error code, cold start, tier and time')
    .argument('[name]', 'function name (default: all functions)')
    .addOption(new Option('--outcome <outcome>', 'ok or error').choices(['ok', 'error']))
    .option('--error-code <code>', 'only failures with this error code (implies --outcome error)')
    .option('--cold', 'only cold starts')
    .option('--warm', 'only warm invocations')
    .option('--tier <tier>', 'only this tier')
    .option('--since <when>', 'started at or after a duration ago (10m, 1h) or an RFC 3339 time')
    .option('--until <when>', 'started before a duration ago (10m, 1h) or an RFC 3339 time')
    .option('--limit <n>', 'records per page (1-1000, default 20)', parseLimit)
    .option('--cursor <cursor>', "continue from a page's next cursor")
    .option('--all', 'follow the cursors to the end')
    .action(async (name: string | undefined, opts: InvocationsOptions) => done(await handlers.invocations(name, opts)));

  common(program.command('logs'))
    .description("print a function's logs")
    .argument('<name>', 'function name')
    .option('-f, --follow', 'keep streaming new lines')
    .option('--invocation <id>', 'only the logs of one invocation')
    .option('--since <when>', 'start at a duration ago (10m, 1h) or an RFC 3339 time')
    .option('--until <when>', 'stop before a duration ago (10m, 1h) or an RFC 3339 time')
    .option('--search <text>', 'only lines containing this text (ASCII case-insensitive)')
    .action(async (name: string, opts: LogsOptions) => done(await handlers.logs(name, opts)));

  const image = program.command('image').description('OCI images of functions (container and gvisor tiers)');
  common(image.command('build'))
    .description("export a function's active version as an OCI image layout tarball that any OCI runtime can run")
    .argument('<function>', 'function name')
    .option('-o, --output <file>', 'where to write the tarball (default: <function>.oci.tar)')
    .action(async (name: string, opts: ImageBuildOptions) => done(await handlers.image.build(name, opts)));

  const queue = program.command('queue').description('durable queues: create, send, inspect, dead letters');

  common(queue.command('create'))
    .description('create a queue')
    .argument('<name>', 'queue name')
    .action(async (name: string, opts: CommonOptions) => done(await handlers.queue.create(name, opts)));

  common(queue.command('ls').alias('list'))
    .description('list queues with depth, age and dead letters')
    .action(async (opts: CommonOptions) => done(await handlers.queue.ls(opts)));

  common(queue.command('show'))
    .description("show a queue's counts and consumers")
    .argument('<name>', 'queue name')
    .action(async (name: string, opts: CommonOptions) => done(await handlers.queue.show(name, opts)));

  common(queue.command('rm').alias('remove'))
    .description('delete a queue with its messages (no prompt; refused while a function uses it)')
    .argument('<name>', 'queue name')
    .action(async (name: string, opts: CommonOptions) => done(await handlers.queue.rm(name, opts)));

  common(queue.command('purge'))
    .description('delete the ready and delayed messages of a queue (no prompt)')
    .argument('<name>', 'queue name')
    .action(async (name: string, opts: CommonOptions) => done(await handlers.queue.purge(name, opts)));

  common(queue.command('send'))
    .description('send a message (repeat --data to send a batch, all or nothing)')
    .argument('<name>', 'queue name')
    .option('-d, --data <data>', 'message body: text, @file, or - for stdin (repeatable; default: one empty message)', collect, [] as string[])
    .option('--delay <duration>', `deliver after this long (whole seconds, up to ${MAX_DELAY_S / 3600}h)`, parseDelay)
    .option('--idempotency-key <key>', `a repeat within ${DEDUPE_H} h is stored once (repeatable: one per --data, in order)`, collectIdempotencyKey, [] as string[])
    .option('--base64', 'the --data values are base64; the message holds the decoded bytes')
    .action(async (name: string, opts: QueueSendOptions) => done(await handlers.queue.send(name, opts)));

  common(queue.command('dlq'))
    .description("list a queue's dead letters, oldest first")
    .argument('<name>', 'queue name')
    .option('--limit <n>', `at most this many (1-1000, default ${DLQ_LIMIT})`, parseLimit)
    .action(async (name: string, opts: QueueDlqOptions) => done(await handlers.queue.dlq(name, opts)));

  common(queue.command('redrive'))
    .description('move dead letters back onto the queue (all, or the given ids)')
    .argument('<name>', 'queue name')
    .option('--id <id>', 'only this dead letter (repeatable)', collect, [] as string[])
    .action(async (name: string, opts: QueueRedriveOptions) => done(await handlers.queue.redrive(name, opts)));

  return program;
}
