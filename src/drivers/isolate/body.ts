/**
 * A single-consumer async byte queue: the response body of one invocation as the driver hands it out.
 * The producer (frames from the worker) never blocks; the host caps what it may hold (responseBytes).
 */
export class ByteQueue implements AsyncIterable<Uint8Array> {
  #chunks: Uint8Array[] = [];
  #head = 0;
  #ended = false;
  #error: unknown = null;
  #waiter: (() => void) | null = null;
  #iterating = false;
  readonly #onCancel: () => void;

  constructor(onCancel: () => void) {
    this.#onCancel = onCancel;
  }

  get closed(): boolean {
    return this.#ended || this.#error !== null;
  }

  push(chunk: Uint8Array): void {
    if (this.closed) return;
    this.#chunks.push(chunk);
    this.#wake();
  }

  end(): void {
    if (this.closed) return;
    this.#ended = true;
    this.#wake();
  }

  fail(err: unknown): void {
    if (this.closed) return;
    this.#error = err ?? new Error('body failed');
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiter;
    if (w) {
      this.#waiter = null;
      w();
    }
  }

  async *#iterate(): AsyncGenerator<Uint8Array> {
    let finished = false;
    try {
      for (;;) {
        if (this.#head < this.#chunks.length) {
          const c = this.#chunks[this.#head]!;
          this.#chunks[this.#head++] = undefined as unknown as Uint8Array;
          if (this.#head > 1024 && this.#head * 2 > this.#chunks.length) {
            this.#chunks = this.#chunks.slice(this.#head);
            this.#head = 0;
          }
          yield c;
          continue;
        }
        if (this.#error !== null) throw this.#error;
        if (this.#ended) {
          finished = true;
          return;
        }
        await new Promise<void>((resolve) => (this.#waiter = resolve));
      }
    } finally {
      if (!finished && this.#error === null) {
        // The consumer stopped early (client went away): release what we hold and tell the producer.
        this.#chunks = [];
        this.#head = 0;
        this.#ended = true;
        this.#onCancel();
      }
    }
  }

  /** All chunks, if the body has ended without error and nobody has started reading it; consumes it. */
  takeIfComplete(): Uint8Array[] | null {
    if (!this.#ended || this.#error !== null || this.#iterating) return null;
    this.#iterating = true;
    const chunks = this.#head === 0 ? this.#chunks : this.#chunks.slice(this.#head);
    this.#chunks = [];
    this.#head = 0;
    return chunks;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.#iterating) throw new TypeError('response body can be read only once');
    this.#iterating = true;
    return this.#iterate();
  }
}
