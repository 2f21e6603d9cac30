// UTF-8 decoding of larger inputs on the host, reached through a bridge the runtime installs after the
// isolate is restored: JavaScript in the isolate decodes ≈ 3 ns per byte (String.fromCharCode is the
// fastest way there), the host's native decoder a small fraction of that plus one copy each way. Small
// inputs stay in the isolate (the crossing costs more); huge ones too, so that the host never holds a
// tenant's multi-megabyte string.
import { ownBuffer } from '../protocol.ts';

const MIN_BYTES = 1024;
const MAX_BYTES = 4 * 1024 * 1024;
let host = null;

export function setHostUtf8Decode(fn) {
  host = fn;
}

/** The decoded string; null when `loose` is false and the input is not well-formed; undefined: decode here. */
export function hostUtf8Decode(arr, loose) {
  if (host === null || arr.length < MIN_BYTES || arr.length > MAX_BYTES) return undefined;
  return host(ownBuffer(arr), !loose);
}
