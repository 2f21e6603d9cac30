/**
 * `continuum image build`: a Continuum function as an OCI image layout tarball that any OCI runtime runs.
 *
 * Layer 1 (the runtime, the same for every function of a node): the pinned Node binary at /runtime/node,
 * the shared libraries it links (at their host paths), and /runtime/server.js, the bundled HTTP server of
 * src/runtime/container/server.ts. Layer 2 (the function): /fn/index.js (the bundle) and /fn/continuum.json
 * (its load options). Config: `/runtime/node /runtime/server.js`, `PORT=8080`, user 65532, port 8080.
 *
 * The container drivers run functions from layer 1 alone, with the bundle bind-mounted at /fn: one stored
 * rootfs serves every function, and the image the CLI exports is the same thing with /fn as a layer.
 * Layers are plain tar (the Node binary makes up most of it; gzip would cost seconds per build).
 */
import { createHash } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import tar from 'tar-stream';
import { bundleNodeScript } from '../node-script.ts';
import { linkedLibraries } from '../process/sandbox.ts';

export const RUNTIME_NODE = '/runtime/node';
export const RUNTIME_SERVER = '/runtime/server.js';
export const IMAGE_PORT = 8080;
export const IMAGE_USER = 65532;

/** /fn/continuum.json: what the server passes to the engine (WireLoadOptions without env) plus the log cap. */
export interface FunctionLoad {
  functionName: string;
  versionId: string;
  format: 'auto' | 'fetch' | 'lambda' | 'openwhisk';
  exportName: string | null;
  payload: '1.0' | '2.0';
  memoryLimitMb: number;
  timeoutMs: number;
  cpuMs: number;
  responseBytes: number;
  subrequests: number;
  logBytes: number;
}

type Entry = { name: string; mode: number; type: 'file' | 'directory'; data?: Buffer };

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  // A fixed mtime keeps builds of the same inputs byte-identical (same digests).
  const mtime = new Date(0);
  for (const e of entries) {
    if (e.type === 'directory') pack.entry({ name: e.name, type: 'directory', mode: e.mode, mtime, uid: 0, gid: 0 });
    else pack.entry({ name: e.name, type: 'file', mode: e.mode, mtime, uid: 0, gid: 0 }, e.data!);
  }
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}

export function buildServer(): Promise<string> {
  return bundleNodeScript(new URL('../../runtime/container/server.ts', import.meta.url));
}

const runtimeLayers = new Map<string, Promise<Buffer>>();

/** Layer 1 for a Node binary (cached per process: it is the same for every function). */
export function runtimeLayer(nodePath: string): Promise<Buffer> {
  let layer = runtimeLayers.get(nodePath);
  if (!layer) {
    layer = (async () => {
      const dirs = new Set<string>(['runtime', 'tmp', 'fn', 'proc', 'dev', 'sys']);
      const files: Entry[] = [
        { name: 'runtime/node', type: 'file', mode: 0o755, data: readFileSync(nodePath) },
        { name: 'runtime/server.js', type: 'file', mode: 0o644, data: Buffer.from(await buildServer()) },
      ];
      for (const lib of linkedLibraries(nodePath)) {
        const name = lib.replace(/^\//, '');
        const parts = name.split('/');
        for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
        files.push({ name, type: 'file', mode: 0o755, data: readFileSync(realpathSync(lib)) });
      }
      const dirEntries: Entry[] = [...dirs].sort().map((name) => ({ name, type: 'directory', mode: name === 'tmp' ? 0o1777 : 0o755 }));
      return tarOf([...dirEntries, ...files]);
    })();
    runtimeLayers.set(nodePath, layer);
  }
  return layer;
}

/** Layer 2: the bundle, its load options and the files beside it (native addons: addons/<sha256>.node). */
export async function functionLayer(code: string, load: FunctionLoad, files: Array<{ path: string; bytes: Uint8Array }> = []): Promise<Buffer> {
  return tarOf([
    { name: 'fn', type: 'directory', mode: 0o755 },
    { name: 'fn/index.js', type: 'file', mode: 0o644, data: Buffer.from(code) },
    { name: 'fn/continuum.json', type: 'file', mode: 0o644, data: Buffer.from(JSON.stringify(load) + '\n') },
    ...(files.length > 0 ? [{ name: 'fn/addons', type: 'directory' as const, mode: 0o755 }] : []),
    ...files.map((f): Entry => ({ name: `fn/${f.path}`, type: 'file', mode: 0o644, data: Buffer.from(f.bytes) })),
  ]);
}

/** An OCI image layout (as a tar) of the given layers, run as the function server. */
export async function ociLayout(layers: Buffer[], labels: Record<string, string> = {}): Promise<Buffer> {
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {
        // A young generation sized for a function's memory, not the host's (see the process tier's sandbox).
        Entrypoint: [RUNTIME_NODE, '--max-semi-space-size=2', RUNTIME_SERVER],
        Env: [`PORT=${IMAGE_PORT}`, 'PATH=/runtime'],
        User: `${IMAGE_USER}:${IMAGE_USER}`,
        WorkingDir: '/',
        ExposedPorts: { [`${IMAGE_PORT}/tcp`]: {} },
        Labels: labels,
      },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${sha256(l)}`) },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha256(config)}`, size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${sha256(l)}`, size: l.length })),
    }),
  );
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${sha256(manifest)}`, size: manifest.length, platform: { architecture: 'amd64', os: 'linux' } }],
    }),
  );
  const blobs = [config, manifest, ...layers];
  return tarOf([
    { name: 'oci-layout', type: 'file', mode: 0o644, data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
    { name: 'index.json', type: 'file', mode: 0o644, data: index },
    { name: 'blobs', type: 'directory', mode: 0o755 },
    { name: 'blobs/sha256', type: 'directory', mode: 0o755 },
    ...[...new Map(blobs.map((b) => [sha256(b), b])).entries()].map(([hex, data]): Entry => ({ name: `blobs/sha256/${hex}`, type: 'file', mode: 0o644, data })),
  ]);
}

/** The full image of one function: runtime layer + function layer. */
export async function buildFunctionImage(init: { nodePath: string; code: string; load: FunctionLoad; files?: Array<{ path: string; bytes: Uint8Array }> }): Promise<Buffer> {
  return ociLayout([await runtimeLayer(init.nodePath), await functionLayer(init.code, init.load, init.files)], { 'dev.continuum.function': init.load.functionName });
}
