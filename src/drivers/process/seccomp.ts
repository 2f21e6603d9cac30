/**
 * The process tier's seccomp filter as a classic-BPF program (struct sock_filter[], what `bwrap --seccomp`
 * reads from a file descriptor). Deny-list in the style of Docker's default profile, narrowed to what
 * catalogue test 7 names plus their relatives: kernel modules, kexec, mounts, namespaces, tracing, keyrings,
 * BPF, perf, userfaultfd, io_uring, clocks and reboot. Denied calls fail with EPERM (Node and libuv probe
 * some of them, io_uring among them, and fall back); a foreign architecture or the x32 ABI kills the process.
 */

/** x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl). */
export const DENIED_SYSCALLS: Readonly<Record<string, number>> = {
  uselib: 134,
  ustat: 136,
  sysfs: 139,
  ptrace: 101,
  syslog: 103,
  vhangup: 153,
  pivot_root: 155,
  _sysctl: 156,
  adjtimex: 159,
  chroot: 161,
  acct: 163,
  settimeofday: 164,
  mount: 165,
  umount2: 166,
  swapon: 167,
  swapoff: 168,
  reboot: 169,
  iopl: 172,
  ioperm: 173,
  create_module: 174,
  init_module: 175,
  delete_module: 176,
  get_kernel_syms: 177,
  query_module: 178,
  quotactl: 179,
  nfsservctl: 180,
  lookup_dcookie: 212,
  clock_settime: 227,
  kexec_load: 246,
  add_key: 248,
  request_key: 249,
  keyctl: 250,
  unshare: 272,
  perf_event_open: 298,
  name_to_handle_at: 303,
  open_by_handle_at: 304,
  clock_adjtime: 305,
  setns: 308,
  process_vm_readv: 310,
  process_vm_writev: 311,
  kcmp: 312,
  finit_module: 313,
  kexec_file_load: 320,
  bpf: 321,
  userfaultfd: 323,
  io_uring_setup: 425,
  io_uring_enter: 426,
  io_uring_register: 427,
  open_tree: 428,
  move_mount: 429,
  fsopen: 430,
  fsconfig: 431,
  fsmount: 432,
  fspick: 433,
  pidfd_getfd: 438,
  mount_setattr: 442,
};

export const SYS_CLONE = 56;
/** clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc fall back to clone(2). */
export const SYS_CLONE3 = 435;
/** CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME: no new namespaces. */
export const CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080;

export const AUDIT_ARCH_X86_64 = 0xc000003e;
const X32_SYSCALL_BIT = 0x40000000;
export const EPERM = 1;
export const ENOSYS = 38;

export const RET = {
  KILL_PROCESS: 0x80000000,
  ERRNO: 0x00050000,
  ALLOW: 0x7fff0000,
} as const;

// BPF opcodes (linux/bpf_common.h).
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const JSET_K = 0x45;
const RET_K = 0x06;

/** Offsets into struct seccomp_data. */
const DATA_NR = 0;
const DATA_ARCH = 4;
/** Low 32 bits of args[0] (little endian). */
const DATA_ARG0_LO = 16;

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** The filter as instructions (exported for the table test's interpreter). */
export function seccompProgram(): Insn[] {
  const denied = Object.values(DENIED_SYSCALLS);
  // Layout: arch check, nr load, x32 check, clone/clone3 dispatch, one jeq per denied call, allow,
  // then the shared return blocks. Jumps are relative, so targets are computed from the final layout.
  const prog: Insn[] = [];
  const at = () => prog.length;
  const fixups: Array<{ index: number; field: 'jt' | 'jf'; label: string }> = [];
  const jump = (code: number, k: number, jt: string | null, jf: string | null) => {
    const index = at();
    prog.push({ code, jt: 0, jf: 0, k });
    if (jt) fixups.push({ index, field: 'jt', label: jt });
    if (jf) fixups.push({ index, field: 'jf', label: jf });
  };
  const labels = new Map<string, number>();
  const label = (name: string) => labels.set(name, at());

  prog.push({ code: LD_W_ABS, jt: 0, jf: 0, k: DATA_ARCH });
  jump(JEQ_K, AUDIT_ARCH_X86_64, null, 'kill');
  prog.push({ code: LD_W_ABS, jt: 0, jf: 0, k: DATA_NR });
  jump(JGE_K, X32_SYSCALL_BIT, 'kill', null);
  jump(JEQ_K, SYS_CLONE, 'clone', null);
  jump(JEQ_K, SYS_CLONE3, 'enosys', null);
  for (const nr of denied) jump(JEQ_K, nr, 'eperm', null);
  prog.push({ code: RET_K, jt: 0, jf: 0, k: RET.ALLOW });
  label('clone');
  prog.push({ code: LD_W_ABS, jt: 0, jf: 0, k: DATA_ARG0_LO });
  jump(JSET_K, CLONE_NAMESPACE_FLAGS, 'eperm', null);
  prog.push({ code: RET_K, jt: 0, jf: 0, k: RET.ALLOW });
  label('eperm');
  prog.push({ code: RET_K, jt: 0, jf: 0, k: RET.ERRNO | EPERM });
  label('enosys');
  prog.push({ code: RET_K, jt: 0, jf: 0, k: RET.ERRNO | ENOSYS });
  label('kill');
  prog.push({ code: RET_K, jt: 0, jf: 0, k: RET.KILL_PROCESS });

  for (const f of fixups) {
    const offset = labels.get(f.label)! - f.index - 1;
    if (offset < 0 || offset > 255) throw new RangeError(`seccomp jump to ${f.label} out of range`);
    prog[f.index]![f.field] = offset;
  }
  return prog;
}

/** The program as bytes (u16 code, u8 jt, u8 jf, u32 k; native little endian). */
export function seccompFilterBytes(): Buffer {
  const prog = seccompProgram();
  const out = Buffer.alloc(prog.length * 8);
  prog.forEach((insn, i) => {
    out.writeUInt16LE(insn.code, i * 8);
    out[i * 8 + 2] = insn.jt;
    out[i * 8 + 3] = insn.jf;
    out.writeUInt32LE(insn.k >>> 0, i * 8 + 4);
  });
  return out;
}
