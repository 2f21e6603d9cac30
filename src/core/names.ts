import { ContinuumError } from './errors.ts';

/** Functions, queues and tenants share one name grammar; it is safe as a path segment, cgroup or netns name. */
export const NAME_PATTERN = '^[a-z][a-z0-9-]{0,62}$';
const NAME_RE = new RegExp(NAME_PATTERN);

export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME_RE.test(name);
}

export function assertName(name: unknown, what = 'name'): string {
  if (!isValidName(name)) {
    const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 80)) : typeof name;
    throw new ContinuumError('bad_name', `${what} ${shown} is invalid: use 1-63 characters [a-z0-9-], starting with a letter`);
  }
  return name;
}
