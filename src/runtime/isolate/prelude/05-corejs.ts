import 'core-js/actual/dom-exception/index.js';
import 'core-js/actual/atob.js';
import 'core-js/actual/btoa.js';
import 'core-js/actual/structured-clone.js';
