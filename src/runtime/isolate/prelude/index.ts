// The Web-standard globals, in load order. runtime.ts adds the host-bridged ones (console, timers,
// crypto, fetch, performance) and the entry points.
import './00-base.ts';
import './05-corejs.ts';
import './10-encoding.ts';
import './20-streams.ts';
import './30-url.ts';
import './40-events.ts';
import './50-blob.ts';
import './60-fetch.ts';
