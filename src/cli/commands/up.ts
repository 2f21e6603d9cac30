/** `continuum up`: one node in this process until SIGINT/SIGTERM. */
import { NODE_DEFAULTS } from '../../core/defaults.ts';
import type { Context } from '../context.ts';
import { CliError, EXIT_PLATFORM, EXIT_USER, userError } from '../errors.ts';
import type { UpOptions } from '../program.ts';
import type { RunningNode } from '../../node/node.ts';

const CLOSE_TIMEOUT_MS = 15_000;

export function portFromEnv(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n > 65535) throw userError(`PORT=${JSON.stringify(value)} is not a port number (0-65535)`);
  return n;
}

const NATS_SCHEMES = new Set(['nats:', 'tls:', 'ws:', 'wss:']);

/**
 * --nats, else CONTINUUM_NATS: comma-separated servers, each `nats://host:port` (also tls, ws, wss) or a
 * bare `host:port`. Checked here so a typo fails at once with the flag's name, not as a connection error.
 */
export function natsFrom(flag: string | undefined, env: Record<string, string | undefined>): string | undefined {
  const source = flag !== undefined ? '--nats' : 'CONTINUUM_NATS';
  const value = (flag ?? env.CONTINUUM_NATS)?.trim();
  if (value === undefined || (value === '' && flag === undefined)) return undefined;
  const servers = value.split(',').map((s) => s.trim());
  for (const server of servers) {
    let u: URL | undefined;
    try {
      u = new URL(server.includes('://') ? server : `nats://${server}`);
    } catch {
      u = undefined;
    }
    if (!u || !NATS_SCHEMES.has(u.protocol) || u.hostname === '') {
      throw userError(`${source} ${JSON.stringify(server)} is not a NATS server URL: use nats://host:4222 (several: comma-separated)`);
    }
  }
  return servers.join(',');
}

/** The servers without credentials, for printing. */
export function redactNats(servers: string): string {
  return servers
    .split(',')
    .map((s) => s.replace(/^([a-z]+:\/\/)?[^@/]*@/i, (_m, scheme: string | undefined) => `${scheme ?? ''}***@`))
    .join(',');
}

/**
 * --otlp-endpoint, else CONTINUUM_OTLP_ENDPOINT; headers from CONTINUUM_OTLP_HEADERS as `name=value`
 * pairs, comma-separated (the shape of OTEL_EXPORTER_OTLP_HEADERS). Undefined: no tracing.
 */
export function otlpFrom(flag: string | undefined, env: Record<string, string | undefined>): { endpoint: string; headers: Record<string, string> } | undefined {
  const source = flag !== undefined ? '--otlp-endpoint' : 'CONTINUUM_OTLP_ENDPOINT';
  const endpoint = (flag ?? env.CONTINUUM_OTLP_ENDPOINT)?.trim();
  if (endpoint === undefined || (endpoint === '' && flag === undefined)) return undefined;
  let u: URL | undefined;
  try {
    u = new URL(endpoint);
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw userError(`${source} ${JSON.stringify(endpoint)} is not an http(s) URL: use e.g. http://127.0.0.1:4318`);
  const headers: Record<string, string> = {};
  for (const pair of (env.CONTINUUM_OTLP_HEADERS ?? '').split(',')) {
    if (pair.trim() === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw userError('CONTINUUM_OTLP_HEADERS must be name=value pairs, comma-separated');
    headers[decodeURIComponent(pair.slice(0, eq).trim())] = decodeURIComponent(pair.slice(eq + 1).trim());
  }
  return { endpoint, headers };
}

/** The banner's durability line: a plain statement when power loss is covered, a warning otherwise. */
export function durabilityLine(d: RunningNode['queueDurability']): string {
  return d.powerLoss === true ? d.detail : `WARNING: ${d.detail}`;
}

export async function up(ctx: Context, opts: UpOptions, version: string): Promise<number> {
  const port = opts.port ?? portFromEnv(ctx.env.PORT) ?? NODE_DEFAULTS.port;
  const host = opts.host ?? NODE_DEFAULTS.host;
  const nats = natsFrom(opts.nats, ctx.env);
  const otlp = otlpFrom(opts.otlpEndpoint, ctx.env);
  const dataDir = ctx.dataDir;
  const { startNode, NotPowerSafeError } = await import('../../node/node.ts');
  let node: Awaited<ReturnType<typeof startNode>>;
  try {
    // Fault-injection points for the crash tests (catalogue 50); never set in normal use.
    const failpoints = ctx.env.CONTINUUM_FAILPOINTS?.split(',').map((f) => f.trim()).filter(Boolean);
    node = await startNode({
      port,
      host,
      dataDir,
      deployExamples: opts.examples === true,
      ...(nats !== undefined ? { nats } : {}),
      ...(otlp !== undefined ? { otlp } : {}),
      ...(failpoints?.length ? { failpoints } : {}),
      // On unless CONTINUUM_CONTAINER_TIERS=0; their start-up (runtime image import, gVisor platform probe) runs in the background.
      containerTiers: ctx.env.CONTINUUM_CONTAINER_TIERS !== '0',
      requirePowerSafe: opts.requirePowerSafe === true,
      records: { ...(opts.recordsMaxAge !== undefined ? { maxAgeMs: opts.recordsMaxAge } : {}), ...(opts.recordsMaxSize !== undefined ? { maxBytes: opts.recordsMaxSize } : {}) },
    });
  } catch (err) {
    if (err instanceof NotPowerSafeError) throw userError(`--require-power-safe: ${err.message}`);
    const code = (err as { code?: unknown }).code;
    if (code === 'EADDRINUSE') throw userError(`${host}:${port} is already in use — is another node running? Pass --port or set PORT`);
    if (code === 'EADDRNOTAVAIL') throw userError(`cannot listen on ${host}: address not available on this machine`);
    if (code === 'EACCES') throw userError(`not allowed to listen on ${host}:${port} (ports below 1024 need privileges)`);
    throw err;
  }
  const base = node.url.replace(/\/+$/, '');
  const info = {
    url: base,
    consoleUrl: `${base}/`,
    apiUrl: `${base}/v1`,
    tokenPath: node.tokenPath,
    dataDir,
    nats: nats !== undefined ? redactNats(nats) : null,
    queueDurability: node.queueDurability,
    pid: process.pid,
    ready: true,
  };
  if (ctx.out.json) ctx.out.jsonLine(info);
  else {
    ctx.out.text([
      `Continuum ${version} ready at ${base}`,
      `  web console  ${info.consoleUrl}  (sign in with the admin token)`,
      `  control API  ${info.apiUrl}  (OpenAPI: ${base}/v1/openapi.json)`,
      `  admin token  ${node.tokenPath}`,
      `  data dir     ${dataDir}`,
      `  queues       ${info.nats !== null ? `NATS JetStream at ${info.nats}` : 'SQLite in the data dir'}`,
      `  durability   ${durabilityLine(node.queueDurability)}`,
      `  traces       ${otlp ? `OTLP/HTTP to ${new URL(otlp.endpoint).origin}` : 'off (--otlp-endpoint)'}`,
      'Stop with Ctrl-C.',
    ].join('\n'));
  }

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  // A second signal while closing stops at once.
  const force = () => {
    ctx.out.note('error: stopped before a clean shutdown');
    process.exit(EXIT_USER);
  };
  process.once('SIGINT', force);
  process.once('SIGTERM', force);
  if (!ctx.out.json) ctx.out.note(`${signal}: stopping…`);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), CLOSE_TIMEOUT_MS);
    timer.unref();
  });
  const result = await Promise.race([node.close().then(() => 'closed' as const), timedOut]);
  clearTimeout(timer);
  if (result === 'timeout') {
    throw new CliError('internal', `the node did not stop within ${CLOSE_TIMEOUT_MS / 1000}s`, { exitCode: EXIT_PLATFORM });
  }
  if (!ctx.out.json) ctx.out.note('stopped');
  return 0;
}
