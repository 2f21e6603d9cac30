// The part of Node's `http` that request/response adapters (serverless-http, express, …) use in memory:
// IncomingMessage, ServerResponse (OutgoingMessage semantics: headers, writeHead, write/end through
// `socket.write`, 'finish'), STATUS_CODES and METHODS. Networking (request, get, listen) is unavailable
// on the isolate tier and throws.
import { EventEmitter } from 'events';
import { Readable, Stream } from 'stream';
import { Buffer } from 'buffer';
import { unavailable } from './unavailable.js';

const net = unavailable('http');

export const METHODS = ['ACL', 'BIND', 'CHECKOUT', 'CONNECT', 'COPY', 'DELETE', 'GET', 'HEAD', 'LINK', 'LOCK', 'M-SEARCH',
  'MERGE', 'MKACTIVITY', 'MKCALENDAR', 'MKCOL', 'MOVE', 'NOTIFY', 'OPTIONS', 'PATCH', 'POST', 'PROPFIND', 'PROPPATCH',
  'PURGE', 'PUT', 'QUERY', 'REBIND', 'REPORT', 'SEARCH', 'SOURCE', 'SUBSCRIBE', 'TRACE', 'UNBIND', 'UNLINK', 'UNLOCK',
  'UNSUBSCRIBE'];

export const STATUS_CODES = {
  100: 'Continue', 101: 'Switching Protocols', 102: 'Processing', 103: 'Early Hints',
  200: 'OK', 201: 'Created', 202: 'Accepted', 203: 'Non-Authoritative Information', 204: 'No Content',
  205: 'Reset Content', 206: 'Partial Content', 207: 'Multi-Status', 208: 'Already Reported', 226: 'IM Used',
  300: 'Multiple Choices', 301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 304: 'Not Modified',
  305: 'Use Proxy', 307: 'Temporary Redirect', 308: 'Permanent Redirect',
  400: 'Bad Request', 401: 'Unauthorized', 402: 'Payment Required', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 406: 'Not Acceptable', 407: 'Proxy Authentication Required', 408: 'Request Timeout',
  409: 'Conflict', 410: 'Gone', 411: 'Length Required', 412: 'Precondition Failed', 413: 'Payload Too Large',
  414: 'URI Too Long', 415: 'Unsupported Media Type', 416: 'Range Not Satisfiable', 417: 'Expectation Failed',
  418: "I'm a Teapot", 421: 'Misdirected Request', 422: 'Unprocessable Entity', 423: 'Locked', 424: 'Failed Dependency',
  425: 'Too Early', 426: 'Upgrade Required', 428: 'Precondition Required', 429: 'Too Many Requests',
  431: 'Request Header Fields Too Large', 451: 'Unavailable For Legal Reasons',
  500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable',
  504: 'Gateway Timeout', 505: 'HTTP Version Not Supported', 506: 'Variant Also Negotiates', 507: 'Insufficient Storage',
  508: 'Loop Detected', 509: 'Bandwidth Limit Exceeded', 510: 'Not Extended', 511: 'Network Authentication Required',
};

function headersSentError(what) {
  const err = new Error(`Cannot ${what} headers after they are sent to the client`);
  err.code = 'ERR_HTTP_HEADERS_SENT';
  return err;
}

export class IncomingMessage extends Readable {
  constructor(socket) {
    super();
    this.socket = socket ?? null;
    this.httpVersionMajor = 1;
    this.httpVersionMinor = 1;
    this.httpVersion = '1.1';
    this.complete = false;
    this.rawHeaders = [];
    this.rawTrailers = [];
    this.headers = {};
    this.trailers = {};
    this.aborted = false;
    this.upgrade = false;
    this.url = '';
    this.method = null;
    this.statusCode = null;
    this.statusMessage = null;
  }
  get connection() { return this.socket; }
  set connection(v) { this.socket = v; }
  get headersDistinct() {
    const out = Object.create(null);
    for (const [k, v] of Object.entries(this.headers)) out[k] = Array.isArray(v) ? v : [String(v)];
    return out;
  }
  _read() {}
  setTimeout(_ms, cb) { if (cb) this.once('timeout', cb); return this; }
}

const kHeaders = Symbol('outHeaders');

export class OutgoingMessage extends Stream {
  constructor() {
    super();
    this[kHeaders] = null;
    this._header = null;
    this._headerSent = false;
    this.finished = false;
    this.writableEnded = false;
    this.writableFinished = false;
    this.destroyed = false;
    this.sendDate = false;
    this.chunkedEncoding = false;
    this.useChunkedEncodingByDefault = true;
    this.socket = null;
    this.outputData = [];
    this.writable = true;
  }
  get connection() { return this.socket; }
  get headersSent() { return !!this._header; }
  get writableCorked() { return 0; }
  get writableLength() { return 0; }
  get writableHighWaterMark() { return 16384; }
  get writableObjectMode() { return false; }
  setHeader(name, value) {
    if (this._header) throw headersSentError('set');
    if (!this[kHeaders]) this[kHeaders] = Object.create(null);
    this[kHeaders][String(name).toLowerCase()] = [String(name), value];
    return this;
  }
  appendHeader(name, value) {
    const prev = this.getHeader(name);
    if (prev === undefined) return this.setHeader(name, value);
    return this.setHeader(name, [].concat(prev, value));
  }
  setHeaders(headers) {
    for (const [k, v] of headers instanceof Map || typeof headers?.entries === 'function' ? headers.entries() : Object.entries(headers)) this.setHeader(k, v);
    return this;
  }
  getHeader(name) { return this[kHeaders]?.[String(name).toLowerCase()]?.[1]; }
  getHeaders() {
    const out = Object.create(null);
    if (this[kHeaders]) for (const key of Object.keys(this[kHeaders])) out[key] = this[kHeaders][key][1];
    return out;
  }
  getHeaderNames() { return this[kHeaders] ? Object.keys(this[kHeaders]) : []; }
  getRawHeaderNames() { return this[kHeaders] ? Object.values(this[kHeaders]).map(([n]) => n) : []; }
  hasHeader(name) { return !!this[kHeaders]?.[String(name).toLowerCase()]; }
  removeHeader(name) {
    if (this._header) throw headersSentError('remove');
    if (this[kHeaders]) delete this[kHeaders][String(name).toLowerCase()];
  }
  flushHeaders() { if (!this._header) this._implicitHeader(); this._send(''); }
  setTimeout(_ms, cb) { if (cb) this.once('timeout', cb); return this; }
  cork() {}
  uncork() {}
  addTrailers() {}
  destroy(err) {
    if (this.destroyed) return this;
    this.destroyed = true;
    if (err) queueMicrotask(() => this.emit('error', err));
    queueMicrotask(() => this.emit('close'));
    return this;
  }
  _storeHeader(firstLine, extra) {
    let head = firstLine;
    const all = { ...this.getHeadersRaw(), ...extra };
    for (const [name, value] of Object.values(all)) {
      for (const v of Array.isArray(value) ? value : [value]) head += `${name}: ${v}\r\n`;
    }
    this._header = `${head}\r\n`;
    this._headerSent = false;
  }
  getHeadersRaw() { return this[kHeaders] ? { ...this[kHeaders] } : {}; }
  _writeRaw(data, encoding, cb) {
    const conn = this.socket;
    if (conn && !conn.destroyed && typeof conn.write === 'function') return conn.write(data, encoding, cb);
    this.outputData.push({ data, encoding, callback: cb });
    return false;
  }
  _send(data, encoding, cb) {
    if (!this._headerSent && this._header) {
      if (typeof data === 'string' && (!encoding || encoding === 'utf8' || encoding === 'utf-8' || encoding === 'latin1')) {
        data = this._header + data;
      } else {
        this._writeRaw(this._header, 'latin1');
      }
      this._headerSent = true;
    }
    return this._writeRaw(data, encoding, cb);
  }
  write(chunk, encoding, cb) {
    if (typeof encoding === 'function') { cb = encoding; encoding = undefined; }
    if (this.finished) {
      const err = new Error('write after end');
      err.code = 'ERR_STREAM_WRITE_AFTER_END';
      queueMicrotask(() => { cb?.(err); this.emit('error', err); });
      return false;
    }
    if (!this._header) this._implicitHeader();
    if (chunk === undefined || chunk === null || chunk.length === 0) { if (cb) queueMicrotask(cb); return true; }
    return this._send(chunk, encoding, cb);
  }
  end(chunk, encoding, cb) {
    if (typeof chunk === 'function') { cb = chunk; chunk = undefined; encoding = undefined; }
    else if (typeof encoding === 'function') { cb = encoding; encoding = undefined; }
    if (this.finished) { if (cb) queueMicrotask(cb); return this; }
    if (!this._header) {
      if (chunk !== undefined && chunk !== null && !this.hasHeader('content-length')) {
        this.setHeader('Content-Length', typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.length);
      }
      this._implicitHeader();
    }
    if (chunk !== undefined && chunk !== null && chunk.length > 0) this._send(chunk, encoding);
    else if (!this._headerSent) this._send('', 'latin1');
    this.finished = true;
    this.writableEnded = true;
    this.writable = false;
    if (cb) this.once('finish', cb);
    this.emit('prefinish');
    queueMicrotask(() => {
      this.writableFinished = true;
      this.emit('finish');
    });
    return this;
  }
}

export class ServerResponse extends OutgoingMessage {
  constructor(req, options) {
    super(options);
    this.req = req ?? null;
    this.statusCode = 200;
    this.statusMessage = undefined;
    this.sendDate = true;
    if (req?.method === 'HEAD') this._hasBody = false;
  }
  assignSocket(socket) {
    this.socket = socket;
    this.emit('socket', socket);
    for (const { data, encoding, callback } of this.outputData.splice(0)) socket.write(data, encoding, callback);
  }
  detachSocket() { this.socket = null; }
  writeContinue() {}
  writeProcessing() {}
  writeEarlyHints() {}
  _implicitHeader() { this.writeHead(this.statusCode); }
  writeHead(statusCode, reason, obj) {
    if (this._header) throw headersSentError('write');
    if (typeof reason !== 'string') { obj = reason; reason = undefined; }
    this.statusCode = statusCode | 0;
    if (this.statusCode < 100 || this.statusCode > 999) {
      const err = new RangeError(`Invalid status code: ${statusCode}`);
      err.code = 'ERR_HTTP_INVALID_STATUS_CODE';
      throw err;
    }
    this.statusMessage = reason ?? this.statusMessage ?? STATUS_CODES[this.statusCode] ?? 'unknown';
    if (Array.isArray(obj)) {
      for (let i = 0; i + 1 < obj.length; i += 2) this.appendHeader(obj[i], obj[i + 1]);
    } else if (obj) {
      for (const k of Object.keys(obj)) if (obj[k] !== undefined) this.setHeader(k, obj[k]);
    }
    this._storeHeader(`HTTP/1.1 ${this.statusCode} ${this.statusMessage}\r\n`);
    return this;
  }
}

export class Agent extends EventEmitter {
  constructor(options) { super(); this.options = { ...options }; this.requests = {}; this.sockets = {}; this.freeSockets = {}; }
  destroy() {}
}
export const globalAgent = new Agent();

export class Server extends EventEmitter {
  constructor(options, listener) {
    super();
    if (typeof options === 'function') listener = options;
    if (listener) this.on('request', listener);
  }
  listen() { net.listen(); }
  close(cb) { if (cb) queueMicrotask(cb); return this; }
  address() { return null; }
  setTimeout() { return this; }
}
export const createServer = (options, listener) => new Server(options, listener);
export const request = (...args) => net.request(...args);
export const get = (...args) => net.get(...args);
export const ClientRequest = net.ClientRequest;
export const validateHeaderName = () => {};
export const validateHeaderValue = () => {};
export const maxHeaderSize = 16384;

export default {
  METHODS, STATUS_CODES, IncomingMessage, OutgoingMessage, ServerResponse, Agent, globalAgent, Server, createServer,
  request, get, ClientRequest, validateHeaderName, validateHeaderValue, maxHeaderSize,
};
