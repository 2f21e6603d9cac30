// queue_throughput: how fast a queue trigger drains a burst, and how long a message waits before its handler
// starts when the queue is not backed up; on each queue store backend (continuum-sqlite, continuum-nats).
//
//   throughput: for each message size (64 B, 1 KB) × batch size (1, 10, 100), a Workers queue() consumer that
//               acks everything; this runner (on LOAD_CPU) sends M messages through POST
//               /v1/queues/:name/messages, 100 per request on several connections. msgs/s = M / (first send →
//               every message seen by its handler and the queue's depth back at 0). "Seen" is the function's
//               own account: each batch logs its messages' ids, read from the node's live log stream.
//   latency:    L messages, one per request at a steady LATENCY_RATE_PER_S (batch 1 and 10, 64 B); each
//               handler logs Date.now() − message.timestamp (enqueued → handler start) per message.
//
// Throughput figures are medians over the rounds (targets interleaved per round); latency percentiles come
// from the samples pooled over the rounds.
import http from 'node:http';
import { join } from 'node:path';
import { median, percentile, round } from '../lib/stats.ts';
import { errorMessage, Samples, type EventTarget, type Metrics, type Options, type ScenarioReport } from '../lib/types.ts';
import { request, sleep } from '../lib/util.ts';
import type { LogLine } from '../targets/continuum.ts';
import { EventNode } from '../targets/event-node.ts';

/** Trigger settings for every consumer: the batch size varies; the rest is what one would pick for throughput. */
export const QUEUE_TRIGGER = { maxConcurrency: 8, maxBatchWaitMs: 50 } as const;
/** How the producer sends: messages per request (the API's most) and concurrent connections. */
export const QUEUE_PRODUCER = { messagesPerRequest: 100, connections: 4 } as const;
export const LATENCY_RATE_PER_S = 500;
const BATCH_SIZES = [1, 10, 100] as const;
const MESSAGE_SIZES = [[64, '64b'], [1024, '1kb']] as const;
const LATENCY_BATCH_SIZES = [1, 10] as const;
/**
 * Messages per combination before the first round (instance start, JIT, the stores' first growth): not
 * measured. 500 left the first round of a NATS run ≈ 20 % below the later ones; 5,000 is about a second of
 * batch-10 traffic, in line with the HTTP scenarios' warm-up.
 */
const WARMUP_MESSAGES = 5_000;
/** A run is given up when no message is handled for this long. */
const STALL_MS = 30_000;

// One log line per batch: "<run>.<seq>@<ms from enqueue to handler start>" per message, comma-separated.
const CONSUMER = `export default {
  async queue(batch) {
    const now = Date.now();
    const parts = [];
    for (const m of batch.messages) parts.push(m.body.slice(0, m.body.indexOf(':')) + '@' + (now - m.timestamp.getTime()));
    console.log(parts.join(','));
    batch.ackAll();
  },
};
`;

/** What the consumers reported for one run. */
class Collector {
  readonly run: string;
  readonly seen = new Set<number>();
  readonly latencies: number[] = [];
  duplicates = 0;
  lastProgress = Date.now();

  constructor(run: string) {
    this.run = run;
  }

  add(message: string): void {
    for (const part of message.split(',')) {
      const dot = part.indexOf('.');
      const at = part.indexOf('@');
      if (part.slice(0, dot) !== this.run) continue; // a straggler of an earlier run
      const seq = Number(part.slice(dot + 1, at));
      if (this.seen.has(seq)) this.duplicates++;
      else this.seen.add(seq);
      this.latencies.push(Number(part.slice(at + 1)));
    }
    this.lastProgress = Date.now();
  }
}

interface Running {
  target: EventTarget;
  node: EventNode;
  /** The run each function's log lines belong to now. */
  collectors: Map<string, Collector>;
  closeLogs(): void;
}

const fnName = (batch: number, size: string): string => `qt-b${batch}-${size}`;

let runSeq = 0;

function body(run: string, seq: number, size: number): { body: string } {
  const head = `${run}.${seq}:`;
  return { body: head + 'x'.repeat(Math.max(0, size - head.length)) };
}

async function startTarget(target: EventTarget, opts: Options): Promise<Running> {
  const node = await EventNode.start(target, join(opts.workDir, `queue_throughput-${target}`), join(opts.workDir, `queue_throughput-${target}.log`));
  try {
    const collectors = new Map<string, Collector>();
    const logs = await node.node.followLogs({}, (line: LogLine) => collectors.get(line.functionName)?.add(line.message));
    for (const batch of BATCH_SIZES) {
      for (const [, size] of MESSAGE_SIZES) {
        const name = fnName(batch, size);
        await node.node.json('POST', '/v1/queues', { name });
        await node.node.deploy(name, CONSUMER, { config: { triggers: [{ type: 'queue', queue: name, batchSize: batch, ...QUEUE_TRIGGER }] } });
      }
    }
    return { target, node, collectors, closeLogs: () => logs.close() };
  } catch (err) {
    await node.stop();
    throw err;
  }
}

async function depth(r: Running, queue: string): Promise<{ depth: number; inFlight: number }> {
  const q = await r.node.node.json<{ stats: { depth: number; inFlight: number } }>('GET', `/v1/queues/${queue}`);
  return q.stats;
}

/** Empties a queue left with messages by an earlier run that was given up. */
async function ensureEmpty(r: Running, queue: string): Promise<void> {
  if ((await depth(r, queue)).depth === 0) return;
  await r.node.node.json('DELETE', `/v1/queues/${queue}/messages`);
  const deadline = Date.now() + STALL_MS;
  while ((await depth(r, queue)).depth > 0) {
    if (Date.now() > deadline) throw new Error(`queue ${queue} does not empty`);
    await sleep(50);
  }
}

/** Waits until the consumer has seen `expected` messages (or stalls), then until the queue is empty. */
async function awaitDrained(r: Running, queue: string, c: Collector, expected: number): Promise<void> {
  while (c.seen.size < expected) {
    if (Date.now() - c.lastProgress > STALL_MS) throw new Error(`${queue}: ${expected - c.seen.size} of ${expected} messages not handled (no progress for ${STALL_MS / 1000} s)`);
    await sleep(2);
  }
  // Handled is not yet settled: the ack lands just after the handler's log line.
  const deadline = Date.now() + STALL_MS;
  while ((await depth(r, queue)).depth > 0) {
    if (Date.now() > deadline) throw new Error(`${queue}: every message handled but the depth stays above 0`);
    await sleep(2);
  }
}

interface ThroughputResult { msgsPerS: number; sendMsgsPerS: number; cpuUsPerMsg: number; serverCpuPct: number; duplicates: number }

async function throughputRun(r: Running, batch: number, size: number, sizeName: string, messages: number): Promise<ThroughputResult> {
  const name = fnName(batch, sizeName);
  await ensureEmpty(r, name);
  const run = `r${++runSeq}`;
  const requests: string[] = [];
  for (let i = 0; i < messages; i += QUEUE_PRODUCER.messagesPerRequest) {
    const n = Math.min(QUEUE_PRODUCER.messagesPerRequest, messages - i);
    requests.push(JSON.stringify({ messages: Array.from({ length: n }, (_, j) => body(run, i + j, size)) }));
  }
  const c = new Collector(run);
  r.collectors.set(name, c);
  const agent = new http.Agent({ keepAlive: true, maxSockets: QUEUE_PRODUCER.connections });
  const headers = { authorization: `Bearer ${r.node.node.token}`, 'content-type': 'application/json' };
  const url = `${r.node.node.url}/v1/queues/${name}/messages`;
  try {
    const cpu0 = r.node.cpuUs();
    const t0 = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: QUEUE_PRODUCER.connections }, async () => {
      while (next < requests.length) {
        const res = await request(url, { method: 'POST', body: requests[next++], headers, agent });
        if (res.status !== 202) throw new Error(`send: HTTP ${res.status} ${res.body.slice(0, 200)}`);
      }
    }));
    const sent = performance.now();
    await awaitDrained(r, name, c, messages);
    const elapsedS = (performance.now() - t0) / 1000;
    const cpuUs = r.node.cpuUs() - cpu0;
    return {
      msgsPerS: messages / elapsedS,
      sendMsgsPerS: messages / ((sent - t0) / 1000),
      cpuUsPerMsg: cpuUs / messages,
      serverCpuPct: (cpuUs / (elapsedS * 1e6)) * 100,
      duplicates: c.duplicates,
    };
  } finally {
    agent.destroy();
  }
}

/** `messages` single-message sends at LATENCY_RATE_PER_S (open loop); the handler-side latencies. */
async function latencyRun(r: Running, batch: number, messages: number): Promise<{ latencies: number[]; duplicates: number }> {
  const name = fnName(batch, '64b');
  await ensureEmpty(r, name);
  const run = `r${++runSeq}`;
  const c = new Collector(run);
  r.collectors.set(name, c);
  const agent = new http.Agent({ keepAlive: true, maxSockets: QUEUE_PRODUCER.connections });
  const headers = { authorization: `Bearer ${r.node.node.token}`, 'content-type': 'application/json' };
  const url = `${r.node.node.url}/v1/queues/${name}/messages`;
  try {
    const t0 = performance.now();
    const sends: Promise<void>[] = [];
    let sendError: unknown = null;
    for (let i = 0; i < messages; i++) {
      const wait = t0 + (i * 1000) / LATENCY_RATE_PER_S - performance.now();
      if (wait > 0) await sleep(wait);
      sends.push(request(url, { method: 'POST', body: JSON.stringify({ messages: [body(run, i, 64)] }), headers, agent }).then(
        (res) => {
          if (res.status !== 202) sendError ??= new Error(`send: HTTP ${res.status} ${res.body.slice(0, 200)}`);
        },
        (err: unknown) => {
          sendError ??= err;
        },
      ));
    }
    await Promise.all(sends);
    if (sendError !== null) throw sendError;
    await awaitDrained(r, name, c, messages);
    return { latencies: c.latencies, duplicates: c.duplicates };
  } finally {
    agent.destroy();
  }
}

export async function queueScenario(opts: Options, notes: string[], targets: EventTarget[]): Promise<ScenarioReport> {
  const running: Running[] = [];
  const samples = new Samples();
  const errors = new Map<EventTarget, number>();
  const fail = (target: EventTarget, what: string, err: unknown): void => {
    errors.set(target, (errors.get(target) ?? 0) + 1);
    notes.push(`queue_throughput/${target}: ${what}: ${errorMessage(err)}`);
    opts.log(`queue_throughput ${target} ${what} FAILED: ${errorMessage(err)}`);
  };
  try {
    for (const target of targets) {
      try {
        running.push(await startTarget(target, opts));
        opts.log(`queue_throughput: ${target} started`);
      } catch (err) {
        // A target that cannot run here (continuum-nats without NATS support) is a note, not an error.
        if (errorMessage(err).startsWith('not available')) {
          notes.push(`queue_throughput/${target}: ${errorMessage(err)}`);
          opts.log(`queue_throughput: ${target} ${errorMessage(err)}`);
        } else fail(target, 'start', err);
      }
    }
    const chosen = (batch: number, sizeName: string) => !opts.queueRuns || opts.queueRuns.includes(`b${batch}_${sizeName}`);
    for (const r of running) {
      for (const batch of BATCH_SIZES) {
        for (const [size, sizeName] of MESSAGE_SIZES) {
          if (!chosen(batch, sizeName)) continue;
          await throughputRun(r, batch, size, sizeName, Math.min(WARMUP_MESSAGES, opts.queueMessages)).catch((err: unknown) => fail(r.target, `warm-up b${batch} ${sizeName}`, err));
        }
      }
    }
    for (let rnd = 1; rnd <= opts.rounds; rnd++) {
      for (const r of running) {
        for (const batch of BATCH_SIZES) {
          for (const [size, sizeName] of MESSAGE_SIZES) {
            if (!chosen(batch, sizeName)) continue;
            const key = `b${batch}_${sizeName}`;
            try {
              const res = await throughputRun(r, batch, size, sizeName, opts.queueMessages);
              samples.add(r.target, `msgs_per_s_${key}`, res.msgsPerS);
              samples.add(r.target, `send_msgs_per_s_${key}`, res.sendMsgsPerS);
              samples.add(r.target, `cpu_us_per_msg_${key}`, res.cpuUsPerMsg);
              samples.add(r.target, `server_cpu_pct_${key}`, res.serverCpuPct);
              samples.add(r.target, 'duplicates', res.duplicates);
              opts.log(`queue_throughput round ${rnd}/${opts.rounds} ${r.target} ${key}: ${Math.round(res.msgsPerS)} msgs/s end to end (sent at ${Math.round(res.sendMsgsPerS)}/s), ${Math.round(res.cpuUsPerMsg)} cpu-us/msg, server CPU ${Math.round(res.serverCpuPct)}%, duplicates ${res.duplicates}`);
            } catch (err) {
              fail(r.target, `round ${rnd} ${key}`, err);
            }
          }
        }
        for (const batch of opts.queueRuns ? [] : LATENCY_BATCH_SIZES) {
          try {
            const res = await latencyRun(r, batch, opts.latencyMessages);
            for (const l of res.latencies) samples.add(r.target, `latency_b${batch}`, l);
            samples.add(r.target, 'duplicates', res.duplicates);
            opts.log(`queue_throughput round ${rnd}/${opts.rounds} ${r.target} latency b${batch}: p50 ${percentile(res.latencies, 50)} ms, p99 ${percentile(res.latencies, 99)} ms`);
          } catch (err) {
            fail(r.target, `round ${rnd} latency b${batch}`, err);
          }
        }
      }
    }
  } finally {
    for (const r of running) {
      r.closeLogs();
      await r.node.stop();
    }
  }
  const report: ScenarioReport = {};
  for (const r of running) {
    const m: Metrics = {};
    for (const metric of samples.metrics(r.target)) {
      const list = samples.get(r.target, metric);
      if (metric.startsWith('latency_')) {
        const b = metric.slice('latency_'.length);
        m[`p50_ms_${b}`] = percentile(list, 50);
        m[`p99_ms_${b}`] = percentile(list, 99);
      } else if (metric === 'duplicates') m.duplicates = list.reduce((a, b) => a + b, 0);
      else m[metric] = round(median(list), metric.startsWith('cpu_') ? 1 : 0);
    }
    m.rounds = opts.rounds;
    m.errors = errors.get(r.target) ?? 0;
    report[r.target] = m;
  }
  for (const [target, n] of errors) if (!report[target]) report[target] = { errors: n };
  return report;
}
