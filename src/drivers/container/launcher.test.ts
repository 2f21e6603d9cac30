import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Launcher } from './launcher.ts';

test('the launcher runs processes from its helper: output, exit code, kill, and a helper that dies ends what it ran', async () => {
  const launcher = new Launcher(process.execPath);
  try {
    const echo = launcher.run('/bin/sh', ['-c', 'echo out; echo err >&2; exit 3']);
    let text = '';
    echo.onOutput((t) => (text += t));
    assert.deepEqual(await echo.exited, { code: 3, signal: null });
    assert.deepEqual(text.split('\n').filter(Boolean).sort(), ['err', 'out']);

    const sleeper = launcher.run('/bin/sleep', ['30']);
    sleeper.kill('SIGKILL');
    assert.deepEqual(await sleeper.exited, { code: null, signal: 'SIGKILL' });

    const missing = launcher.run('/nonexistent/binary', []);
    let why = '';
    missing.onOutput((t) => (why += t));
    assert.equal((await missing.exited).code !== 0, true);
    assert.match(why, /ENOENT/);

    // The helper goes away (the driver stopped): what it was running counts as ended, and the next run starts a new helper.
    const orphan = launcher.run('/bin/sleep', ['2']);
    launcher.close();
    assert.deepEqual(await orphan.exited, { code: null, signal: null });
    const again = launcher.run('/bin/sh', ['-c', 'exit 0']);
    assert.deepEqual(await again.exited, { code: 0, signal: null });
  } finally {
    launcher.close();
  }
});
