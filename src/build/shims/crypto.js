// The synchronous part of Node's `crypto` that web frameworks use on the request path (etag, cookie
// signatures, ids): createHash / createHmac (md5, sha1, sha2) from @noble/hashes, randomBytes / randomUUID /
// getRandomValues / timingSafeEqual over Web Crypto. Everything else (ciphers, keys, sign/verify, …) throws.
import { Buffer } from 'buffer';
import { hmac } from '@noble/hashes/hmac.js';
import { md5, sha1 } from '@noble/hashes/legacy.js';
import { sha224, sha256, sha384, sha512 } from '@noble/hashes/sha2.js';
import { unavailable } from './unavailable.js';

const rest = unavailable('crypto');
const HASHES = { md5, sha1, sha224, sha256, sha384, sha512, 'sha-1': sha1, 'sha-256': sha256, 'sha-384': sha384, 'sha-512': sha512 };

function pick(algorithm) {
  const h = HASHES[String(algorithm).toLowerCase()];
  if (!h) throw new Error(`Digest method not supported on the isolate tier: ${algorithm}`);
  return h;
}

function toBytes(data, encoding) {
  if (typeof data === 'string') return Buffer.from(data, encoding ?? 'utf8');
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError('The "data" argument must be a string, Buffer, TypedArray or DataView');
}

function output(bytes, encoding) {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return encoding ? buf.toString(encoding) : buf;
}

class Digest {
  constructor(state) { this._state = state; }
  update(data, encoding) { this._state.update(toBytes(data, encoding)); return this; }
  digest(encoding) { return output(this._state.digest(), encoding); }
  copy() { return new this.constructor(this._state.clone()); }
}
export class Hash extends Digest {}
export class Hmac extends Digest {}

export const createHash = (algorithm) => new Hash(pick(algorithm).create());
export const createHmac = (algorithm, key) => new Hmac(hmac.create(pick(algorithm), toBytes(key)));
export const getHashes = () => Object.keys(HASHES).filter((k) => !k.includes('-'));
export const hash = (algorithm, data, encoding = 'hex') => output(pick(algorithm)(toBytes(data)), encoding);

export const getRandomValues = (array) => globalThis.crypto.getRandomValues(array);
export function randomBytes(size, cb) {
  const buf = Buffer.alloc(size);
  for (let i = 0; i < size; i += 65536) globalThis.crypto.getRandomValues(buf.subarray(i, Math.min(size, i + 65536)));
  if (typeof cb === 'function') { queueMicrotask(() => cb(null, buf)); return undefined; }
  return buf;
}
export const pseudoRandomBytes = randomBytes;
export const randomUUID = () => globalThis.crypto.randomUUID();
export function randomInt(min, max) {
  if (max === undefined) { max = min; min = 0; }
  const range = max - min;
  const buf = new Uint32Array(1);
  const limit = Math.floor(0x100000000 / range) * range;
  do globalThis.crypto.getRandomValues(buf); while (buf[0] >= limit);
  return min + (buf[0] % range);
}
export function timingSafeEqual(a, b) {
  const x = toBytes(a), y = toBytes(b);
  if (x.length !== y.length) {
    const err = new RangeError('Input buffers must have the same byte length');
    err.code = 'ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH';
    throw err;
  }
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}
export const webcrypto = globalThis.crypto;
export const subtle = globalThis.crypto?.subtle;

export const createCipheriv = rest.createCipheriv;
export const createDecipheriv = rest.createDecipheriv;
export const createSign = rest.createSign;
export const createVerify = rest.createVerify;
export const pbkdf2 = rest.pbkdf2;
export const pbkdf2Sync = rest.pbkdf2Sync;
export const scrypt = rest.scrypt;
export const scryptSync = rest.scryptSync;
export const generateKeyPair = rest.generateKeyPair;
export const generateKeyPairSync = rest.generateKeyPairSync;
export const createPublicKey = rest.createPublicKey;
export const createPrivateKey = rest.createPrivateKey;
export const createSecretKey = rest.createSecretKey;
export const publicEncrypt = rest.publicEncrypt;
export const privateDecrypt = rest.privateDecrypt;
export const createECDH = rest.createECDH;
export const createDiffieHellman = rest.createDiffieHellman;

export default {
  Hash, Hmac, createHash, createHmac, getHashes, hash, getRandomValues, randomBytes, pseudoRandomBytes, randomUUID, randomInt,
  timingSafeEqual, webcrypto, subtle, createCipheriv, createDecipheriv, createSign, createVerify, pbkdf2, pbkdf2Sync,
  scrypt, scryptSync, generateKeyPair, generateKeyPairSync, createPublicKey, createPrivateKey, createSecretKey,
  publicEncrypt, privateDecrypt, createECDH, createDiffieHellman,
};
