/**
 * Request/reply on the queue store's hot path (acks, lease NAKs, publishes, pulls) over one wildcard inbox
 * subscription. The client's `request()` and `js.publish()` build two Error objects with stack traces per
 * call in case it fails; that was a quarter of the CPU of a receive/ack loop. Here an error is built only
 * when something fails, and one timer expires all overdue requests.
 */
import { JetStreamApiError, type PubAck } from '@nats-io/jetstream';
import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Payload, type Subscription } from '@nats-io/transport-node';

const SWEEP_MS = 250;

interface Pending {
  deadline: number;
  /** Returns true when the exchange is complete. */
  onMsg(m: Msg): boolean;
  onTimeout(): void;
}

/** Nobody listens on the subject: no stream for it, no consumer, or JetStream is down. */
export class NoRespondersError extends Error {
  override name = 'NoRespondersError';
}

export class RequestTimeoutError extends Error {
  override name = 'TimeoutError';
}

export class Replies {
  readonly #nc: NatsConnection;
  readonly #inbox = createInbox();
  readonly #pending = new Map<number, Pending>();
  /** The pull in flight per consumer (`<stream>.<consumer>`), taking the messages handed out to it. */
  readonly #pulls = new Map<string, (m: Msg) => void>();
  readonly #sub: Subscription;
  readonly #timer: NodeJS.Timeout;
  readonly #timeoutMs: number;
  #next = 0;

  constructor(nc: NatsConnection, timeoutMs: number) {
    this.#nc = nc;
    this.#timeoutMs = timeoutMs;
    this.#sub = nc.subscribe(`${this.#inbox}.*`, { callback: (_err, m) => this.#deliver(m) });
    this.#timer = setInterval(() => this.#expire(), SWEEP_MS);
    this.#timer.unref();
  }

  #deliver(m: Msg): void {
    if (!m.subject.startsWith(this.#inbox)) {
      this.#pulled(m);
      return;
    }
    const id = Number(m.subject.slice(this.#inbox.length + 1));
    const p = this.#pending.get(id);
    if (p && p.onMsg(m)) this.#pending.delete(id);
  }

  /** A message handed out to a pull: to the pull in flight on its consumer, or back to the server at once. */
  #pulled(m: Msg): void {
    const info = parseAckSubject(m.reply);
    const take = info && this.#pulls.get(`${info.stream}.${info.consumer}`);
    if (take) take(m);
    else if (m.reply) this.#nc.publish(m.reply, '-NAK'); // for a pull that gave up waiting for it
  }

  #expire(): void {
    const now = Date.now();
    for (const [id, p] of this.#pending) {
      if (p.deadline <= now) {
        this.#pending.delete(id);
        p.onTimeout();
      }
    }
  }

  #send(subject: string, data: Payload, headers: MsgHdrs | undefined, timeoutMs: number, p: Omit<Pending, 'deadline'>): number {
    const id = ++this.#next;
    this.#pending.set(id, { deadline: Date.now() + timeoutMs, ...p });
    try {
      this.#nc.publish(subject, data, { reply: `${this.#inbox}.${id}`, ...(headers ? { headers } : {}) });
    } catch (err) {
      this.#pending.delete(id);
      throw err;
    }
    return id;
  }

  /** One reply; a 503 status (no responders) rejects. */
  request(subject: string, data: Payload, headers?: MsgHdrs): Promise<Msg> {
    return new Promise((resolve, reject) => {
      this.#send(subject, data, headers, this.#timeoutMs, {
        onMsg: (m) => {
          if (m.headers?.code === 503 && m.data.length === 0) reject(new NoRespondersError(`no responders on ${subject.split('.').slice(0, 3).join('.')}`));
          else resolve(m);
          return true;
        },
        onTimeout: () => reject(new RequestTimeoutError('request timed out')),
      });
    });
  }

  /** Publish to a stream and wait for its acknowledgement (the write is stored once this resolves). */
  async publish(subject: string, data: Uint8Array, headers?: MsgHdrs): Promise<PubAck> {
    const reply = await this.request(subject, data, headers);
    const ack = reply.json<PubAck & { error?: { code: number; err_code: number; description: string } }>();
    if (ack.error) throw new JetStreamApiError(ack.error);
    return ack;
  }

  /**
   * A JetStream no-wait pull: messages until `batch` arrived or a status message (404 none, 408 done) ends
   * it. A 503 status (nobody serves the consumer) rejects; a server that never ends it (`guardMs`, checked by
   * the sweep) yields what came.
   *
   * The pull's reply subject is on this object's inbox, so a pull costs no subscription of its own (a SUB
   * and an UNSUB per pull were most of a receive's protocol traffic). The status message comes back on that
   * reply subject; pulled messages keep their stream subject and are told apart by their ack subject, which
   * names the stream and consumer. So the caller must keep at most one pull per consumer in flight.
   */
  pull(stream: string, consumer: string, batch: number, guardMs: number): Promise<Msg[]> {
    const key = `${stream}.${consumer}`;
    if (this.#pulls.has(key)) return Promise.reject(new Error(`a pull on ${key} is already in flight`));
    return new Promise((resolve, reject) => {
      const out: Msg[] = [];
      const finish = (err?: Error): boolean => {
        this.#pulls.delete(key);
        if (err) reject(err);
        else resolve(out);
        return true;
      };
      const id = this.#send(`$JS.API.CONSUMER.MSG.NEXT.${key}`, JSON.stringify({ batch, no_wait: true }), undefined, guardMs, {
        onMsg: (m) => finish(m.headers?.code === 503 ? new NoRespondersError(`no consumer ${consumer} on ${stream}`) : undefined),
        onTimeout: () => finish(),
      });
      this.#pulls.set(key, (m) => {
        if (out.push(m) < batch) return;
        this.#pending.delete(id);
        finish();
      });
    });
  }

  close(): void {
    clearInterval(this.#timer);
    this.#sub.unsubscribe();
    for (const p of this.#pending.values()) p.onTimeout();
    this.#pending.clear();
  }
}

/** Delivery facts from a JetStream ack subject (v1: 9 tokens; v2 adds domain and account hash). */
export function parseAckSubject(reply: string | undefined): { stream: string; consumer: string; dc: number; sseq: number; dseq: number } | null {
  if (!reply) return null;
  const t = reply.split('.');
  if (t[0] !== '$JS' || t[1] !== 'ACK') return null;
  const base = t.length === 9 ? 4 : t.length >= 11 ? 6 : -1;
  if (base < 0) return null;
  const [dc, sseq, dseq] = [Number(t[base]), Number(t[base + 1]), Number(t[base + 2])];
  return Number.isSafeInteger(dc) && Number.isSafeInteger(sseq) && Number.isSafeInteger(dseq) ? { stream: t[base - 2]!, consumer: t[base - 1]!, dc, sseq, dseq } : null;
}
