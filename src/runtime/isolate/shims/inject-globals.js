// Injected by esbuild into every prelude module (module-local, never a tenant-visible global).
import { Buffer as BufferPolyfill } from 'buffer';

/**
 * buffer@6 measures a string's UTF-8 length by building an array of its bytes; undici calls
 * Buffer.byteLength on every string body, which made a 22 KB body cost ~0.4 ms. Count instead.
 */
function utf8Length(string) {
  let length = string.length;
  for (let i = 0; i < string.length; i++) {
    const unit = string.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) length += 1;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < string.length && (string.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      length += 2; // a surrogate pair: two units, four bytes
      i++;
    } else length += 2; // three bytes (a lone surrogate becomes U+FFFD, also three)
  }
  return length;
}
const polyfillByteLength = BufferPolyfill.byteLength;
BufferPolyfill.byteLength = function byteLength(value, encoding) {
  if (typeof value === 'string' && (encoding === undefined || encoding === 'utf8' || encoding === 'utf-8')) return utf8Length(value);
  return polyfillByteLength.call(this, value, encoding);
};

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
