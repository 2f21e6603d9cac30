// A Node built-in the isolate tier does not provide. Loading the module succeeds (many packages require such
// modules at load time but only use them on paths a function never takes); any use throws a clear error.
export function unavailable(name) {
  const fail = (what) => {
    const err = new Error(`${what} is not available on the isolate tier (Node built-in '${name}'); deploy with tier: process`);
    err.code = 'ERR_CONTINUUM_UNSUPPORTED_API';
    throw err;
  };
  const member = (prop) => {
    const proto = {}; // in no object's prototype chain: `x instanceof member` is false
    return new Proxy(function () {}, {
      apply: () => fail(`${name}.${prop}()`),
      construct: () => fail(`new ${name}.${prop}()`),
      get: (_t, p) => {
        // Enough to be inspected without being used: typeof, instanceof (→ false), String().
        if (typeof p === 'symbol') return undefined;
        if (p === 'prototype') return proto;
        if (p === 'name') return prop;
        if (p === 'toString') return () => `[unavailable ${name}.${prop}]`;
        return fail(`${name}.${prop}.${p}`);
      },
    });
  };
  return new Proxy(Object.create(null), {
    get: (_t, prop) => {
      if (prop === '__esModule') return false;
      if (prop === 'default') return undefined;
      if (typeof prop === 'symbol') return undefined;
      return member(prop);
    },
    has: () => true,
    set: () => true,
  });
}
