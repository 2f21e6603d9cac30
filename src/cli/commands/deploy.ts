/** `continuum deploy PATH`: a file, a directory, an archive, or a continuum.yaml with several functions. */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { FunctionConfigInput } from '../../core/config.ts';
import { assertName } from '../../core/names.ts';
import type { ContinuumClient, DeployResult } from '../client.ts';
import type { Context } from '../context.ts';
import { CliError, userError } from '../errors.ts';
import { displayPath, isManifestPath, loadManifest, MANIFEST_NAMES, queueRefs } from '../manifest.ts';
import { deriveName } from '../names.ts';
import { formatBytes } from '../output.ts';
import { prepareUpload } from '../pack.ts';
import type { DeployOptions } from '../program.ts';

interface Job {
  name: string;
  path: string;
  config: FunctionConfigInput;
  /** Line of the function in its manifest. */
  line?: number;
}

/** Which manifest a PATH names: the file itself, or continuum.yaml inside a directory. */
async function manifestFor(target: string): Promise<string | undefined> {
  if (isManifestPath(target)) return target;
  const st = await stat(target);
  if (!st.isDirectory()) return undefined;
  for (const name of MANIFEST_NAMES) {
    const candidate = path.join(target, name);
    try {
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not there
    }
  }
  return undefined;
}

/** Resolve PATH and flags into the functions to deploy; validates everything before any upload. */
export async function planDeploy(target: string, opts: Pick<DeployOptions, 'name' | 'tier'>): Promise<{ jobs: Job[]; manifest: string | undefined }> {
  const manifestFile = await manifestFor(target);
  if (manifestFile) {
    const manifest = await loadManifest(manifestFile);
    let fns = manifest.functions;
    if (opts.name !== undefined) {
      fns = fns.filter((f) => f.name === opts.name);
      if (fns.length === 0) {
        throw userError(`${displayPath(manifestFile)} has no function ${JSON.stringify(opts.name)} (it has ${manifest.functions.map((f) => f.name).join(', ')})`);
      }
    }
    return { manifest: manifestFile, jobs: fns.map((f) => ({ name: f.name, path: f.path, line: f.line, config: opts.tier ? { ...f.config, tier: opts.tier } : f.config })) };
  }
  const name = opts.name !== undefined ? assertName(opts.name, 'function name') : deriveName(target);
  return { manifest: undefined, jobs: [{ name, path: path.resolve(target), config: opts.tier ? { tier: opts.tier } : {} }] };
}

/**
 * Queues must exist before a function names them; checking them all first keeps a manifest from being
 * deployed halfway.
 */
async function checkQueues(client: ContinuumClient, jobs: Job[], manifest: string | undefined): Promise<void> {
  const refs = jobs.flatMap((job) => queueRefs(job.config).map((ref) => ({ ...ref, job })));
  if (refs.length === 0) return;
  const have = new Set((await client.listQueues()).items.map((q) => q.name));
  const missing = refs.find((r) => !have.has(r.queue));
  if (!missing) return;
  const where = manifest !== undefined ? `${displayPath(manifest)}:${missing.job.line ?? 1}: ` : '';
  throw userError(`${where}functions.${missing.job.name}.${missing.field}: queue ${missing.queue} does not exist; create it first with 'continuum queue create ${missing.queue}'`);
}

export async function deploy(ctx: Context, target: string, opts: DeployOptions): Promise<number> {
  const out = ctx.out;
  const { jobs, manifest } = await planDeploy(target, opts);
  const client = await ctx.client();
  await checkQueues(client, jobs, manifest);
  const results: DeployResult[] = [];
  const prefix = (job: Job) => (jobs.length > 1 ? `${job.name}: ` : '');
  for (const job of jobs) {
    const started = performance.now();
    const upload = await prepareUpload(job.path);
    if (upload.packed) {
      out.step(`${prefix(job)}packed ${displayPath(job.path)}: ${upload.packed.entries} files, ${formatBytes(upload.packed.bytes)} → ${formatBytes(upload.body.length)} (${ms(started)})`);
      if (upload.packed.skipped.length > 0) out.trace(`skipped: ${upload.packed.skipped.join(', ')}`);
    }
    let result: DeployResult;
    try {
      result = await client.deploy(job.name, { ...upload, config: job.config }, out.progress ? (sent, total) => {
        if (sent < total) out.live(`${prefix(job)}uploading ${formatBytes(sent)}/${formatBytes(total)} ${Math.floor((sent / total) * 100)}%`);
        else out.live(`${prefix(job)}uploaded ${formatBytes(total)}; building…`);
      } : undefined);
    } catch (err) {
      if (err instanceof CliError && jobs.length > 1) {
        const done = results.map((r) => r.function.name);
        throw new CliError(err.code, `${job.name}: ${err.message}${done.length ? ` (already deployed: ${done.join(', ')})` : ''}`, { exitCode: err.exitCode, retryable: err.retryable, details: err.details, status: err.status });
      }
      throw err;
    }
    results.push(result);
    const v = result.version;
    const elapsed = ms(started);
    out.step(`${prefix(job)}ready: version ${v.id} (${elapsed})`);
    if (!out.json) {
      const deps = v.dependencies?.length ? `, ${v.dependencies.length} dependenc${v.dependencies.length === 1 ? 'y' : 'ies'}` : '';
      out.text(`deployed ${result.function.name} ${v.id} (${result.function.tier}, ${v.format}, ${formatBytes(v.bundleBytes)}${deps}) in ${elapsed}\n  ${client.target.url}/fn/${result.function.name}/`);
    }
  }
  if (out.json) out.result(manifest === undefined ? results[0] : { items: results }, () => undefined);
  return 0;
}

function ms(started: number): string {
  return `${Math.round(performance.now() - started)} ms`;
}
