import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Launcher } from './launcher.ts';

test('the launcher runs processes from its helper: output, exit code, kill, stdin input, short commands with a timeout, and a helper that dies ends what it ran', async () => {
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

    // Short commands: input on stdin, output on success, the command and its output on failure, a timeout kills.
    assert.equal(await launcher.exec('/bin/sh', ['-c', 'tr a-z A-Z'], { input: 'netns add x\n', timeoutMs: 5_000 }), 'NETNS ADD X\n');
    await assert.rejects(launcher.exec('/bin/sh', ['-c', 'echo no such device >&2; exit 2'], { timeoutMs: 5_000 }), /sh -c .*exit 2: no such device/);
    await assert.rejects(launcher.exec('/bin/sleep', ['30'], { timeoutMs: 100 }), (err: Error & { timedOut?: boolean }) => err.timedOut === true && /timed out/.test(err.message));

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
