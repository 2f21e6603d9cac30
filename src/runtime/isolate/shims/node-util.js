import types from './node-util-types.js';

export { types };

function inspectValue(value) {
  try {
    if (typeof value === 'string') return `'${value}'`;
    if (typeof value === 'symbol' || typeof value === 'bigint') return String(value);
    if (typeof value === 'function') return `[Function: ${value.name || 'anonymous'}]`;
    if (value === null || typeof value !== 'object') return String(value);
    return Object.prototype.toString.call(value);
  } catch {
    return '[object]';
  }
}
export const inspect = Object.assign(inspectValue, { custom: Symbol.for('nodejs.util.inspect.custom') });

export function formatWithOptions(_options, ...args) {
  return args.map((a) => (typeof a === 'string' ? a : inspectValue(a))).join(' ');
}
export function format(...args) {
  return formatWithOptions({}, ...args);
}
export function markAsUncloneable() {}
export function deprecate(fn) {
  return fn;
}
export default { types, inspect, format, formatWithOptions, markAsUncloneable, deprecate };
