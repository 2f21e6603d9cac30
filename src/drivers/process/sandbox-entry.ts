/**
 * Entry point inside a process-tier sandbox: the isolate worker's frame loop (fd 3) around the Node
 * engine of src/runtime/process/agent.ts. The driver bundles this file into one script (../node-script.ts)
 * so that nothing of the host's tree is visible in the sandbox.
 */
import { runWorker } from '../isolate/worker-loop.ts';
import { createAgentEngine } from '../../runtime/process/agent.ts';

runWorker(() => createAgentEngine());
