import { Event, EventTarget, setErrorHandler, setWarningHandler } from 'event-target-shim';
import { defineGlobal } from './00-base.ts';

defineGlobal('Event', Event);
defineGlobal('EventTarget', EventTarget);
setErrorHandler((err: unknown) => {
  const report = (globalThis as Record<string, unknown>).reportError;
  if (typeof report === 'function') report(err);
});
setWarningHandler(() => {});

const kSecret = Symbol('AbortSignal');

/** Marks a signal aborted; set by AbortSignal's static block, the one place that sees its private state. */
let abortSignal: (signal: AbortSignal, reason: unknown) => void;

// Private fields rather than WeakMaps: every request gets a signal, and WeakMap entries for young keys
// cost the isolate's scavenger (ephemeron tables) on each of them.
class AbortSignal extends EventTarget {
  #aborted = false;
  #reason: unknown = undefined;
  constructor(secret?: unknown) {
    if (secret !== kSecret) throw new TypeError('Illegal constructor');
    super();
  }
  static #state(signal: unknown): AbortSignal {
    if (typeof signal !== 'object' || signal === null || !(#aborted in signal)) throw new TypeError('Illegal invocation');
    return signal as AbortSignal;
  }
  static {
    abortSignal = (signal, reason) => {
      if (signal.#aborted) return;
      signal.#aborted = true;
      signal.#reason = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
      signal.dispatchEvent(new Event('abort'));
    };
  }
  get aborted(): boolean {
    return AbortSignal.#state(this).#aborted;
  }
  get reason(): unknown {
    return AbortSignal.#state(this).#reason;
  }
  throwIfAborted(): void {
    const s = AbortSignal.#state(this);
    if (s.#aborted) throw s.#reason;
  }
  static abort(reason?: unknown): AbortSignal {
    const signal = new AbortSignal(kSecret);
    abortSignal(signal, reason);
    return signal;
  }
  static timeout(ms: number): AbortSignal {
    const signal = new AbortSignal(kSecret);
    const set = (globalThis as unknown as { setTimeout: (f: () => void, ms: number) => unknown }).setTimeout;
    set(() => abortSignal(signal, new DOMException('The operation was aborted due to timeout', 'TimeoutError')), ms);
    return signal;
  }
  static any(signals: Iterable<AbortSignal>): AbortSignal {
    const result = new AbortSignal(kSecret);
    const list = [...signals];
    for (const s of list) {
      if (s.aborted) {
        abortSignal(result, s.reason);
        return result;
      }
    }
    for (const s of list) s.addEventListener('abort', () => abortSignal(result, s.reason), { once: true });
    return result;
  }
  get [Symbol.toStringTag](): string {
    return 'AbortSignal';
  }
}
Object.defineProperty(AbortSignal.prototype, 'onabort', {
  get(this: EventTarget) {
    return (this as unknown as { _onabort?: unknown })._onabort ?? null;
  },
  set(this: EventTarget, fn: unknown) {
    const self = this as unknown as { _onabort?: EventListener | null };
    if (self._onabort) this.removeEventListener('abort', self._onabort);
    self._onabort = typeof fn === 'function' ? (fn as EventListener) : null;
    if (self._onabort) this.addEventListener('abort', self._onabort);
  },
  configurable: true,
});

class AbortController {
  #signal = new AbortSignal(kSecret);
  get signal(): AbortSignal {
    if (typeof this !== 'object' || this === null || !(#signal in this)) throw new TypeError('Illegal invocation');
    return this.#signal;
  }
  abort(reason?: unknown): void {
    abortSignal(this.signal, reason);
  }
  get [Symbol.toStringTag](): string {
    return 'AbortController';
  }
}

defineGlobal('AbortSignal', AbortSignal);
defineGlobal('AbortController', AbortController);
