/**
 * QueueStore on NATS JetStream (ARCHITECTURE §2, §6). The design, its reasons and its limits are in
 * README.md beside this file; in short:
 *
 *   stream  <P>_q_<queue>   subjects <p>.q.<queue>.r (visible) and <p>.q.<queue>.d.<bucket> (delayed)
 *                           work-queue retention; consumer `ready` on .r, consumer `delay` on .d.>
 *   stream  <P>_dl_<queue>  dead letters, one subject per message id: <p>.dl.<queue>.<id>
 *   KV <p>-meta             q.<queue> registry, e.<queue> redelivery epoch, c.<key> cursors
 *   KV <p>-idem (TTL)       <queue>.<sha256(key)> → first message id and content digest (pending until stored)
 *   KV <p>-track (TTL)      s.<id> status, o.<id> outcome (first wins), m.<queue>.<id>.<seq> redelivery markers
 *   stream  <P>_done        <p>.done.<queue>: the stream sequences each settle removed, kept past a server crash
 *   core subject <p>.wake.<queue>  "<sender> <visible> <delayed>" after every store: wakes every process's watchers
 *
 * A stored message is one copy on a subject: a retry publishes a new copy (with the attempt count and errors
 * in its header) and acks the old one, so a message's state always travels with it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { AckPolicy, DeliverPolicy, DiscardPolicy, JetStreamApiError, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type { JetStreamManager, PubAck, StoredMsg } from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { connect, headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { flushOncePerTurn } from './flush.ts';
import { NoRespondersError, parseAckSubject, Replies } from './replies.ts';
import { EVENT_DEFAULTS } from '../../core/defaults.ts';
import { ContinuumError, toContinuumError } from '../../core/errors.ts';
import { uuidv7 } from '../../core/ids.ts';
import type {
  DeadLetter,
  LeasedMessage,
  MessageOutcome,
  MessageState,
  MessageStatus,
  NewMessage,
  QueueDurability,
  QueueRecord,
  QueueStats,
  QueueStore,
  SentMessage,
  Settlement,
} from '../contract.ts';
import { appendError, assertCursorKey, assertCursorValue, assertQueueName, checkReceive, checkSendBatch, contentDigest, QueueWatchers } from '../queue-rules.ts';

export interface NatsQueueStoreOptions {
  /** One URL or a comma-separated list (nats://host:port). */
  servers: string;
  /** Names every stream, subject and bucket of this store, so several platforms (or tests) share a server. */
  prefix?: string;
  /** JetStream replicas of streams and buckets: 1 on one server, 3 in a cluster. */
  replicas?: number;
  dedupeWindowMs?: number;
  outcomeRetentionMs?: number;
}

const READY = 'ready';
/** The visible subject of a queue: `<p>.q.<queue>` + this. */
const READY_SUFFIX = '.r';
/** See #pullFresh: how long after a store of a copy an empty pull is asked again. */
const RECENT_STORE_MS = 1_000;
/** The pauses before those pulls (ms): 22 ms in all, the time the server has taken to tell the consumer. */
const SIGNAL_PAUSES_MS = [2, 4, 8, 8];
const DELAY = 'delay';
/**
 * The consumers' ack wait: the lease event consumers take. A receive with exactly this lease needs no NAK
 * to set it (the NAK per message is receive's largest cost); any other lease is set by a NAK with delay,
 * and this is then only the bound when that NAK was lost with the connection.
 */
const ACK_WAIT_MS = EVENT_DEFAULTS.queue.leaseMs;
/** Delayed copies are filed under 100 ms buckets; nextVisibleInMs reads the earliest bucket. */
const BUCKET_MS = 100;
/** A no-wait pull answers at once; this only guards against a server that never answers. */
const PULL_GUARD_MS = 2_000;
const REQUEST_TIMEOUT_MS = 5_000;
const MOVE_BATCH = 100;
/**
 * How long a #moveDue that found nothing due is trusted. Delayed copies stored later end it (this process's
 * at once, another's when its wake-up arrives), but a pull right after a store can miss the copy (the server
 * acks a publish before it tells the consumer, see #pullFresh): this bounds how late such a copy is moved
 * when the pauses there did not find it either.
 */
const DELAY_RECHECK_MS = 20;
const PURGE_BATCH = 256;
/**
 * The stream dedupe window (Nats-Msg-Id) covers the store's own repeats of one publish (a keyed send's retry,
 * a retry's or a move's copy published again after a crash); the idempotency KV covers the rest.
 */
const STREAM_DUPLICATE_WINDOW_MS = 2 * 60_000;
const LEASE_CACHE_SWEEP = 10_000;
const CREATE_ATTEMPTS = 5;
/** Keys this process made final (see #keyFinalBeforeRemoval); cleared when it grows past this. */
const CONFIRMED_CACHE = 10_000;
/** Acked leftovers removed per queue load (see #inspect); a crash leaves about 100 ms worth. */
const LEFTOVER_SCAN = 10_000;
/**
 * The done log (see #logDone): entries kept (the newest), and how far back from the newest one a store reads
 * when it connects. nats-server 2.9 loses about the last 100 ms of a consumer's acks when it is killed.
 */
const DONE_LOG_MAX = 100_000;
const DONE_LOST_WINDOW_MS = 5_000;
/** Entries read from the done log's tail at most, whatever their age. */
const DONE_TAIL_MAX = 20_000;
const META_HEADER = 'Continuum-Meta';
const DEAD_HEADER = 'Continuum-Dead';
const PREFIX_RE = /^[a-z][a-z0-9]{0,31}$/;
const ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TOKEN_RE = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\.[A-Za-z0-9_-]+$/;

const nanos = (ms: number) => Math.max(0, Math.round(ms)) * 1_000_000;

/** What travels in a copy's header: the message and its history so far. */
interface Meta {
  id: string;
  enq: number;
  ct?: string;
  attrs?: Record<string, string>;
  key?: string;
  track?: true;
  /** Attempts before this copy; a delivery's attempt is this plus the copy's delivery count. */
  att: number;
  errs?: string[];
  /** Not visible before (delayed copies); on a visible copy moved ahead of its time (#moveDue): when it is due. */
  nb?: number;
}

/** An idempotency key's record: the id its message has; `p` while the copy may not be stored yet (see send). */
interface IdemRecord {
  id: string;
  digest: string;
  p?: 1;
}

interface Reservation {
  id: string;
  digest: string;
  /** Made by this send (not found). */
  fresh: boolean;
  /** The copy may not be stored yet: this send stores it (again) under the reserved id. */
  pending: boolean;
  /** Found, for a different message. */
  clash: boolean;
}

interface DeadInfo {
  at: number;
  reason: string;
  attempts: number;
}

/** Tracked message state (KV s.<id>); the outcome record (o.<id>) carries the same facts plus the outcome. */
interface Status {
  q: string;
  enq: number;
  key?: string;
  attrs?: Record<string, string>;
  st: MessageState;
  att: number;
  nb?: number;
  lu?: number;
}

interface StoredOutcome {
  state: MessageOutcome['state'];
  attempt: number;
  finishedAt: number;
  result?: { status: number | null; contentType: string | null; body: string };
  error?: { code: string; message: string };
}

interface Queue {
  name: string;
  createdAt: string;
  stream: string;
  dlq: string;
  subject: string;
  dlSubject: string;
  /** Redelivery epoch last seen (never ahead of the stored one); see #epoch. */
  epoch: number;
  /** The ready consumer's ack wait: a receive with this lease needs no NAK (0 until known: always NAK). */
  ackWaitMs: number;
  /** Counts this process's stores of delayed copies (before and after each), so #moveDue can tell one raced it. */
  delayStores: number;
  /** As far as this process knows, no delayed copy is due before this time, so #moveDue need not ask. */
  delayQuietUntil: number;
  /**
   * Copies (stream sequences) settled before the server's last crash whose acks it may have lost (see
   * #logDone): acked again, never handed out, when they come back; forgotten at `doneUntil`.
   */
  done: Set<number>;
  doneUntil: number;
}

interface Lease {
  queue: string;
  token: string;
  reply: string;
  sseq: number;
  meta: Meta;
  body: Uint8Array;
  attempt: number;
  leaseUntil: number;
}

interface Token {
  sseq: number;
  dseq: number;
  dc: number;
  epoch: number;
}

export async function openNatsQueueStore(options: NatsQueueStoreOptions): Promise<QueueStore> {
  return NatsQueueStore.open(options);
}

type Bucket = 'meta' | 'idem' | 'track';
const TEXT = new TextEncoder();

export class NatsQueueStore implements QueueStore {
  readonly #nc: NatsConnection;
  readonly #r: Replies;
  readonly #jsm: JetStreamManager;
  /** The KV buckets `<prefix>-<bucket>`: queue registry, epochs and cursors; idempotency keys; tracked messages. */
  readonly #kv: Record<Bucket, KV>;
  readonly #p: string;
  readonly #replicas: number;
  readonly #queues = new Map<string, Queue>();
  readonly #leases = new Map<string, Lease>();
  readonly #nonceBase = randomBytes(6).toString('base64url');
  #receives = 0;
  /** Tokens being settled right now: a second settlement with the same token must lose. */
  readonly #settling = new Set<string>();
  readonly #serial = new Map<string, Promise<unknown>>();
  readonly #confirmed = new Set<string>();
  /**
   * Per queue and consumer (`<queue> <ready|delay>`, see #pullFresh): when a copy for it was last stored (by
   * this process, or by another as its wake-up said), and how many of those no pull here has handed out yet.
   */
  readonly #fresh = new Map<string, { at: number; unseen: number }>();
  readonly #watchers = new QueueWatchers();
  /** Done-log entries being gathered in this turn, per queue (see #logDone). */
  readonly #doneEntries = new Map<Queue, { seqs: number[]; written: Promise<void> }>();
  /** The done log's recent entries by queue, read once per connection (see #recentlyDone). */
  #doneTail: Promise<Map<string, { createdAt: string; seqs: number[] }>> | null = null;

  static async open(options: NatsQueueStoreOptions): Promise<NatsQueueStore> {
    const prefix = options.prefix ?? 'continuum';
    if (!PREFIX_RE.test(prefix)) throw new ContinuumError('bad_request', 'NATS prefix must be 1-32 characters [a-z0-9], starting with a letter');
    const replicas = options.replicas ?? 1;
    let nc: NatsConnection;
    try {
      nc = await connect({ servers: options.servers.split(',').map((s) => s.trim()), name: `continuum-queues-${prefix}`, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    } catch (err) {
      throw new ContinuumError('unavailable', 'cannot connect to NATS for the queue store', undefined, { cause: err });
    }
    flushOncePerTurn(nc);
    try {
      const js = jetstream(nc, { timeout: REQUEST_TIMEOUT_MS });
      const jsm = await jetstreamManager(nc, { timeout: REQUEST_TIMEOUT_MS });
      const kvm = new Kvm(js);
      const file = { storage: StorageType.File, replicas, history: 1 };
      const [, meta, idem, track] = await Promise.all([
        retryOverlap(() =>
          jsm.streams.add({
            name: `${prefix}_done`,
            subjects: [`${prefix}.done.*`],
            retention: RetentionPolicy.Limits,
            storage: StorageType.File,
            num_replicas: replicas,
            max_msgs: DONE_LOG_MAX,
            discard: DiscardPolicy.Old,
            allow_direct: true,
          }),
        ),
        createBucket(kvm, `${prefix}-meta`, file),
        createBucket(kvm, `${prefix}-idem`, { ...file, ttl: options.dedupeWindowMs ?? EVENT_DEFAULTS.queue.dedupeWindowMs }),
        createBucket(kvm, `${prefix}-track`, { ...file, ttl: options.outcomeRetentionMs ?? EVENT_DEFAULTS.queue.outcomeRetentionMs }),
      ]);
      return new NatsQueueStore(nc, jsm, { meta, idem, track }, prefix, replicas);
    } catch (err) {
      await nc.close();
      throw mapError(err);
    }
  }

  private constructor(nc: NatsConnection, jsm: JetStreamManager, kv: Record<Bucket, KV>, prefix: string, replicas: number) {
    this.#nc = nc;
    this.#r = new Replies(nc, REQUEST_TIMEOUT_MS);
    this.#jsm = jsm;
    this.#kv = kv;
    this.#p = prefix;
    this.#replicas = replicas;
    nc.subscribe(`${prefix}.wake.*`, {
      callback: (err, m) => {
        if (!err) this.#heard(m.subject.slice(`${prefix}.wake.`.length), m.string());
      },
    });
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type !== 'reconnect') continue;
        // The server may have restarted: load queues afresh (see #inspect). Wake-ups sent while this process
        // was away are lost: every watcher looks again.
        const names = [...this.#queues.keys()];
        this.#queues.clear();
        this.#doneTail = null;
        for (const name of names) this.#watchers.tell(name);
      }
    })().catch(() => {});
  }

  watch(listener: (queue: string) => void): () => void {
    return this.#watchers.add(listener);
  }

  /**
   * Copies of `q` were stored (`visible` visible, `delayed` delayed): tell this process's watchers, and every
   * other process through the queue's wake-up subject (core NATS, at most once: a lost one costs a safety-net poll).
   */
  #stored(q: Queue, visible: number, delayed: number): void {
    if (visible + delayed === 0) return;
    this.#watchers.tell(q.name);
    this.#nc.publish(`${this.#p}.wake.${q.name}`, `${this.#nonceBase} ${visible} ${delayed}`);
  }

  /** Another process stored copies of `queue` (its own wake-ups come back too, and are ignored). */
  #heard(queue: string, text: string): void {
    const [from, visible, delayed] = text.split(' ');
    if (from === this.#nonceBase) return;
    const q = this.#queues.get(queue);
    if (q && Number(delayed) > 0) {
      q.delayStores++;
      q.delayQuietUntil = 0;
    }
    // Like this process's own stores, these copies may reach the server's consumers after a pull asks (see #pullFresh).
    this.#noteFresh(queue, READY, Number(visible) || 0);
    this.#noteFresh(queue, DELAY, Number(delayed) || 0);
    this.#watchers.tell(queue);
  }

  #noteFresh(queue: string, consumer: string, copies: number): void {
    if (copies <= 0) return;
    const key = `${queue} ${consumer}`;
    const stored = this.#fresh.get(key);
    if (stored) {
      stored.at = Date.now();
      stored.unseen += copies;
    } else this.#fresh.set(key, { at: Date.now(), unseen: copies });
  }

  // ------------------------------------------------------------------ queues

  #names(name: string): Omit<Queue, 'createdAt' | 'epoch' | 'ackWaitMs' | 'delayStores' | 'delayQuietUntil' | 'done' | 'doneUntil'> {
    return {
      name,
      stream: `${this.#p}_q_${name}`,
      dlq: `${this.#p}_dl_${name}`,
      subject: `${this.#p}.q.${name}`,
      dlSubject: `${this.#p}.dl.${name}`,
    };
  }

  async createQueue(name: string): Promise<QueueRecord> {
    assertQueueName(name);
    return guard(async () => {
      const createdAt = new Date().toISOString();
      try {
        await this.#kv.meta.create(`q.${name}`, JSON.stringify({ createdAt }));
      } catch (err) {
        if (isLive(await this.#kv.meta.get(`q.${name}`))) throw new ContinuumError('conflict', `queue ${name} already exists`);
        throw err;
      }
      const n = this.#names(name);
      try {
        // Leftovers of an earlier queue of this name that a crash kept from being removed.
        await this.#removeData(name);
        const stream = { retention: RetentionPolicy.Workqueue, storage: StorageType.File, num_replicas: this.#replicas, duplicate_window: nanos(STREAM_DUPLICATE_WINDOW_MS), allow_direct: true };
        await Promise.all([
          this.#jsm.streams.add({ name: n.stream, subjects: [`${n.subject}${READY_SUFFIX}`, `${n.subject}.d.*`], ...stream }),
          this.#jsm.streams.add({ name: n.dlq, subjects: [`${n.dlSubject}.*`], ...stream, retention: RetentionPolicy.Limits }),
        ]);
        const consumer = { ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ack_wait: nanos(ACK_WAIT_MS), max_ack_pending: -1, max_deliver: -1 };
        await Promise.all([
          this.#jsm.consumers.add(n.stream, { durable_name: READY, filter_subject: `${n.subject}${READY_SUFFIX}`, ...consumer }),
          this.#jsm.consumers.add(n.stream, { durable_name: DELAY, filter_subject: `${n.subject}.d.*`, ...consumer }),
        ]);
        // A fresh epoch newer than any token of an earlier queue of this name.
        const epoch = await this.#kv.meta.put(`e.${name}`, '');
        this.#queues.set(name, { ...n, createdAt, epoch, ackWaitMs: ACK_WAIT_MS, delayStores: 0, delayQuietUntil: 0, done: new Set(), doneUntil: 0 });
      } catch (err) {
        await this.#kv.meta.delete(`q.${name}`).catch(() => {});
        throw err;
      }
      return { name, createdAt };
    });
  }

  async getQueue(name: string): Promise<QueueRecord | null> {
    assertQueueName(name);
    return guard(async () => {
      const e = await this.#kv.meta.get(`q.${name}`);
      if (!isLive(e)) return null;
      return { name, createdAt: (e.json() as { createdAt: string }).createdAt };
    });
  }

  async listQueues(): Promise<QueueRecord[]> {
    return guard(async () => {
      const names: string[] = [];
      for await (const k of await this.#kv.meta.keys('q.*')) names.push(k.slice(2));
      const records = await Promise.all(names.map((n) => this.getQueue(n)));
      return records.filter((r): r is QueueRecord => r !== null).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    });
  }

  async deleteQueue(name: string): Promise<boolean> {
    assertQueueName(name);
    return guard(async () => {
      if (!isLive(await this.#kv.meta.get(`q.${name}`))) return false;
      // The registry entry goes first: from then on the queue is gone for everyone, and a crash during the
      // cleanup leaves only data that the next createQueue of this name removes.
      await this.#kv.meta.delete(`q.${name}`);
      this.#forget(name);
      await this.#removeData(name);
      return true;
    });
  }

  async #removeData(name: string): Promise<void> {
    const n = this.#names(name);
    const deleteStream = (s: string) => this.#jsm.streams.delete(s).catch((err: unknown) => {
      if (!isStreamNotFound(err)) throw err;
    });
    await Promise.all([
      deleteStream(n.stream),
      deleteStream(n.dlq),
      this.#jsm.streams.purge(`KV_${this.#p}-idem`, { filter: `$KV.${this.#p}-idem.${name}.>` }),
      this.#jsm.streams.purge(`KV_${this.#p}-track`, { filter: `$KV.${this.#p}-track.m.${name}.>` }),
      this.#jsm.streams.purge(`${this.#p}_done`, { filter: `${this.#p}.done.${name}` }),
    ]);
  }

  #forget(name: string): void {
    this.#queues.delete(name);
    for (const [token, lease] of this.#leases) if (lease.queue === name) this.#leases.delete(token);
  }

  /** The queue, from the registry (cached); `not_found` when it does not exist. */
  async #queue(name: string): Promise<Queue> {
    assertQueueName(name);
    const cached = this.#queues.get(name);
    if (cached) return cached;
    const e = await this.#kv.meta.get(`q.${name}`);
    if (!isLive(e)) throw notFound(name);
    const epoch = await this.#epoch(name);
    const q: Queue = { ...this.#names(name), createdAt: (e.json() as { createdAt: string }).createdAt, epoch, ackWaitMs: 0, delayStores: 0, delayQuietUntil: 0, done: new Set(), doneUntil: 0 };
    await this.#inspect(q).catch(() => {});
    this.#queues.set(name, q);
    return q;
  }

  /**
   * On a queue's first use (also after a reconnect, which is how a server restart shows): learn the ready
   * consumer's ack wait, and drop acked leftovers. nats-server 2.9 writes a work-queue stream's deletions
   * down lazily and its consumers' acks within ~100 ms: after a crash, copies that were acked before it are
   * back in the stream, below their consumer's ack floor, and would never be delivered nor removed.
   */
  async #inspect(q: Queue): Promise<void> {
    const [si, ready, delay, tail] = await Promise.all([
      this.#jsm.streams.info(q.stream),
      this.#jsm.consumers.info(q.stream, READY),
      this.#jsm.consumers.info(q.stream, DELAY),
      this.#recentlyDone(),
    ]);
    q.ackWaitMs = Math.round((ready.config.ack_wait ?? 0) / 1e6);
    const done = tail.get(q.name);
    if (done && done.createdAt === q.createdAt) {
      q.done = new Set(done.seqs);
      // A copy whose ack was lost comes back at once (the consumer forgot delivering it) or when its ack wait ends.
      q.doneUntil = Date.now() + 2 * Math.max(q.ackWaitMs, ACK_WAIT_MS);
    }
    for (const [filter, floor] of [[`${q.subject}${READY_SUFFIX}`, ready.ack_floor.stream_seq], [`${q.subject}.d.*`, delay.ack_floor.stream_seq]] as const) {
      const stale: number[] = [];
      for (let seq = si.state.first_seq; seq <= floor && stale.length < LEFTOVER_SCAN; ) {
        const m = await this.#jsm.direct.getMessage(q.stream, { next_by_subj: filter, seq });
        if (!m || m.seq > floor) break;
        stale.push(m.seq);
        seq = m.seq + 1;
      }
      await Promise.all(stale.map((seq) => this.#jsm.streams.deleteMessage(q.stream, seq, false).catch(() => false)));
    }
  }

  /**
   * The done log's entries of the last DONE_LOST_WINDOW_MS before its newest one, by queue: read backwards
   * from the end, once per connection (a store that opens after a server crash, or reconnects across one).
   */
  #recentlyDone(): Promise<Map<string, { createdAt: string; seqs: number[] }>> {
    this.#doneTail ??= (async () => {
      const stream = `${this.#p}_done`;
      const out = new Map<string, { createdAt: string; seqs: number[] }>();
      const si = await this.#jsm.streams.info(stream);
      let newest: number | null = null;
      for (let seq = si.state.last_seq, read = 0; seq >= si.state.first_seq && seq > 0 && read < DONE_TAIL_MAX; seq--, read++) {
        const m = await this.#jsm.direct.getMessage(stream, { seq });
        if (!m) continue;
        const at = m.time.getTime();
        newest ??= at;
        if (at < newest - DONE_LOST_WINDOW_MS) break;
        const [createdAt = '', list = ''] = m.string().split(' ');
        const queue = m.subject.slice(`${this.#p}.done.`.length);
        const entry = out.get(queue);
        // Newest first: an entry of an earlier queue of the same name is not this queue's.
        if (entry && entry.createdAt !== createdAt) continue;
        const seqs = list.split(',').map(Number).filter((n) => Number.isSafeInteger(n) && n > 0);
        if (entry) entry.seqs.push(...seqs);
        else out.set(queue, { createdAt, seqs });
      }
      return out;
    })().catch(() => {
      // Without it a lost ack means a second delivery, as before (at least once still holds); asked again on the next connection.
      this.#doneTail = null;
      return new Map();
    });
    return this.#doneTail;
  }

  /**
   * Record that these copies of `q` were settled, before their acks can be lost: nats-server 2.9 writes a
   * consumer's acks (and a work queue's removals) to disk lazily, so a crash loses the last ~100 ms of them,
   * and with them the consumer's record of having delivered those copies: they come back as first
   * deliveries, and ran twice. The log is a stream write (on disk before its acknowledgement), so a settle
   * that resolved has either its acks or this entry; stores read its tail when they connect (#inspect).
   */
  #logDone(q: Queue, seqs: number[]): Promise<void> {
    if (seqs.length === 0) return Promise.resolve();
    // The settles of one event-loop turn share one entry (concurrent batches of a queue often end together).
    let entry = this.#doneEntries.get(q);
    if (!entry) {
      const e = { seqs: [] as number[], written: Promise.resolve() };
      e.written = nextTurn().then(async () => {
        this.#doneEntries.delete(q);
        await this.#r.publish(`${this.#p}.done.${q.name}`, TEXT.encode(`${q.createdAt} ${e.seqs.join(',')}`));
      });
      this.#doneEntries.set(q, e);
      entry = e;
    }
    entry.seqs.push(...seqs);
    return entry.written;
  }

  /** A copy settled before the server's last crash, come back: acked again, not handed out. */
  #settledBefore(q: Queue, sseq: number): boolean {
    if (q.done.size === 0) return false;
    if (Date.now() > q.doneUntil) {
      q.done.clear();
      return false;
    }
    return q.done.has(sseq);
  }

  /** Run queue-scoped work with the registry check and error mapping; a vanished stream means a deleted queue. */
  async #with<T>(name: string, fn: (q: Queue) => Promise<T>): Promise<T> {
    return guard(async () => {
      const q = await this.#queue(name);
      try {
        return await fn(q);
      } catch (err) {
        if (!(isStreamNotFound(err) || isNoResponders(err))) throw err;
        // Another process may have deleted the queue; otherwise the backend is failing.
        this.#forget(name);
        if (!isLive(await this.#kv.meta.get(`q.${name}`))) throw notFound(name);
        throw new ContinuumError('unavailable', `queue ${name}: the NATS backend is not serving it`, undefined, { cause: err });
      }
    });
  }

  /** One receive or purge per queue at a time in this process: concurrent no-wait pulls would starve each other. */
  #serialize<T>(q: Queue, fn: () => Promise<T>): Promise<T> {
    const prev = this.#serial.get(q.name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    this.#serial.set(q.name, tail);
    void tail.then(() => {
      if (this.#serial.get(q.name) === tail) this.#serial.delete(q.name);
    });
    return run;
  }

  /**
   * The queue's redelivery epoch: the KV revision of e.<queue>, bumped by every receive that hands out a
   * message a second time. A token remembers the epoch seen before its pull; while the epoch is unchanged no
   * message of the queue was redelivered, so the token is still current without a per-message lookup.
   */
  async #epoch(name: string): Promise<number> {
    // The KV entry's revision, by a direct get on the bucket's stream: once per settle, and the KV client's
    // get builds error objects with stack traces on every call.
    const bucket = `${this.#p}-meta`;
    const reply = await this.#r.request(`$JS.API.DIRECT.GET.KV_${bucket}`, JSON.stringify({ last_by_subj: `$KV.${bucket}.e.${name}` }));
    const code = reply.headers?.code ?? 0;
    if (code !== 0 && code !== 404) throw new ContinuumError('unavailable', `queue ${name}: reading its redelivery epoch failed (${code} ${reply.headers?.description ?? ''})`);
    const rev = code === 404 ? 0 : Number(reply.headers?.get('Nats-Sequence') ?? 0);
    const q = this.#queues.get(name);
    if (q && rev > q.epoch) q.epoch = rev;
    return rev;
  }

  /**
   * Counts come from the stream (copies stored per subject) bounded by the ready consumer (handed out or
   * not): after a server crash either may hold entries the other has dropped (see #inspect).
   */
  async stats(name: string): Promise<QueueStats> {
    return this.#with(name, async (q) => {
      const [stored, ready, dl] = await Promise.all([this.#subjectCounts(q), this.#jsm.consumers.info(q.stream, READY), this.#jsm.streams.info(q.dlq)]);
      let oldestAgeMs = 0;
      if (stored.total > 0) {
        const first = await this.#jsm.direct.getMessage(q.stream, { seq: stored.firstSeq });
        const enq = (first && readMeta(first.header)?.enq) ?? Date.now();
        oldestAgeMs = Math.max(1, Date.now() - enq);
      }
      const pending = Math.min(ready.num_pending, stored.visible);
      const inFlight = Math.min(ready.num_ack_pending, stored.visible - pending);
      return {
        depth: pending + inFlight + stored.delayed,
        ready: pending,
        delayed: stored.delayed,
        inFlight,
        oldestAgeMs,
        deadLetters: dl.state.messages,
      };
    });
  }

  /** Copies in the queue's stream: visible ones, delayed ones per 100 ms bucket. */
  async #subjectCounts(q: Queue): Promise<{ total: number; firstSeq: number; visible: number; delayed: number; firstBucket: number | null }> {
    const si = await this.#jsm.streams.info(q.stream, { subjects_filter: `${q.subject}.>` });
    let visible = 0;
    let delayed = 0;
    let firstBucket: number | null = null;
    for (const [subject, count] of Object.entries(si.state.subjects ?? {})) {
      const tail = subject.slice(q.subject.length + 1);
      if (tail === 'r') {
        visible += count;
      } else if (tail.startsWith('d.')) {
        delayed += count;
        const bucket = Number(tail.slice(2));
        if (Number.isSafeInteger(bucket) && (firstBucket === null || bucket < firstBucket)) firstBucket = bucket;
      }
    }
    return { total: si.state.messages, firstSeq: si.state.first_seq, visible, delayed, firstBucket };
  }

  // ------------------------------------------------------------------ send

  /**
   * Keyed sends reserve their key before the copy is stored: a record `{ id, digest, p: 1 }` (pending)
   * names the id the message gets, and becomes final (no `p`) once the copy is stored — by the sender after
   * its PubAck, or by whoever removes the copy from the stream first (see #keyFinalBeforeRemoval). A retry that finds
   * a pending record stores the message again under the same id and Nats-Msg-Id: the stream drops it while
   * the first copy is there (or in its dedupe window); if the first copy was never stored, this one is it.
   * Recording the key only after the PubAck (as before) left a hole: a crash between the two, with the
   * copy consumed meanwhile and the server restarted (its dedupe window is rebuilt from stored copies
   * only), let the retry store and run the message a second time.
   */
  async send(queue: string, messages: NewMessage[]): Promise<SentMessage[]> {
    assertQueueName(queue);
    checkSendBatch(messages);
    return this.#with(queue, async (q) => {
      const now = Date.now();
      const keys = messages.map((m) => (m.idempotencyKey === undefined ? null : this.#idemKey(q, m.idempotencyKey)));
      const digests = messages.map((m, i) => (keys[i] === null ? null : contentDigest(m)));
      // One reservation per distinct key; a key repeated in the batch must carry the same message.
      const reserved = new Map<string, Reservation>();
      for (let i = 0; i < messages.length; i++) {
        const k = keys[i];
        if (k === null || k === undefined) continue;
        const earlier = reserved.get(k);
        if (earlier && earlier.digest !== digests[i]) throw new ContinuumError('conflict', 'idempotency key used twice in one batch with different messages');
        if (!earlier) reserved.set(k, { id: uuidv7(now), digest: digests[i]!, fresh: true, pending: true, clash: false });
      }
      await Promise.all([...reserved].map(([k, r]) => this.#reserve(k, r)));
      const withdraw = () => Promise.all([...reserved].filter(([, r]) => r.fresh).map(([k]) => this.#kv.idem.delete(k).catch(() => {})));
      // Refuse the whole batch before storing anything; reservations this call made are withdrawn.
      const clash = [...reserved.values()].find((r) => r.clash);
      if (clash) {
        await withdraw();
        throw new ContinuumError('conflict', `idempotency key reused with a different message (first id ${clash.id})`);
      }
      type Plan = { dup: string } | { meta: Meta; body: Uint8Array; key: string | null; reservation: { fresh: boolean } | null; track: boolean };
      const planned = new Set<string>();
      const plans: Plan[] = messages.map((m, i) => {
        const key = keys[i] ?? null;
        const r = key === null ? undefined : reserved.get(key);
        // Final records, and a key's later messages in this batch, answer with the first id.
        if (r && (!r.pending || planned.has(key!))) return { dup: r.id };
        if (key !== null) planned.add(key);
        const meta: Meta = { id: r?.id ?? uuidv7(now), enq: now, att: 0 };
        if (m.contentType !== undefined) meta.ct = m.contentType;
        if (m.attributes && Object.keys(m.attributes).length > 0) meta.attrs = { ...m.attributes };
        if (m.idempotencyKey !== undefined) meta.key = m.idempotencyKey;
        if (m.track) meta.track = true;
        const delay = m.delayMs ?? 0;
        if (delay > 0) meta.nb = now + delay;
        return { meta, body: m.body, key, reservation: r ?? null, track: m.track === true };
      });
      let acks: Array<PubAck | null>;
      try {
        acks = await Promise.all(
          plans.map((p) => ('dup' in p ? null : this.#storeCopy(q, p.meta, p.body, p.key === null ? null : `k.${p.key}`))),
        );
      } catch (err) {
        await withdraw();
        throw err;
      }
      const out: SentMessage[] = [];
      const after: Promise<unknown>[] = [];
      const stored = { visible: 0, delayed: 0 };
      for (let i = 0; i < plans.length; i++) {
        const p = plans[i]!;
        if ('dup' in p) {
          out.push({ id: p.dup, duplicate: true });
          continue;
        }
        const ack = acks[i]!;
        if (!ack.duplicate) stored[p.meta.nb === undefined ? 'visible' : 'delayed']++;
        // The stream already had the key's copy (or its Nats-Msg-Id): a retry of a send that crashed before
        // its reservation was final, or a concurrent send of the key. Either way the message is stored once.
        const id = ack.duplicate && p.reservation?.fresh ? await this.#storedId(q, ack.seq, p.meta.id) : p.meta.id;
        if (p.key !== null) after.push(this.#confirmKey(p.key, id, digests[i]!));
        if (p.track && !ack.duplicate) after.push(this.#putStatus(q, p.meta, p.meta.nb !== undefined ? 'delayed' : 'ready', 0));
        out.push({ id, duplicate: ack.duplicate === true });
      }
      this.#stored(q, stored.visible, stored.delayed);
      await Promise.all(after);
      return out;
    });
  }

  /** Reserve `k` for `r`, or learn the reservation already there (then `r` takes its id). */
  async #reserve(k: string, r: Reservation): Promise<void> {
    try {
      await this.#kvCreate('idem', k, JSON.stringify({ id: r.id, digest: r.digest, p: 1 } satisfies IdemRecord));
    } catch (err) {
      const e = await this.#kv.idem.get(k);
      if (!isLive(e)) throw err;
      const rec = e.json<IdemRecord>();
      r.id = rec.id;
      r.fresh = false;
      r.pending = rec.p === 1;
      r.clash = rec.digest !== r.digest;
    }
  }

  /** The id of the stored copy at `seq` (the first copy of a key), or `fallback` when it is gone. */
  async #storedId(q: Queue, seq: number, fallback: string): Promise<string> {
    const stored = await this.#jsm.direct.getMessage(q.stream, { seq });
    return (stored && readMeta(stored.header)?.id) ?? fallback;
  }

  #idemKey(q: Queue, key: string): string {
    return `${q.name}.${sha256(key)}`;
  }

  /** Make a key's reservation final: its copy is stored (see send). */
  async #confirmKey(k: string, id: string, digest: string): Promise<void> {
    await this.#kvPut('idem', k, JSON.stringify({ id, digest } satisfies IdemRecord));
    this.#confirmed.add(k);
    if (this.#confirmed.size > CONFIRMED_CACHE) this.#confirmed.clear();
  }

  /**
   * Before a copy of a keyed message leaves the stream (acked, retried, dead-lettered, moved), its key's
   * reservation must be final: once the copy is gone, a retry of a send that crashed could not tell it was
   * ever stored. Keys this process confirmed need no write.
   */
  async #keyFinalBeforeRemoval(q: Queue, meta: Meta, body: Uint8Array): Promise<void> {
    if (meta.key === undefined) return;
    const k = this.#idemKey(q, meta.key);
    if (this.#confirmed.has(k)) return;
    const digest = contentDigest({ body, ...(meta.ct !== undefined ? { contentType: meta.ct } : {}), ...(meta.attrs ? { attributes: meta.attrs } : {}) });
    await this.#confirmKey(k, meta.id, digest);
  }

  /** Store a copy of one of `q`'s messages: visible, or delayed until `meta.nb` (under its time's bucket). */
  async #storeCopy(q: Queue, meta: Meta, body: Uint8Array, msgID: string | null): Promise<PubAck> {
    if (meta.nb === undefined) return this.#publishReady(q, body, msgID, metaHeaders(meta));
    const delayed = () => {
      q.delayStores++;
      q.delayQuietUntil = 0;
    };
    delayed();
    try {
      const ack = await this.#publish(`${q.subject}.d.${Math.floor(meta.nb / BUCKET_MS)}`, body, msgID, metaHeaders(meta));
      this.#noteFresh(q.name, DELAY, 1);
      return ack;
    } finally {
      delayed();
    }
  }

  // ------------------------------------------------------------------ receive

  async receive(queue: string, max: number, leaseMs: number, aheadMs = 0): Promise<LeasedMessage[]> {
    checkReceive(max, leaseMs, aheadMs);
    return this.#with(queue, (q) =>
      this.#serialize(q, async () => {
        // The epoch before the pull: a token may only claim "not redelivered since" from a point before its delivery.
        const epoch = q.epoch;
        const [moved, first] = await Promise.all([this.#moveDue(q, aheadMs), this.#pullReady(q, max)]);
        const msgs = moved > 0 && first.length < max ? first.concat(await this.#pullReady(q, max - first.length)) : first;
        const now = Date.now();
        // Told apart by their delivery sequence already; the random part keeps tokens of another server or
        // another queue of the same name from ever matching (random once per store, counted per receive).
        const nonce = `${this.#nonceBase}${(++this.#receives).toString(36)}`;
        const leased: LeasedMessage[] = [];
        const writes: Promise<unknown>[] = [];
        let redelivered = false;
        for (const m of msgs) {
          const info = parseAckSubject(m.reply);
          const meta = readMeta(m.headers);
          if (!info || !meta) {
            // Not a message this store wrote; never hand it out.
            this.#nc.publish(m.reply!, '+TERM');
            continue;
          }
          // A copy moved ahead of its time (see #moveDue) keeps its due time; the lease runs from then.
          const dueAt = Math.max(now, meta.nb ?? now);
          const leaseUntil = dueAt + leaseMs;
          if (leaseUntil - now !== q.ackWaitMs) this.#nc.publish(m.reply!, nakDelay(leaseUntil - now));
          const token = `${info.sseq}.${info.dseq}.${info.dc}.${epoch}.${nonce}`;
          if (info.dc > 1) {
            redelivered = true;
            writes.push(this.#kvPut('track', `m.${q.name}.${meta.id}.${info.sseq}`, token));
          }
          const attempt = meta.att + info.dc;
          const lease: Lease = { queue: q.name, token, reply: m.reply!, sseq: info.sseq, meta, body: bytesOf(m.data), attempt, leaseUntil };
          this.#leases.set(token, lease);
          if (meta.track) writes.push(this.#putStatus(q, meta, 'in_flight', attempt, { lu: leaseUntil }));
          leased.push(toLeased(q.name, lease, dueAt));
        }
        await Promise.all(writes);
        if (redelivered) {
          // After the markers: a settle that sees the new epoch finds the marker of every redelivery.
          const rev = await this.#kvPut('meta', `e.${q.name}`, '');
          if (rev > q.epoch) q.epoch = rev;
        }
        if (this.#leases.size > LEASE_CACHE_SWEEP) this.#sweepLeases(now);
        return leased;
      }),
    );
  }

  /** Leases nobody settled (their holder went away); settling them later still works, from the stream. */
  #sweepLeases(now: number): void {
    for (const [token, lease] of this.#leases) if (lease.leaseUntil < now - 60_000) this.#leases.delete(token);
  }

  /**
   * Move delayed copies whose time has come (or comes within `aheadMs`) to the visible subject; NAK the
   * others until then. A copy moved ahead of its time keeps it (`nb`): whoever receives it starts then.
   */
  async #moveDue(q: Queue, aheadMs: number): Promise<number> {
    if (Date.now() < q.delayQuietUntil) return 0;
    const stores = q.delayStores;
    const msgs = await this.#pullFresh(q, DELAY, MOVE_BATCH);
    const now = Date.now();
    // A pull that was not full handed out every delayed copy that could be: the next comes when one of
    // those NAKed below comes back, or when some process stores one (this one: see #storeCopy; another: its
    // wake-up, see #heard), and the recheck bounds the rest (see DELAY_RECHECK_MS).
    let quietUntil = now + DELAY_RECHECK_MS;
    const horizon = now + aheadMs;
    const due: Array<{ m: Msg; meta: Meta; seq: number }> = [];
    for (const m of msgs) {
      const meta = readMeta(m.headers);
      const info = parseAckSubject(m.reply);
      if (!meta || !info) {
        this.#nc.publish(m.reply!, '+TERM');
      } else if (this.#settledBefore(q, info.sseq)) {
        this.#nc.publish(m.reply!, '+ACK');
      } else if (meta.nb !== undefined && meta.nb > horizon) {
        this.#nc.publish(m.reply!, nakDelay(meta.nb - horizon + 1));
        quietUntil = Math.min(quietUntil, now + meta.nb - horizon + 1);
      } else {
        due.push({ m, meta, seq: info.sseq });
      }
    }
    if (msgs.length < MOVE_BATCH && q.delayStores === stores) q.delayQuietUntil = quietUntil;
    await Promise.all(
      due.map(async ({ m, meta, seq }) => {
        const { nb, ...rest } = meta;
        const visible: Meta = nb !== undefined && nb > now ? meta : rest;
        await this.#publishReady(q, m.data, `${meta.id}.m${seq}`, metaHeaders(visible));
        await this.#keyFinalBeforeRemoval(q, meta, m.data);
      }),
    );
    await Promise.all([this.#logDone(q, due.map((d) => d.seq)), ...due.map(({ m }) => this.#ackSync(m.reply!))]);
    return due.length;
  }

  /**
   * Copies from `ready`, up to `max`, less those settled before a server crash that lost their acks (acked
   * again here; see #logDone). When every copy a pull handed out was such a one, it pulls again: after a crash
   * they come first, and an empty answer would send the consumer to sleep with a backlog waiting.
   */
  async #pullReady(q: Queue, max: number): Promise<Msg[]> {
    for (;;) {
      const msgs = await this.#pullFresh(q, READY, max);
      const kept = msgs.filter((m) => {
        const info = parseAckSubject(m.reply);
        if (!info || !this.#settledBefore(q, info.sseq)) return true;
        this.#nc.publish(m.reply!, '+ACK');
        return false;
      });
      if (kept.length > 0 || msgs.length === 0) return kept;
    }
  }

  /** A no-wait pull: whatever is available now, up to `batch`, without waiting for more. */
  #pull(stream: string, consumer: string, batch: number): Promise<Msg[]> {
    return this.#r.pull(stream, consumer, batch, PULL_GUARD_MS);
  }

  /**
   * Copies from one of `q`'s consumers (ready or delay), up to `max`. nats-server acknowledges a publish
   * before it tells the consumers (a separate goroutine does), so a no-wait pull right after a publish can
   * answer "no messages" although the copy is stored — seen about once in 700 receives on a loaded host,
   * and often on `delay` when a hundred cron fires are stored at once. When copies for the consumer were
   * stored lately (here, or by another process: its wake-up says) that no pull here has handed out yet, and
   * the pull found nothing, a few more no-wait pulls follow after short pauses. (This was one pull with
   * `expires` 20 ms, which nats-server 2.9 sometimes left unanswered: with 100 cron queues, groups of
   * receives hung until their 2 s guard and the fires were that late. Why the server did not answer is not known.)
   */
  async #pullFresh(q: Queue, consumer: string, max: number): Promise<Msg[]> {
    const key = `${q.name} ${consumer}`;
    let msgs = await this.#pull(q.stream, consumer, max);
    for (const pause of SIGNAL_PAUSES_MS) {
      const stored = this.#fresh.get(key);
      if (msgs.length > 0 || !stored || stored.unseen === 0 || Date.now() - stored.at > RECENT_STORE_MS) break;
      await sleep(pause);
      msgs = await this.#pull(q.stream, consumer, max);
    }
    const stored = this.#fresh.get(key);
    if (stored) stored.unseen = Math.max(0, stored.unseen - msgs.length);
    return msgs;
  }

  /** Store a visible copy of one of `q`'s messages. */
  async #publishReady(q: Queue, body: Uint8Array, msgID: string | null, h: MsgHdrs): Promise<PubAck> {
    const ack = await this.#publish(`${q.subject}${READY_SUFFIX}`, body, msgID, h);
    this.#noteFresh(q.name, READY, 1);
    return ack;
  }

  /**
   * Store a copy; resolves once the stream has it. `msgID` makes a repeated publish (a retry) a no-op. A
   * fresh unkeyed send passes null: its id is new in this call, so no later publish can repeat it, and
   * the stream's dedupe bookkeeping per message was ≈ 10 % of nats-server's work in a queue drain.
   */
  async #publish(subject: string, body: Uint8Array, msgID: string | null, h: MsgHdrs): Promise<PubAck> {
    if (msgID !== null) h.set('Nats-Msg-Id', msgID);
    return this.#r.publish(subject, body, h);
  }

  // ------------------------------------------------------------------ fencing

  /**
   * Is `token` the current delivery of message `id` on this queue? The answer is the lease (from this
   * process's memory, or rebuilt from the stream) or null. A fast path needs no lookup: the token was taken
   * in this process and the queue's epoch has not moved since. Otherwise: the copy must still be in the
   * stream under that id, and a redelivery marker for it, if any, must name this token.
   */
  async #check(q: Queue, id: string, token: string, epoch: number): Promise<Lease | null> {
    const t = parseToken(token);
    if (!t || typeof id !== 'string') return null;
    const cached = this.#leases.get(token);
    if (cached && (cached.queue !== q.name || cached.meta.id !== id)) return null;
    if (cached && t.epoch === epoch) return cached;
    if (!ID_RE.test(id)) return null;
    const [marker, stored] = await Promise.all([
      t.epoch === epoch ? null : this.#kv.track.get(`m.${q.name}.${id}.${t.sseq}`),
      this.#jsm.direct.getMessage(q.stream, { seq: t.sseq }),
    ]);
    if (t.epoch !== epoch) {
      const current = isLive(marker) ? marker.string() : null;
      if (current !== null ? current !== token : t.dc > 1) return null;
    }
    if (!stored || stored.subject !== `${q.subject}${READY_SUFFIX}`) return null;
    const meta = readMeta(stored.header);
    if (!meta || meta.id !== id) return null;
    if (cached) return cached;
    return {
      queue: q.name,
      token,
      reply: `$JS.ACK.${q.stream}.${READY}.${t.dc}.${t.sseq}.${t.dseq}.0.0`,
      sseq: t.sseq,
      meta,
      body: bytesOf(stored.data),
      attempt: meta.att + t.dc,
      leaseUntil: 0,
    };
  }

  async extend(queue: string, id: string, leaseToken: string, leaseMs: number): Promise<boolean> {
    if (!Number.isInteger(leaseMs) || leaseMs < 1) throw new ContinuumError('bad_request', 'extend: leaseMs must be a positive integer');
    return this.#with(queue, async (q) => {
      if (!parseToken(leaseToken) || this.#settling.has(leaseToken)) return false;
      const lease = await this.#check(q, id, leaseToken, await this.#epoch(q.name));
      if (!lease) return false;
      // A NAK with a delay moves the redelivery time to now + delay: that is the new lease end.
      await this.#r.request(lease.reply, nakDelay(leaseMs));
      lease.leaseUntil = Date.now() + leaseMs;
      this.#leases.set(leaseToken, lease);
      return true;
    });
  }

  async settle(queue: string, settlements: Settlement[]): Promise<boolean[]> {
    if (!Array.isArray(settlements)) throw new ContinuumError('bad_request', 'settle: settlements must be an array');
    return this.#with(queue, async (q) => {
      if (settlements.length === 0) return [];
      const epoch = await this.#epoch(q.name);
      const claimed = new Set<string>();
      const leases = await Promise.all(
        settlements.map(async (s) => {
          const token = s?.leaseToken;
          if (typeof token !== 'string' || claimed.has(token) || this.#settling.has(token)) return null;
          // Claimed before any await: of two settlements with one token (in this call or a concurrent one),
          // only the first proceeds.
          claimed.add(token);
          this.#settling.add(token);
          const lease = await this.#check(q, s.id, token, epoch).catch((err: unknown) => {
            this.#settling.delete(token);
            throw err;
          });
          if (!lease) this.#settling.delete(token);
          return lease;
        }),
      );
      try {
        const removable = await Promise.all(
          settlements.map(async (s, i) => {
            const lease = leases[i];
            if (lease) await this.#beforeRemoval(q, lease, s);
            return lease;
          }),
        );
        const done = removable.filter((l): l is Lease => l !== null);
        await Promise.all([this.#ackAll(done.map((l) => l.reply)), this.#logDone(q, done.map((l) => l.sseq))]);
        for (const l of done) this.#leases.delete(l.token);
        const retried = settlements.filter((s, i) => removable[i] && s.action === 'retry');
        const delayed = retried.filter((s) => retryDelayMs(s) > 0).length;
        this.#stored(q, retried.length - delayed, delayed);
        return removable.map((l) => l !== null);
      } finally {
        for (const l of leases) if (l) this.#settling.delete(l.token);
      }
    });
  }

  /** What a settlement does before its copy leaves the stream: whatever must outlive the copy is stored first. */
  async #beforeRemoval(q: Queue, lease: Lease, s: Settlement): Promise<void> {
    const { meta } = lease;
    const now = Date.now();
    if (s.action === 'ack') {
      if (meta.track) {
        // The outcome is durable before the message goes.
        if (s.outcome) await this.#recordOutcome(q, meta, lease.attempt, s.outcome);
        await this.#putStatus(q, meta, s.outcome?.state ?? 'succeeded', lease.attempt);
      }
    } else if (s.action === 'retry') {
      const delay = retryDelayMs(s);
      const next: Meta = { ...meta, att: lease.attempt, errs: appendError(meta.errs ?? [], String(s.error)) };
      delete next.nb;
      if (delay > 0) next.nb = now + delay;
      // The new copy is stored before the old one goes; a crash between them delivers twice, never loses it.
      await this.#storeCopy(q, next, lease.body, `${meta.id}.${lease.sseq}`);
      if (meta.track) await this.#putStatus(q, next, delay > 0 ? 'delayed' : 'ready', lease.attempt);
    } else if (s.action === 'dead') {
      const errs = s.error === undefined ? (meta.errs ?? []) : appendError(meta.errs ?? [], String(s.error));
      const reason = String(s.reason).slice(0, 500);
      const h = metaHeaders({ ...meta, errs });
      h.set(DEAD_HEADER, JSON.stringify({ at: now, reason, attempts: lease.attempt } satisfies DeadInfo));
      await this.#publish(`${q.dlSubject}.${meta.id}`, lease.body, `${meta.id}.${lease.sseq}`, h);
      if (meta.track) {
        const outcome = s.outcome ?? { state: reason === 'expired' ? 'expired' : 'dead', attempt: lease.attempt, finishedAt: now, error: { code: 'dead_letter', message: reason } };
        await this.#recordOutcome(q, meta, lease.attempt, outcome);
        await this.#putStatus(q, meta, outcome.state, lease.attempt);
      }
    } else {
      throw new ContinuumError('bad_request', 'settle: action must be ack, retry or dead');
    }
    await this.#keyFinalBeforeRemoval(q, meta, lease.body);
  }

  /** Ack and wait for the server's confirmation: once this resolves the copy is gone from the stream. */
  async #ackSync(reply: string): Promise<void> {
    await this.#r.request(reply, '+ACK');
  }

  /**
   * Ack copies of one consumer and wait until all are applied. The server applies a consumer's acks in the
   * order they arrive, so only the last one needs a confirmation: a reply per ack was a sixth of the
   * protocol messages per queued message.
   */
  async #ackAll(replies: string[]): Promise<void> {
    const last = replies.length - 1;
    for (let i = 0; i < last; i++) this.#nc.publish(replies[i]!, '+ACK');
    if (last >= 0) await this.#ackSync(replies[last]!);
  }

  // ------------------------------------------------------------------ KV writes

  /**
   * A KV write as a plain publish on the bucket's subject through #r: the same stream write as the KV
   * client's put, without the two Error objects with stack traces its js.publish builds per call (see
   * replies.ts). Writes on the hot path go this way: a key's reservation and confirmation and a cron
   * cursor per fire, a tracked message's status per state. `previousSeq` makes it a compare-and-set
   * (0: only if the key has no entry). Resolves with the entry's revision.
   */
  async #kvPut(bucket: Bucket, key: string, value: string, previousSeq?: number): Promise<number> {
    let h: MsgHdrs | undefined;
    if (previousSeq !== undefined) {
      h = natsHeaders();
      h.set('Nats-Expected-Last-Subject-Sequence', String(previousSeq));
    }
    return (await this.#r.publish(`$KV.${this.#p}-${bucket}.${key}`, TEXT.encode(value), h)).seq;
  }

  /** Write `key` only if it has no live entry; fails (wrong last sequence) when it has one. */
  async #kvCreate(bucket: Bucket, key: string, value: string): Promise<void> {
    try {
      await this.#kvPut(bucket, key, value, 0);
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
      // The key has an entry: a live one (the KV client fails the same way), or the tombstone of a deleted one,
      // which the client replaces.
      await this.#kv[bucket].create(key, value);
    }
  }

  // ------------------------------------------------------------------ tracked messages

  async #putStatus(q: Queue, meta: Meta, st: MessageState, att: number, extra: { lu?: number } = {}): Promise<void> {
    const s: Status = { q: q.name, enq: meta.enq, st, att, ...extra };
    if (meta.key !== undefined) s.key = meta.key;
    if (meta.attrs) s.attrs = meta.attrs;
    if (meta.nb !== undefined) s.nb = meta.nb;
    await this.#kvPut('track', `s.${meta.id}`, JSON.stringify(s));
  }

  /** First terminal outcome wins: `create` fails when one is already stored. */
  async #recordOutcome(q: Queue, meta: Meta, att: number, o: MessageOutcome): Promise<void> {
    const stored: StoredOutcome = { state: o.state, attempt: o.attempt, finishedAt: o.finishedAt };
    if (o.result) stored.result = { status: o.result.status, contentType: o.result.contentType, body: Buffer.from(o.result.body).toString('base64') };
    if (o.error) stored.error = { code: o.error.code, message: o.error.message };
    const record: Status & { o: StoredOutcome } = { q: q.name, enq: meta.enq, st: o.state, att, o: stored };
    if (meta.key !== undefined) record.key = meta.key;
    if (meta.attrs) record.attrs = meta.attrs;
    try {
      await this.#kvCreate('track', `o.${meta.id}`, JSON.stringify(record));
    } catch (err) {
      if (!isLive(await this.#kv.track.get(`o.${meta.id}`))) throw err;
    }
  }

  async getMessage(id: string): Promise<MessageStatus | null> {
    if (typeof id !== 'string' || !ID_RE.test(id)) return null;
    return guard(async () => {
      const [s, o] = await Promise.all([this.#kv.track.get(`s.${id}`), this.#kv.track.get(`o.${id}`)]);
      const now = Date.now();
      if (isLive(o)) {
        const r = o.json() as Status & { o: StoredOutcome };
        const status = isLive(s) ? (s.json() as Status) : null;
        return statusOf(id, r, r.o.state, status?.att ?? r.att, fromStoredOutcome(r.o));
      }
      if (!isLive(s)) return null;
      const r = s.json() as Status;
      let state = r.st;
      if ((state === 'delayed' && (r.nb ?? 0) <= now) || (state === 'in_flight' && (r.lu ?? 0) <= now)) state = 'ready';
      return statusOf(id, r, state, r.att, null);
    });
  }

  // ------------------------------------------------------------------ delays, purge

  async nextVisibleInMs(queue: string): Promise<number | null> {
    return this.#with(queue, async (q) => {
      const { firstBucket } = await this.#subjectCounts(q);
      // The bucket's start: never later than the message's time, so a caller that sleeps this long is not late.
      return firstBucket === null ? null : Math.max(0, firstBucket * BUCKET_MS - Date.now());
    });
  }

  async purge(queue: string): Promise<number> {
    return this.#with(queue, (q) =>
      this.#serialize(q, async () => {
        const r = await this.#jsm.streams.purge(q.stream, { filter: `${q.subject}.d.*` });
        let n = r.purged;
        // Visible messages are handed out to the purge and acked; messages in flight are not handed out.
        for (;;) {
          const msgs = await this.#pull(q.stream, READY, PURGE_BATCH);
          if (msgs.length === 0) return n;
          await this.#ackAll(msgs.map((m) => m.reply!));
          n += msgs.length;
        }
      }),
    );
  }

  // ------------------------------------------------------------------ dead letters

  async listDeadLetters(queue: string, opts: { limit: number; after?: string }): Promise<DeadLetter[]> {
    return this.#with(queue, async (q) => {
      const limit = Math.max(1, Math.min(1000, Math.floor(Number(opts?.limit) || 0)));
      let seq = 1;
      if (opts?.after !== undefined) {
        const at = ID_RE.test(opts.after) ? await this.#jsm.direct.getMessage(q.dlq, { last_by_subj: `${q.dlSubject}.${opts.after}` }) : null;
        if (!at) throw new ContinuumError('bad_request', 'listDeadLetters: unknown cursor');
        seq = at.seq + 1;
      }
      const out: DeadLetter[] = [];
      while (out.length < limit) {
        const m = await this.#jsm.direct.getMessage(q.dlq, { next_by_subj: `${q.dlSubject}.*`, seq });
        if (!m) break;
        const d = toDeadLetter(m);
        if (d) out.push(d);
        seq = m.seq + 1;
      }
      return out;
    });
  }

  /** Dead letters by id (those that exist), or all of them, oldest first. */
  async #deadLetters(q: Queue, ids: string[] | undefined): Promise<StoredMsg[]> {
    if (ids !== undefined) {
      if (!Array.isArray(ids)) throw new ContinuumError('bad_request', 'ids must be an array');
      const found = await Promise.all(
        [...new Set(ids)].filter((id) => typeof id === 'string' && ID_RE.test(id)).map((id) => this.#jsm.direct.getMessage(q.dlq, { last_by_subj: `${q.dlSubject}.${id}` })),
      );
      return found.filter((m): m is StoredMsg => m !== null).sort((a, b) => a.seq - b.seq);
    }
    const out: StoredMsg[] = [];
    for (let seq = 1; ; ) {
      const m = await this.#jsm.direct.getMessage(q.dlq, { next_by_subj: `${q.dlSubject}.*`, seq });
      if (!m) return out;
      out.push(m);
      seq = m.seq + 1;
    }
  }

  async redrive(queue: string, ids?: string[]): Promise<number> {
    return this.#with(queue, async (q) => {
      const dead = await this.#deadLetters(q, ids);
      for (const m of dead) {
        const old = readMeta(m.header);
        if (!old) continue;
        // A fresh message with the same id (a tracked one is followed by the same id): attempts start over.
        const meta: Meta = { ...old, att: 0 };
        delete meta.errs;
        delete meta.nb;
        await this.#publishReady(q, m.data, `${meta.id}.r${m.seq}`, metaHeaders(meta));
        if (meta.track) {
          await this.#kv.track.delete(`o.${meta.id}`);
          await this.#putStatus(q, meta, 'ready', 0);
        }
        await this.#jsm.streams.deleteMessage(q.dlq, m.seq, false);
      }
      this.#stored(q, dead.length, 0);
      return dead.length;
    });
  }

  async purgeDeadLetters(queue: string, ids?: string[]): Promise<number> {
    return this.#with(queue, async (q) => {
      if (ids === undefined) return (await this.#jsm.streams.purge(q.dlq)).purged;
      const dead = await this.#deadLetters(q, ids);
      await Promise.all(dead.map((m) => this.#jsm.streams.deleteMessage(q.dlq, m.seq, false)));
      return dead.length;
    });
  }

  // ------------------------------------------------------------------ cursors

  async getCursor(key: string): Promise<string | null> {
    const k = cursorKey(key);
    return guard(async () => {
      const e = await this.#kv.meta.get(k);
      return isLive(e) ? e.string() : null;
    });
  }

  async setCursor(key: string, value: string, expected?: string | null): Promise<boolean> {
    const k = cursorKey(key);
    assertCursorValue(value);
    return guard(async () => {
      if (expected === undefined) {
        await this.#kvPut('meta', k, value);
        return true;
      }
      const e = await this.#kv.meta.get(k);
      const current = isLive(e) ? e.string() : null;
      if (current !== expected) return false;
      try {
        // Compare-and-set on the revision read: a concurrent writer makes this fail.
        await this.#kvPut('meta', k, value, e?.revision ?? 0);
        return true;
      } catch (err) {
        if (isWrongLastSequence(err)) return false;
        throw err;
      }
    });
  }

  durability(): QueueDurability {
    return natsDurability(this.#nc.info?.version);
  }

  async close(): Promise<void> {
    this.#r.close();
    if (!this.#nc.isClosed()) await this.#nc.close();
  }
}

// ------------------------------------------------------------------ helpers

/**
 * What an acknowledged publish survives, by the server's version. JetStream acknowledges once the write is in
 * its file (a crash of nats-server or of the node keeps it) and syncs on an interval; syncing every write
 * (`sync_interval: always`) exists from 2.10 on, and is server configuration a client cannot read.
 */
export function natsDurability(version: string | undefined): QueueDurability {
  const m = /^v?(\d+)\.(\d+)\./.exec(version ?? '');
  if (!m) return { powerLoss: null, detail: `nats-server of unknown version (${JSON.stringify(version ?? '')}): acknowledged messages survive a power loss only if it syncs every write (jetstream { sync_interval: always }, 2.10 or later)` };
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (major < 2 || (major === 2 && minor < 10)) {
    return { powerLoss: false, detail: `nats-server ${version} cannot sync every write (sync_interval: always needs 2.10 or later): acknowledged messages survive a crash of the node or of nats-server, not a power loss` };
  }
  return { powerLoss: null, detail: `nats-server ${version}: acknowledged messages survive a power loss only with jetstream { sync_interval: always } in its configuration, which a client cannot read` };
}

function guard<T>(fn: () => Promise<T>): Promise<T> {
  return fn().catch((err: unknown) => {
    throw mapError(err);
  });
}

function mapError(err: unknown): ContinuumError {
  if (err instanceof ContinuumError) return err;
  const name = err instanceof Error ? err.name : '';
  if (/Timeout|NoResponders|Connection|Closed|Draining|Request/i.test(name)) {
    return new ContinuumError('unavailable', 'the NATS queue backend is not answering', undefined, { cause: err });
  }
  return toContinuumError(err);
}

function isNoResponders(err: unknown): boolean {
  return err instanceof NoRespondersError || (err instanceof Error && /NoResponders/.test(`${err.name} ${(err as { cause?: { name?: string } }).cause?.name ?? ''}`));
}

const notFound = (name: string) => new ContinuumError('not_found', `queue ${name} does not exist`);

function isStreamNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === 10059 || err.code === 10014);
}

/** Create a bucket, or open it when it exists with the same settings. */
function createBucket(kvm: Kvm, name: string, opts: Parameters<Kvm['create']>[1]): Promise<KV> {
  return retryOverlap(() => kvm.create(name, opts));
}

/**
 * Create a stream (a bucket's, or the done log) that may exist with the same settings (then a no-op). Two
 * processes creating it at the same moment (nodes starting together on a fresh prefix) can make nats-server
 * 2.9 refuse one of them with "subjects overlap with an existing stream" (10065) while the other's is being
 * set up: retried.
 */
async function retryOverlap<T>(create: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await create();
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === 10065) || attempt === CREATE_ATTEMPTS) throw err;
      await sleep(10 * attempt);
    }
  }
}

function isWrongLastSequence(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === 10071 || err.code === 10164);
}

function isLive(e: KvEntry | null): e is KvEntry {
  return e !== null && e.operation === 'PUT';
}

/** A plain Uint8Array of its own: the client hands out Buffers that are views of its read buffer. */
function bytesOf(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.byteLength);
  out.set(b);
  return out;
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

function cursorKey(key: unknown): string {
  // KV keys allow fewer characters than cursor keys; base64url carries any of them.
  return `c.${Buffer.from(assertCursorKey(key)).toString('base64url')}`;
}

function retryDelayMs(s: Settlement): number {
  return s.action === 'retry' ? Math.max(0, Math.floor(Number(s.delayMs) || 0)) : 0;
}

function nakDelay(ms: number): string {
  return `-NAK ${JSON.stringify({ delay: nanos(Math.ceil(ms)) })}`;
}

function parseToken(token: unknown): Token | null {
  if (typeof token !== 'string') return null;
  const m = TOKEN_RE.exec(token);
  if (!m) return null;
  const [sseq, dseq, dc, epoch] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
  return sseq > 0 && dc > 0 && Number.isSafeInteger(sseq) && Number.isSafeInteger(dseq) && Number.isSafeInteger(epoch) ? { sseq, dseq, dc, epoch } : null;
}

function metaHeaders(meta: Meta): MsgHdrs {
  const h = natsHeaders();
  h.set(META_HEADER, JSON.stringify(meta));
  return h;
}

function readMeta(h: MsgHdrs | undefined): Meta | null {
  const raw = h?.get(META_HEADER);
  if (!raw) return null;
  try {
    const m = JSON.parse(raw) as Meta;
    return typeof m.id === 'string' && typeof m.enq === 'number' && typeof m.att === 'number' ? m : null;
  } catch {
    return null;
  }
}

function toLeased(queue: string, l: Lease, dueAt: number): LeasedMessage {
  return {
    id: l.meta.id,
    queue,
    body: l.body,
    contentType: l.meta.ct ?? null,
    attributes: { ...(l.meta.attrs ?? {}) },
    idempotencyKey: l.meta.key ?? null,
    enqueuedAt: l.meta.enq,
    attempt: l.attempt,
    errors: [...(l.meta.errs ?? [])],
    leaseToken: l.token,
    leaseUntil: l.leaseUntil,
    dueAt,
  };
}

function toDeadLetter(m: StoredMsg): DeadLetter | null {
  const meta = readMeta(m.header);
  let dead: DeadInfo | null = null;
  try {
    dead = JSON.parse(m.header?.get(DEAD_HEADER) || 'null') as DeadInfo | null;
  } catch {
    dead = null;
  }
  if (!meta || !dead) return null;
  return {
    id: meta.id,
    body: bytesOf(m.data),
    contentType: meta.ct ?? null,
    attributes: { ...(meta.attrs ?? {}) },
    idempotencyKey: meta.key ?? null,
    enqueuedAt: meta.enq,
    deadAt: dead.at,
    attempts: dead.attempts,
    reason: dead.reason,
    errors: meta.errs ?? [],
  };
}

function statusOf(id: string, r: Status, state: MessageState, attempt: number, outcome: MessageOutcome | null): MessageStatus {
  return { id, queue: r.q, state, attempt, enqueuedAt: r.enq, idempotencyKey: r.key ?? null, attributes: { ...(r.attrs ?? {}) }, outcome };
}

function fromStoredOutcome(s: StoredOutcome): MessageOutcome {
  const o: MessageOutcome = { state: s.state, attempt: s.attempt, finishedAt: s.finishedAt };
  if (s.result) o.result = { status: s.result.status, contentType: s.result.contentType, body: new Uint8Array(Buffer.from(s.result.body, 'base64')) };
  if (s.error) o.error = { code: s.error.code, message: s.error.message };
  return o;
}

