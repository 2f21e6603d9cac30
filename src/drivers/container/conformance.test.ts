/**
 * The container (runc) and gvisor (runsc) tiers against the driver conformance suite: functions served
 * from the runtime image that `continuum image build` starts from, in real OCI containers with cgroup
 * leaves, seccomp and private network namespaces. Each tier skips, saying why, where the host cannot run it.
 */
import { test } from 'node:test';
import { ContainerDriver, type OciRuntime } from './driver.ts';
import type { ContainerInstance } from './instance.ts';
import { runDriverConformance } from '../conformance.ts';

for (const runtime of ['runc', 'runsc'] as OciRuntime[]) {
  const probe = new ContainerDriver({ runtime });
  await probe.start();
  const status = probe.status();
  await probe.stop();
  if (!status.available) {
    test(`${probe.tier} tier conformance`, { skip: `${probe.tier} tier unavailable: ${status.reason}` }, () => {});
    continue;
  }
  runDriverConformance(probe.tier, async () => {
    const driver = new ContainerDriver({ runtime });
    await driver.start();
    return {
      driver,
      // Every process of the container's leaf (runc: the function's Node; runsc: the sandbox and gofer).
      killSandbox: (instance) => {
        for (const pid of (instance as ContainerInstance).pids()) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch (err) {
            // Already gone: runsc's gofer can exit with its sandbox before its own turn comes.
            if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
          }
        }
      },
      bombMemoryMb: runtime === 'runsc' ? 192 : 128,
    };
  });
}
