/** The isolate tier against the driver conformance suite (real worker processes and isolates). */
import { IsolateDriver } from './driver.ts';
import { runDriverConformance } from '../conformance.ts';

runDriverConformance('isolate', async () => {
  const driver = new IsolateDriver({ workers: 2 });
  await driver.start();
  return {
    driver,
    // The isolate's sandbox process is the worker that hosts it.
    killSandbox: (instance) => process.kill((instance as unknown as { workerPid: number }).workerPid, 'SIGKILL'),
    bombMemoryMb: 32,
  };
});
