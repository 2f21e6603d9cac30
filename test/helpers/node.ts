/** Test harness: a real node (real stores, real isolate workers) on a free loopback port. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNode, type NodeConfig, type RunningNode } from '../../src/node/node.ts';
import { apiCall } from './http.ts';

export interface TestNode extends RunningNode {
  dataDir: string;
  /** Every line the node logged. */
  logs: string[];
  api(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; json: any; headers: Headers }>;
  deploy(name: string, source: string, filename?: string, config?: unknown): Promise<{ status: number; json: any }>;
  fn(path: string, init?: RequestInit): Promise<Omit<Response, 'json'> & { json(): Promise<any> }>;
  stop(): Promise<void>;
}

export async function startTestNode(opts: { isolateWorkers?: number; http?: NodeConfig['http']; nats?: string; config?: Partial<NodeConfig> } = {}): Promise<TestNode> {
  const dataDir = await mkdtemp(join(tmpdir(), 'continuum-test-'));
  const logs: string[] = [];
  const node = await startNode({ port: 0, host: '127.0.0.1', dataDir, deployExamples: false, isolateWorkers: opts.isolateWorkers ?? 1, log: (l) => logs.push(l), ...(opts.http ? { http: opts.http } : {}), ...(opts.nats ? { nats: opts.nats } : {}), ...opts.config });
  const auth = { authorization: `Bearer ${node.token}` };
  const api: TestNode['api'] = (method, path, body, headers) => apiCall(node.url, node.token, method, path, body, headers);
  return {
    ...node,
    dataDir,
    logs,
    api,
    deploy: async (name, source, filename = 'index.js', config) => {
      const res = await fetch(`${node.url}/v1/functions/${name}/deploy?filename=${filename}`, {
        method: 'POST',
        headers: { ...auth, 'content-type': filename.endsWith('.ts') ? 'application/typescript' : 'application/javascript', ...(config ? { 'continuum-config': JSON.stringify(config) } : {}) },
        body: source,
      });
      return { status: res.status, json: await res.json() };
    },
    fn: (path, init) => fetch(node.url + path, init),
    stop: async () => {
      await node.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
