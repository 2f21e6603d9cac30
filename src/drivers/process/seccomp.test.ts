/**
 * The seccomp program, run by a small classic-BPF interpreter over its bytes: a table of syscalls,
 * architectures and clone flags with the action each must get. (The kernel's own verdicts are checked
 * from inside a sandbox in test/process-tier.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AUDIT_ARCH_X86_64, DENIED_SYSCALLS, ENOSYS, EPERM, RET, seccompFilterBytes } from './seccomp.ts';

function run(filter: Buffer, data: { nr: number; arch: number; arg0?: number }): number {
  const mem = Buffer.alloc(64);
  mem.writeInt32LE(data.nr, 0);
  mem.writeUInt32LE(data.arch, 4);
  mem.writeUInt32LE((data.arg0 ?? 0) >>> 0, 16);
  let a = 0;
  for (let pc = 0; pc < filter.length / 8; pc++) {
    const code = filter.readUInt16LE(pc * 8);
    const jt = filter[pc * 8 + 2]!;
    const jf = filter[pc * 8 + 3]!;
    const k = filter.readUInt32LE(pc * 8 + 4);
    switch (code) {
      case 0x20: a = mem.readUInt32LE(k); break;
      case 0x15: pc += a === k ? jt : jf; break;
      case 0x35: pc += a >= k ? jt : jf; break;
      case 0x45: pc += (a & k) !== 0 ? jt : jf; break;
      case 0x06: return k;
      default: throw new Error(`unexpected opcode ${code}`);
    }
  }
  throw new Error('fell off the end of the program');
}

const filter = seccompFilterBytes();
const x86 = AUDIT_ARCH_X86_64;
const eperm = RET.ERRNO | EPERM;

const cases: Array<[string, { nr: number; arch: number; arg0?: number }, number]> = [
  ['read is allowed', { nr: 0, arch: x86 }, RET.ALLOW],
  ['openat is allowed', { nr: 257, arch: x86 }, RET.ALLOW],
  ['ptrace → EPERM', { nr: 101, arch: x86 }, eperm],
  ['mount → EPERM', { nr: 165, arch: x86 }, eperm],
  ['unshare → EPERM', { nr: 272, arch: x86 }, eperm],
  ['bpf → EPERM', { nr: 321, arch: x86 }, eperm],
  ['perf_event_open → EPERM', { nr: 298, arch: x86 }, eperm],
  ['keyctl → EPERM', { nr: 250, arch: x86 }, eperm],
  ['io_uring_setup → EPERM', { nr: 425, arch: x86 }, eperm],
  ['userfaultfd → EPERM', { nr: 323, arch: x86 }, eperm],
  ['kexec_load → EPERM', { nr: 246, arch: x86 }, eperm],
  ['init_module → EPERM', { nr: 175, arch: x86 }, eperm],
  ['open_by_handle_at → EPERM', { nr: 304, arch: x86 }, eperm],
  ['clone for a thread is allowed', { nr: 56, arch: x86, arg0: 0x003d0f00 }, RET.ALLOW],
  ['clone for fork (SIGCHLD) is allowed', { nr: 56, arch: x86, arg0: 17 }, RET.ALLOW],
  ['clone(CLONE_NEWUSER) → EPERM', { nr: 56, arch: x86, arg0: 0x10000000 | 17 }, eperm],
  ['clone(CLONE_NEWNET) → EPERM', { nr: 56, arch: x86, arg0: 0x40000000 }, eperm],
  ['clone3 → ENOSYS (libc falls back to clone)', { nr: 435, arch: x86 }, RET.ERRNO | ENOSYS],
  ['x32 ABI → killed', { nr: 0x40000000 + 101, arch: x86 }, RET.KILL_PROCESS],
  ['i386 arch → killed', { nr: 26, arch: 0x40000003 }, RET.KILL_PROCESS],
];

for (const [name, data, want] of cases) {
  test(name, () => assert.equal(run(filter, data) >>> 0, want >>> 0));
}

test('every listed syscall is denied and the program fits classic BPF jumps', () => {
  for (const [name, nr] of Object.entries(DENIED_SYSCALLS)) assert.equal(run(filter, { nr, arch: x86 }) >>> 0, eperm >>> 0, name);
  assert.ok(filter.length / 8 < 4096);
});
