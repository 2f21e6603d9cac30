/**
 * The `container` (runc) and `gvisor` (runsc) tiers' SandboxDriver: one driver, two OCI runtimes.
 *
 * An instance is an OCI container from a stored image (image.ts): a function runs from the runtime image
 * that `continuum image build` also starts from (image-build.ts) with its bundle bind-mounted at /fn; an
 * uploaded image (`spec.image`) runs from its own rootfs. Per instance: a cgroup leaf (the process tier's
 * cgroup.ts), a network namespace with a veth to the driver's hub (network.ts), a unique unprivileged uid,
 * and the runtime spec of spec.ts. Readiness: a TCP connect to `$PORT` through the bridge succeeds.
 *
 * gVisor: runsc's platform is detected at start (kvm when /dev/kvm opens, then ptrace; the first that
 * runs the runtime image's Node wins) and shown in status(). runsc runs entered into the instance's
 * namespace with `--network=host` (its netstack's own namespace check fails on recent kernels): the
 * sandbox's sockets are then host sockets of that private namespace, which holds nothing but the veth.
 */
import { accessSync, chmodSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { CONTAINER_TIER_DEFAULTS, FUNCTION_DEFAULTS } from '../../core/defaults.ts';
import { ContinuumError } from '../../core/errors.ts';
import type { DriverStatus, Instance, InstanceServices, InstanceSpec, SandboxDriver } from '../../core/driver.ts';
import { LOAD_PATH, settingsEnvironment, type WireContainerLoad } from '../../runtime/container/load.ts';
import { bindingNames } from '../isolate/bindings.ts';
import { CgroupLeaf, detectCgroups, leftoverLeaves, type CgroupLayout } from '../process/cgroup.ts';
import { ImageStore, type StoredImage } from './image.ts';
import { IMAGE_PORT, ociLayout, runtimeLayer, type FunctionLoad } from './image-build.ts';
import { HostChannel } from './host-channel.ts';
import { CONTAINER_CGROUP, ContainerInstance } from './instance.ts';
import { hubSocket, NetworkHub, removeStaleNamespaces, type Attachment, type Exec } from './network.ts';
import { Launcher, type Launched } from './launcher.ts';
import { runtimeSpec } from './spec.ts';

/** Bound for a short command (runtime kill/delete, ip); none takes more than a fraction of a second when well. */
const SHORT_COMMAND_TIMEOUT_MS = 10_000;

export type OciRuntime = 'runc' | 'runsc';

export interface ContainerDriverOptions {
  runtime: OciRuntime;
  /** The Node binary of the runtime image (the pinned one) and the one that runs the bridge. */
  nodePath: string;
  /** Where images are stored; a private temporary directory when null. */
  imageDir: string | null;
  idBase: number;
  idCount: number;
  tmpBytes: number;
  cpus: number;
  pids: number;
  nofile: number;
  startTimeoutMs: number;
  /** Network namespaces made ahead of need (each: a namespace, a veth and two addresses). */
  spareNetworks: number;
  /** Containers of the runtime image started ahead of need, waiting for a function (cold starts take them). */
  spareContainers: number;
  /** The memory limit spares start with; a function with a lower one that the waiting runtime exceeds starts cold. */
  spareMemoryMb: number;
  /** A taken spare is replaced this long after (see CONTAINER_TIER_DEFAULTS). */
  spareContainerRefillDelayMs: number;
  /** How often an instance reads its CPU time while invocations run (the `cpuMs` budget). */
  cpuCheckMs: number;
  cgroupRoot: string;
  onDiagnostic: (message: string) => void;
}


function which(name: string): string | null {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/bin', '/usr/local/sbin']) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return null;
}

interface Tools {
  runtime: string;
  ip: string;
  nsenter: string;
}

/**
 * Kills what is left in the container's cgroup under the leaf and removes it: `runc delete` leaves it
 * behind while a fork bomb's processes are still exiting, and the leaf cannot go before it.
 */
async function removeContainerCgroup(leaf: CgroupLeaf): Promise<void> {
  for (const dir of leaf.dirs.map((d) => join(d, CONTAINER_CGROUP))) {
    for (let attempt = 0; attempt < 200; attempt++) {
      let procs: string[];
      try {
        procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
      } catch {
        break; // gone
      }
      for (const pid of procs) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // exited meanwhile
        }
      }
      try {
        rmdirSync(dir);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }
}

/** Drivers made by this process: part of every host name (netns, cgroup leaf), so two never collide. */
let driversMade = 0;

export class ContainerDriver implements SandboxDriver {
  readonly tier: 'container' | 'gvisor';
  readonly options: ContainerDriverOptions;
  #running = false;
  #unavailable: string | null = 'driver not started';
  #platform: string | null = null;
  #startup: Promise<void> | null = null;
  #launcher: Launcher | null = null;
  /** The start-up has ended (running, or unavailable with the reason). */
  #started = false;
  #tools: Tools | null = null;
  #layout: CgroupLayout | null = null;
  #dir = '';
  #store: ImageStore | null = null;
  #runtimeImage: StoredImage | null = null;
  #hub: NetworkHub | null = null;
  #instances = new Set<ContainerInstance>();
  #spares: Booted[] = [];
  /** Spares being started. */
  #filling = new Set<Promise<void>>();
  #teardowns = new Set<Promise<void>>();
  #ids = new Set<number>();
  #nextId = 0;
  #seq = 0;
  /** `<cn|gn><pid>-<driver>`: the prefix of this driver's namespaces. */
  readonly #netPrefix: string;
  readonly #driverNo = ++driversMade;

  constructor(options: Partial<ContainerDriverOptions> & { runtime: OciRuntime }) {
    this.tier = options.runtime === 'runc' ? 'container' : 'gvisor';
    this.#netPrefix = `${options.runtime === 'runc' ? 'cn' : 'gn'}${process.pid}-${this.#driverNo}`;
    this.options = {
      runtime: options.runtime,
      nodePath: options.nodePath ?? process.execPath,
      imageDir: options.imageDir ?? null,
      idBase: options.idBase ?? CONTAINER_TIER_DEFAULTS.idBase + (options.runtime === 'runsc' ? CONTAINER_TIER_DEFAULTS.idCount : 0),
      idCount: options.idCount ?? CONTAINER_TIER_DEFAULTS.idCount,
      tmpBytes: options.tmpBytes ?? CONTAINER_TIER_DEFAULTS.tmpBytes,
      cpus: options.cpus ?? CONTAINER_TIER_DEFAULTS.cpus,
      pids: options.pids ?? CONTAINER_TIER_DEFAULTS.pids,
      nofile: options.nofile ?? CONTAINER_TIER_DEFAULTS.nofile,
      startTimeoutMs: options.startTimeoutMs ?? CONTAINER_TIER_DEFAULTS.startTimeoutMs,
      spareNetworks: options.spareNetworks ?? CONTAINER_TIER_DEFAULTS.spareNetworks,
      spareContainers: options.spareContainers ?? CONTAINER_TIER_DEFAULTS.spareContainers,
      spareMemoryMb: options.spareMemoryMb ?? FUNCTION_DEFAULTS.limits.memoryMb,
      spareContainerRefillDelayMs: options.spareContainerRefillDelayMs ?? CONTAINER_TIER_DEFAULTS.spareContainerRefillDelayMs,
      cpuCheckMs: options.cpuCheckMs ?? CONTAINER_TIER_DEFAULTS.cpuCheckMs,
      cgroupRoot: options.cgroupRoot ?? '/sys/fs/cgroup',
      onDiagnostic: options.onDiagnostic ?? (() => {}),
    };
  }

  /** The image store (uploads go here; `spec.image` names an image of it). */
  get images(): ImageStore {
    if (!this.#store) throw new ContinuumError('unavailable', `the ${this.tier} tier is not available: ${this.#unavailable ?? 'driver stopped'}`);
    return this.#store;
  }

  /**
   * Image garbage collection: removes the stored images that no stored version (`referenced`), running
   * instance or the runtime image uses, and their unshared blobs; resolves with the ids removed. Images a
   * deploy is holding (ImageStore.importLeased) stay.
   */
  async collectImages(referenced: Iterable<string>): Promise<string[]> {
    await this.#startup;
    if (!this.#store || !this.#running) return [];
    const keep = new Set(referenced);
    if (this.#runtimeImage) keep.add(this.#runtimeImage.id);
    for (const instance of this.#instances) if (instance.image !== undefined) keep.add(instance.image);
    return this.#store.prune(keep);
  }

  /** Probes the host once; on failure the tier stays unavailable with the reason and never throws. */
  /**
   * Probes the host and imports the runtime image (seconds of CPU): a node starts it in the background, so
   * instances asked for meanwhile wait for it, and status() says it is starting.
   */
  start(): Promise<void> {
    this.#startup ??= this.#start().finally(() => (this.#started = true));
    return this.#startup;
  }

  async #start(): Promise<void> {
    try {
      this.#unavailable = await this.#probe();
    } catch (err) {
      this.#unavailable = `the ${this.tier} tier could not start: ${(err as Error).message.slice(0, 300)}`;
    }
    if (this.#unavailable !== null) {
      await this.#cleanupStart();
      return;
    }
    this.#running = true;
    this.#refillSpares();
  }

  async #cleanupStart(): Promise<void> {
    await this.#hub?.stop();
    this.#hub = null;
    this.#launcher?.close();
    this.#launcher = null;
    if (this.#dir) rmSync(this.#dir, { recursive: true, force: true });
  }

  async #probe(): Promise<string | null> {
    if (process.platform !== 'linux' || process.arch !== 'x64') return `the ${this.tier} tier needs Linux on x86_64`;
    if (process.getuid?.() !== 0) return `the ${this.tier} tier needs root (OCI runtime, namespaces, cgroup leaves)`;
    const runtime = which(this.options.runtime);
    if (!runtime) return `${this.options.runtime} is not installed (Debian package ${this.options.runtime})`;
    const ip = which('ip');
    const nsenter = which('nsenter');
    if (!ip) return 'ip is not installed (Debian package iproute2)';
    if (!nsenter) return 'nsenter is not installed (Debian package util-linux)';
    const detected = detectCgroups(this.options.cgroupRoot);
    if ('error' in detected) return detected.error;
    this.#layout = detected.layout;
    for (const dir of leftoverLeaves(detected.layout)) {
      try {
        // A container's own cgroup first (empty: its node is gone, and the container with it).
        if (existsSync(join(dir, CONTAINER_CGROUP))) rmdirSync(join(dir, CONTAINER_CGROUP));
        rmdirSync(dir);
      } catch {
        // still busy: another node's
      }
    }
    this.#tools = { runtime, ip, nsenter };
    this.#launcher = new Launcher(this.options.nodePath);
    const prefix = this.tier === 'container' ? 'cn' : 'gn';
    await removeStaleNamespaces(this.#exec, ip, prefix);
    this.#dir = mkdtempSync(join(tmpdir(), `continuum-${this.tier}-${process.pid}-`));
    chmodSync(this.#dir, 0o711);
    mkdirSync(join(this.#dir, 'i'), { mode: 0o711 });
    mkdirSync(join(this.#dir, 'state'), { mode: 0o700 });
    this.#store = new ImageStore(this.options.imageDir ?? join(this.#dir, 'images'));
    this.#runtimeImage = await this.#store.import(Readable.from([await ociLayout([await runtimeLayer(this.options.nodePath)])]));
    this.#hub = new NetworkHub({
      exec: this.#exec,
      ipPath: ip,
      prefix: this.#netPrefix,
      socketPath: hubSocket(this.#dir),
      spares: this.options.spareNetworks,
      refillDelayMs: CONTAINER_TIER_DEFAULTS.spareNetworkRefillDelayMs,
    });
    await this.#hub.start(this.options.nodePath, nsenter);
    return this.options.runtime === 'runsc' ? this.#detectPlatform() : this.#tryRun(null);
  }

  /** gVisor platforms worth trying here, best first. */
  #platformCandidates(): string[] {
    const list: string[] = [];
    try {
      closeSync(openSync('/dev/kvm', 'r+'));
      list.push('kvm');
    } catch {
      // no usable /dev/kvm
    }
    list.push('ptrace');
    return list;
  }

  async #detectPlatform(): Promise<string | null> {
    const failures: string[] = [];
    for (const platform of this.#platformCandidates()) {
      const error = await this.#tryRun(platform);
      if (error === null) {
        this.#platform = platform;
        return null;
      }
      failures.push(`${platform}: ${error}`);
    }
    return `runsc cannot run containers here (${failures.join('; ')})`;
  }

  /** Runs `node -e 0` from the runtime image under the runtime (and platform); null when it works. */
  async #tryRun(platform: string | null): Promise<string | null> {
    const name = `${this.#netPrefix}-probe${platform ?? ''}`;
    const dir = join(this.#dir, 'i', name);
    mkdirSync(dir, { mode: 0o711 });
    const spec = runtimeSpec({
      rootfs: this.#runtimeImage!.rootfs,
      args: ['/runtime/node', '-e', '0'],
      env: ['PATH=/runtime'],
      cwd: '/',
      uid: this.options.idBase,
      netnsPath: null,
      cgroupsPath: '',
      tmpBytes: 1024 * 1024,
      nofile: 1024,
      bundleDir: null,
      channelDir: null,
      gvisor: this.options.runtime === 'runsc',
    });
    // The probe keeps the host's network namespace out of it too.
    (spec as { linux: { namespaces: Array<{ type: string }> } }).linux.namespaces.push(...(this.options.runtime === 'runc' ? [{ type: 'network' }] : []));
    delete (spec as { linux: { cgroupsPath?: string } }).linux.cgroupsPath;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
    try {
      const args = [...this.#runtimeArgs(platform, 'none'), 'run', '--bundle', dir, name];
      // A broken platform (kvm here) hangs rather than fails: a working one starts Node well within this.
      await this.#launcher!.exec(this.#tools!.runtime, args, { timeoutMs: platform === 'kvm' ? 3_000 : 15_000 });
      return null;
    } catch (err) {
      const e = err as { output?: string; timedOut?: boolean; message: string };
      return e.timedOut ? 'timed out' : (e.output?.trim().split('\n').at(-1) || e.message).slice(0, 300);
    } finally {
      await this.#deleteContainer(name);
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Short commands (runtime kill/delete, ip) run from the launcher, never forked from the node (see launcher.ts). */
  readonly #exec: Exec = (file, args, input) => {
    if (!this.#launcher) return Promise.reject(new Error('the driver is stopped'));
    return this.#launcher.exec(file, args, { ...(input !== undefined ? { input } : {}), timeoutMs: SHORT_COMMAND_TIMEOUT_MS });
  };

  #runtimeArgs(platform: string | null, network: 'host' | 'none'): string[] {
    const root = ['--root', join(this.#dir, 'state')];
    if (this.options.runtime === 'runc') return root;
    return [...root, `--platform=${platform ?? this.#platform}`, `--network=${network}`, '--oci-seccomp'];
  }

  async #deleteContainer(name: string): Promise<void> {
    const root = ['--root', join(this.#dir, 'state')];
    await this.#exec(this.#tools!.runtime, [...root, 'kill', name, 'KILL']).catch(() => {});
    await this.#exec(this.#tools!.runtime, [...root, 'delete', this.options.runtime === 'runc' ? '-f' : '-force', name]).catch(() => {});
  }

  async stop(): Promise<void> {
    await this.#startup;
    this.#running = false;
    await Promise.all([...this.#filling]);
    await Promise.all(this.#spares.splice(0).map((b) => b.teardown()));
    await Promise.all([...this.#instances].map((i) => i.stop()));
    await Promise.all([...this.#teardowns]);
    await this.#cleanupStart();
  }

  status(): DriverStatus {
    const status: DriverStatus = { tier: this.tier, available: this.#running && this.#unavailable === null, instances: this.#instances.size };
    const starting = this.#startup !== null && !this.#started;
    status.reason = starting
      ? `starting: probing ${this.options.runtime} and importing the runtime image`
      : (this.#unavailable ??
      (this.options.runtime === 'runc' ? `runc containers, cgroup v${this.#layout?.version}` : `runsc (gVisor) containers, platform ${this.#platform}, cgroup v${this.#layout?.version}`));
    return status;
  }

  /** The detected gVisor platform (null for runc or before start). */
  get platform(): string | null {
    return this.#platform;
  }

  #allocateId(): number {
    for (let i = 0; i < this.options.idCount - 1; i++) {
      const id = this.options.idBase + 1 + ((this.#nextId + i) % (this.options.idCount - 1));
      if (!this.#ids.has(id)) {
        this.#nextId = id - this.options.idBase;
        this.#ids.add(id);
        return id;
      }
    }
    throw new ContinuumError('overloaded', 'no container uid is free');
  }

  /** Pre-started containers waiting for a function (operations and tests). */
  get spares(): number {
    return this.#spares.length;
  }

  /** Starts spares until there are `spareContainers` (with those starting); a failure waits for the next claim. */
  #refillSpares(): void {
    while (this.#running && this.#spares.length + this.#filling.size < this.options.spareContainers) {
      const filling: Promise<void> = this.#boot(this.#runtimeImage!, this.options.spareMemoryMb, null).then(
        (booted) => {
          if (this.#running) this.#spares.push(booted);
          else void booted.teardown();
        },
        (err: Error) => this.options.onDiagnostic(`pre-starting a container failed: ${err.message}`),
      );
      this.#filling.add(filling);
      void filling.finally(() => this.#filling.delete(filling));
    }
  }

  async createInstance(spec: InstanceSpec, services?: InstanceServices): Promise<Instance> {
    await this.#startup;
    if (!this.#running) throw new ContinuumError('unavailable', `the ${this.tier} tier is not available: ${this.#unavailable ?? 'driver stopped'}`);
    const t0 = performance.now();
    // A spare already starting is ready sooner than a container started now.
    if (spec.image === undefined && this.#spares.length === 0 && this.#filling.size > 0) await Promise.race(this.#filling);
    const spare = spec.image === undefined ? this.#claimSpare(spec.limits.memoryMb) : null;
    // Spares taken (or found dead) are replaced a little after this instance has loaded, so that the
    // runtime's start does not slow its first request.
    if (spec.image === undefined) setTimeout(() => this.#refillSpares(), this.options.spareContainerRefillDelayMs).unref();
    if (spare) return this.#instance(spare, spec, services, t0, true);
    const image = spec.image === undefined ? this.#runtimeImage! : await this.#store!.get(spec.image);
    if (!image) throw new ContinuumError('not_found', 'no such image');
    return this.#instance(await this.#boot(image, spec.limits.memoryMb, spec), spec, services, t0, false);
  }

  /** A live spare whose memory limit can become `memoryMb`, taken from the pool; null when there is none. */
  #claimSpare(memoryMb: number): Booted | null {
    for (let b = this.#spares.shift(); b !== undefined; b = this.#spares.shift()) {
      if (b.gone()) {
        void b.teardown();
        continue;
      }
      try {
        b.leaf.setMemoryLimit(memoryMb * 1024 * 1024);
      } catch {
        // below what the waiting runtime already uses: this function's container starts with its limit
        this.#spares.unshift(b);
        return null;
      }
      return b;
    }
    return null;
  }

  /**
   * Starts a container of `image` in a cgroup leaf of `memoryMb`, on a spare network, under a fresh uid,
   * and waits until it serves on $PORT. With `spec`, a runtime-image container starts with the function's
   * bundle and settings in place; without, it waits for them (a spare, see #load).
   */
  async #boot(image: StoredImage, memoryMb: number, spec: InstanceSpec | null): Promise<Booted> {
    const t0 = performance.now();
    const uid = this.#allocateId();
    // Names come from a counter, never from tenant-chosen names (catalogue 11).
    const n = ++this.#seq;
    const name = `p${process.pid}-c${this.#driverNo}-${n}`;
    const dir = join(this.#dir, 'i', name);
    let leaf: CgroupLeaf | null = null;
    let attachment: Attachment | null = null;
    let child: Launched | null = null;
    let tornDown: Promise<void> | null = null;
    const closers: Array<() => Promise<void>> = [];
    const teardown = () => {
      tornDown ??= (async () => {
        child?.kill('SIGKILL');
        await this.#deleteContainer(name);
        for (const close of closers) await close();
        if (leaf) await removeContainerCgroup(leaf);
        await leaf?.destroy();
        await attachment?.release();
        rmSync(dir, { recursive: true, force: true });
        this.#ids.delete(uid);
      })();
      this.#teardowns.add(tornDown);
      void tornDown.finally(() => this.#teardowns.delete(tornDown!));
      return tornDown;
    };
    try {
      mkdirSync(dir, { mode: 0o711 });
      const runtimeImage = image === this.#runtimeImage;
      const bundleDir = runtimeImage ? join(dir, 'fn') : null;
      if (bundleDir) {
        mkdirSync(bundleDir, { mode: 0o755 });
        if (spec) writeBundle(bundleDir, spec);
      }
      leaf = new CgroupLeaf(this.#layout!, name, { memoryBytes: memoryMb * 1024 * 1024, cpus: this.options.cpus, pids: this.options.pids });
      attachment = await this.#hub!.take();
      const env = [...image.config.env.filter((e) => !e.startsWith('PORT=')), `PORT=${IMAGE_PORT}`];
      if (spec) for (const [k, v] of Object.entries(settingsEnvironment(containerSettings(spec)))) env.push(`${k}=${v}`);
      const gvisor = this.options.runtime === 'runsc';
      // Bindings reach the node through a socket of the instance's own (host-channel.ts), made in this
      // directory when the instance is: a spare has one, for whichever function takes it.
      const channelDir = spec === null || Object.keys(spec.bindings).length > 0 ? join(dir, 'host') : null;
      if (channelDir) mkdirSync(channelDir, { mode: 0o755 });
      writeFileSync(
        join(dir, 'config.json'),
        JSON.stringify(
          runtimeSpec({
            rootfs: image.rootfs,
            args: image.config.args,
            env,
            cwd: image.config.workingDir,
            uid,
            netnsPath: gvisor ? null : attachment.netnsPath,
            // A child of the leaf: runc removes the cgroup it ran in when the container ends, and the leaf
            // must outlive that to tell an OOM kill (its counters are hierarchical) from a crash.
            cgroupsPath: `/continuum/${name}/${CONTAINER_CGROUP}`,
            tmpBytes: this.options.tmpBytes,
            nofile: this.options.nofile,
            bundleDir,
            channelDir,
            gvisor,
          }),
        ),
      );
      // gVisor connects to a host socket only when told to (`open`: existing sockets, none made).
      const runArgs = [...this.#runtimeArgs(null, 'host'), ...(gvisor && channelDir ? ['--host-uds=open'] : []), 'run', '--bundle', dir, name];
      child = gvisor
        ? this.#launcher!.run(this.#tools!.nsenter, [`--net=${attachment.netnsPath}`, '--', this.#tools!.runtime, ...runArgs])
        : this.#launcher!.run(this.#tools!.runtime, runArgs);
      let output = '';
      child.onOutput((text) => {
        output = (output + text).slice(-4000);
        this.options.onDiagnostic(`${name}: ${text.trimEnd().slice(0, 2000)}`);
      });
      const exited = child.exited.then(() => undefined);
      let gone = false;
      void exited.then(() => (gone = true));
      const lastOutput = () => output.trim().split('\n').slice(-3).join(' | ').slice(0, 500);
      const target = `${attachment.ip}:${IMAGE_PORT}`;
      const deadline = performance.now() + this.options.startTimeoutMs;
      // Probes are cheap (a unix connect and a refused SYN in the namespace): poll often, a late look costs cold start.
      for (let wait = 2; ; wait = Math.min(wait * 1.2, 10)) {
        if (gone) throw new ContinuumError('bad_bundle', `the container exited before serving on $PORT${lastOutput() ? `: ${lastOutput()}` : ''}`);
        if (await this.#hub!.probe(target)) break;
        if (performance.now() > deadline) throw new ContinuumError('unavailable', `the container did not serve on $PORT within ${this.options.startTimeoutMs} ms`);
        await new Promise((r) => setTimeout(r, wait));
      }
      const hub = this.#hub!;
      return {
        uid,
        leaf,
        bundleDir,
        channelDir,
        exited,
        gone: () => gone,
        lastOutput,
        readyMs: performance.now() - t0,
        connect: () => hub.connect(target),
        onTeardown: (close) => closers.push(close),
        teardown,
      };
    } catch (err) {
      await teardown();
      throw err instanceof ContinuumError ? err : new ContinuumError('unavailable', `the container could not start: ${(err as Error).message.slice(0, 300)}`);
    } finally {
      if (attachment) this.#hub?.replenish();
    }
  }

  /** A spare takes its function: the bundle goes into its /fn, the settings to its server (load.ts). */
  async #load(b: Booted, spec: InstanceSpec): Promise<void> {
    writeBundle(b.bundleDir!, spec);
    const body = JSON.stringify(containerSettings(spec));
    const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest({ createConnection: b.connect, method: 'POST', path: LOAD_PATH, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      });
      req.setTimeout(this.options.startTimeoutMs, () => req.destroy(new Error(`no answer within ${this.options.startTimeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    }).catch((err: Error) => {
      throw new ContinuumError('unavailable', `the container did not take its function: ${err.message}${b.lastOutput() ? `: ${b.lastOutput()}` : ''}`);
    });
    if (answer.status === 200) return;
    let message = answer.text.slice(0, 500);
    try {
      message = String((JSON.parse(answer.text) as { error: { message: string } }).error.message);
    } catch {
      // not the server's JSON
    }
    throw new ContinuumError(answer.status === 500 ? 'bad_bundle' : 'unavailable', `the function did not load: ${message}`);
  }

  /** The instance over a started container (its host channel made, a spare loaded with its function). */
  async #instance(b: Booted, spec: InstanceSpec, services: InstanceServices | undefined, t0: number, spare: boolean): Promise<ContainerInstance> {
    let instance: ContainerInstance | null = null;
    try {
      if (b.channelDir && Object.keys(spec.bindings).length > 0) {
        const unready = () => Promise.reject(new ContinuumError('unavailable', 'the instance is not ready'));
        const channel = await HostChannel.open(
          join(b.channelDir, 'host.sock'),
          b.uid,
          {
            sendToQueue: (inv, binding, messages) => instance?.sendFromContainer(inv, binding, messages) ?? unready(),
            callService: (inv, binding, request) => instance?.callFromContainer(inv, binding, request) ?? unready(),
          },
          spec.limits.requestBodyBytes,
        );
        b.onTeardown(() => channel.close());
      }
      if (spare) await this.#load(b, spec);
    } catch (err) {
      await b.teardown();
      throw err;
    }
    const ready: ContainerInstance = new ContainerInstance({
      spec,
      tier: this.tier,
      initTiming: { sandboxMs: spare ? 0 : b.readyMs, runtimeMs: 0, moduleMs: spare ? performance.now() - t0 : 0 },
      leaf: b.leaf,
      services,
      connect: b.connect,
      exited: b.exited,
      cpuCheckMs: this.options.cpuCheckMs,
      teardown: async () => {
        this.#instances.delete(ready);
        await b.teardown();
      },
    });
    instance = ready;
    this.#instances.add(ready);
    return ready;
  }
}

/** A started container of the driver: an instance's, or a spare waiting for its function. */
interface Booted {
  uid: number;
  leaf: CgroupLeaf;
  /** Its /fn (runtime-image containers only). */
  bundleDir: string | null;
  /** Where its host channel's socket goes, when it may have one. */
  channelDir: string | null;
  exited: Promise<void>;
  gone(): boolean;
  /** The last lines the runtime printed. */
  lastOutput(): string;
  /** From boot to serving on $PORT, ms. */
  readyMs: number;
  connect(): Socket;
  /** Runs `close` when the container is torn down. */
  onTeardown(close: () => Promise<void>): void;
  teardown(): Promise<void>;
}

/** What a container's server needs of the function beyond its bundle (load.ts). */
function containerSettings(spec: InstanceSpec): WireContainerLoad {
  const names = bindingNames(spec.bindings);
  return { env: spec.env, queues: names.bindings, services: names.services };
}

/** The function's bundle and load options, read-only, in a runtime-image container's /fn. */
function writeBundle(bundleDir: string, spec: InstanceSpec): void {
  const load: FunctionLoad = {
    functionName: spec.functionName,
    versionId: spec.versionId,
    format: spec.format,
    exportName: spec.exportName,
    payload: spec.lambdaPayload,
    memoryLimitMb: spec.limits.memoryMb,
    timeoutMs: spec.limits.timeoutMs,
    cpuMs: spec.limits.cpuMs,
    responseBytes: spec.limits.responseBytes,
    subrequests: spec.limits.subrequests,
    logBytes: spec.limits.logBytes,
  };
  writeFileSync(join(bundleDir, 'index.js'), spec.code, { mode: 0o444 });
  // Native addons beside the bundle (the builder names them addons/<sha256>.node).
  for (const f of spec.files ?? []) {
    if (!/^addons\/[0-9a-f]{64}\.node$/.test(f.path)) throw new ContinuumError('bad_bundle', 'a file beside the bundle has an unexpected path');
    mkdirSync(join(bundleDir, 'addons'), { recursive: true, mode: 0o755 });
    writeFileSync(join(bundleDir, f.path), f.bytes, { mode: 0o444, flag: 'wx' });
  }
  // Last: a container that starts with its bundle loads it when this file is there (server.ts).
  writeFileSync(join(bundleDir, 'continuum.json'), JSON.stringify(load), { mode: 0o444 });
}
