/**
 * CloudEvents 1.0 over HTTP: binary, structured and batched content modes in; binary headers and a
 * structured JSON body out. Attributes travel as strings (queue message attributes), data as bytes.
 *
 * The SDK's `HTTP.toEvent` is not used: as a receiver it invents attributes (a fresh id when id is empty,
 * the current time when time is absent or unparsable, specversion 1.0 when absent), accepts any
 * specversion and timestamps without an offset, drops `Ce-` headers that are not lower-case, neither
 * percent-decodes nor percent-encodes header values, parses JSON bodies of binary events (losing their
 * bytes) and decodes `data_base64` into a Uint32Array. So the attributes are checked here against the
 * spec, and the SDK's schema (a strict `CloudEvent`) only checks what it checks right: that source is a
 * URI-reference and dataschema an absolute URI, its errors naming the attribute.
 */
import { CloudEvent, ValidationError } from 'cloudevents';
import { EVENT_DEFAULTS, NODE_DEFAULTS } from '../core/defaults.ts';
import { ContinuumError } from '../core/errors.ts';

export interface ParsedCloudEvent {
  /** Context attributes in their canonical string form, except datacontenttype. */
  attributes: Record<string, string>;
  data: Uint8Array | null;
  /** The datacontenttype attribute: Content-Type of the data in binary mode. */
  dataContentType: string | null;
}

export type HeaderInput = ReadonlyArray<readonly [string, string]> | Readonly<Record<string, string>>;

const MAX_DATA_BYTES = EVENT_DEFAULTS.queue.maxMessageBytes;
// A structured event carries its data (base64 at worst) and no more attribute text than binary mode's
// headers could; the bound applies before JSON.parse.
const MAX_STRUCTURED_BYTES = Math.ceil(MAX_DATA_BYTES / 3) * 4 + NODE_DEFAULTS.http.maxHeaderBytes;
const MAX_BATCH = EVENT_DEFAULTS.queue.maxSendBatch;

const CORE_STRING_ATTRIBUTES = new Set(['id', 'source', 'specversion', 'type', 'datacontenttype', 'dataschema', 'subject', 'time']);
const ATTRIBUTE_NAME = /^[a-z0-9]{1,20}$/;
// The spec's String type excludes control characters and noncharacters; lone surrogates fail isWellFormed.
const FORBIDDEN_CHARS = /[\p{Cc}\p{Noncharacter_Code_Point}]/u;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const QUOTED = '"(?:[^"\\\\\\x00-\\x08\\x0a-\\x1f\\x7f]|\\\\[\\t\\x20-\\x7e\\x80-\\xff])*"';
// RFC 2046 media type as HTTP writes it (RFC 9110 §8.3.1): type/subtype *(OWS ";" OWS name=value).
const MEDIA_TYPE = new RegExp(`^${TOKEN}/${TOKEN}(?:[ \\t]*;[ \\t]*${TOKEN}=(?:${TOKEN}|${QUOTED}))*$`);
const CHARSET_PARAM = new RegExp(`;[ \\t]*charset=(${TOKEN}|${QUOTED})`, 'i');

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The events of a CloudEvents HTTP request: one, or a batch's (possibly none). The mode follows the
 * Content-Type (HTTP binding §3): `application/cloudevents+json` is structured,
 * `application/cloudevents-batch+json` batched, any other (or none) binary.
 */
export function parseCloudEvents(headers: HeaderInput, body: Uint8Array): ParsedCloudEvent[] {
  const entries = Array.isArray(headers) ? (headers as ReadonlyArray<readonly [string, string]>) : Object.entries(headers);
  const contentType = singleHeader(entries, 'content-type');
  const essence = contentType?.split(';', 1)[0]!.trim().toLowerCase() ?? '';
  if (essence.startsWith('application/cloudevents')) {
    const batch = essence.startsWith('application/cloudevents-batch');
    if (essence !== (batch ? 'application/cloudevents-batch+json' : 'application/cloudevents+json')) {
      throw new ContinuumError('unsupported_media_type', 'cloudevent: only the JSON event format is supported (application/cloudevents+json, application/cloudevents-batch+json)');
    }
    const charset = CHARSET_PARAM.exec(contentType!)?.[1]?.replaceAll('"', '').toLowerCase();
    if (charset !== undefined && charset !== 'utf-8') throw new ContinuumError('unsupported_media_type', 'cloudevent: JSON events must be UTF-8');
    const limit = batch ? MAX_BATCH * MAX_STRUCTURED_BYTES : MAX_STRUCTURED_BYTES;
    if (body.byteLength > limit) throw new ContinuumError('payload_too_large', `cloudevent: the body is ${body.byteLength} bytes; the limit is ${limit}`, { limit });
    const json = parseJsonBody(body);
    if (!batch) return [fromJson(json, null)];
    if (!Array.isArray(json)) throw new ContinuumError('bad_request', 'cloudevent: a batch must be a JSON array of events');
    if (json.length > MAX_BATCH) throw new ContinuumError('bad_request', `cloudevent: a batch holds at most ${MAX_BATCH} events`, { limit: MAX_BATCH });
    return json.map((item, i) => fromJson(item, i));
  }
  return [fromBinary(entries, contentType, body)];
}

/** Binary-mode headers for delivering an event over HTTP; the body is `event.data`. */
export function toBinaryHeaders(event: ParsedCloudEvent): Array<[string, string]> {
  const headers = Object.entries(event.attributes).map(([name, value]): [string, string] => [`ce-${name}`, percentEncode(value)]);
  if (event.dataContentType !== null) headers.push(['content-type', event.dataContentType]);
  return headers;
}

/**
 * The structured-mode JSON body (`application/cloudevents+json`). JSON data is spliced in as the bytes
 * it arrived as, neither re-parsed into objects nor re-serialised; other data goes as data_base64.
 */
export function toStructuredJson(event: ParsedCloudEvent): string {
  const attributes = event.dataContentType === null ? event.attributes : { ...event.attributes, datacontenttype: event.dataContentType };
  const head = JSON.stringify(attributes);
  if (event.data === null) return head;
  const member = jsonDataText(event) ?? `"data_base64":"${Buffer.from(event.data.buffer, event.data.byteOffset, event.data.byteLength).toString('base64')}"`;
  return head === '{}' ? `{${member}}` : `${head.slice(0, -1)},${member}}`;
}

function jsonDataText(event: ParsedCloudEvent): string | null {
  if (event.dataContentType === null || !isJsonMediaType(event.dataContentType)) return null;
  try {
    const text = strictUtf8.decode(event.data!);
    JSON.parse(text);
    return `"data":${text}`;
  } catch {
    return null;
  }
}

function fromBinary(entries: ReadonlyArray<readonly [string, string]>, contentType: string | null, body: Uint8Array): ParsedCloudEvent {
  const attributes: Record<string, string> = {};
  for (const [rawName, rawValue] of entries) {
    const lower = rawName.toLowerCase();
    if (!lower.startsWith('ce-')) continue;
    const name = lower.slice(3);
    checkName(name, null);
    if (name === 'datacontenttype') throw attributeError(null, name, 'must be sent as Content-Type in binary mode');
    if (Object.hasOwn(attributes, name)) throw attributeError(null, name, 'appears twice');
    attributes[name] = decodeHeaderValue(rawValue, name);
  }
  checkAttributes(attributes, null);
  if (contentType !== null) checkMediaType(contentType, null);
  checkDataSize(body.byteLength, null);
  return { attributes, data: body.byteLength > 0 ? body : null, dataContentType: contentType };
}

function fromJson(value: unknown, at: number | null): ParsedCloudEvent {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ContinuumError('bad_request', `${prefix(at)}: an event must be a JSON object`, at === null ? undefined : { pointer: String(at) });
  }
  const attributes: Record<string, string> = {};
  let dataContentType: string | null = null;
  for (const [name, v] of Object.entries(value)) {
    // A null attribute is unset (JSON format §2.2); data and data_base64 are not attributes.
    if (v === null || name === 'data' || name === 'data_base64') continue;
    checkName(name, at);
    const text = canonicalString(name, v, at);
    if (name === 'datacontenttype') dataContentType = text;
    else attributes[name] = text;
  }
  checkAttributes(attributes, at);
  if (dataContentType !== null) checkMediaType(dataContentType, at);

  const hasData = Object.hasOwn(value, 'data');
  const base64 = (value as { data_base64?: unknown }).data_base64;
  if (hasData && base64 !== undefined && base64 !== null) throw attributeError(at, 'data', 'and data_base64 must not both be present');
  if (base64 !== undefined && base64 !== null) {
    if (typeof base64 !== 'string' || !BASE64.test(base64)) throw attributeError(at, 'data_base64', 'must be base64 (RFC 4648)');
    const bytes = new Uint8Array(Buffer.from(base64, 'base64'));
    checkDataSize(bytes.byteLength, at);
    return { attributes, data: bytes, dataContentType };
  }
  if (!hasData) return { attributes, data: null, dataContentType };
  // Without datacontenttype, data is JSON; the re-serialised event says so explicitly (JSON format §3.1.2).
  dataContentType ??= 'application/json';
  const bytes = utf8.encode(dataText((value as { data: unknown }).data, dataContentType, at));
  checkDataSize(bytes.byteLength, at);
  return { attributes, data: bytes, dataContentType };
}

function dataText(data: unknown, contentType: string, at: number | null): string {
  if (!isJsonMediaType(contentType)) {
    if (typeof data !== 'string') throw attributeError(at, 'data', 'must be a string when datacontenttype is not JSON');
    return data;
  }
  try {
    return JSON.stringify(data);
  } catch (err) {
    // JSON.parse is iterative but JSON.stringify recurses: deeply nested data overflows the stack.
    if (err instanceof RangeError) throw attributeError(at, 'data', 'nests too deeply');
    throw err;
  }
}

/** The canonical string of a JSON attribute value (core spec, type system). */
function canonicalString(name: string, value: unknown, at: number | null): string {
  if (typeof value === 'string') return value;
  if (name === 'specversion') throw attributeError(at, name, 'must be "1.0"');
  if (CORE_STRING_ATTRIBUTES.has(name)) throw attributeError(at, name, 'must be a string');
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number' && Number.isInteger(value) && value >= -2147483648 && value <= 2147483647) return String(value);
  throw attributeError(at, name, 'must be a string, a boolean or a 32-bit integer');
}

function checkAttributes(attributes: Record<string, string>, at: number | null): void {
  const specversion = attributes.specversion;
  if (specversion === undefined) throw attributeError(at, 'specversion', 'is required');
  if (specversion !== '1.0') throw attributeError(at, 'specversion', 'must be "1.0"');
  for (const name of ['id', 'source', 'type']) {
    if (attributes[name] === undefined) throw attributeError(at, name, 'is required');
  }
  for (const [name, value] of Object.entries(attributes)) {
    if (FORBIDDEN_CHARS.test(value) || !value.isWellFormed()) throw attributeError(at, name, 'contains characters the spec forbids');
    if (value === '' && CORE_STRING_ATTRIBUTES.has(name)) throw attributeError(at, name, 'must not be empty');
  }
  if (attributes.time !== undefined && !isRfc3339(attributes.time)) throw attributeError(at, 'time', 'must be an RFC 3339 timestamp');
  checkUris(attributes, at);
}

function checkUris(attributes: Record<string, string>, at: number | null): void {
  const { specversion, id, type, source, dataschema } = attributes;
  try {
    new CloudEvent({ specversion, id, type, source, ...(dataschema === undefined ? {} : { dataschema }) }, true);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    const path = (err.errors?.[0] as { instancePath?: unknown } | undefined)?.instancePath;
    const name = typeof path === 'string' ? path.slice(1) : '';
    const problem = name === 'source' ? 'must be a URI-reference (RFC 3986)' : name === 'dataschema' ? 'must be an absolute URI (RFC 3986)' : 'is invalid';
    throw attributeError(at, name, problem);
  }
}

function checkName(name: string, at: number | null): void {
  if (!ATTRIBUTE_NAME.test(name)) {
    throw new ContinuumError('bad_request', `${prefix(at)}: attribute name ${JSON.stringify(name.slice(0, 40))} must be 1 to 20 of a-z, 0-9`, { pointer: pointer(at, name.slice(0, 40)) });
  }
  // Would collide with the data member of the structured form.
  if (name === 'data') throw attributeError(at, name, 'is reserved for the event data');
}

function checkMediaType(value: string, at: number | null): void {
  if (!MEDIA_TYPE.test(value)) throw attributeError(at, 'datacontenttype', 'must be a media type (RFC 2046)');
}

function checkDataSize(bytes: number, at: number | null): void {
  if (bytes > MAX_DATA_BYTES) {
    throw new ContinuumError('payload_too_large', `${prefix(at)}: data is ${bytes} bytes; the limit is ${MAX_DATA_BYTES}`, { pointer: pointer(at, 'data'), limit: MAX_DATA_BYTES });
  }
}

/** A media type declares JSON data when its subtype is json or ends in +json (JSON format §3.1.1). */
function isJsonMediaType(value: string): boolean {
  const essence = value.split(';', 1)[0]!.trim().toLowerCase();
  const subtype = essence.slice(essence.indexOf('/') + 1);
  return subtype === 'json' || subtype.endsWith('+json');
}

function isRfc3339(value: string): boolean {
  const m = RFC3339.exec(value);
  if (!m) return false;
  const [year, month, day, hour, minute, second, offsetHour, offsetMinute] = m.slice(1).map((s) => Number(s ?? 0)) as [number, number, number, number, number, number, number, number];
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const daysInMonth = month === 2 ? (leap ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31;
  // Second 60 is a leap second (RFC 3339 §5.7).
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth && hour <= 23 && minute <= 59 && second <= 60 && offsetHour <= 23 && offsetMinute <= 59;
}

/** HTTP binding §3.1.3.2: unescape double-quoted strings, then one round of percent-decoding. */
function decodeHeaderValue(raw: string, name: string): string {
  const value = raw.replace(/^[ \t]+|[ \t]+$/g, '');
  if (/[^\t\x20-\x7e]/.test(value)) throw attributeError(null, name, 'must be printable ASCII, percent-encoded');
  let text = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '"') quoted = !quoted;
    else if (quoted && c === '\\' && i + 1 < value.length) text += value[++i];
    else text += c;
  }
  if (quoted) throw attributeError(null, name, 'has an unterminated quoted string');
  try {
    // Rejects malformed escapes and invalid UTF-8, overlong forms included, as the binding requires.
    return decodeURIComponent(text);
  } catch {
    throw attributeError(null, name, 'is not valid percent-encoded UTF-8');
  }
}

/** Percent-encode space, double quote, percent and everything outside printable ASCII. */
function percentEncode(value: string): string {
  let out = '';
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (code > 0x20 && code < 0x7f && ch !== '"' && ch !== '%') {
      out += ch;
      continue;
    }
    for (const byte of utf8.encode(ch)) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function singleHeader(entries: ReadonlyArray<readonly [string, string]>, name: string): string | null {
  let found: string | null = null;
  for (const [key, value] of entries) {
    if (key.toLowerCase() !== name) continue;
    if (found !== null) throw new ContinuumError('bad_request', `cloudevent: the ${name} header appears twice`);
    found = value.trim();
  }
  return found;
}

function parseJsonBody(body: Uint8Array): unknown {
  try {
    return JSON.parse(strictUtf8.decode(body));
  } catch {
    throw new ContinuumError('bad_request', 'cloudevent: the body is not UTF-8 JSON');
  }
}

function prefix(at: number | null): string {
  return at === null ? 'cloudevent' : `cloudevent[${at}]`;
}

/** The attribute name; in a batch, the item index and the name. */
function pointer(at: number | null, name: string): string {
  return at === null ? name : `${at}/${name}`;
}

function attributeError(at: number | null, name: string, problem: string): ContinuumError {
  return new ContinuumError('bad_request', `${prefix(at)}: attribute ${name} ${problem}`, { pointer: pointer(at, name) });
}
