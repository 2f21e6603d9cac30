import EventEmitter from 'events';

export { EventEmitter };
export function addAbortListener(signal, listener) {
  if (signal.aborted) {
    queueMicrotask(() => listener());
  } else {
    signal.addEventListener('abort', listener, { once: true });
  }
  return {
    [Symbol.dispose ?? Symbol.for('Symbol.dispose')]() {
      signal.removeEventListener('abort', listener);
    },
  };
}
export default Object.assign(EventEmitter, { EventEmitter, addAbortListener });
