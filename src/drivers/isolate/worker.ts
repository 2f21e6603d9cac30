/**
 * Entry point of an isolate-tier data-plane worker process, spawned by IsolateDriver as
 * `node --no-node-snapshot worker.ts` with an empty environment. It reads nothing from the environment
 * or the data directory: the prelude arrives in the driver's `init` frame, bundles in `create` frames.
 */
import { IsolateEngine } from './engine.ts';
import { runWorker } from './worker-loop.ts';

runWorker(async (init, fatal) => {
  const { prelude } = (init ?? {}) as { prelude?: unknown };
  return IsolateEngine.create({
    prelude: typeof prelude === 'string' && prelude.length > 0 ? prelude : undefined,
    onCatastrophicError: fatal,
  });
});
