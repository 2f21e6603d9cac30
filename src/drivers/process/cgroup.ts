/**
 * One cgroup leaf per process-tier instance, on cgroup v2 (unified) or v1 (one hierarchy per controller:
 * memory, cpu, pids, and cpuacct for usage). Leaves live under `continuum/` in each hierarchy; the sandbox
 * joins them before it starts (the launcher writes its own pid to `procs()` and then execs bwrap), so every
 * process it ever forks is counted. Synchronous file I/O: a handful of small sysfs files per call.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type CgroupVersion = 1 | 2;

export interface CgroupLimits {
  memoryBytes: number;
  /** CPU quota in cores (1 = one full core). */
  cpus: number;
  pids: number;
}

/** What tells which limit a leaf met (read when an invocation fails or the instance ends, not per invocation). */
export interface LimitCounters {
  /** Times the memory limit made the kernel OOM-kill a process of the leaf. */
  oomKills: number;
  /** Times a fork/clone failed at pids.max. */
  pidsLimitHits: number;
  /** Most tasks the leaf held at once (pids.peak; 0 where the kernel lacks it). */
  pidsPeak: number;
}

export interface CgroupUsage extends LimitCounters {
  cpuMs: number;
  peakMemoryBytes: number;
}

export interface CgroupLayout {
  version: CgroupVersion;
  /** v2: the unified mount. */
  unified?: string;
  /** v1: the mount of each controller. */
  v1?: { memory: string; cpu: string; cpuacct: string; pids: string };
}

/** Leaf names become directory names: the same allowlist as function names, checked here again (catalogue 11). */
const LEAF_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const PARENT = 'continuum';
const CFS_PERIOD_US = 100_000;

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function keyed(text: string | null, key: string): number {
  if (text === null) return 0;
  const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/**
 * Which cgroup layout this host offers, or why none is usable. v2 needs the memory, cpu and pids
 * controllers enabled for children of the root; v1 needs the four controller hierarchies mounted.
 */
export function detectCgroups(root = '/sys/fs/cgroup'): { layout: CgroupLayout } | { error: string } {
  const controllers = readText(join(root, 'cgroup.controllers'));
  if (controllers !== null) {
    const have = new Set(controllers.trim().split(/\s+/));
    const missing = ['memory', 'cpu', 'pids'].filter((c) => !have.has(c));
    if (missing.length > 0) return { error: `cgroup v2 lacks the ${missing.join(', ')} controller(s)` };
    return { layout: { version: 2, unified: root } };
  }
  // Debian and most distributions mount cpu and cpuacct together and link both names to the pair.
  const mount = (name: string) => (existsSync(join(root, name, 'cgroup.procs')) ? join(root, name) : null);
  const memory = mount('memory');
  const cpu = mount('cpu');
  const cpuacct = mount('cpuacct');
  const pids = mount('pids');
  if (!memory || !cpu || !cpuacct || !pids) {
    return { error: `cgroup v1 controllers missing: ${[['memory', memory], ['cpu', cpu], ['cpuacct', cpuacct], ['pids', pids]].filter(([, d]) => !d).map(([n]) => n).join(', ')}` };
  }
  return { layout: { version: 1, v1: { memory, cpu, cpuacct, pids } } };
}

export class CgroupLeaf {
  readonly name: string;
  readonly layout: CgroupLayout;
  readonly limits: CgroupLimits;
  /** One directory (v2) or one per hierarchy (v1). */
  readonly dirs: string[];
  #removed = false;

  /** Create the leaf and set its limits; throws if the kernel refuses (e.g. no permission). */
  constructor(layout: CgroupLayout, name: string, limits: CgroupLimits) {
    if (!LEAF_NAME.test(name)) throw new RangeError('invalid cgroup leaf name');
    this.name = name;
    this.layout = layout;
    this.limits = { ...limits };
    const quota = Math.max(1000, Math.round(limits.cpus * CFS_PERIOD_US));
    if (layout.version === 2) {
      const parent = join(layout.unified!, PARENT);
      if (!existsSync(parent)) {
        mkdirSync(parent);
        // Controllers must be delegated to the parent's children before a leaf can use them.
        writeFileSync(join(parent, 'cgroup.subtree_control'), '+memory +cpu +pids');
      }
      const dir = join(parent, name);
      mkdirSync(dir);
      this.dirs = [dir];
      this.setMemoryLimit(limits.memoryBytes);
      // No swap: a memory bomb ends at the limit instead of paging the host.
      if (existsSync(join(dir, 'memory.swap.max'))) writeFileSync(join(dir, 'memory.swap.max'), '0');
      writeFileSync(join(dir, 'cpu.max'), `${quota} ${CFS_PERIOD_US}`);
      writeFileSync(join(dir, 'pids.max'), String(limits.pids));
    } else {
      const v1 = layout.v1!;
      const unique = [...new Set([v1.memory, v1.cpu, v1.cpuacct, v1.pids])];
      this.dirs = unique.map((mountDir) => {
        mkdirSync(join(mountDir, PARENT), { recursive: true });
        const dir = join(mountDir, PARENT, name);
        mkdirSync(dir);
        return dir;
      });
      const mem = join(v1.memory, PARENT, name);
      this.setMemoryLimit(limits.memoryBytes);
      writeFileSync(join(mem, 'memory.swappiness'), '0');
      const cpu = join(v1.cpu, PARENT, name);
      writeFileSync(join(cpu, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
      writeFileSync(join(cpu, 'cpu.cfs_quota_us'), String(quota));
      writeFileSync(join(v1.pids, PARENT, name, 'pids.max'), String(limits.pids));
    }
  }

  /**
   * Sets the memory limit (and, on v1, memory+swap to the same: no swap). A pre-started sandbox gets its
   * function's limit when claimed; the kernel refuses (throws) a limit below what the leaf already uses.
   */
  setMemoryLimit(bytes: number): void {
    const mem = this.#dir('memory');
    if (this.layout.version === 2) {
      writeFileSync(join(mem, 'memory.max'), String(bytes));
      return;
    }
    const memsw = join(mem, 'memory.memsw.limit_in_bytes');
    const limit = join(mem, 'memory.limit_in_bytes');
    if (!existsSync(memsw)) {
      writeFileSync(limit, String(bytes));
      return;
    }
    // memsw may never be below the memory limit: raise it first, lower it last.
    const raising = bytes > Number(readText(limit) ?? 0);
    for (const file of raising ? [memsw, limit] : [limit, memsw]) writeFileSync(file, String(bytes));
  }

  /** The `cgroup.procs` files a process writes its pid into to join the leaf in every hierarchy. */
  procs(): string[] {
    return this.dirs.map((d) => join(d, 'cgroup.procs'));
  }

  #dir(controller: 'memory' | 'cpu' | 'cpuacct' | 'pids'): string {
    if (this.layout.version === 2) return this.dirs[0]!;
    return join(this.layout.v1![controller], PARENT, this.name);
  }

  pids(): number[] {
    const text = readText(join(this.#dir('pids'), 'cgroup.procs'));
    return text === null ? [] : text.split('\n').filter(Boolean).map(Number);
  }

  /** CPU time of every process the leaf ever held, in ms (one file read: polled while invocations run). */
  cpuMs(): number {
    if (this.layout.version === 2) return keyed(readText(join(this.dirs[0]!, 'cpu.stat')), 'usage_usec') / 1000;
    return Number(readText(join(this.#dir('cpuacct'), 'cpuacct.usage')) ?? 0) / 1e6;
  }

  /** The most memory the leaf has held, bytes (one file read: taken as each invocation ends). */
  peakMemoryBytes(): number {
    if (this.layout.version === 2) {
      const dir = this.dirs[0]!;
      return Number(readText(join(dir, 'memory.peak')) ?? readText(join(dir, 'memory.current')) ?? 0);
    }
    return Number(readText(join(this.#dir('memory'), 'memory.max_usage_in_bytes')) ?? 0);
  }

  limitCounters(): LimitCounters {
    if (this.layout.version === 2) {
      const dir = this.dirs[0]!;
      return {
        oomKills: keyed(readText(join(dir, 'memory.events')), 'oom_kill'),
        pidsLimitHits: keyed(readText(join(dir, 'pids.events')), 'max'),
        pidsPeak: Number(readText(join(dir, 'pids.peak')) ?? 0),
      };
    }
    const mem = this.#dir('memory');
    const oomControl = readText(join(mem, 'memory.oom_control'));
    return {
      // Kernels before 4.13 lack oom_kill; failcnt at the limit then stands in for it.
      oomKills: oomControl !== null && /^oom_kill /m.test(oomControl) ? keyed(oomControl, 'oom_kill') : Number(readText(join(mem, 'memory.failcnt')) ?? 0) > 0 ? 1 : 0,
      pidsLimitHits: keyed(readText(join(this.#dir('pids'), 'pids.events')), 'max'),
      pidsPeak: Number(readText(join(this.#dir('pids'), 'pids.peak')) ?? 0),
    };
  }

  usage(): CgroupUsage {
    return { cpuMs: this.cpuMs(), peakMemoryBytes: this.peakMemoryBytes(), ...this.limitCounters() };
  }

  /** Kill every process in the leaf (cgroup.kill on v2, SIGKILL per pid on v1) and remove it. */
  async destroy(): Promise<void> {
    if (this.#removed) return;
    this.#removed = true;
    const killFile = join(this.dirs[0]!, 'cgroup.kill');
    for (let attempt = 0; attempt < 100; attempt++) {
      const pids = this.pids();
      if (pids.length === 0) break;
      if (this.layout.version === 2 && existsSync(killFile)) writeFileSync(killFile, '1');
      else for (const pid of pids) killQuietly(pid);
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const dir of this.dirs) {
      for (let attempt = 0; attempt < 50; attempt++) {
        try {
          rmdirSync(dir);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
          // EBUSY while the last exited processes are still being reaped.
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    }
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Leaves left behind by a node process that is gone (their sandboxes died with it: bwrap
 * --die-with-parent). Leaf names start with the owning process's pid (`p<pid>-…`, `probe-<pid>`), so
 * leaves of other live nodes on the same host are left alone.
 */
export function leftoverLeaves(layout: CgroupLayout): string[] {
  const roots = layout.version === 2 ? [layout.unified!] : [...new Set(Object.values(layout.v1!))];
  return roots.flatMap((r) => {
    const parent = join(r, PARENT);
    try {
      return readdirSync(parent, { withFileTypes: true })
        .filter((d) => {
          const owner = /^(?:p|probe-)(\d+)/.exec(d.name);
          return d.isDirectory() && owner !== null && !alive(Number(owner[1]));
        })
        .map((d) => join(parent, d.name));
    } catch {
      return [];
    }
  });
}
