/**
 * The OCI runtime spec (config.json) of one container instance. Posture: new pid, mount, ipc, uts and
 * network namespaces (the network one made by network.ts), read-only rootfs, private size-capped /tmp,
 * every capability dropped, no_new_privs, the process tier's seccomp deny list (one source of truth:
 * ../process/seccomp.ts), a unique unprivileged host uid whatever user the image names (no user namespace:
 * with one, runc would open the rootfs path as the mapped uid), an RLIMIT_NOFILE, and the cgroup leaf the
 * driver made (cgroup.ts) for memory, CPU and pids.
 */
import { HOST_SOCKET_DIR } from '../../runtime/container/host-channel.ts';
import { CLONE_NAMESPACE_FLAGS, DENIED_SYSCALLS, ENOSYS, EPERM } from '../process/seccomp.ts';

export interface ContainerLaunch {
  rootfs: string;
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  /** `/run/netns/<name>`, or null when the runtime is started inside it (gVisor with host networking). */
  netnsPath: string | null;
  cgroupsPath: string;
  tmpBytes: number;
  nofile: number;
  /** Read-only bind of the function's bundle at /fn (functions run from the runtime image). */
  bundleDir: string | null;
  /** The instance's host-channel directory, bound read-only at HOST_SOCKET_DIR (functions with bindings). */
  channelDir: string | null;
  gvisor: boolean;
}

/**
 * The seccomp deny list as an OCI profile: denied calls → EPERM, clone with namespace flags → EPERM,
 * clone3 → ENOSYS (libc falls back to clone). gVisor (`gvisor: true`) applies the profile in its own
 * kernel, which answers a filtered clone3 with EPERM whatever errnoRet says, so threads could not start;
 * its kernel has no clone3 of its own to guard (ENOSYS already).
 */
export function ociSeccomp(gvisor: boolean): object {
  const flagBits: number[] = [];
  for (let bit = 1; bit <= CLONE_NAMESPACE_FLAGS; bit *= 2) if ((CLONE_NAMESPACE_FLAGS & bit) !== 0) flagBits.push(bit);
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ['SCMP_ARCH_X86_64'],
    syscalls: [
      { names: Object.keys(DENIED_SYSCALLS), action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
      // Rules for one call are alternatives: any namespace flag set is refused.
      ...flagBits.map((bit) => ({ names: ['clone'], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM, args: [{ index: 0, value: bit, valueTwo: bit, op: 'SCMP_CMP_MASKED_EQ' }] })),
      ...(gvisor ? [] : [{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS }]),
    ],
  };
}

export function runtimeSpec(l: ContainerLaunch): object {
  const namespaces: Array<{ type: string; path?: string }> = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (l.netnsPath !== null) namespaces.push({ type: 'network', path: l.netnsPath });
  const mounts: object[] = [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${Math.max(1, Math.floor(l.tmpBytes / 4))}`] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', `size=${l.tmpBytes}`] },
  ];
  if (l.bundleDir !== null) mounts.push({ destination: '/fn', type: 'bind', source: l.bundleDir, options: ['rbind', 'ro', 'nosuid', 'nodev'] });
  // Under /dev (a tmpfs of the container's own): the mount point is made there, never in the shared image.
  if (l.channelDir !== null) mounts.push({ destination: HOST_SOCKET_DIR, type: 'bind', source: l.channelDir, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: l.uid, gid: l.uid, additionalGids: [] },
      args: l.args,
      env: l.env,
      cwd: l.cwd,
      capabilities: { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: l.nofile, soft: l.nofile }],
      noNewPrivileges: true,
    },
    root: { path: l.rootfs, readonly: true },
    hostname: 'continuum',
    mounts,
    linux: {
      cgroupsPath: l.cgroupsPath,
      namespaces,
      seccomp: ociSeccomp(l.gvisor),
      maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
