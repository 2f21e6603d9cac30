// The `workerd` anchor: the npm workerd binary serving the same bundled fetch function from a generated
// capnp config. Three shapes: one warm worker, a Worker Loader that loads the function under a fresh
// worker id per request (cold-start counterpart, needs --experimental), and a router with N static
// workers (density).
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { freePort, SERVER_CPU, spawnPinned, waitForOk, type Spawned } from '../lib/util.ts';

const require = createRequire(import.meta.url);
export const workerdBin = join(dirname(require.resolve('workerd/package.json')), 'bin', 'workerd');
const COMPAT_DATE = '2025-01-01';

export interface WorkerdServer { url: string; proc: Spawned; startMs: number }

function header(port: number, entry: string, services: string[]): string {
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ ${services.join(',\n    ')} ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "${entry}") ],
);
`;
}

/** One worker running `bundleFile`. */
export function warmConfig(port: number, bundleFile: string): string {
  return header(port, 'fn', ['(name = "fn", worker = .fnWorker)']) + `
const fnWorker :Workerd.Worker = (
  modules = [ (name = "main.js", esModule = embed "${basename(bundleFile)}") ],
  compatibilityDate = "${COMPAT_DATE}",
);
`;
}

const LOADER_JS = `let n = 0;
export default {
  fetch(request, env) {
    const id = 'cold-' + (n++);
    const worker = env.LOADER.get(id, () => ({
      compatibilityDate: '${COMPAT_DATE}',
      mainModule: 'main.js',
      modules: { 'main.js': env.CODE },
      globalOutbound: null,
    }));
    return worker.getEntrypoint().fetch(request);
  },
};
`;

/** A Worker Loader front that loads `bundleFile` as a brand-new worker for every request. */
export function loaderConfig(port: number, bundleFile: string, dir: string): string {
  writeFileSync(join(dir, 'loader.js'), LOADER_JS);
  return header(port, 'loader', ['(name = "loader", worker = .loaderWorker)']) + `
const loaderWorker :Workerd.Worker = (
  modules = [ (name = "loader.js", esModule = embed "loader.js") ],
  compatibilityDate = "${COMPAT_DATE}",
  bindings = [ (name = "LOADER", workerLoader = ()), (name = "CODE", text = embed "${basename(bundleFile)}") ],
);
`;
}

const ROUTER_JS = `export default {
  fetch(request, env) {
    const m = /^\\/w\\/(\\d+)/.exec(new URL(request.url).pathname);
    if (!m) return new Response('router\\n');
    const target = env['F' + m[1]];
    return target ? target.fetch(request) : new Response('no such worker\\n', { status: 404 });
  },
};
`;

/** A router plus `n` separate static workers (one isolate each), reached at /w/<i>/. */
export function densityConfig(port: number, bundleFile: string, n: number, dir: string): string {
  writeFileSync(join(dir, 'router.js'), ROUTER_JS);
  const services = ['(name = "router", worker = .routerWorker)'];
  const bindings: string[] = [];
  let workers = '';
  for (let i = 0; i < n; i++) {
    services.push(`(name = "f${i}", worker = .f${i})`);
    bindings.push(`(name = "F${i}", service = "f${i}")`);
    workers += `const f${i} :Workerd.Worker = (
  modules = [ (name = "main.js", esModule = embed "${basename(bundleFile)}") ],
  compatibilityDate = "${COMPAT_DATE}",
);
`;
  }
  return header(port, 'router', services) + `
const routerWorker :Workerd.Worker = (
  modules = [ (name = "router.js", esModule = embed "router.js") ],
  compatibilityDate = "${COMPAT_DATE}",
  bindings = [ ${bindings.join(', ')} ],
);
${workers}`;
}

/**
 * Writes `config(port)` next to the bundles in `dir` and starts workerd on SERVER_CPU; resolves once
 * `probePath` answers 2xx, with the time from spawn to that answer.
 */
export async function startWorkerd(dir: string, name: string, config: (port: number) => string, opts: { probePath?: string; logFile?: string } = {}): Promise<WorkerdServer> {
  const port = await freePort();
  const file = join(dir, `${name}.capnp`);
  writeFileSync(file, config(port));
  const t0 = process.hrtime.bigint();
  const proc = spawnPinned(SERVER_CPU, workerdBin, ['serve', '--experimental', file], { cwd: dir, logFile: opts.logFile });
  const url = `http://127.0.0.1:${port}/`;
  try {
    const startMs = await waitForOk(url + (opts.probePath ?? ''), t0, 60000, () => proc.child.exitCode === null);
    return { url, proc, startMs };
  } catch (err) {
    await proc.stop();
    throw err;
  }
}
