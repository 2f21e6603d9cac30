/**
 * Child process of crash.test.ts: writes to the stores in a loop and prints a line for each write only
 * after the call resolved (i.e. after it was acknowledged). The parent kills it with SIGKILL mid-run.
 *
 *   node crash-child.ts state <dataDir> <startIndex>
 *   node crash-child.ts artifacts <dataDir> <seed>
 *   node crash-child.ts open <dataDir> <tag>      (open, write one meta key, exit: for concurrent-open tests)
 */
import { createHash, randomBytes } from 'node:crypto';
import { resolveFunctionConfig } from '../../core/config.ts';
import { openSqliteStores } from './index.ts';

const [mode, dataDir, startArg] = process.argv.slice(2);
if (!dataDir || (mode !== 'state' && mode !== 'artifacts' && mode !== 'open')) {
  process.stderr.write('usage: crash-child.ts state|artifacts|open <dataDir> <start>\n');
  process.exit(2);
}
const start = Number(startArg ?? 0);
const stores = await openSqliteStores(dataDir);
const say = (line: string) => process.stdout.write(`${line}\n`);
say('READY');

if (mode === 'open') {
  await stores.state.setMeta(`opened.${startArg}`, String(process.pid));
  await stores.records.putInvocations([], [{ invocationId: `open-${startArg}`, functionName: 'open', ts: Date.now(), level: 'info', message: 'opened' }]);
  await Promise.all([stores.state.close(), stores.records.close()]);
  process.exit(0);
}

if (mode === 'state') {
  const config = resolveFunctionConfig({ env: { PAD: 'x'.repeat(200) } });
  for (let i = start; ; i++) {
    const name = `fn-${i}`;
    const now = new Date().toISOString();
    await stores.state.createFunction({ name, config, activeVersion: null, createdAt: now, updatedAt: now });
    say(`F ${name}`);
    const digest = createHash('sha256').update(name).digest('hex');
    const id = `v_${digest.slice(0, 24)}`;
    await stores.state.putVersion({
      id, functionName: name, bundleDigest: digest, bundleBytes: i, format: 'fetch', exportName: 'default',
      config, dependencies: [], createdAt: now,
    });
    say(`V ${name} ${id}`);
    await stores.state.updateFunction(name, { activeVersion: id });
    say(`A ${name} ${id}`);
    await stores.records.putInvocations([], [{ invocationId: `i-${i}`, functionName: name, ts: Date.now(), level: 'info', message: `deployed ${name}` }]);
  }
} else {
  for (let i = 0; ; i++) {
    // Sizes from 1 byte to ~2 MiB so that a kill often lands inside a write.
    const size = 1 + ((start * 7919 + i * 104729) % (2 * 1024 * 1024));
    const bytes = randomBytes(size);
    const digest = await stores.artifacts.put(bytes);
    say(`P ${digest}`);
  }
}
