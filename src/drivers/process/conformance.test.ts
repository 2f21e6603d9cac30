/**
 * The process tier against the driver conformance suite: real bubblewrap sandboxes, cgroup leaves and
 * seccomp. Skips, saying why, where the host cannot build them (not root, no bwrap, no cgroups).
 */
import { test } from 'node:test';
import { ProcessDriver } from './driver.ts';
import { ProcessInstance } from './instance.ts';
import { runDriverConformance } from '../conformance.ts';

const probe = new ProcessDriver();
await probe.start();
const status = probe.status();
await probe.stop();

if (!status.available) {
  test('process tier conformance', { skip: `process tier unavailable: ${status.reason}` }, () => {});
} else {
  runDriverConformance('process', async () => {
    const driver = new ProcessDriver();
    await driver.start();
    return {
      driver,
      // The agent: the Node process inside the sandbox that runs the function.
      killSandbox: (instance) => process.kill((instance as ProcessInstance).agentPid()!, 'SIGKILL'),
      // Node itself needs about 50 MB resident.
      bombMemoryMb: 128,
    };
  });
}
