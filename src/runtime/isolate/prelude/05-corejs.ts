import 'core-js/actual/dom-exception/index.js';
import 'core-js/actual/atob.js';
import 'core-js/actual/btoa.js';
import structuredCloneLite from '@ungap/structured-clone';

/**
 * structuredClone from @ungap/structured-clone (10 KB) instead of core-js's (whose helpers cost ≈ 0.2 MB
 * of heap in every isolate). Uncloneable values throw a DataCloneError DOMException, as the spec says;
 * the `transfer` option is not supported (buffers are copied).
 */
function structuredClone(value: unknown, options?: { transfer?: unknown[] }): unknown {
  if (arguments.length === 0) throw new TypeError("Failed to execute 'structuredClone': 1 argument required, but only 0 present.");
  if (options?.transfer && options.transfer.length > 0) {
    throw new DOMException('structuredClone: the transfer option is not supported in the isolate tier', 'DataCloneError');
  }
  try {
    return structuredCloneLite(value, { lossy: false, json: false });
  } catch (err) {
    if (err instanceof TypeError) throw new DOMException(err.message, 'DataCloneError');
    throw err;
  }
}
Object.defineProperty(globalThis, 'structuredClone', { value: structuredClone, writable: true, configurable: true, enumerable: false });
