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
const internal = new WeakMap<object, { aborted: boolean; reason: unknown }>();

function state(signal: unknown) {
  const s = internal.get(signal as object);
  if (!s) throw new TypeError('Illegal invocation');
  return s;
}

class AbortSignal extends EventTarget {
  constructor(secret?: unknown) {
    if (secret !== kSecret) throw new TypeError('Illegal constructor');
    super();
    internal.set(this, { aborted: false, reason: undefined });
  }
  get aborted(): boolean {
    return state(this).aborted;
  }
  get reason(): unknown {
    return state(this).reason;
  }
  throwIfAborted(): void {
    const s = state(this);
    if (s.aborted) throw s.reason;
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

function abortSignal(signal: AbortSignal, reason: unknown): void {
  const s = state(signal);
  if (s.aborted) return;
  s.aborted = true;
  s.reason = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
  signal.dispatchEvent(new Event('abort'));
}

const controllerSignal = new WeakMap<object, AbortSignal>();

class AbortController {
  constructor() {
    controllerSignal.set(this, new AbortSignal(kSecret));
  }
  get signal(): AbortSignal {
    const s = controllerSignal.get(this);
    if (!s) throw new TypeError('Illegal invocation');
    return s;
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
