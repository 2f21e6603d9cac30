// Bundle entry for the in-isolate runtime: Web-API globals first, then the runtime and its entry points.
import './prelude/index.ts';
import './runtime.ts';
