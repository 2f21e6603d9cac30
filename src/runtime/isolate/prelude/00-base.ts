// Order matters: later modules read earlier globals when they load (shared/reference/isolate-prelude.md §2.2).
const g = globalThis as Record<string, unknown>;

export function defineGlobal(name: string, value: unknown): void {
  Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}

defineGlobal('self', globalThis);
defineGlobal('queueMicrotask', function queueMicrotask(callback: () => void) {
  if (typeof callback !== 'function') throw new TypeError('queueMicrotask: callback must be a function');
  Promise.resolve().then(() => {
    try {
      callback();
    } catch (err) {
      const report = g.reportError;
      if (typeof report === 'function') report(err);
    }
  });
});
