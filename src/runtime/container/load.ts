import { HOST_ENV, HOST_SOCKET } from './host-channel.ts';

/**
 * How a pre-started container of the runtime image (a spare, see src/drivers/container/driver.ts) is given
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

/**
 * The environment of a container that runs a function with `settings`: its variables, the list that
 * names them, and the host channel when it has bindings. A container started with its function gets it
 * from the runtime; a spare sets it on itself when it loads (a function sees the same either way).
 */
export function settingsEnvironment(settings: WireContainerLoad): Record<string, string> {
  const env: Record<string, string> = { ...settings.env, CONTINUUM_ENV_KEYS: Object.keys(settings.env).join(',') };
  if (settings.queues.length + settings.services.length > 0) {
    Object.assign(env, { [HOST_ENV.socket]: HOST_SOCKET, [HOST_ENV.queues]: settings.queues.join(','), [HOST_ENV.services]: settings.services.join(',') });
  }
  return env;
}

/** The settings that `settingsEnvironment` put into `env`. */
export function settingsFromEnvironment(env: Record<string, string | undefined>): WireContainerLoad {
  const vars: Record<string, string> = {};
  for (const key of (env.CONTINUUM_ENV_KEYS ?? '').split(',')) if (key !== '' && env[key] !== undefined) vars[key] = env[key];
  const names = (list: string | undefined) => (list ?? '').split(',').filter((n) => n !== '');
  return { env: vars, queues: names(env[HOST_ENV.queues]), services: names(env[HOST_ENV.services]) };
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
