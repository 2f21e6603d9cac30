/**
 * In-memory routing table: `/fn/<name>/…` for every function, plus the custom routes of each function's
 * config (literal path prefix on segment boundaries, optional methods, optional exact or `*.suffix` host).
 * Matching is linear in the number of routes and never evaluates tenant-supplied patterns as regexes.
 */
import { isValidName } from '../core/names.ts';
import type { Route } from '../core/config.ts';

export interface RouteTarget {
  functionName: string;
  requestBodyBytes: number;
}

export type RouteMatch =
  | { kind: 'function'; target: RouteTarget; /** Path the function sees, always starting with '/'. */ path: string }
  | { kind: 'method_not_allowed'; allowed: string[] }
  | null;

interface CompiledRoute {
  route: Route;
  target: RouteTarget;
  hostSuffix: string | null;
}

export interface RoutableFunction {
  name: string;
  routes: Route[];
  requestBodyBytes: number;
}

export class RoutingTable {
  private readonly byName = new Map<string, RouteTarget>();
  /** Longest prefix first, host-specific before host-less. */
  private readonly custom: CompiledRoute[] = [];

  constructor(functions: Iterable<RoutableFunction>) {
    for (const fn of functions) {
      const target: RouteTarget = { functionName: fn.name, requestBodyBytes: fn.requestBodyBytes };
      this.byName.set(fn.name, target);
      for (const route of fn.routes) {
        this.custom.push({ route, target, hostSuffix: route.host?.startsWith('*.') ? route.host.slice(1) : null });
      }
    }
    this.custom.sort((a, b) => b.route.path.length - a.route.path.length || Number(!!b.route.host) - Number(!!a.route.host));
  }

  /** `pathname` is the raw request path (no query). */
  match(method: string, host: string, pathname: string): RouteMatch {
    if (pathname.startsWith('/fn/')) {
      const end = pathname.indexOf('/', 4);
      const name = end === -1 ? pathname.slice(4) : pathname.slice(4, end);
      if (!isValidName(name)) return null;
      const target = this.byName.get(name);
      if (!target) return null;
      return { kind: 'function', target, path: end === -1 ? '/' : pathname.slice(end) };
    }
    const hostname = stripPort(host).toLowerCase();
    let allowed: string[] | null = null;
    for (const c of this.custom) {
      if (!prefixMatches(c.route.path, pathname)) continue;
      if (c.route.host && !(c.hostSuffix ? hostname.endsWith(c.hostSuffix) && hostname.length > c.hostSuffix.length : hostname === c.route.host)) continue;
      if (c.route.methods && !c.route.methods.includes(method as never) && !(method === 'HEAD' && c.route.methods.includes('GET'))) {
        allowed ??= [...c.route.methods];
        continue;
      }
      return { kind: 'function', target: c.target, path: pathname };
    }
    return allowed ? { kind: 'method_not_allowed', allowed } : null;
  }
}

function prefixMatches(prefix: string, pathname: string): boolean {
  if (prefix === '/') return true;
  const p = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  return pathname === p || (pathname.startsWith(p) && pathname.charCodeAt(p.length) === 47 /* '/' */);
}

function stripPort(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.indexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}
