// Injected by esbuild into every prelude module (module-local, never a tenant-visible global).
import { Buffer as BufferPolyfill } from 'buffer';

export const Buffer = BufferPolyfill;

export const process = {
  env: {},
  versions: {},
  emitWarning() {},
  nextTick(fn, ...args) {
    Promise.resolve().then(() => fn(...args));
  },
};

/** undici's webidl builds an instanceof assertion for MessagePort at load time. */
export class MessagePort {}

/**
 * SharedArrayBuffer is undefined while the snapshot is created; this stand-in answers every brand
 * check with "not a SharedArrayBuffer". Tenants never get a SharedArrayBuffer (catalogue test 12).
 */
export class SharedArrayBuffer {
  get byteLength() {
    throw new TypeError('not a SharedArrayBuffer');
  }
  get growable() {
    throw new TypeError('not a SharedArrayBuffer');
  }
}
