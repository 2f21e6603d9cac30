/**
 * Catalogue 7's probe: a static C binary, compiled here with the system `cc`, that makes each forbidden
 * syscall with arguments that would succeed or fail differently without a filter and prints
 * `<name> <errno>` per call, then `getpid <pid>`. Functions receive it as their request body, write it
 * to their private /tmp and run it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const FORBIDDEN_SYSCALLS = ['ptrace', 'mount', 'unshare', 'bpf', 'perf_event_open', 'keyctl', 'io_uring_setup', 'userfaultfd', 'kexec_load', 'init_module', 'open_by_handle_at'] as const;

const SOURCE = `
  #define _GNU_SOURCE
  #include <stdio.h>
  #include <errno.h>
  #include <unistd.h>
  #include <sched.h>
  #include <sys/syscall.h>
  int main(void) {
    struct { const char *name; long nr; long a0; } t[] = {
      { "ptrace", SYS_ptrace, 0 /* PTRACE_TRACEME succeeds without a filter */ },
      { "mount", SYS_mount, 0 },
      { "unshare", SYS_unshare, CLONE_NEWUSER },
      { "bpf", SYS_bpf, 0 },
      { "perf_event_open", SYS_perf_event_open, 0 },
      { "keyctl", SYS_keyctl, 0 },
      { "io_uring_setup", SYS_io_uring_setup, 1 },
      { "userfaultfd", SYS_userfaultfd, 0 },
      { "kexec_load", SYS_kexec_load, 0 },
      { "init_module", SYS_init_module, 0 },
      { "open_by_handle_at", SYS_open_by_handle_at, -1 },
    };
    for (unsigned i = 0; i < sizeof t / sizeof t[0]; i++) {
      errno = 0;
      long r = syscall(t[i].nr, t[i].a0, 0, 0, 0, 0, 0);
      printf("%s %d\\n", t[i].name, r < 0 ? errno : 0);
    }
    printf("getpid %ld\\n", (long)syscall(SYS_getpid));
    return 0;
  }`;

/** The probe binary, or why it cannot be built here (a skip reason). */
export function buildSyscallProbe(): Buffer | string {
  let cc: string;
  try {
    cc = execFileSync('sh', ['-c', 'command -v cc'], { encoding: 'utf8' }).trim();
  } catch {
    return 'no C compiler to build the syscall probe';
  }
  const dir = mkdtempSync(join(tmpdir(), 'continuum-probe-'));
  try {
    writeFileSync(join(dir, 'probe.c'), SOURCE);
    execFileSync(cc, ['-static', '-O1', '-o', join(dir, 'probe'), join(dir, 'probe.c')]);
    return readFileSync(join(dir, 'probe'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
