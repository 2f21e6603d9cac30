/**
 * console formatting in the style of Node's util.format / util.inspect for the common cases. Runs on
 * tenant values, so it never invokes getters (it reads descriptors), guards every step against throwing
 * Proxies, and bounds depth, entries and output length.
 */

const MAX_ENTRIES = 100;
const MAX_STRING = 10_000;
const MAX_DEPTH = 2;

function quote(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  const body = s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(q === "'" ? /'/g : /"/g, `\\${q}`);
  return q + (body.length > MAX_STRING ? `${body.slice(0, MAX_STRING)}... ${body.length - MAX_STRING} more characters` : body) + q;
}

function keyName(key: string | symbol): string {
  if (typeof key === 'symbol') return `[${String(key)}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? key : quote(key);
}

function errorText(err: Error): string {
  let stack: unknown;
  try {
    stack = err.stack;
  } catch {
    stack = undefined;
  }
  if (typeof stack === 'string' && stack.length > 0) return stack;
  try {
    return `${String(err.name)}: ${String(err.message)}`;
  } catch {
    return '[Error]';
  }
}

function safeTag(value: object): string {
  try {
    return Object.prototype.toString.call(value).slice(8, -1);
  } catch {
    return 'Object';
  }
}

function ctorName(value: object): string {
  try {
    const proto = Object.getPrototypeOf(value);
    if (proto === null) return '[Object: null prototype]';
    const d = Object.getOwnPropertyDescriptor(proto, 'constructor');
    const fn = d && 'value' in d ? d.value : undefined;
    return typeof fn === 'function' && typeof fn.name === 'string' ? fn.name : '';
  } catch {
    return '';
  }
}

function wrap(open: string, parts: string[], close: string, prefix: string): string {
  if (parts.length === 0) return `${prefix}${open}${close}`;
  const flat = `${prefix}${open} ${parts.join(', ')} ${close}`;
  return flat.length <= 72 && !flat.includes('\n') ? flat : `${prefix}${open}\n  ${parts.join(',\n').replace(/\n/g, '\n  ')}\n${close}`;
}

export function inspect(value: unknown, depth = 0, seen: object[] = []): string {
  switch (typeof value) {
    case 'string':
      return depth === 0 ? value : quote(value);
    case 'number':
      return Object.is(value, -0) ? '-0' : String(value);
    case 'bigint':
      return `${value}n`;
    case 'boolean':
    case 'undefined':
      return String(value);
    case 'symbol':
      return value.toString();
    case 'function': {
      let name = '';
      try {
        const d = Object.getOwnPropertyDescriptor(value, 'name');
        name = d && typeof d.value === 'string' ? d.value : '';
      } catch {
        name = '';
      }
      return /^class\b/.test(safeSource(value)) ? `[class ${name || '(anonymous)'}]` : `[Function: ${name || '(anonymous)'}]`;
    }
  }
  if (value === null) return 'null';
  const obj = value as object;
  if (seen.includes(obj)) return '[Circular *1]';
  try {
    if (obj instanceof Error) return depth === 0 ? errorText(obj) : `[${errorText(obj).split('\n')[0]}]`;
  } catch {
    return '[object]';
  }
  const tag = safeTag(obj);
  if (tag === 'Date') {
    try {
      return Date.prototype.toISOString.call(obj);
    } catch {
      return 'Invalid Date';
    }
  }
  if (tag === 'RegExp') {
    try {
      return RegExp.prototype.toString.call(obj);
    } catch {
      return '[RegExp]';
    }
  }
  if (tag === 'Promise') return 'Promise { <pending> }';
  if (depth > MAX_DEPTH) return Array.isArray(obj) ? '[Array]' : `[${ctorName(obj) || 'Object'}]`;
  const nextSeen = [...seen, obj];
  try {
    if (Array.isArray(obj)) {
      const parts: string[] = [];
      const len = obj.length;
      for (let i = 0; i < Math.min(len, MAX_ENTRIES); i++) parts.push(describeProp(obj, String(i), depth, nextSeen));
      if (len > MAX_ENTRIES) parts.push(`... ${len - MAX_ENTRIES} more items`);
      return wrap('[', parts, ']', '');
    }
    if (ArrayBuffer.isView(obj) && !(obj instanceof DataView)) {
      const arr = obj as unknown as ArrayLike<number | bigint>;
      const parts: string[] = [];
      for (let i = 0; i < Math.min(arr.length, MAX_ENTRIES); i++) parts.push(String(arr[i]) + (typeof arr[i] === 'bigint' ? 'n' : ''));
      if (arr.length > MAX_ENTRIES) parts.push(`... ${arr.length - MAX_ENTRIES} more items`);
      return wrap('[', parts, ']', `${tag}(${arr.length}) `);
    }
    if (obj instanceof Map) {
      const parts: string[] = [];
      for (const [k, v] of Map.prototype.entries.call(obj)) {
        if (parts.length >= MAX_ENTRIES) break;
        parts.push(`${inspect(k, depth + 1, nextSeen)} => ${inspect(v, depth + 1, nextSeen)}`);
      }
      return wrap('{', parts, '}', `Map(${Map.prototype[Symbol.iterator] ? (obj as Map<unknown, unknown>).size : 0}) `);
    }
    if (obj instanceof Set) {
      const parts: string[] = [];
      for (const v of Set.prototype.values.call(obj)) {
        if (parts.length >= MAX_ENTRIES) break;
        parts.push(inspect(v, depth + 1, nextSeen));
      }
      return wrap('{', parts, '}', `Set(${(obj as Set<unknown>).size}) `);
    }
    const keys = Reflect.ownKeys(obj);
    const parts: string[] = [];
    for (const key of keys) {
      if (parts.length >= MAX_ENTRIES) {
        parts.push(`... ${keys.length - MAX_ENTRIES} more properties`);
        break;
      }
      const d = Object.getOwnPropertyDescriptor(obj, key);
      if (!d || !d.enumerable) continue;
      parts.push(`${keyName(key)}: ${describeDescriptor(d, depth, nextSeen)}`);
    }
    const name = ctorName(obj);
    const prefix = name === 'Object' ? '' : `${name || tag} `;
    return wrap('{', parts, '}', prefix);
  } catch {
    return '[object]';
  }
}

function safeSource(fn: unknown): string {
  try {
    return Function.prototype.toString.call(fn).slice(0, 10);
  } catch {
    return '';
  }
}

function describeDescriptor(d: PropertyDescriptor, depth: number, seen: object[]): string {
  if ('value' in d) return inspect(d.value, depth + 1, seen);
  if (d.get && d.set) return '[Getter/Setter]';
  return d.get ? '[Getter]' : '[Setter]';
}

function describeProp(obj: object, key: string, depth: number, seen: object[]): string {
  const d = Object.getOwnPropertyDescriptor(obj, key);
  return d ? describeDescriptor(d, depth, seen) : '<empty>';
}

/** util.format: %s %d %i %f %j %o %O %c %% in a leading string, then the rest inspected. */
export function format(args: unknown[]): string {
  const out: string[] = [];
  let rest = 0;
  const first = args[0];
  if (typeof first === 'string') {
    rest = 1;
    let text = '';
    let last = 0;
    for (let i = 0; i < first.length - 1; i++) {
      if (first.charCodeAt(i) !== 37) continue; // '%'
      const c = first[i + 1];
      if (c === '%') {
        text += first.slice(last, i) + '%';
        last = i + 2;
        i++;
        continue;
      }
      if (!c || !'sdifjoOc'.includes(c)) continue;
      if (rest >= args.length) continue;
      const arg = args[rest++];
      let piece: string;
      try {
        if (c === 's') piece = typeof arg === 'string' ? arg : typeof arg === 'bigint' ? `${arg}n` : typeof arg === 'object' && arg !== null ? inspect(arg, 1) : String(arg);
        else if (c === 'd' || c === 'i') piece = typeof arg === 'bigint' ? `${arg}n` : typeof arg === 'symbol' ? 'NaN' : String(c === 'i' ? Math.trunc(Number(arg)) : Number(arg));
        else if (c === 'f') piece = typeof arg === 'symbol' ? 'NaN' : String(parseFloat(String(arg)));
        else if (c === 'j') piece = JSON.stringify(arg) ?? 'undefined';
        else if (c === 'c') piece = '';
        else piece = inspect(arg, 1);
      } catch {
        piece = c === 'j' ? '[Circular]' : '[object]';
      }
      text += first.slice(last, i) + piece;
      last = i + 2;
      i++;
    }
    out.push(text + first.slice(last));
  }
  for (let i = rest; i < args.length; i++) out.push(inspect(args[i]));
  return out.join(' ');
}
