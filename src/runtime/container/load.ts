/**
 * How a pre-started container of the runtime image (a spare, see src/drivers/container/spares.ts) is given
 * its function: the node writes the bundle into the container's `/fn` (a bind mount of a directory the
 * node owns) and POSTs the function's settings to `LOAD_PATH` on `$PORT`; the server loads the bundle and
 * serves it from then on. Before that it answers nothing else; after it, the path is the function's like
 * any other. A container started with its bundle in place (a cold start, or any OCI runtime running an
 * exported image) takes its settings from its environment instead. Imports nothing from the host side.
 */

export const LOAD_PATH = '/.continuum/load';

export interface WireContainerLoad {
  /** The function's variables. */
  env: Record<string, string>;
  /** Binding names by kind; when there are any, the node has made the host channel's socket. */
  queues: string[];
  services: string[];
}

/** The load body's settings, or a message saying what is wrong with it. */
export function parseContainerLoad(value: unknown): WireContainerLoad | string {
  if (typeof value !== 'object' || value === null) return 'the load body is not a JSON object';
  const { env, queues, services } = value as Record<string, unknown>;
  if (typeof env !== 'object' || env === null || Object.values(env).some((v) => typeof v !== 'string')) return 'env must map names to strings';
  const names = (list: unknown) => Array.isArray(list) && list.every((n) => typeof n === 'string');
  if (!names(queues) || !names(services)) return 'queues and services must be lists of names';
  return { env: { ...(env as Record<string, string>) }, queues: queues as string[], services: services as string[] };
}
