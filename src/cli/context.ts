/** What every verb gets: output rules, environment, the resolved data dir and a lazily discovered client. */
import path from 'node:path';
import type { Readable } from 'node:stream';
import { NODE_DEFAULTS } from '../core/defaults.ts';
import { ContinuumClient, discoverTarget } from './client.ts';
import { Output, type Streams } from './output.ts';
import type { CommonOptions } from './program.ts';

export interface Context {
  out: Output;
  env: Record<string, string | undefined>;
  /** Absolute data dir: --data-dir, else CONTINUUM_DATA, else ./.continuum. */
  dataDir: string;
  stdin: Readable;
  client(): Promise<ContinuumClient>;
}

export function resolveDataDir(flag: string | undefined, env: Record<string, string | undefined>): string {
  return path.resolve(flag ?? (env.CONTINUUM_DATA?.trim() || NODE_DEFAULTS.dataDir));
}

export function createContext(opts: CommonOptions, io: Streams & { stdin: Readable; env: Record<string, string | undefined> }): Context {
  const out = new Output(io, { json: opts.json === true, verbose: opts.verbose === true, env: io.env });
  const dataDir = resolveDataDir(opts.dataDir, io.env);
  let client: Promise<ContinuumClient> | undefined;
  return {
    out,
    env: io.env,
    dataDir,
    stdin: io.stdin,
    client() {
      client ??= discoverTarget({ dataDir, env: io.env }).then((target) => {
        out.trace(`target ${target.url} (${target.source === 'env' ? 'CONTINUUM_URL' : path.join(dataDir, 'node.json')}${target.token ? '' : ', no token'})`);
        return new ContinuumClient(target, { trace: (line) => out.trace(line) });
      });
      return client;
    },
  };
}
