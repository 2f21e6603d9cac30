/**
 * The events service: queues as resources, queue triggers, async invocations, cron triggers, CloudEvents
 * delivery and queue bindings — all entering the same scheduler through `invoke`. It keeps one consumer per
 * (function, queue) and per function's async queue, reconciled with the deployed functions by `sync`.
 *
 * Delivery contract (ARCHITECTURE §6): a send resolves once durable; every delivery carries the message id
 * (the invocation id, the same on every attempt), its attempt and idempotency key; settlements are fenced
 * by lease token; retries are bounded with backoff and jitter, then the message goes to the dead letters
 * with its reason and errors.
 */
import { createHash } from 'node:crypto';
import type { AsyncConfig, CronTrigger as CronTriggerConfig, Destination, FunctionConfig, QueueTrigger } from '../core/config.ts';
import { EVENT_DEFAULTS } from '../core/defaults.ts';
import type { BindingMessage, InstanceServices, InvokeRequest, InvokeResult } from '../core/driver.ts';
import { ContinuumError, toContinuumError } from '../core/errors.ts';
import { uuidv7 } from '../core/ids.ts';
import { parseTraceparent } from '../core/tracecontext.ts';
import type { HandlerFormat, Trigger } from '../core/types.ts';
import type { DeadLetter, LeasedMessage, MessageOutcome, MessageStatus, NewMessage, QueueStats, QueueStore, SentMessage } from '../store/contract.ts';
import { asyncQueueName } from '../store/queue-rules.ts';
import { QueueConsumer, type ConsumerSettings, type MessageVerdict } from './consumer.ts';
import { CronTrigger } from './cron-trigger.ts';
import { asyncRequest, KIND_ATTRIBUTE, parseQueueBatchAnswer, queueBatchRequest, TRACEPARENT_ATTRIBUTE, type AsyncKind } from './deliver.ts';

/** A function as the events service needs to know it: its config and the format of its active version. */
export interface EventFunction {
  name: string;
  config: FunctionConfig;
  /** Null while the function has no deployed version (nothing is consumed for it). */
  format: HandlerFormat | null;
}

export interface InvokeOutcome {
  result: InvokeResult;
}

export interface EventsServiceOptions {
  queues: QueueStore;
  /** The scheduler's invoke; `event` goes into the invocation record. */
  invoke: (functionName: string, request: InvokeRequest, trigger: Trigger, event: { id: string; attempt: number; queue: string }) => Promise<InvokeOutcome>;
  log?: (line: string) => void;
  /** Idle poll interval of consumers (the store's watch wakes them when messages are stored). */
  pollMs?: number;
  /** Fault injection for crash tests: called at named points (see NodeConfig.failpoints). */
  failpoint?: (name: string) => void;
  /** Told when a consumer holds a batch taken ahead until `dueAt` (see ConsumerOptions.onHold). */
  onHold?: (dueAt: number) => void;
}

export interface QueueView {
  name: string;
  createdAt: string;
  stats: QueueStats;
  /** Functions consuming it. */
  consumers: string[];
}

export interface AsyncSubmission {
  body: Uint8Array;
  contentType?: string;
  idempotencyKey?: string;
  kind?: AsyncKind;
  /** Extra attributes (CloudEvents attributes are prefixed `ce-`). */
  attributes?: Record<string, string>;
  /** Not run before this many ms from now. */
  delayMs?: number;
  /** Keep state and outcome queryable by id (default true; cron fires are not). */
  track?: boolean;
}

/** Largest result body kept with an async invocation's outcome. */
const MAX_RESULT_BYTES = 256 * 1024;
/** Async invocations of one function run at most this many at once (also bounded by its scale). */
const MAX_ASYNC_CONCURRENCY = 32;

export class EventsService {
  readonly #o: EventsServiceOptions;
  readonly #consumers = new Map<string, QueueConsumer>();
  readonly #crons = new Map<string, CronTrigger>();
  #functions = new Map<string, EventFunction>();
  #closed = false;
  /** Serialises reconciliations. */
  #syncing: Promise<void> = Promise.resolve();

  constructor(options: EventsServiceOptions) {
    this.#o = options;
  }

  // ------------------------------------------------------------ queues as resources

  async createQueue(name: string): Promise<QueueView> {
    const record = await this.#o.queues.createQueue(assertUserQueue(name));
    return { ...record, stats: await this.#o.queues.stats(name), consumers: this.#consumersOf(name) };
  }

  async listQueues(): Promise<QueueView[]> {
    const out: QueueView[] = [];
    for (const q of await this.#o.queues.listQueues()) {
      if (q.name.startsWith('_')) continue;
      out.push({ ...q, stats: await this.#o.queues.stats(q.name), consumers: this.#consumersOf(q.name) });
    }
    return out;
  }

  async getQueue(name: string): Promise<QueueView> {
    const record = await this.#o.queues.getQueue(assertUserQueue(name));
    if (!record) throw new ContinuumError('not_found', `queue ${name} does not exist`);
    return { ...record, stats: await this.#o.queues.stats(name), consumers: this.#consumersOf(name) };
  }

  /** Refused while a function consumes or is bound to the queue: that function would silently stop working. */
  async deleteQueue(name: string): Promise<void> {
    assertUserQueue(name);
    const users = this.#usersOf(name);
    if (users.length > 0) throw new ContinuumError('conflict', `queue ${name} is used by ${users.join(', ')}; remove its triggers and bindings first`);
    if (!(await this.#o.queues.deleteQueue(name))) throw new ContinuumError('not_found', `queue ${name} does not exist`);
  }

  async send(queue: string, messages: NewMessage[]): Promise<SentMessage[]> {
    return this.#o.queues.send(assertUserQueue(queue), messages);
  }

  /**
   * Pull messages for an external consumer (SQS ReceiveMessage style): each comes with a receipt that
   * acknowledges it until `visibilityMs` runs out; unacknowledged messages are delivered again.
   */
  async receive(queue: string, max: number, visibilityMs: number): Promise<Array<LeasedMessage & { receipt: string }>> {
    const got = await this.#o.queues.receive(assertUserQueue(queue), max, visibilityMs);
    return got.map((m) => ({ ...m, receipt: `${m.id}~${m.leaseToken}` }));
  }

  /** Acknowledge pulled messages by receipt; one boolean per receipt (false: stale or unknown). */
  async ack(queue: string, receipts: string[]): Promise<boolean[]> {
    const settlements = receipts.map((r) => {
      const at = r.indexOf('~');
      return { id: at > 0 ? r.slice(0, at) : r, leaseToken: at > 0 ? r.slice(at + 1) : '', action: 'ack' as const };
    });
    return this.#o.queues.settle(assertUserQueue(queue), settlements);
  }

  purge(queue: string): Promise<number> {
    return this.#o.queues.purge(assertUserQueue(queue));
  }

  deadLetters(queue: string, opts: { limit: number; after?: string }): Promise<DeadLetter[]> {
    return this.#o.queues.listDeadLetters(assertUserQueue(queue), opts);
  }

  async redrive(queue: string, ids?: string[]): Promise<number> {
    return this.#o.queues.redrive(assertUserQueue(queue), ids);
  }

  purgeDeadLetters(queue: string, ids?: string[]): Promise<number> {
    return this.#o.queues.purgeDeadLetters(assertUserQueue(queue), ids);
  }

  // ------------------------------------------------------------ async invocations

  /** Durably accept an async invocation; resolves with its id (the first id again for a repeated idempotency key). */
  async submitAsync(functionName: string, submission: AsyncSubmission): Promise<SentMessage> {
    const fn = this.#functions.get(functionName);
    if (!fn || fn.format === null) throw new ContinuumError('not_found', `function ${functionName} is not deployed`);
    const queue = asyncQueueName(functionName);
    const [sent] = await this.#o.queues.send(queue, [
      {
        body: submission.body,
        track: submission.track ?? true,
        ...(submission.delayMs ? { delayMs: submission.delayMs } : {}),
        attributes: { ...submission.attributes, [KIND_ATTRIBUTE]: submission.kind ?? 'async' },
        ...(submission.contentType !== undefined ? { contentType: submission.contentType } : {}),
        ...(submission.idempotencyKey !== undefined ? { idempotencyKey: submission.idempotencyKey } : {}),
      },
    ]);
    return sent!;
  }

  /** State and outcome of an async invocation (or of another tracked message). */
  async status(id: string): Promise<MessageStatus | null> {
    return this.#o.queues.getMessage(id);
  }

  // ------------------------------------------------------------ bindings

  /** What instances call when tenant code uses a queue binding; the driver has already resolved the grant. */
  readonly instanceServices: Pick<InstanceServices, 'sendToQueue'> = {
    sendToQueue: async (functionName: string, queue: string, messages: BindingMessage[], traceparent?: string): Promise<string[]> => {
      const fn = this.#functions.get(functionName);
      if (!fn || !Object.values(fn.config.bindings).some((b) => 'queue' in b && b.queue === queue)) {
        throw new ContinuumError('forbidden', `function ${functionName} has no binding to queue ${queue}`);
      }
      // The sender's trace context rides in each message's attributes (W3C trace context for messaging).
      // Only a well-formed one: without a tracer it is the client's header, unchecked until here.
      const attributes = parseTraceparent(traceparent) ? { [TRACEPARENT_ATTRIBUTE]: traceparent! } : undefined;
      const sent = await this.#o.queues.send(
        queue,
        messages.map((m) => ({ body: m.body, contentType: m.contentType, ...(m.delayMs ? { delayMs: m.delayMs } : {}), ...(attributes ? { attributes } : {}) })),
      );
      return sent.map((s) => s.id);
    },
  };

  // ------------------------------------------------------------ configuration

  /** Check a function's event config against what exists (queues), before it is stored. */
  async checkConfig(config: FunctionConfig): Promise<void> {
    const queues = new Set((await this.#o.queues.listQueues()).map((q) => q.name));
    config.triggers.forEach((t, i) => {
      if (t.type === 'queue' && !queues.has(t.queue)) throw new ContinuumError('bad_request', `triggers/${i}: queue ${t.queue} does not exist`, { pointer: `/triggers/${i}/queue` });
      if (t.type === 'cron') CronTrigger.validate(t, `/triggers/${i}`);
    });
    for (const [name, b] of Object.entries(config.bindings)) {
      // Service bindings are resolved per call: the target may be deployed after its callers.
      if ('queue' in b && !queues.has(b.queue)) throw new ContinuumError('bad_request', `bindings/${name}: queue ${b.queue} does not exist`, { pointer: `/bindings/${name}/queue` });
    }
    for (const key of ['onSuccess', 'onFailure'] as const) {
      const d = config.async[key];
      if (d && 'queue' in d && !queues.has(d.queue)) throw new ContinuumError('bad_request', `async/${key}: queue ${d.queue} does not exist`, { pointer: `/async/${key}/queue` });
    }
  }

  /** Reconcile consumers and cron triggers with the functions as they are now. */
  sync(functions: EventFunction[]): Promise<void> {
    const run = this.#syncing.then(() => this.#sync(functions));
    this.#syncing = run.catch((err) => this.#o.log?.(`events: sync failed: ${toContinuumError(err).message}`));
    return run;
  }

  async #sync(functions: EventFunction[]): Promise<void> {
    if (this.#closed) return;
    const previous = this.#functions;
    this.#functions = new Map(functions.map((f) => [f.name, f]));
    const wantConsumers = new Map<string, { fn: EventFunction; settings: ConsumerSettings; kind: 'queue' | 'async' }>();
    const wantCrons = new Map<string, { fn: EventFunction; index: number }>();
    for (const fn of functions) {
      const queue = asyncQueueName(fn.name);
      if (!(await this.#o.queues.getQueue(queue))) await this.#o.queues.createQueue(queue).catch(ignoreConflict);
      if (fn.format === null) continue;
      wantConsumers.set(`${fn.name}|${queue}`, { fn, settings: asyncSettings(fn.config, queue), kind: 'async' });
      fn.config.triggers.forEach((t, index) => {
        if (t.type === 'queue') wantConsumers.set(`${fn.name}|${t.queue}`, { fn, settings: queueSettings(fn.config, t), kind: 'queue' });
        else wantCrons.set(cronKey(fn.name, t.schedule, t.timezone), { fn, index });
      });
    }
    for (const [key, consumer] of this.#consumers) {
      const want = wantConsumers.get(key);
      if (!want || !sameSettings(want.settings, consumer.settings)) {
        this.#consumers.delete(key);
        await consumer.stop();
      }
    }
    for (const [key, want] of wantConsumers) {
      if (!this.#consumers.has(key)) this.#startConsumer(key, want.fn.name, want.settings, want.kind);
    }
    for (const [key, cron] of this.#crons) {
      if (!wantCrons.has(key)) {
        this.#crons.delete(key);
        cron.stop();
      }
    }
    for (const [key, { fn, index }] of wantCrons) {
      const t = fn.config.triggers[index];
      if (!this.#crons.has(key) && t?.type === 'cron') await this.#startCron(key, fn.name, t);
    }
    // Async queues of deleted functions go with them.
    for (const name of previous.keys()) {
      if (!this.#functions.has(name)) await this.#o.queues.deleteQueue(asyncQueueName(name)).catch(() => false);
    }
  }

  // Consumers and cron triggers are made outside #sync: a closure made there would keep #sync's whole
  // scope alive (every function of that sync), so memory would grow with functions squared.
  #startConsumer(key: string, functionName: string, settings: ConsumerSettings, kind: 'queue' | 'async'): void {
    const consumer = new QueueConsumer({
      store: this.#o.queues,
      settings,
      run: kind === 'queue' ? (batch) => this.#runQueueBatch(functionName, settings.queue, batch) : (batch) => this.#runAsync(functionName, batch),
      onDead: kind === 'async' ? (m, reason, error) => void this.#destination(functionName, m, 'failure', reason, error) : undefined,
      ...(this.#o.log ? { log: this.#o.log } : {}),
      ...(this.#o.pollMs !== undefined ? { pollMs: this.#o.pollMs } : {}),
      ...(this.#o.failpoint ? { failpoint: this.#o.failpoint } : {}),
      ...(this.#o.onHold ? { onHold: this.#o.onHold } : {}),
    });
    this.#consumers.set(key, consumer);
    consumer.start();
  }

  async #startCron(key: string, functionName: string, trigger: CronTriggerConfig): Promise<void> {
    const cron = new CronTrigger({
      key,
      trigger,
      store: this.#o.queues,
      fire: (scheduledTime, idempotencyKey, delayMs) => this.#fireCron(functionName, trigger.schedule, scheduledTime, idempotencyKey, delayMs),
      ...(this.#o.log ? { log: this.#o.log } : {}),
    });
    this.#crons.set(key, cron);
    await cron.start();
  }

  /** Stop cron timers and consumers; batches in flight get `graceMs` to finish. */
  async close(graceMs = Infinity): Promise<void> {
    this.#closed = true;
    await this.#syncing;
    for (const cron of this.#crons.values()) cron.stop();
    this.#crons.clear();
    await Promise.all([...this.#consumers.values()].map((c) => c.stop(graceMs)));
    this.#consumers.clear();
  }

  // ------------------------------------------------------------ running deliveries

  async #runQueueBatch(functionName: string, queue: string, batch: LeasedMessage[]): Promise<Map<string, MessageVerdict>> {
    const executionId = uuidv7();
    const { result } = await this.#o.invoke(functionName, queueBatchRequest(functionName, executionId, queue, batch), 'queue', { id: batch[0]!.id, attempt: batch[0]!.attempt, queue });
    const collected = await collect(result, MAX_RESULT_BYTES * 4);
    const verdicts = new Map<string, MessageVerdict>();
    if (collected.error) {
      for (const m of batch) verdicts.set(m.id, { action: 'retry', delayMs: null, error: `${collected.error.code}: ${collected.error.message}` });
      return verdicts;
    }
    const answer = parseQueueBatchAnswer(collected.status, collected.body);
    for (const m of batch) {
      if (answer.acked.has(m.id)) verdicts.set(m.id, { action: 'ack' });
      else if (answer.retried.has(m.id)) {
        const delay = answer.retried.get(m.id);
        verdicts.set(m.id, { action: 'retry', delayMs: delay === null || delay === undefined ? null : Math.round(delay * 1000), error: 'retried by the function' });
      } else if (answer.handled) verdicts.set(m.id, { action: 'ack' });
      else verdicts.set(m.id, { action: 'retry', delayMs: null, error: `function_error: ${answer.error ?? 'the batch failed'}` });
    }
    return verdicts;
  }

  async #runAsync(functionName: string, batch: LeasedMessage[]): Promise<Map<string, MessageVerdict>> {
    const verdicts = new Map<string, MessageVerdict>();
    const fn = this.#functions.get(functionName);
    for (const m of batch) {
      const kind = (m.attributes[KIND_ATTRIBUTE] ?? 'async') as AsyncKind;
      const trigger: Trigger = kind === 'cron' ? 'cron' : kind === 'cloudevent' ? 'event' : 'api';
      const request = asyncRequest(functionName, fn?.format ?? 'fetch', uuidv7(), m);
      const { result } = await this.#o.invoke(functionName, request, trigger, { id: m.id, attempt: m.attempt, queue: m.queue });
      const c = await collect(result, MAX_RESULT_BYTES);
      const finishedAt = Date.now();
      const resultPart = c.error ? undefined : { status: c.status, contentType: c.contentType, body: c.body.subarray(0, MAX_RESULT_BYTES) };
      const tracked = kind !== 'cron';
      if (!c.error && c.status < 500) {
        const outcome: MessageOutcome = { state: 'succeeded', attempt: m.attempt, finishedAt, ...(resultPart ? { result: resultPart } : {}) };
        verdicts.set(m.id, tracked ? { action: 'ack', outcome } : { action: 'ack' });
        void this.#destination(functionName, m, 'success', 'succeeded', null, c);
      } else {
        const error = c.error ?? { code: 'function_error', message: `the function answered with status ${c.status}` };
        const outcome: MessageOutcome = { state: 'failed', attempt: m.attempt, finishedAt, error, ...(resultPart ? { result: resultPart } : {}) };
        verdicts.set(m.id, { action: 'retry', delayMs: null, error: `${error.code}: ${error.message}`, ...(tracked ? { outcome } : {}) });
      }
    }
    return verdicts;
  }

  #fireCron(functionName: string, schedule: string, scheduledTime: number, idempotencyKey: string, delayMs: number): Promise<unknown> {
    return this.submitAsync(functionName, {
      body: new Uint8Array(0),
      kind: 'cron',
      idempotencyKey,
      delayMs,
      track: false,
      attributes: { cron: schedule, 'scheduled-time': String(scheduledTime) },
    });
  }

  /** Lambda-style destination record to a queue or a function, after success or final failure. */
  async #destination(functionName: string, m: LeasedMessage, condition: 'success' | 'failure', reason: string, error: string | null, c?: Collected): Promise<void> {
    const fn = this.#functions.get(functionName);
    const async: AsyncConfig | undefined = fn?.config.async;
    const target: Destination | null | undefined = condition === 'success' ? async?.onSuccess : async?.onFailure;
    if (!target) return;
    const record = {
      version: '1.0',
      timestamp: new Date().toISOString(),
      requestContext: {
        requestId: m.id,
        functionName,
        condition: condition === 'success' ? 'Success' : reason === 'expired' ? 'EventAgeExceeded' : 'RetriesExhausted',
        approximateInvokeCount: m.attempt,
      },
      requestPayload: decodePayload(m.body, m.contentType),
      responseContext: c ? { statusCode: c.status, ...(c.error ? { functionError: c.error.code } : {}) } : { functionError: error ?? reason },
      responsePayload: c && !c.error ? decodePayload(c.body, c.contentType) : error,
    };
    const body = new TextEncoder().encode(JSON.stringify(record));
    // Idempotent per invocation and condition: a redelivered success does not send a second record.
    const idempotencyKey = `destination:${m.id}:${condition}`;
    try {
      if ('queue' in target) await this.send(target.queue, [{ body, contentType: 'application/json', idempotencyKey }]);
      else await this.submitAsync(target.function, { body, contentType: 'application/json', idempotencyKey });
    } catch (err) {
      this.#o.log?.(`events: destination of ${functionName} failed: ${toContinuumError(err).message}`);
    }
  }

  #consumersOf(queue: string): string[] {
    return [...this.#functions.values()].filter((f) => f.config.triggers.some((t) => t.type === 'queue' && t.queue === queue)).map((f) => f.name);
  }

  #usersOf(queue: string): string[] {
    return [...this.#functions.values()]
      .filter(
        (f) =>
          f.config.triggers.some((t) => t.type === 'queue' && t.queue === queue) ||
          Object.values(f.config.bindings).some((b) => 'queue' in b && b.queue === queue) ||
          [f.config.async.onSuccess, f.config.async.onFailure].some((d) => d !== null && 'queue' in d && d.queue === queue),
      )
      .map((f) => f.name);
  }
}

function assertUserQueue(name: string): string {
  if (typeof name === 'string' && name.startsWith('_')) throw new ContinuumError('bad_name', 'queue names starting with _ are reserved');
  return name;
}

function ignoreConflict(err: unknown): void {
  if (!(err instanceof ContinuumError && err.code === 'conflict')) throw err;
}

function cronKey(functionName: string, schedule: string, timezone: string): string {
  return `cron:${functionName}:${createHash('sha256').update(`${schedule}\0${timezone}`).digest('hex').slice(0, 16)}`;
}

function queueSettings(config: FunctionConfig, t: QueueTrigger): ConsumerSettings {
  return {
    queue: t.queue,
    batchSize: t.batchSize,
    maxBatchWaitMs: t.maxBatchWaitMs,
    maxConcurrency: t.maxConcurrency,
    leaseMs: EVENT_DEFAULTS.queue.leaseMs,
    maxRetries: t.maxRetries,
    retryBaseDelayMs: t.retryBaseDelayMs,
    retryMaxDelayMs: t.retryMaxDelayMs,
    maxAgeMs: t.maxMessageAgeMs,
    aheadMs: 0,
  };
}

function asyncSettings(config: FunctionConfig, queue: string): ConsumerSettings {
  return {
    queue,
    batchSize: 1,
    maxBatchWaitMs: 0,
    maxConcurrency: Math.max(1, Math.min(MAX_ASYNC_CONCURRENCY, config.scale.maxInstances * config.scale.concurrency)),
    leaseMs: EVENT_DEFAULTS.queue.leaseMs,
    maxRetries: config.async.maxRetries,
    retryBaseDelayMs: EVENT_DEFAULTS.async.retryBaseDelayMs,
    retryMaxDelayMs: EVENT_DEFAULTS.async.retryMaxDelayMs,
    maxAgeMs: config.async.maxEventAgeMs,
    // Cron fires are enqueued this far ahead (cron-trigger.ts): take them as soon as they are stored.
    aheadMs: EVENT_DEFAULTS.cron.leadMs,
  };
}

function sameSettings(a: ConsumerSettings, b: ConsumerSettings): boolean {
  return (Object.keys(a) as Array<keyof ConsumerSettings>).every((k) => a[k] === b[k]);
}

interface Collected {
  status: number;
  contentType: string | null;
  body: Uint8Array;
  error: { code: string; message: string } | null;
}

/** Read an invocation's whole answer (bounded) and how it completed. */
async function collect(result: InvokeResult, maxBytes: number): Promise<Collected> {
  if (result.kind === 'error') {
    const e = result.completion.error ?? { code: 'internal', message: 'invocation failed' };
    return { status: 0, contentType: null, body: new Uint8Array(0), error: { code: e.code, message: e.message } };
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for await (const chunk of result.body) {
      if (total < maxBytes) chunks.push(chunk.subarray(0, maxBytes - total));
      total += chunk.byteLength;
    }
  } catch {
    // the completion says why
  }
  const completion = await result.completion.catch(() => null);
  const error = completion === null ? { code: 'internal', message: 'invocation failed' } : completion.error;
  const contentType = result.headers.find(([k]) => k.toLowerCase() === 'content-type')?.[1] ?? null;
  return { status: result.status, contentType, body: Buffer.concat(chunks), error: error ? { code: error.code, message: error.message } : null };
}

function decodePayload(body: Uint8Array, contentType: string | null): unknown {
  const text = new TextDecoder().decode(body);
  if (contentType === null || /json/i.test(contentType)) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

