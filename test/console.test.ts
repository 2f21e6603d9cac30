/**
 * The web console: how the node serves it (content types, caching, SPA fallback, precedence of custom
 * routes), and end-to-end in a real browser — Debian's Chromium driven by playwright-core against a real
 * node on loopback: sign in → deploy → invoke → the log line → the request on the chart → the
 * invocation's waterfall, and the failure paths (bad token, code that does not build).
 * Screenshots go to test-artifacts/console/. The browser part skips, saying why, only without Chromium.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startTestNode, type TestNode } from './helpers/node.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const DIST = join(ROOT, 'console', 'dist');
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts', 'console');
const WAIT_MS = 20_000;

// `npm test` builds the console first (pretest); a lone run of this file builds it when missing.
if (!existsSync(join(DIST, 'index.html'))) {
  execFileSync(join(ROOT, 'node_modules', '.bin', 'vite'), ['build', 'console'], { cwd: ROOT, stdio: 'inherit' });
}

describe('console served by the node', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode();
  });
  after(() => node.stop());

  test('index at / and at console paths, no-cache; hashed assets immutable with their content types', async () => {
    const index = await fetch(`${node.url}/`);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    assert.match(index.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const html = await index.text();
    const scripts = [...html.matchAll(/(?:src|href)="(\/console\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    assert.ok(scripts.some((s) => s.endsWith('.js')) && scripts.some((s) => s.endsWith('.css')), html);
    // No asset is loaded from another origin (no CDN).
    assert.doesNotMatch(html, /(?:src|href)="(?:https?:)?\/\//);

    for (const path of ['/console', '/console/', '/console/functions/anything/logs']) {
      const page = await fetch(node.url + path);
      assert.equal(page.status, 200, path);
      assert.equal(await page.text(), html, path);
    }

    const js = scripts.find((s) => s.endsWith('.js'))!;
    const asset = await fetch(node.url + js, { headers: { 'accept-encoding': 'identity' } });
    assert.equal(asset.status, 200);
    assert.equal(asset.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(asset.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    const body = Buffer.from(await asset.arrayBuffer());
    const css = await fetch(node.url + scripts.find((s) => s.endsWith('.css'))!);
    assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8');

    // gzip when asked for, with its own tag; a matching If-None-Match is answered 304.
    const raw = await rawGet(node.url + js, { 'accept-encoding': 'gzip' });
    assert.equal(raw.headers['content-encoding'], 'gzip');
    assert.deepEqual(gunzipSync(raw.body), body);
    assert.notEqual(raw.headers.etag, asset.headers.get('etag'));
    const again = await fetch(node.url + js, { headers: { 'accept-encoding': 'identity', 'if-none-match': asset.headers.get('etag')! } });
    assert.equal(again.status, 304);

    const missing = await fetch(`${node.url}/console/assets/missing-abc.js`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as any).error.code, 'not_found');
    // Other unknown paths stay API errors, not the console.
    const other = await fetch(`${node.url}/elsewhere`);
    assert.equal(other.status, 404);
    assert.equal(((await other.json()) as any).error.code, 'not_found');
  });

  test('a custom route on / takes precedence over the console (function traffic is routed first)', async () => {
    const deployed = await node.deploy('catch-all', 'export default { fetch() { return new Response("function owns /") } }', 'index.js', { routes: [{ path: '/', host: 'app.example' }] });
    assert.equal(deployed.status, 201, JSON.stringify(deployed.json));
    const taken = await rawGet(`${node.url}/`, { host: 'app.example' });
    assert.equal(taken.body.toString(), 'function owns /');
    // On the node's own host name the console is still there.
    const console = await fetch(`${node.url}/`);
    assert.match(await console.text(), /<div id="root">/);
    assert.equal((await node.api('DELETE', '/v1/functions/catch-all')).status, 204);
  });

  test('a node without a built console says how to build it', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'continuum-console-'));
    const bare = await startTestNode({ config: { consoleDir: empty } });
    try {
      const res = await fetch(`${bare.url}/`);
      assert.equal(res.status, 200);
      assert.match(await res.text(), /npm run build:console/);
    } finally {
      await bare.stop();
      await rm(empty, { recursive: true, force: true });
    }
  });
});

const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (Debian package chromium; scripts/setup-host.sh installs it as root)`;
if (skip) console.log(`# skipping the browser tests: ${skip}`);

describe('console in a real browser', { skip }, () => {
  let node: TestNode;
  let profile: string;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    node = await startTestNode();
    profile = await mkdtemp(join(tmpdir(), 'continuum-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(WAIT_MS);
    page.on('pageerror', (err) => pageErrors.push(err.message));
    // The console must work with no network but the node's own origin.
    await page.route((url) => url.origin !== new URL(node.url).origin, (route) => {
      pageErrors.push(`request to another origin: ${route.request().url()}`);
      return route.abort();
    });
  });

  after(async () => {
    await context?.close();
    await node?.stop();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  // Page code: the browser's own types are not in this (Node) project.
  const focusedText = () => page.evaluate(() => (globalThis as unknown as { document: { activeElement: { textContent: string } | null } }).document.activeElement?.textContent ?? '');
  const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

  test('a bad token is refused with a clear message', async () => {
    await page.goto(`${node.url}/`);
    await page.getByLabel('Admin token').fill('ctm_not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    const text = await alert.innerText();
    assert.match(text, /unauthorized/);
    assert.match(text, /invalid admin token/);
    await shot('01-bad-token');
  });

  test('sign in → deploy → invoke → the log line → the request on the chart → the waterfall', async () => {
    await page.getByLabel('Admin token').fill(node.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Functions' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('continuum.token')), node.token);

    // Deploy from the browser: pasted code.
    await page.getByLabel('Function name').fill('greeter');
    await page.getByLabel('Source').fill(
      "export default {\n  async fetch(request) {\n    const body = await request.text();\n    console.log('greeter got', body);\n    return Response.json({ greeting: 'hello ' + body });\n  },\n};\n",
    );
    await shot('02-deploy-form');
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    await page.waitForURL(/\/console\/functions\/greeter$/);
    await page.getByRole('heading', { name: 'Summary' }).waitFor();
    assert.match(await page.locator('dl').innerText(), /Active version\s+v_[0-9a-f]{24}/);
    await shot('03-function-overview');

    // Scaled to zero, so the browser's invocation is a cold start with every phase in its waterfall.
    assert.equal((await node.api('DELETE', '/v1/functions/greeter/instances')).status, 200);

    // Invoke with a payload: status, headers and body are shown.
    await page.getByRole('tab', { name: 'Invoke' }).click();
    await page.getByLabel('Payload').fill('from-the-browser');
    await page.getByLabel('Content type').fill('text/plain');
    await page.getByRole('button', { name: 'Invoke', exact: true }).click();
    await page.getByTestId('invoke-status').waitFor();
    assert.equal(await page.getByTestId('invoke-status').innerText(), '200');
    assert.deepEqual(JSON.parse(await page.getByTestId('invoke-body').innerText()), { greeting: 'hello from-the-browser' });
    const headers = await page.getByRole('table', { name: 'Response headers' }).innerText();
    const invocationId = /x-continuum-invocation-id\s+([0-9a-f-]{36})/.exec(headers)?.[1];
    assert.ok(invocationId, headers);
    await shot('04-invoke');

    // Logs: the line of that invocation, then a new one arriving live while the panel follows.
    await page.getByRole('tab', { name: 'Logs' }).click();
    const log = page.getByRole('log', { name: 'Log lines' });
    await log.getByText('greeter got from-the-browser').waitFor();
    await page.getByRole('status').filter({ hasText: /^following$/ }).waitFor();
    const live = await node.fn('/fn/greeter/', { method: 'POST', body: 'while-following' });
    assert.equal(live.status, 200);
    await log.getByText('greeter got while-following').waitFor();
    await shot('05-logs');
    // Search (case-insensitive) narrows the lines to those that contain the text.
    await page.getByLabel('Search text (case-insensitive)').fill('WHILE-following');
    await page.getByRole('button', { name: 'Filter' }).click();
    await log.getByText('greeter got while-following').waitFor();
    await log.getByText('greeter got from-the-browser').waitFor({ state: 'detached' });

    // The charts: the series (or, on a node without it, the records) count both requests.
    await page.getByRole('tab', { name: 'Metrics' }).click();
    await page.getByTestId('series-summary').filter({ hasText: /\b2 requests\b/ }).waitFor();
    assert.ok((await page.locator('figure.chart canvas').count()) >= 4, 'the request, error, latency and cold-start charts are drawn');
    await shot('06-metrics');

    // Invocations: choosing one shows its phase waterfall.
    await page.getByRole('tab', { name: 'Invocations' }).click();
    const rows = page.getByRole('table', { name: 'Invocations' }).locator('tbody tr');
    await rows.nth(1).waitFor();
    assert.equal(await rows.count(), 2);
    await page.getByRole('button', { name: `Show waterfall of ${invocationId}` }).click();
    const waterfall = page.getByRole('figure', { name: /Phase waterfall/ });
    await waterfall.waitFor();
    // The keyboard is taken to the chosen invocation.
    assert.match(await focusedText(), new RegExp(`^Invocation ${invocationId}`));
    const phases = await waterfall.locator('.wf-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-phase')));
    assert.equal(phases[0], 'queue');
    assert.ok(phases.includes('exec'), phases.join());
    assert.ok(phases.includes('init') || (phases.includes('sandbox') && phases.includes('runtime') && phases.includes('module')), phases.join());
    // The bars add up to the record's total, and that invocation's log line is shown with it.
    const record = (await node.api('GET', `/v1/invocations/${invocationId}`)).json;
    const caption = await waterfall.locator('figcaption').innerText();
    const shown = /^Total ([\d.]+) ms · (cold start|warm)/.exec(caption);
    assert.ok(shown, caption);
    assert.ok(Math.abs(Number(shown[1]) - record.phases.totalMs) <= 0.05, `${caption} vs ${record.phases.totalMs}`);
    assert.equal(record.coldStart, true);
    assert.equal(shown[2], 'cold start');
    const bars = await waterfall.locator('.wf-ms').allInnerTexts();
    assert.equal(bars.length, phases.length);
    await page.getByText('greeter got from-the-browser').waitFor();
    await shot('07-waterfall');
  });

  test('code that does not build shows the build error with file:line', async () => {
    await page.getByRole('tab', { name: 'Deploy' }).click();
    await page.getByLabel('File name (decides JavaScript or TypeScript)').fill('broken.js');
    await page.getByLabel('Source').fill('export default {\n  fetch() {\n    return new Response("ok";\n  },\n};\n');
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    const text = await alert.innerText();
    assert.match(text, /bad_bundle/);
    assert.match(text, /broken\.js:3(:\d+)?/);
    await shot('08-bad-code');
    // The function keeps running its last good version.
    const still = await node.fn('/fn/greeter/', { method: 'POST', body: 'x' });
    assert.equal(still.status, 200);
  });

  test('a file uploaded from the browser deploys; the list shows state, tier, instances and version', async () => {
    await page.getByRole('link', { name: 'Functions' }).click();
    await page.getByLabel('Function name').fill('uploaded');
    await page.getByLabel('Upload a file').check();
    await page.getByLabel(/^File \(/).setInputFiles({
      name: 'uploaded.ts',
      mimeType: 'application/typescript',
      buffer: Buffer.from('export default { fetch(): Response { const n: number = 41; return new Response(String(n + 1)); } };\n'),
    });
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    await page.waitForURL(/\/console\/functions\/uploaded$/);
    assert.equal(await (await node.fn('/fn/uploaded/')).text(), '42');

    await page.getByRole('link', { name: 'Functions' }).click();
    const row = page.getByRole('table', { name: 'Functions' }).locator('tr', { has: page.getByRole('link', { name: 'greeter' }) });
    await row.waitFor();
    const cells = await row.locator('td').allInnerTexts();
    const fn = (await node.api('GET', '/v1/functions/greeter')).json;
    assert.deepEqual(cells.slice(0, 5), ['greeter', fn.instances > 0 ? 'warm' : 'scaled to zero', 'isolate', String(fn.instances), fn.activeVersion]);
    await shot('09-functions');
  });

  test('config edits are saved, and a bad one shows the API error with its field', async () => {
    await page.getByRole('link', { name: 'greeter' }).click();
    await page.getByRole('tab', { name: 'Config' }).click();
    await page.getByLabel('Memory (MiB)').fill('96');
    await page.getByLabel('Environment (one KEY=value per line)').fill('GREETING=hi\nMODE=console');
    await page.getByRole('button', { name: 'Save configuration' }).click();
    await page.getByRole('status').filter({ hasText: /^Saved/ }).waitFor();
    const fn = (await node.api('GET', '/v1/functions/greeter')).json;
    assert.equal(fn.config.limits.memoryMb, 96);
    assert.deepEqual(fn.config.env, { GREETING: 'hi', MODE: 'console' });

    await page.getByLabel('Memory (MiB)').fill('1');
    await page.getByRole('button', { name: 'Save configuration' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.innerText(), /bad_request.*memoryMb/);
    await shot('10-config-error');
  });

  test('queues with dead letters and redrive; the service map from caller records; usage', async () => {
    // A consumer that always fails, without retries: the message is dead at once.
    assert.equal((await node.api('POST', '/v1/queues', { name: 'jobs' })).status, 201);
    const failing = 'export default { async fetch() { return new Response("") }, async queue() { throw new Error("cannot do jobs") } }';
    assert.equal((await node.deploy('worker', failing, 'index.js', { triggers: [{ type: 'queue', queue: 'jobs', maxRetries: 0 }] })).status, 201);
    assert.equal((await node.api('POST', '/v1/queues/jobs/messages', { messages: [{ body: 'job-1' }] })).status, 202);
    // Calls through a service binding are what the service map draws.
    assert.equal((await node.deploy('front', 'export default { async fetch(req, env) { return env.GREETER.fetch(new Request("http://greeter/", { method: "POST", body: "via-front" })) } }', 'index.js', { bindings: { GREETER: { function: 'greeter' } } })).status, 201);
    assert.equal((await (await node.fn('/fn/front/')).text()).includes('hello via-front'), true);

    await page.getByRole('link', { name: 'Queues' }).click();
    await page.getByRole('table', { name: 'Queues' }).getByText('jobs', { exact: true }).waitFor();
    const dlq = page.getByRole('button', { name: 'Dead letters of jobs: 1' });
    await dlq.waitFor({ timeout: 30_000 });
    await dlq.click();
    await page.getByRole('table', { name: 'Dead letters of jobs' }).getByText('job-1').waitFor();
    await shot('11-queues-dlq');
    await page.getByRole('button', { name: 'Redrive all' }).click();
    await page.getByRole('status').filter({ hasText: '1 message(s) moved back to jobs' }).waitFor();

    await page.getByRole('link', { name: 'Service map' }).click();
    const calls = page.getByRole('table', { name: 'Calls between functions' });
    await calls.waitFor();
    assert.deepEqual((await calls.locator('tbody tr').first().locator('td').allInnerTexts()).slice(0, 3), ['front', 'greeter', '1']);
    assert.match((await page.getByRole('img', { name: /Service map/ }).getAttribute('aria-label')) ?? '', /front calls greeter/);
    await shot('12-service-map');

    await page.getByRole('link', { name: 'Usage' }).click();
    await page.getByRole('table', { name: 'Usage per function' }).getByText('greeter').waitFor();
    await shot('13-usage');
  });

  test('every control labelled, tabs by keyboard, no page errors', async () => {
    // Every input, select and textarea on the function pages has an accessible name.
    await page.goto(`${node.url}/console/functions/greeter/config`);
    await page.getByLabel('Memory (MiB)').waitFor();
    const unlabelled = await page.locator('input, select, textarea, button').evaluateAll((els) =>
      els.filter((el) => {
        // Page code: the browser's own types are not in this (Node) project.
        const e = el as unknown as { labels: ArrayLike<unknown> | null; getAttribute(n: string): string | null; tagName: string; textContent: string | null };
        const labelled = (e.labels && e.labels.length > 0) || e.getAttribute('aria-label') || (e.tagName === 'BUTTON' && e.textContent?.trim());
        return !labelled;
      }).map((el) => el.outerHTML.slice(0, 80)),
    );
    assert.deepEqual(unlabelled, []);
    // The keyboard reaches the tabs, and arrow keys move between them.
    await page.getByRole('tab', { name: 'Config' }).focus();
    await page.keyboard.press('ArrowRight');
    await page.waitForURL(/\/greeter\/invoke$/);
    assert.equal(await focusedText(), 'Invoke');
    assert.deepEqual(pageErrors, []);
  });
});

/** A GET with headers fetch would not let us set (Host) or would decode (gzip). */
async function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const http = await import('node:http');
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    }).on('error', reject);
  });
}
