/**
 * How one process-tier sandbox is launched: the argv of a tiny `/bin/sh` launcher that joins the
 * instance's cgroup leaf (so every process the sandbox ever forks is counted), opens the seccomp program
 * on fd 9, drops to the sandbox's own uid/gid with `setpriv`, and execs `bwrap`, which then builds the
 * sandbox as an unprivileged user in a new user namespace:
 *
 * - new pid, mount, net, ipc, uts, cgroup and user namespaces (`--unshare-all`); no network device but
 *   loopback — egress grants will come with the tenancy issue, as a network namespace set up here;
 * - a root holding only the Node binary, the libraries it links (from `ldd`), the agent, the bundle
 *   (all read-only), `/proc` of the sandbox's pid namespace, a minimal `/dev` and a size-capped tmpfs
 *   `/tmp`;
 * - no capabilities, no_new_privs, no further user namespaces, and the seccomp filter of seccomp.ts;
 * - inside, Node's permission model: reads of the bundle, the agent and /tmp, writes to /tmp only.
 *
 * Pure: builds argument lists; the driver runs them.
 */
import { execFileSync } from 'node:child_process';
import { BUNDLE_DIR } from '../../runtime/process/agent.ts';

export const SANDBOX_NODE = '/runtime/node';
export const SANDBOX_AGENT = '/runtime/agent.js';
const SECCOMP_FD = 9;

export interface HostTools {
  sh: string;
  setpriv: string;
  bwrap: string;
  /** coreutils `nice`, for sandboxes started ahead of need (null: they start at normal priority). */
  nice: string | null;
  /** The pinned Node binary and the shared libraries it needs. */
  node: string;
  libraries: string[];
}

export interface SandboxLaunch {
  tools: HostTools;
  /** The bundled agent (sandbox-entry.ts) on the host. */
  agentPath: string;
  seccompPath: string;
  /** The instance's bundle directory on the host (mounted read-only at /fn). */
  bundleDir: string;
  cgroupProcs: string[];
  uid: number;
  gid: number;
  tmpBytes: number;
  /** RLIMIT_NOFILE (soft and hard) of every process in the sandbox. */
  nofile: number;
  /** Started ahead of need (the pool): at the lowest CPU priority until claimed, so it never slows live work. */
  background: boolean;
}

/** Absolute paths of the shared objects `ldd` lists for a binary (none for a static one). */
export function linkedLibraries(binary: string): string[] {
  let out: string;
  try {
    out = execFileSync('ldd', [binary], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return [];
  }
  const libs = new Set<string>();
  for (const m of out.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)) libs.add(m[1]!);
  return [...libs];
}

/** Node flags inside the sandbox: the permission model, with child processes and addons allowed. */
export function nodeFlags(): string[] {
  return [
    '--permission',
    `--allow-fs-read=${BUNDLE_DIR}/`,
    `--allow-fs-read=${SANDBOX_AGENT}`,
    '--allow-fs-read=/tmp/',
    '--allow-fs-write=/tmp/',
    // Full Node API within the sandbox: subprocesses and threads stay inside the namespaces, the cgroup and
    // the seccomp filter (they are not bound by the permission model, which is defence in depth here).
    '--allow-child-process',
    '--allow-worker',
    '--allow-addons',
    '--disable-warning=SecurityWarning',
    // V8 sizes its young generation for the host's memory (up to 16 MB per semi-space): under load that
    // alone took a 128 MB sandbox over its cgroup limit. A small one costs more scavenges, not a kill.
    '--max-semi-space-size=2',
  ];
}

export function bwrapArgs(l: SandboxLaunch): string[] {
  const args = [
    '--unshare-all',
    '--unshare-user',
    '--disable-userns',
    '--die-with-parent',
    '--new-session',
    '--cap-drop', 'ALL',
    '--hostname', 'sandbox',
    '--clearenv',
    '--ro-bind', l.tools.node, SANDBOX_NODE,
  ];
  for (const lib of l.tools.libraries) args.push('--ro-bind', lib, lib);
  args.push(
    '--ro-bind', l.agentPath, SANDBOX_AGENT,
    '--ro-bind', l.bundleDir, BUNDLE_DIR,
    '--proc', '/proc',
    '--dev', '/dev',
    '--size', String(l.tmpBytes), '--tmpfs', '/tmp',
    '--chdir', '/tmp',
    '--seccomp', String(SECCOMP_FD),
    SANDBOX_NODE, ...nodeFlags(), SANDBOX_AGENT,
  );
  return args;
}

/**
 * The launcher: `sh -c SCRIPT sh <seccomp> <procs…> -- <command…>`. It writes its own pid into every
 * cgroup.procs (exit 125 if that fails), sets the open-files limit (soft and hard, so the sandbox cannot
 * raise it), opens the filter on fd 9 and execs the rest.
 */
export function launcherCommand(l: SandboxLaunch): { file: string; args: string[] } {
  const script = [
    'seccomp=$1; shift',
    'while [ "$1" != "--" ]; do echo $$ > "$1" || exit 125; shift; done',
    'shift',
    `ulimit -n ${Math.floor(l.nofile)} || exit 125`,
    `exec ${SECCOMP_FD}< "$seccomp"`,
    'exec "$@"',
  ].join('\n');
  const nice = l.background && l.tools.nice ? [l.tools.nice, '-n', '19'] : [];
  const command = [...nice, l.tools.setpriv, `--reuid=${l.uid}`, `--regid=${l.gid}`, '--clear-groups', '--', l.tools.bwrap, ...bwrapArgs(l)];
  return { file: l.tools.sh, args: ['-c', script, 'sh', l.seccompPath, ...l.cgroupProcs, '--', ...command] };
}
