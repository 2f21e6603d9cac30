const g = globalThis;
export const setTimeout = (...a) => g.setTimeout(...a);
export const clearTimeout = (id) => g.clearTimeout(id);
export const setInterval = (...a) => g.setInterval(...a);
export const clearInterval = (id) => g.clearInterval(id);
export const setImmediate = g.setImmediate ?? ((fn, ...args) => g.setTimeout(fn, 0, ...args));
export const clearImmediate = g.clearImmediate ?? ((id) => g.clearTimeout(id));
export const promises = {
  setTimeout: (ms, value) => new Promise((resolve) => g.setTimeout(() => resolve(value), ms)),
  setImmediate: (value) => new Promise((resolve) => g.setTimeout(() => resolve(value), 0)),
};
export default { setTimeout, clearTimeout, setInterval, clearInterval, setImmediate, clearImmediate, promises };
