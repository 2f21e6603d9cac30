// Starts the native Node anchor on SERVER_CPU.
import { fileURLToPath } from 'node:url';
import type { FunctionName } from '../lib/bundle.ts';
import { freePort, SERVER_CPU, spawnPinned, waitForOk, type Spawned } from '../lib/util.ts';

const serverScript = fileURLToPath(new URL('./node-server.ts', import.meta.url));

export interface NodeServer { url: string; proc: Spawned; startMs: number }

export async function startNode(fn: FunctionName, logFile?: string): Promise<NodeServer> {
  const port = await freePort();
  const t0 = process.hrtime.bigint();
  const proc = spawnPinned(SERVER_CPU, process.execPath, [serverScript, String(port), fn], { logFile });
  const url = `http://127.0.0.1:${port}/`;
  try {
    const startMs = await waitForOk(url, t0, 30000, () => proc.child.exitCode === null);
    return { url, proc, startMs };
  } catch (err) {
    await proc.stop();
    throw err;
  }
}
