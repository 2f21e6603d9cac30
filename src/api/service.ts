/**
 * The service layer: every control-plane command (from the HTTP API, the CLI through it, or the node's
 * own start-up) goes through here. A deploy is all-or-nothing: build → start one instance of the new
 * version (proves the module loads) → store the bundle durably → record version and function → route.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { ContinuumError } from '../core/errors.ts';
import { Leases } from '../core/leases.ts';
import { assertName } from '../core/names.ts';
import { resolveFunctionConfig, type FunctionConfig, type FunctionConfigInput } from '../core/config.ts';
import type { FunctionRecord, VersionFile, VersionRecord } from '../core/types.ts';
import type { ArtifactStore, InvocationQuery, LogQuery, RecordStore, StateStore } from '../store/contract.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { RecordSink } from '../telemetry/sink.ts';
import { build, detectUploadKind, versionId, warmUpBuilder, type BuildInput } from '../build/index.ts';

export interface FunctionView {
  name: string;
  tier: FunctionConfig['tier'];
  activeVersion: string | null;
  config: FunctionConfig;
  createdAt: string;
  updatedAt: string;
  instances: number;
}

export interface Upload {
  bytes: Uint8Array;
  filename?: string;
  contentType?: string;
}

export interface ServiceDeps {
  state: StateStore;
  artifacts: ArtifactStore;
  records: RecordStore;
  scheduler: Scheduler;
  sink: RecordSink;
  /** Checks a resolved config against other resources (queues of triggers and bindings) before it is stored. */
  checkConfig?: (config: FunctionConfig) => Promise<void>;
  /** Called after any change that affects routing, with every function. */
  onFunctionsChanged: (functions: FunctionRecord[]) => void | Promise<void>;
  /**
   * Imports an uploaded OCI image into the image store of a container tier; resolves with its id
   * (`sha256:<hex>`), the upload's size, and `release`, which ends the hold that keeps the image from
   * garbage collection until its version is stored. Absent: image deploys are refused as unavailable.
   */
  importImage?: (tier: 'container' | 'gvisor', upload: AsyncIterable<Uint8Array>) => Promise<{ id: string; bytes: number; release: () => void }>;
  /** Removes stored images other than `referenced` (what stored versions name) and what runs; never throws. */
  collectImages?: (referenced: Set<string>) => Promise<void>;
}

export class FunctionService {
  private readonly deps: ServiceDeps;
  /** Serialises commands per function name so concurrent deploys cannot interleave. */
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Artifacts in-flight deploys store or rely on (digest → holders): a collection keeps them. */
  private readonly artifactLeases = new Leases();
  /** The artifact collection running now: leases wait for it, so none is taken while it decides. */
  private collecting: Promise<void> | null = null;

  constructor(deps: ServiceDeps) {
    this.deps = deps;
  }

  /** Route every function with an active version (instances start lazily, on first request). */
  async restore(): Promise<void> {
    // In the background: a deploy arriving meanwhile shares the same preparation.
    warmUpBuilder().catch(() => {});
    const functions = await this.deps.state.listFunctions();
    for (const fn of functions) {
      if (!fn.activeVersion) continue;
      const version = await this.deps.state.getVersion(fn.name, fn.activeVersion);
      if (version) await this.deps.scheduler.activate(version);
    }
    await this.deps.onFunctionsChanged(functions);
  }

  async list(): Promise<FunctionView[]> {
    return (await this.deps.state.listFunctions()).map((f) => this.view(f));
  }

  async get(name: string): Promise<FunctionView> {
    return this.view(await this.mustGet(name));
  }

  create(name: string, input: FunctionConfigInput = {}): Promise<FunctionView> {
    assertName(name, 'function name');
    return this.locked(name, async () => {
      const now = new Date().toISOString();
      const record: FunctionRecord = { name, config: await this.resolve(input), activeVersion: null, createdAt: now, updatedAt: now };
      await this.deps.state.createFunction(record);
      await this.changed();
      return this.view(record);
    });
  }

  /** Change configuration; a deployed function gets a new version with the same bundle. */
  updateConfig(name: string, input: FunctionConfigInput): Promise<FunctionView> {
    assertName(name, 'function name');
    return this.locked(name, async () => {
      const fn = await this.mustGet(name);
      const config = await this.resolve(input, fn.config);
      if (!fn.activeVersion) {
        const updated = await this.deps.state.updateFunction(name, { config });
        await this.changed();
        return this.view(updated);
      }
      const current = await this.deps.state.getVersion(name, fn.activeVersion);
      if (!current) throw new ContinuumError('internal', `active version ${fn.activeVersion} of ${name} is missing`);
      // The bundle is built for its tier (built-ins shimmed or external, addons refused or carried): a new
      // tier needs a new build from the source, which only a deploy has.
      if (config.tier !== current.config.tier) {
        throw new ContinuumError('bad_request', `the tier of ${name} cannot change from ${current.config.tier} to ${config.tier} without a build: deploy its code again with tier: ${config.tier}`);
      }
      const release = await this.leaseArtifacts(current.image ? [] : [current.bundleDigest, ...(current.files ?? []).map((f) => f.digest)]);
      try {
        const code = current.image ? new Uint8Array(0) : await this.deps.artifacts.get(current.bundleDigest);
        if (!code) throw new ContinuumError('internal', `bundle of ${fn.activeVersion} is missing from the artifact store`);
        const { function: updated } = await this.deployBuilt(name, fn, config, {
          code: new TextDecoder().decode(code),
          bundleDigest: current.bundleDigest,
          bundleBytes: current.bundleBytes,
          format: config.handler.format === 'auto' || config.handler.format === current.format ? current.format : config.handler.format,
          exportName: config.handler.export ?? current.exportName,
          dependencies: current.dependencies,
          files: current.files ?? [],
          ...(current.image ? { image: current.image } : {}),
        });
        return updated;
      } finally {
        release();
      }
    });
  }

  deploy(
    name: string,
    upload: Upload,
    input: FunctionConfigInput | undefined,
    onProgress?: BuildInput['onProgress'],
  ): Promise<{ function: FunctionView; version: VersionRecord }> {
    assertName(name, 'function name');
    const kind = detectUploadKind(upload.bytes, upload.filename, upload.contentType);
    if (kind === 'image') return this.deployImage(name, Readable.from([upload.bytes]), input);
    return this.locked(name, async () => {
      const existing = await this.deps.state.getFunction(name);
      const config = await this.resolve(input ?? {}, existing?.config);
      const built = await build({
        bytes: upload.bytes,
        kind,
        ...(upload.filename ? { filename: upload.filename } : {}),
        tier: config.tier,
        handler: config.handler,
        ...(onProgress ? { onProgress } : {}),
      });
      // Files beside the bundle are stored first (instances read them from the artifact store); a deploy
      // that fails afterwards removes those it added, so nothing of it stays stored.
      const added: string[] = [];
      const release = await this.leaseArtifacts([built.bundleDigest, ...built.files.map((f) => sha256(f.bytes))]);
      try {
        const files: VersionFile[] = [];
        for (const f of built.files) {
          const had = await this.deps.artifacts.has(sha256(f.bytes));
          const digest = await this.deps.artifacts.put(f.bytes);
          if (!had) added.push(digest);
          files.push({ path: f.path, digest, bytes: f.bytes.byteLength });
        }
        return await this.deployBuilt(name, existing, config, { ...built, files });
      } catch (err) {
        await Promise.all(added.map((d) => this.deps.artifacts.delete(d).catch(() => false)));
        throw err;
      } finally {
        release();
      }
    });
  }

  /** Deploy an OCI image layout or `docker save` tarball as a version of a container-tier function. */
  deployImage(name: string, upload: AsyncIterable<Uint8Array>, input: FunctionConfigInput | undefined): Promise<{ function: FunctionView; version: VersionRecord }> {
    assertName(name, 'function name');
    return this.locked(name, async () => {
      const existing = await this.deps.state.getFunction(name);
      const config = await this.resolve(input ?? {}, existing?.config);
      if (config.tier !== 'container' && config.tier !== 'gvisor') {
        throw new ContinuumError('bad_bundle', `an OCI image runs on the container or gvisor tier, not ${config.tier}: deploy it with Continuum-Config {"tier":"container"}`);
      }
      if (!this.deps.importImage) throw new ContinuumError('unavailable', 'image deploys are not available on this node');
      const image = await this.deps.importImage(config.tier, upload);
      let deployed: Awaited<ReturnType<FunctionService['deployBuilt']>>;
      try {
        deployed = await this.deployBuilt(name, existing, config, {
          code: '',
          bundleDigest: image.id.replace(/^sha256:/, ''),
          bundleBytes: image.bytes,
          format: 'fetch',
          exportName: 'default',
          dependencies: [],
          files: [],
          image: image.id,
        });
      } catch (err) {
        image.release();
        // A refused deploy leaves nothing stored: its image goes unless another version uses it.
        await this.collectGarbage();
        throw err;
      }
      image.release();
      return deployed;
    });
  }

  delete(name: string): Promise<void> {
    assertName(name, 'function name');
    return this.locked(name, async () => {
      await this.deps.scheduler.deactivate(name);
      if (!(await this.deps.state.deleteFunction(name))) throw new ContinuumError('not_found', `function ${name} does not exist`);
      await this.changed();
      await this.collectGarbage();
    });
  }

  async versions(name: string): Promise<VersionRecord[]> {
    await this.mustGet(name);
    return this.deps.state.listVersions(name);
  }

  async version(name: string, id: string): Promise<VersionRecord> {
    const v = await this.deps.state.getVersion(assertName(name, 'function name'), id);
    if (!v) throw new ContinuumError('not_found', `version ${id} of ${name} does not exist`);
    return v;
  }

  async evict(name: string): Promise<number> {
    await this.mustGet(name);
    return this.deps.scheduler.evict(name);
  }

  async invocations(query: InvocationQuery) {
    await this.deps.sink.flush();
    return this.deps.records.listInvocations(query);
  }

  async invocation(id: string) {
    await this.deps.sink.flush();
    const record = await this.deps.records.getInvocation(id);
    if (!record) throw new ContinuumError('not_found', `invocation ${id} does not exist`);
    return record;
  }

  async usage(sinceMs: number, untilMs: number) {
    await this.deps.sink.flush();
    return this.deps.records.usage(sinceMs, untilMs);
  }

  async logs(query: LogQuery) {
    await this.deps.sink.flush();
    return this.deps.records.queryLogs(query);
  }

  private async deployBuilt(
    name: string,
    existing: FunctionRecord | null,
    config: FunctionConfig,
    built: Pick<VersionRecord, 'bundleDigest' | 'bundleBytes' | 'format' | 'exportName' | 'dependencies' | 'image'> & { code: string; files: VersionFile[] },
  ): Promise<{ function: FunctionView; version: VersionRecord }> {
    const id = versionId(built.bundleDigest, config);
    const version: VersionRecord = (await this.deps.state.getVersion(name, id)) ?? {
      id,
      functionName: name,
      bundleDigest: built.bundleDigest,
      bundleBytes: built.bundleBytes,
      format: built.format,
      exportName: built.exportName,
      config,
      dependencies: built.dependencies,
      ...(built.files.length > 0 ? { files: built.files } : {}),
      ...(built.image ? { image: built.image } : {}),
      createdAt: new Date().toISOString(),
    };
    // Prove the module loads (an image: that it serves on $PORT) before anything is stored; the instance
    // stays warm for the first request.
    if (!built.image) this.deps.scheduler.stageCode(built.bundleDigest, built.code);
    await this.deps.scheduler.prewarm(version);
    if (!built.image) {
      const digest = await this.deps.artifacts.put(new TextEncoder().encode(built.code));
      if (digest !== built.bundleDigest) throw new ContinuumError('internal', 'bundle digest mismatch after storing');
    }
    if (!existing) {
      const now = new Date().toISOString();
      await this.deps.state.createFunction({ name, config, activeVersion: null, createdAt: now, updatedAt: now });
    }
    await this.deps.state.putVersion(version);
    const record = await this.deps.state.updateFunction(name, { config, activeVersion: id });
    await this.deps.scheduler.activate(version);
    await this.changed();
    return { function: this.view(record), version };
  }

  private async resolve(input: FunctionConfigInput, base?: FunctionConfig): Promise<FunctionConfig> {
    const config = resolveFunctionConfig(input, base);
    await this.deps.checkConfig?.(config);
    return config;
  }

  private async mustGet(name: string): Promise<FunctionRecord> {
    const fn = await this.deps.state.getFunction(assertName(name, 'function name'));
    if (!fn) throw new ContinuumError('not_found', `function ${name} does not exist`);
    return fn;
  }

  private view(f: FunctionRecord): FunctionView {
    return {
      name: f.name,
      tier: f.config.tier,
      activeVersion: f.activeVersion,
      config: f.config,
      createdAt: f.createdAt,
      updatedAt: f.updatedAt,
      instances: this.deps.scheduler.instances(f.name),
    };
  }

  private async changed(): Promise<void> {
    await this.deps.onFunctionsChanged(await this.deps.state.listFunctions());
  }

  /** Holds `digests` against collection until the returned release is called (after any collection running now). */
  private async leaseArtifacts(digests: string[]): Promise<() => void> {
    while (this.collecting) await this.collecting;
    return this.artifactLeases.hold(digests);
  }

  /**
   * Garbage collection of stored code: artifacts (bundles, files) that no stored version names and no
   * deploy holds go, and then the container tiers' images no version names (`deps.collectImages`). Runs
   * after a delete and a refused image deploy; the node runs it at start (what a crash between storing code
   * and its version left) and when a container tier has started. Resolves with the artifacts removed.
   */
  async collectGarbage(): Promise<number> {
    while (this.collecting) await this.collecting;
    let removed = 0;
    const run = (async () => {
      const artifacts = new Set<string>();
      const images = new Set<string>();
      for (const f of await this.deps.state.listFunctions()) {
        for (const v of await this.deps.state.listVersions(f.name)) {
          if (v.image) images.add(v.image);
          else artifacts.add(v.bundleDigest);
          for (const file of v.files ?? []) artifacts.add(file.digest);
        }
      }
      for (const digest of await this.deps.artifacts.list()) {
        if (!artifacts.has(digest) && !this.artifactLeases.has(digest) && (await this.deps.artifacts.delete(digest))) removed++;
      }
      await this.deps.collectImages?.(images);
    })();
    this.collecting = run.then(
      () => undefined,
      () => undefined,
    );
    try {
      await run;
    } finally {
      this.collecting = null;
    }
    return removed;
  }

  private locked<T>(name: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(name) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.catch(() => undefined);
    this.locks.set(name, settled);
    void settled.then(() => {
      if (this.locks.get(name) === settled) this.locks.delete(name);
    });
    return next;
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
