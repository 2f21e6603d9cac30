/**
 * Test helper: evaluate a CommonJS bundle the way the isolate runtime does — wrapped as
 * (function (module, exports, require) {…}) in a fresh V8 context that has the Web-standard globals of the
 * isolate prelude but no Node globals (no Buffer, process, require, setImmediate). Tests only; never for
 * untrusted code (node:vm is not a security boundary).
 */
import * as vm from 'node:vm';
import * as zlib from 'node:zlib';

const WEB_GLOBALS = [
  'URL', 'URLSearchParams', 'TextEncoder', 'TextDecoder', 'Request', 'Response', 'Headers', 'FormData', 'Blob', 'File',
  'ReadableStream', 'WritableStream', 'TransformStream', 'AbortController', 'AbortSignal', 'Event', 'EventTarget',
  'DOMException', 'atob', 'btoa', 'structuredClone', 'queueMicrotask', 'setTimeout', 'clearTimeout', 'setInterval',
  'clearInterval', 'crypto', 'performance', 'console',
] as const;

export function loadBundle(code: string): Record<string, unknown> {
  const sandbox: Record<string, unknown> = {};
  for (const name of WEB_GLOBALS) sandbox[name] = (globalThis as Record<string, unknown>)[name];
  const context = vm.createContext(sandbox);
  const factory = vm.runInContext(`(function (module, exports, require) {${code}\n})`, context) as (m: unknown, e: unknown, r: unknown) => void;
  const module = { exports: {} as Record<string, unknown> };
  const require = (id: string): never => {
    throw new Error(`require(${JSON.stringify(id)}) is not available`);
  };
  factory(module, module.exports, require);
  return module.exports;
}

/** One entry of a hand-made zip. Every field can lie, to build hostile archives. */
export interface ZipEntrySpec {
  name: string | Uint8Array;
  data?: Uint8Array | string;
  /** 0 = stored, 8 = deflate. */
  method?: 0 | 8;
  /** Unix mode (type + permissions) stored in the external attributes; default regular file 0644. */
  mode?: number;
  /** Name written in the central directory when it should differ from the local header's. */
  centralName?: string;
  /** Make the central directory point at another entry's local header (index into the list). */
  sameOffsetAs?: number;
}

const bytesOf = (v: Uint8Array | string): Buffer => (typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v));

/** A zip built byte by byte (no zip64, no data descriptors). */
export function makeZip(entries: ZipEntrySpec[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  const offsets: number[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = bytesOf(e.name);
    const raw = bytesOf(e.data ?? '');
    const method = e.method ?? 8;
    const body = method === 8 ? zlib.deflateRawSync(raw) : raw;
    const crc = zlib.crc32(raw);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x800, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(raw.length, 22);
    local.writeUInt16LE(name.length, 26);
    offsets.push(offset);
    const localOffset = e.sameOffsetAs === undefined ? offset : offsets[e.sameOffsetAs]!;
    locals.push(local, name, body);
    offset += 30 + name.length + body.length;
    const cname = e.centralName === undefined ? name : bytesOf(e.centralName);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(raw.length, 24);
    central.writeUInt16LE(cname.length, 28);
    const isDir = cname.length > 0 && cname[cname.length - 1] === 0x2f;
    central.writeUInt32LE(((e.mode ?? (isDir ? 0o40755 : 0o100644)) << 16) >>> 0, 38);
    central.writeUInt32LE(localOffset, 42);
    centrals.push(central, cname);
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** One raw ustar header block; `size` is what the header declares, whatever data follows. */
export function tarHeader(spec: { name: string | Uint8Array; size?: number; type?: string; linkname?: string; mode?: number }): Buffer {
  const h = Buffer.alloc(512);
  const name = bytesOf(spec.name);
  if (name.length > 100) throw new Error('use a pax header for long names');
  name.copy(h, 0);
  h.write((spec.mode ?? 0o644).toString(8).padStart(7, '0') + '\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write((spec.size ?? 0).toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  h.write('00000000000\0', 136, 'latin1');
  h.write(spec.type ?? '0', 156, 'latin1');
  if (spec.linkname) h.write(spec.linkname, 157, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

/** A file entry: header + data padded to 512. */
export function tarFile(name: string | Uint8Array, data: string | Uint8Array = '', type = '0'): Buffer {
  const body = bytesOf(data);
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([tarHeader({ name, size: body.length, type }), body, pad]);
}

/** Blocks → gzip'd tar with the end-of-archive marker. */
export function makeTgz(blocks: Buffer[]): Buffer {
  return zlib.gzipSync(Buffer.concat([...blocks, Buffer.alloc(1024)]));
}
