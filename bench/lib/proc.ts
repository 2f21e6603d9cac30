// /proc readers: the process tree under a pid, its CPU time and its proportional set size (PSS).
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

let clkTck = 0;
function ticksPerSecond(): number {
  if (clkTck === 0) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

interface Stat { pid: number; ppid: number; ticks: number }

/** Fields after the `(comm)` of /proc/<pid>/stat; comm may contain spaces and parentheses. */
function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] = state (field 3); utime = field 14, stime 15, cutime 16, cstime 17.
  const f = (n: number): number => Number(rest[n - 3]);
  return { pid, ppid: f(4), ticks: f(14) + f(15) + f(16) + f(17) };
}

function allStats(): Stat[] {
  const out: Stat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s) out.push(s);
  }
  return out;
}

/** The pid and all its live descendants. */
export function processTree(root: number): number[] {
  const stats = allStats();
  const children = new Map<number, number[]>();
  for (const s of stats) {
    const list = children.get(s.ppid) ?? [];
    list.push(s.pid);
    children.set(s.ppid, list);
  }
  if (!stats.some((s) => s.pid === root)) return [];
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    out.push(pid);
    for (const c of children.get(pid) ?? []) stack.push(c);
  }
  return out;
}

/**
 * CPU time in microseconds used by the tree so far: utime+stime of every live process plus cutime+cstime
 * (children that already exited and were reaped count in their parent, so nothing is counted twice).
 */
export function treeCpuUs(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) ticks += readStat(pid)?.ticks ?? 0;
  return (ticks * 1e6) / ticksPerSecond();
}

/** CPU time of one process (no descendants), in microseconds. */
export function cpuUs(pid: number): number {
  const s = readStat(pid);
  return s ? (s.ticks * 1e6) / ticksPerSecond() : 0;
}

/** PSS of one process in kB, from /proc/<pid>/smaps_rollup; 0 when it is gone. */
export function pssKb(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** PSS summed over the process tree, in MB (1 MB = 1024 kB). */
export function treePssMb(root: number): number {
  let kb = 0;
  for (const pid of processTree(root)) kb += pssKb(pid);
  return kb / 1024;
}
