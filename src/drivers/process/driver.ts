/**
 * The process tier's SandboxDriver: each instance is the pinned Node binary running the guest agent in
 * its own bubblewrap sandbox (sandbox.ts), cgroup leaf (cgroup.ts), seccomp filter (seccomp.ts) and uid.
 * The host side reuses the isolate tier's worker handle and instance (one frame protocol for both tiers);
 * ProcessInstance adds what the cgroup knows.
 *
 * Cold starts are served from a pool of pre-started generic sandboxes (`poolSize`, filled in the
 * background from the first instance on, so a node without process-tier functions starts none): a sandbox starts with its bundle directory bind-mounted empty and its agent waiting; the
 * instance that claims it writes the bundle (and its addons) into that directory and the function's
 * memory limit into its cgroup leaf, then loads the module. With an empty pool a sandbox is spawned.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, chmodSync, constants, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { FUNCTION_DEFAULTS, PROCESS_TIER_DEFAULTS } from '../../core/defaults.ts';
import { ContinuumError } from '../../core/errors.ts';
import type { DriverStatus, Instance, InstanceServices, InstanceSpec, SandboxDriver } from '../../core/driver.ts';
import type { WireLoadOptions } from '../../runtime/isolate/protocol.ts';
import { bindingNames } from '../isolate/bindings.ts';
import { IsolateInstance } from '../isolate/instance.ts';
import { WorkerProcess } from '../isolate/worker-process.ts';
import type { CreatePayload } from '../isolate/worker-loop.ts';
import { bundleNodeScript } from '../node-script.ts';
import { CgroupLeaf, detectCgroups, leftoverLeaves, type CgroupLayout } from './cgroup.ts';
import { ProcessInstance } from './instance.ts';
import { launcherCommand, linkedLibraries, type HostTools } from './sandbox.ts';
import { seccompFilterBytes } from './seccomp.ts';

/** Options of the driver; the numbers default to PROCESS_TIER_DEFAULTS (src/core/defaults.ts), which says what each means. */
export type ProcessDriverOptions = { -readonly [K in keyof typeof PROCESS_TIER_DEFAULTS]: number } & {
  /** The Node binary sandboxes run (the pinned one). */
  nodePath: string;
  cgroupRoot: string;
  onDiagnostic: (message: string) => void;
};

/** An absolute path for a host tool: sandboxes start with an empty environment, so no PATH lookup. */
function which(name: string): string | null {
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin']) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return null;
}

/** Runtime directories of node processes that are gone (killed before stop()); named after their pid. */
function removeStaleRuntimeDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    const owner = /^continuum-process-(\d+)-/.exec(name);
    if (owner === null) continue;
    try {
      process.kill(Number(owner[1]), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
  }
}

/** Every thread of these processes back to normal CPU priority (a claimed pool sandbox). */
function normalPriority(pids: number[]): void {
  for (const pid of pids) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // exited meanwhile
    }
    for (const tid of tids) {
      try {
        setPriority(Number(tid), 0);
      } catch {
        // exited meanwhile
      }
    }
  }
}

/** Native addons beside the bundle: only `addons/<sha256>.node`, owned by the sandbox's uid, read-only. */
function writeBundleFiles(dir: string, files: NonNullable<InstanceSpec['files']>, uid: number): void {
  if (files.length === 0) return;
  const addons = join(dir, 'addons');
  mkdirSync(addons, { mode: 0o500 });
  chownSync(addons, uid, uid);
  for (const f of files) {
    if (!/^addons\/[0-9a-f]{64}\.node$/.test(f.path)) throw new ContinuumError('bad_bundle', 'a file beside the bundle has an unexpected path');
    const at = join(dir, f.path);
    writeFileSync(at, f.bytes, { mode: 0o500, flag: 'wx' });
    chownSync(at, uid, uid);
  }
}

interface Sandbox {
  worker: WorkerProcess;
  leaf: CgroupLeaf;
  uid: number;
  dir: string;
  readyMs: number;
}

export class ProcessDriver implements SandboxDriver {
  readonly tier = 'process' as const;
  readonly options: ProcessDriverOptions;
  #running = false;
  #unavailable: string | null = 'driver not started';
  #tools: HostTools | null = null;
  #layout: CgroupLayout | null = null;
  #runtimeDir = '';
  #agentPath = '';
  #seccompPath = '';
  #instances = new Set<ProcessInstance>();
  #ids = new Set<number>();
  /** Teardowns under way (stop() waits for them, so no leaf outlives the driver). */
  #teardowns = new Set<Promise<void>>();
  /** Pre-started sandboxes waiting for an instance, and those starting. */
  #pool: Sandbox[] = [];
  #filling = new Set<Promise<void>>();
  #nextId = 0;
  #seq = 0;

  constructor(options: Partial<ProcessDriverOptions> = {}) {
    const numbers = { ...PROCESS_TIER_DEFAULTS } as { -readonly [K in keyof typeof PROCESS_TIER_DEFAULTS]: number };
    for (const key of Object.keys(numbers) as Array<keyof typeof numbers>) numbers[key] = options[key] ?? numbers[key];
    this.options = {
      ...numbers,
      nodePath: options.nodePath ?? process.execPath,
      cgroupRoot: options.cgroupRoot ?? '/sys/fs/cgroup',
      onDiagnostic: options.onDiagnostic ?? (() => {}),
    };
  }

  /**
   * Checks the host once: root (per-sandbox uids, cgroup leaves), the tools, a real bwrap sandbox as an
   * unprivileged uid, and a cgroup leaf. On failure the tier stays unavailable with the reason; it never throws.
   */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#unavailable = await this.#probe();
    if (this.#unavailable !== null) return;
    removeStaleRuntimeDirs();
    this.#runtimeDir = mkdtempSync(join(tmpdir(), `continuum-process-${process.pid}-`));
    // Traversable by the sandbox uids (bwrap opens what it binds as that uid), listable by nobody else.
    chmodSync(this.#runtimeDir, 0o711);
    this.#agentPath = join(this.#runtimeDir, 'agent.js');
    writeFileSync(this.#agentPath, await bundleNodeScript(new URL('./sandbox-entry.ts', import.meta.url)), { mode: 0o644 });
    this.#seccompPath = join(this.#runtimeDir, 'seccomp.bpf');
    writeFileSync(this.#seccompPath, seccompFilterBytes(), { mode: 0o644 });
    mkdirSync(join(this.#runtimeDir, 'i'), { mode: 0o711 });
    this.#running = true;
  }

  async #probe(): Promise<string | null> {
    if (process.platform !== 'linux' || process.arch !== 'x64') return 'the process tier needs Linux on x86_64 (seccomp filter)';
    if (process.getuid?.() !== 0) return 'the process tier needs root (per-sandbox uids and cgroup leaves)';
    const sh = which('sh');
    const setpriv = which('setpriv');
    const bwrap = which('bwrap');
    if (!sh || !setpriv) return 'sh or setpriv (util-linux) is missing';
    if (!bwrap) return 'bwrap is not installed (Debian package bubblewrap)';
    const id = String(this.options.idBase);
    try {
      execFileSync(setpriv, [`--reuid=${id}`, `--regid=${id}`, '--clear-groups', '--', bwrap, '--unshare-all', '--unshare-user', '--disable-userns', '--die-with-parent', '--ro-bind', '/', '/', 'true'], {
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: 10_000,
      });
    } catch (err) {
      const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim().slice(0, 300);
      return `bwrap cannot build a sandbox here${stderr ? `: ${stderr}` : ''}`;
    }
    const detected = detectCgroups(this.options.cgroupRoot);
    if ('error' in detected) return detected.error;
    this.#layout = detected.layout;
    for (const dir of leftoverLeaves(detected.layout)) {
      try {
        rmdirSync(dir);
      } catch {
        // still busy: a leaf of another node process on this host
      }
    }
    try {
      const leaf = new CgroupLeaf(detected.layout, `probe-${process.pid}`, { memoryBytes: 64 * 1024 * 1024, cpus: 1, pids: 16 });
      await leaf.destroy();
    } catch (err) {
      return `cannot create cgroup leaves: ${(err as Error).message}`;
    }
    this.#tools = { sh, setpriv, bwrap, nice: which('nice'), node: this.options.nodePath, libraries: linkedLibraries(this.options.nodePath) };
    return null;
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all([...this.#filling]);
    for (const sb of this.#pool.splice(0)) this.#teardown(sb);
    await Promise.all([...this.#instances].map((i) => i.stop()));
    await Promise.all([...this.#teardowns]);
    if (this.#runtimeDir) rmSync(this.#runtimeDir, { recursive: true, force: true });
  }

  status(): DriverStatus {
    const status: DriverStatus = { tier: 'process', available: this.#running && this.#unavailable === null, instances: this.#instances.size };
    status.reason = this.#unavailable ?? `bubblewrap sandboxes, cgroup v${this.#layout?.version}`;
    return status;
  }

  #allocateId(): number {
    for (let i = 0; i < this.options.idCount; i++) {
      const id = this.options.idBase + 1 + ((this.#nextId + i) % (this.options.idCount - 1));
      if (!this.#ids.has(id)) {
        this.#nextId = id - this.options.idBase;
        this.#ids.add(id);
        return id;
      }
    }
    throw new ContinuumError('overloaded', 'no sandbox uid is free');
  }

  /** Pre-started sandboxes waiting in the pool (operations and tests). */
  get pooled(): number {
    return this.#pool.length;
  }

  /** Starts sandboxes until the pool holds `poolSize` (with those starting); failures wait for the next claim. */
  #refill(): void {
    while (this.#running && this.#pool.length + this.#filling.size < this.options.poolSize) {
      const filling: Promise<void> = this.#spawn(FUNCTION_DEFAULTS.limits.memoryMb, true).then(
        (sb) => {
          if (this.#running) this.#pool.push(sb);
          else this.#teardown(sb);
        },
        (err: Error) => this.options.onDiagnostic(`pre-starting a sandbox failed: ${err.message}`),
      );
      this.#filling.add(filling);
      void filling.finally(() => this.#filling.delete(filling));
    }
  }

  /** A started sandbox with an empty bundle directory and the given memory limit: from the pool, or spawned. */
  async #sandbox(memoryMb: number): Promise<Sandbox> {
    for (let sb = this.#pool.shift(); sb !== undefined; sb = this.#pool.shift()) {
      if (!sb.worker.alive) {
        this.#teardown(sb);
        continue;
      }
      try {
        sb.leaf.setMemoryLimit(memoryMb * 1024 * 1024);
        normalPriority(sb.leaf.pids());
      } catch {
        // below what the idle sandbox already uses: this function gets a sandbox started with its limit
        this.#pool.unshift(sb);
        break;
      }
      return { ...sb, readyMs: 0 };
    }
    return this.#spawn(memoryMb, false);
  }

  /** Kills a sandbox's processes, removes its leaf and directory, and frees its uid. */
  #teardown(sb: Sandbox): void {
    sb.worker.kill('sandbox stopped');
    const done = sb.leaf.destroy().then(() => {
      rmSync(sb.dir, { recursive: true, force: true });
      this.#ids.delete(sb.uid);
    });
    this.#teardowns.add(done);
    void done.finally(() => this.#teardowns.delete(done));
  }

  /** Spawns a sandbox with an empty bundle directory. */
  async #spawn(memoryMb: number, background: boolean): Promise<Sandbox> {
    const uid = this.#allocateId();
    // Leaf and directory names come from a counter, never from tenant-chosen names (catalogue 11).
    const name = `p${process.pid}-${++this.#seq}`;
    const dir = join(this.#runtimeDir, 'i', name);
    let leaf: CgroupLeaf | null = null;
    try {
      mkdirSync(dir, { mode: 0o500 });
      chownSync(dir, uid, uid);
      leaf = new CgroupLeaf(this.#layout!, name, { memoryBytes: memoryMb * 1024 * 1024, cpus: this.options.cpus, pids: this.options.pids });
      const command = launcherCommand({
        tools: this.#tools!,
        agentPath: this.#agentPath,
        seccompPath: this.#seccompPath,
        bundleDir: dir,
        cgroupProcs: leaf.procs(),
        uid,
        gid: uid,
        tmpBytes: this.options.tmpBytes,
        nofile: this.options.nofile,
        background,
      });
      // What the sandbox writes to its stdout/stderr outside invocations (a function's stray timers, children
      // writing to the inherited descriptors) reaches the node's diagnostics only up to a budget.
      let strayBytes = 0;
      const stray = (m: string) => {
        if (!/^std(out|err): /.test(m)) return this.options.onDiagnostic(`sandbox ${name}: ${m}`);
        if (strayBytes > this.options.strayOutputBytes) return;
        strayBytes += m.length;
        this.options.onDiagnostic(strayBytes > this.options.strayOutputBytes ? `sandbox ${name}: further output dropped (more than ${this.options.strayOutputBytes} bytes outside invocations)` : `sandbox ${name}: ${m}`);
      };
      const t0 = performance.now();
      const worker = new WorkerProcess(0, {
        nodePath: this.options.nodePath,
        workerScript: '',
        nodeFlags: [],
        workerArgs: [],
        command,
        label: 'process sandbox',
        // The watchdog allows the CPU budget of the instance plus this before it calls the sandbox stuck.
        pingIntervalMs: 250,
        stuckMs: 5_000,
        createTimeoutMs: this.options.createTimeoutMs,
        startTimeoutMs: this.options.startTimeoutMs,
        initJson: '{}',
        onDiagnostic: (_i, m) => stray(m),
      });
      await worker.ready;
      return { worker, leaf, uid, dir, readyMs: performance.now() - t0 };
    } catch (err) {
      await leaf?.destroy();
      rmSync(dir, { recursive: true, force: true });
      this.#ids.delete(uid);
      throw err instanceof ContinuumError ? err : new ContinuumError('unavailable', `the process sandbox could not start: ${(err as Error).message}`);
    }
  }

  async createInstance(spec: InstanceSpec, services?: InstanceServices): Promise<Instance> {
    if (!this.#running) throw new ContinuumError('unavailable', `the process tier is not available: ${this.#unavailable ?? 'driver stopped'}`);
    try {
      return await this.#create(spec, services);
    } finally {
      // Refilled a little after this instance has loaded, so the refill's fork does not delay its first request.
      const timer = setTimeout(() => this.#refill(), this.options.poolRefillDelayMs);
      timer.unref();
    }
  }

  async #create(spec: InstanceSpec, services: InstanceServices | undefined): Promise<ProcessInstance> {
    const sb = await this.#sandbox(spec.limits.memoryMb);
    let cleaned = false;
    let instance: ProcessInstance | null = null;
    const cleanup = () => {
      if (cleaned) return;
      cleaned = true;
      instance?.recordFinalUsage();
      this.#teardown(sb);
    };
    try {
      writeFileSync(join(sb.dir, 'index.js'), spec.code, { mode: 0o400 });
      chownSync(join(sb.dir, 'index.js'), sb.uid, sb.uid);
      writeBundleFiles(sb.dir, spec.files ?? [], sb.uid);
      const load: WireLoadOptions = {
        functionName: spec.functionName,
        versionId: spec.versionId,
        format: spec.format,
        exportName: spec.exportName,
        payload: spec.lambdaPayload,
        env: spec.env,
        memoryLimitMb: spec.limits.memoryMb,
        timeoutMs: spec.limits.timeoutMs,
        cpuMs: spec.limits.cpuMs,
        responseBytes: spec.limits.responseBytes,
        subrequests: spec.limits.subrequests,
        ...bindingNames(spec.bindings),
      };
      // The bundle is read from the sandbox's /fn, not sent in the frame.
      const payload: CreatePayload = { code: '', load, logBytes: spec.limits.logBytes };
      const { num, created } = sb.worker.create(JSON.stringify(payload));
      let timer: NodeJS.Timeout | undefined;
      const body = await Promise.race([
        created,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new ContinuumError('bad_bundle', `module did not load within ${this.options.createTimeoutMs} ms`)), this.options.createTimeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
      const info = JSON.parse(body.toString('utf8')) as { timing: { moduleMs: number }; format: string; exportName: string };
      const initTiming = { sandboxMs: sb.readyMs, runtimeMs: 0, moduleMs: info.timing.moduleMs };
      const inner = new IsolateInstance({
        spec,
        services,
        worker: sb.worker,
        num,
        initTiming,
        format: info.format,
        exportName: info.exportName,
        onStopped: () => {
          if (instance) this.#instances.delete(instance);
          cleanup();
        },
      });
      instance = new ProcessInstance({ inner, leaf: sb.leaf, uid: sb.uid, initTiming, memoryMb: spec.limits.memoryMb, cpuMs: spec.limits.cpuMs, cpuCheckMs: this.options.cpuCheckMs });
      if (!sb.worker.alive) inner.crash('instance_crashed', 'the process sandbox died');
      else sb.worker.instances.set(num, inner);
      if (inner.state !== 'stopped') this.#instances.add(instance);
      return instance;
    } catch (err) {
      cleanup();
      if (err instanceof ContinuumError && err.code === 'instance_crashed') throw new ContinuumError('bad_bundle', 'module failed to load: the sandbox died while loading it');
      throw err instanceof ContinuumError ? err : new ContinuumError('internal', 'instance creation failed', undefined, { cause: err });
    }
  }
}
