/**
 * Web Crypto inside the isolate. getRandomValues/randomUUID read host entropy; crypto.subtle forwards
 * every operation to the host's WebCrypto. Arguments are converted here into plain JSON plus copied
 * ArrayBuffers (so the host never touches a tenant object); CryptoKeys are opaque handles into a
 * per-sandbox key table on the host.
 */

export interface CryptoHost {
  random(n: number): ArrayBuffer;
  subtle(op: string, args: unknown[], buffers: ArrayBuffer[]): Promise<[string, ArrayBuffer[]]>;
}

const keyHandles = new WeakMap<object, number>();
const keyMeta = new WeakMap<object, { type: string; extractable: boolean; algorithm: unknown; usages: string[] }>();
const kCreate = Symbol('CryptoKey');

export class CryptoKey {
  constructor(secret?: unknown) {
    if (secret !== kCreate) throw new TypeError('Illegal constructor');
  }
  get type(): string {
    return meta(this).type;
  }
  get extractable(): boolean {
    return meta(this).extractable;
  }
  get algorithm(): unknown {
    return meta(this).algorithm;
  }
  get usages(): string[] {
    return [...meta(this).usages];
  }
  get [Symbol.toStringTag](): string {
    return 'CryptoKey';
  }
}

function meta(key: unknown) {
  const m = keyMeta.get(key as object);
  if (!m) throw new TypeError('Illegal invocation');
  return m;
}

const MAX_DEPTH = 6;

function copyBytes(v: ArrayBuffer | ArrayBufferView): ArrayBuffer {
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice().buffer;
  return new Uint8Array(v).slice().buffer;
}

function isArrayBuffer(v: unknown): v is ArrayBuffer {
  try {
    Reflect.apply(Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength')!.get!, v, []);
    return true;
  } catch {
    return false;
  }
}

/** Tenant value → JSON-safe value with {$buf}/{$key} placeholders. Throws TypeError on anything odd. */
function encode(v: unknown, buffers: ArrayBuffer[], depth: number): unknown {
  if (depth > MAX_DEPTH) throw new TypeError('crypto argument nested too deeply');
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (v === undefined) return undefined;
  if (typeof v !== 'object') throw new TypeError(`crypto argument of type ${typeof v} is not supported`);
  if (keyHandles.has(v)) return { $key: keyHandles.get(v) };
  if (ArrayBuffer.isView(v) || isArrayBuffer(v)) {
    buffers.push(copyBytes(v as ArrayBuffer));
    return { $buf: buffers.length - 1 };
  }
  if (Array.isArray(v)) {
    if (v.length > 64) throw new TypeError('crypto argument array too long');
    return Array.from({ length: v.length }, (_, i) => encode(v[i], buffers, depth + 1) ?? null);
  }
  const out: Record<string, unknown> = {};
  const keys = Object.keys(v);
  if (keys.length > 64) throw new TypeError('crypto argument has too many properties');
  for (const k of keys) {
    if (k === '__proto__' || k === 'constructor' || k === 'prototype') continue;
    const e = encode((v as Record<string, unknown>)[k], buffers, depth + 1);
    if (e !== undefined) out[k] = e;
  }
  return out;
}

function decode(v: unknown, buffers: ArrayBuffer[]): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => decode(x, buffers));
  const o = v as Record<string, unknown>;
  if (typeof o.$buf === 'number') return buffers[o.$buf] ?? new ArrayBuffer(0);
  if (typeof o.$u8 === 'number') return new Uint8Array(buffers[o.$u8] ?? new ArrayBuffer(0));
  if (typeof o.$key === 'number') {
    const key = new CryptoKey(kCreate);
    keyHandles.set(key, o.$key);
    keyMeta.set(key, {
      type: String(o.type),
      extractable: o.extractable === true,
      algorithm: decode(o.algorithm, buffers),
      usages: Array.isArray(o.usages) ? o.usages.map(String) : [],
    });
    return key;
  }
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) out[k] = decode(o[k], buffers);
  return out;
}

const OPS = ['encrypt', 'decrypt', 'sign', 'verify', 'digest', 'generateKey', 'deriveKey', 'deriveBits', 'importKey', 'exportKey', 'wrapKey', 'unwrapKey'] as const;

export function createCrypto(host: CryptoHost): { crypto: object; subtle: object } {
  class SubtleCrypto {
    constructor(secret?: unknown) {
      if (secret !== kCreate) throw new TypeError('Illegal constructor');
    }
    get [Symbol.toStringTag](): string {
      return 'SubtleCrypto';
    }
  }
  for (const op of OPS) {
    Object.defineProperty(SubtleCrypto.prototype, op, {
      value: async function (...args: unknown[]) {
        const buffers: ArrayBuffer[] = [];
        let encoded: unknown;
        try {
          encoded = args.slice(0, 8).map((a) => encode(a, buffers, 0) ?? null);
        } catch (err) {
          throw err instanceof TypeError ? err : new TypeError(`crypto.subtle.${op}: invalid argument`);
        }
        const [json, outBuffers] = await host.subtle(op, encoded as unknown[], buffers);
        return decode(JSON.parse(json), outBuffers);
      },
      writable: true,
      configurable: true,
      enumerable: true,
    });
  }
  const subtle = new SubtleCrypto(kCreate);

  class Crypto {
    constructor(secret?: unknown) {
      if (secret !== kCreate) throw new TypeError('Illegal constructor');
    }
    get subtle(): SubtleCrypto {
      return subtle;
    }
    getRandomValues<T extends ArrayBufferView>(array: T): T {
      if (!ArrayBuffer.isView(array) || array instanceof DataView || array instanceof Float32Array || array instanceof Float64Array) {
        throw new DOMException("The data argument must be an integer-type TypedArray", 'TypeMismatchError');
      }
      if (array.byteLength > 65536) {
        throw new DOMException(`The ArrayBufferView's byte length (${array.byteLength}) exceeds the number of bytes of entropy available via this API (65536)`, 'QuotaExceededError');
      }
      if (array.byteLength === 0) return array;
      const bytes = new Uint8Array(host.random(array.byteLength));
      new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(bytes.subarray(0, array.byteLength));
      return array;
    }
    randomUUID(): string {
      const b = new Uint8Array(host.random(16));
      b[6] = (b[6]! & 0x0f) | 0x40;
      b[8] = (b[8]! & 0x3f) | 0x80;
      const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    }
    get [Symbol.toStringTag](): string {
      return 'Crypto';
    }
  }
  return { crypto: new Crypto(kCreate), subtle };
}
