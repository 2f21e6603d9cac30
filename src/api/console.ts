/**
 * Serves the web console (console/dist, built by `npm run build:console`): index.html at `/` and at every
 * `/console/…` path (the app routes on the client), hashed assets under `/console/assets/` cached for a
 * year. The files are read once at start into memory, gzipped when that helps; a request only looks up a
 * map, so no path from the URL ever reaches the file system.
 *
 * Precedence: function traffic is routed before this (gateway ingress), so a custom route on `/` or
 * `/console` takes that path from the console; the control API's `/v1/` paths never reach here.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ContinuumError } from '../core/errors.ts';
import { NODE_DEFAULTS } from '../core/defaults.ts';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

/** The console talks only to its own origin; nothing loads from elsewhere (no CDN). */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

interface Asset {
  body: Buffer;
  gzip: Buffer | null;
  type: string;
  etag: string;
  cacheControl: string;
}

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Continuum</title></head>
<body><h1>Continuum</h1><p>The web console is not built on this node. Run <code>npm run build:console</code> (done by
<code>npm start</code> and <code>npm test</code>) and restart. The control API is at <code>/v1/</code>.</p></body></html>`;

export async function registerConsole(app: FastifyInstance, dir: string): Promise<void> {
  const assets = existsSync(join(dir, 'index.html')) ? await loadAssets(dir) : new Map<string, Asset>();
  const index = assets.get('index.html') ?? asset(Buffer.from(NOT_BUILT), '.html', 'no-cache');

  const send = (req: FastifyRequest, reply: FastifyReply, a: Asset) => {
    const gzip = a.gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? '')) ? a.gzip : null;
    // Each encoding is its own representation, so it has its own tag.
    const etag = gzip ? `${a.etag.slice(0, -1)}-gz"` : a.etag;
    reply.headers({ ...SECURITY_HEADERS, 'content-type': a.type, 'cache-control': a.cacheControl, etag, vary: 'accept-encoding' });
    if (req.headers['if-none-match'] === etag) return reply.code(304).send();
    if (gzip) reply.header('content-encoding', 'gzip');
    return reply.send(gzip ?? a.body);
  };

  const page = async (req: FastifyRequest, reply: FastifyReply) => send(req, reply, index);
  app.get('/', { schema: { hide: true } }, page);
  app.get('/console', { schema: { hide: true } }, page);
  app.get<{ Params: { '*': string } }>('/console/*', { schema: { hide: true } }, async (req, reply) => {
    const path = req.params['*'];
    const file = assets.get(path);
    if (file && path !== 'index.html') return send(req, reply, file);
    // A missing file under assets/ is a stale or wrong link, not a console page.
    if (path.startsWith('assets/')) throw new ContinuumError('not_found', 'no such console asset');
    return send(req, reply, index);
  });
}

async function loadAssets(dir: string): Promise<Map<string, Asset>> {
  const out = new Map<string, Asset>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    const key = relative(dir, full).split(sep).join('/');
    const hashed = key.startsWith('assets/');
    out.set(key, asset(await readFile(full), extname(key), hashed ? `public, max-age=${NODE_DEFAULTS.consoleAssetMaxAgeS}, immutable` : 'no-cache'));
  }
  return out;
}

function asset(body: Buffer, ext: string, cacheControl: string): Asset {
  const type = TYPES[ext] ?? 'application/octet-stream';
  const compressible = /^(text\/|application\/json|image\/svg)/.test(type) && body.length > 1024;
  return {
    body,
    gzip: compressible ? gzipSync(body, { level: 9 }) : null,
    type,
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    cacheControl,
  };
}
