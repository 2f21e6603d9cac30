// Only AsyncResource, as a pass-through (what on-finished and friends use to bind callbacks). Context
// propagation (AsyncLocalStorage) is not provided: a naive version would leak state between requests.
import { unavailable } from './unavailable.js';
const rest = unavailable('async_hooks');
export class AsyncResource {
  constructor(type) { this.type = type; }
  runInAsyncScope(fn, thisArg, ...args) { return fn.apply(thisArg, args); }
  bind(fn) { return fn.bind(undefined); }
  static bind(fn) { return fn; }
  emitDestroy() { return this; }
  asyncId() { return 0; }
  triggerAsyncId() { return 0; }
}
export const executionAsyncId = () => 0;
export const triggerAsyncId = () => 0;
export const AsyncLocalStorage = rest.AsyncLocalStorage;
export const createHook = rest.createHook;
export default { AsyncResource, executionAsyncId, triggerAsyncId, AsyncLocalStorage, createHook };
