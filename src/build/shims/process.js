// The `process` global for isolate bundles: a Node-shaped stand-in whose env is the runtime's (the isolate
// runtime provides only a frozen `process.env` with the function's variables).
// `browser: true` tells isomorphic packages (debug, …) that this is not Node.
const runtime = globalThis.process;
const noop = () => {};
const stream = (level) => ({ isTTY: false, fd: level === 'log' ? 1 : 2, write: (s) => (console[level](String(s).replace(/\n$/, '')), true) });
const emitter = { on: () => fallback, once: () => fallback, off: () => fallback, addListener: () => fallback, removeListener: () => fallback, removeAllListeners: () => fallback, emit: () => false, listeners: () => [], listenerCount: () => 0 };
const fallback = {
  ...emitter,
  browser: true,
  env: {},
  argv: [],
  execArgv: [],
  pid: 1,
  ppid: 0,
  title: 'continuum',
  platform: 'linux',
  arch: 'x64',
  version: 'v24.0.0',
  versions: {},
  release: { name: 'continuum-isolate' },
  cwd: () => '/',
  chdir: () => { throw new Error('process.chdir() is not available on the isolate tier'); },
  umask: () => 0o22,
  exit: () => { throw new Error('process.exit() is not available on the isolate tier'); },
  nextTick: (fn, ...args) => queueMicrotask(() => fn(...args)),
  emitWarning: (w) => console.warn(typeof w === 'string' ? w : w?.message),
  hrtime: Object.assign((prev) => {
    const t = performance.now();
    const s = Math.floor(t / 1000), ns = Math.floor((t % 1000) * 1e6);
    if (!prev) return [s, ns];
    let ds = s - prev[0], dns = ns - prev[1];
    if (dns < 0) { ds -= 1; dns += 1e9; }
    return [ds, dns];
  }, { bigint: () => BigInt(Math.floor(performance.now() * 1e6)) }),
  uptime: () => performance.now() / 1000,
  memoryUsage: () => ({ rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }),
  stdout: stream('log'),
  stderr: stream('error'),
  binding: () => { throw new Error('process.binding() is not available on the isolate tier'); },
  features: {},
  noDeprecation: false,
  throwDeprecation: false,
  traceDeprecation: false,
  exitCode: undefined,
  abort: noop,
};
export const process = runtime ? { ...fallback, env: runtime.env ?? {} } : fallback;
export default process;
