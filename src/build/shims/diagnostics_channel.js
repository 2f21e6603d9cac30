// A small, working diagnostics_channel: named channels with subscribers, and tracing channels whose trace*
// helpers publish start/end/asyncStart/asyncEnd/error around the traced call (used by router, undici, …).
const channels = new Map();

export class Channel {
  constructor(name) { this.name = name; this._subscribers = []; }
  get hasSubscribers() { return this._subscribers.length > 0; }
  subscribe(fn) { this._subscribers.push(fn); }
  unsubscribe(fn) {
    const i = this._subscribers.indexOf(fn);
    if (i < 0) return false;
    this._subscribers.splice(i, 1);
    return true;
  }
  publish(message) {
    for (const fn of this._subscribers.slice()) {
      try { fn(message, this.name); } catch (err) { queueMicrotask(() => { throw err; }); }
    }
  }
  bindStore() {}
  unbindStore() { return false; }
  runStores(message, fn, thisArg, ...args) { this.publish(message); return fn.apply(thisArg, args); }
}

export function channel(name) {
  let ch = channels.get(name);
  if (!ch) channels.set(name, (ch = new Channel(name)));
  return ch;
}
export const hasSubscribers = (name) => channels.get(name)?.hasSubscribers ?? false;
export const subscribe = (name, fn) => channel(name).subscribe(fn);
export const unsubscribe = (name, fn) => channel(name).unsubscribe(fn);

class TracingChannel {
  constructor(name) {
    for (const ev of ['start', 'end', 'asyncStart', 'asyncEnd', 'error']) this[ev] = typeof name === 'string' ? channel(`tracing:${name}:${ev}`) : name[ev];
  }
  get hasSubscribers() { return this.start.hasSubscribers || this.end.hasSubscribers || this.asyncStart.hasSubscribers || this.asyncEnd.hasSubscribers || this.error.hasSubscribers; }
  subscribe(handlers) { for (const k of Object.keys(handlers)) this[k]?.subscribe(handlers[k]); }
  unsubscribe(handlers) { let ok = true; for (const k of Object.keys(handlers)) ok = (this[k]?.unsubscribe(handlers[k]) ?? false) && ok; return ok; }
  traceSync(fn, context = {}, thisArg, ...args) {
    if (!this.hasSubscribers) return fn.apply(thisArg, args);
    this.start.publish(context);
    try {
      const result = fn.apply(thisArg, args);
      context.result = result;
      return result;
    } catch (err) {
      context.error = err;
      this.error.publish(context);
      throw err;
    } finally {
      this.end.publish(context);
    }
  }
  tracePromise(fn, context = {}, thisArg, ...args) {
    if (!this.hasSubscribers) return fn.apply(thisArg, args);
    this.start.publish(context);
    try {
      return Promise.resolve(fn.apply(thisArg, args)).then(
        (result) => { context.result = result; this.asyncStart.publish(context); this.asyncEnd.publish(context); return result; },
        (err) => { context.error = err; this.error.publish(context); this.asyncStart.publish(context); this.asyncEnd.publish(context); throw err; },
      );
    } catch (err) {
      context.error = err;
      this.error.publish(context);
      throw err;
    } finally {
      this.end.publish(context);
    }
  }
  traceCallback(fn, position = -1, context = {}, thisArg, ...args) {
    if (!this.hasSubscribers) return fn.apply(thisArg, args);
    const at = position < 0 ? args.length + position : position;
    const cb = args[at];
    args[at] = (err, result) => {
      if (err) { context.error = err; this.error.publish(context); } else context.result = result;
      this.asyncStart.publish(context);
      try { return cb(err, result); } finally { this.asyncEnd.publish(context); }
    };
    return this.traceSync(fn, context, thisArg, ...args);
  }
}
export const tracingChannel = (name) => new TracingChannel(name);

export default { Channel, channel, hasSubscribers, subscribe, unsubscribe, tracingChannel };
