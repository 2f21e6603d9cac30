/**
 * Catalogue 12 (cross-function secrets) for the Linux tiers: one function keeps a secret in its variables,
 * its /tmp and its log; another, on its own instance, dumps everything a process can look at — its
 * environment and argv, every /proc/<pid>/environ and cmdline it can read, /tmp, /dev/shm — and the test
 * looks for the secret and for the node's own secrets (admin token, data directory) in the dump.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { TestNode } from './node.ts';

const KEEPER = `import fs from 'node:fs';
export default { async fetch(request, env) {
  fs.writeFileSync('/tmp/kept', env.SECRET);
  console.log('the secret is ' + env.SECRET);
  return new Response('kept');
} };`;

const PROBE = `import fs from 'node:fs';
export default { async fetch() {
  const out = [JSON.stringify(process.env), JSON.stringify(process.argv)];
  const tryRead = (path) => { try { out.push(path + ' ' + fs.readFileSync(path, 'latin1')); } catch (e) { out.push(path + ' ' + e.code); } };
  let pids = [];
  try { pids = fs.readdirSync('/proc').filter((n) => /^\\d+$/.test(n)); } catch (e) { out.push('/proc ' + e.code); }
  for (const pid of pids) {
    tryRead('/proc/' + pid + '/environ');
    tryRead('/proc/' + pid + '/cmdline');
  }
  for (const dir of ['/tmp', '/dev/shm']) {
    let names = [];
    try { names = fs.readdirSync(dir); } catch (e) { out.push(dir + ' ' + e.code); }
    for (const name of names) tryRead(dir + '/' + name);
  }
  return new Response(out.join('\\n'));
} };`;

/** Deploys the keeper and the probe on `tier` (names start with `prefix`), and checks the probe's dump. */
export async function checkNoCrossFunctionSecrets(node: TestNode, tier: string, prefix: string): Promise<void> {
  const secret = `secret-${randomUUID()}`;
  for (const [name, code, env] of [[`${prefix}-keeper`, KEEPER, { SECRET: secret }], [`${prefix}-probe`, PROBE, {}]] as const) {
    const d = await node.deploy(name, code, 'index.mjs', { tier, env });
    assert.equal(d.status, 201, JSON.stringify(d.json));
  }
  const kept = await node.fn(`/fn/${prefix}-keeper/`);
  assert.equal(await kept.text(), 'kept');
  const res = await node.fn(`/fn/${prefix}-probe/`);
  const dump = await res.text();
  assert.equal(res.status, 200, dump.slice(0, 500));
  // The probe looked (or the sandbox refused it /proc: the process tier's permission model), and found
  // none of what it must not.
  assert.match(dump, /\/proc(\/1\/cmdline | ERR_ACCESS_DENIED)/);
  for (const [what, value] of [['the other function\'s secret', secret], ['the admin token', node.token], ['the node\'s data directory', node.dataDir]] as const) {
    assert.ok(!dump.includes(value), `the probe found ${what}`);
  }
}
