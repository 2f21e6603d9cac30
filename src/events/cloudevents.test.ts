import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { EVENT_DEFAULTS } from '../core/defaults.ts';
import { ContinuumError, type ErrorCode } from '../core/errors.ts';
import { parseCloudEvents, toBinaryHeaders, toStructuredJson, type HeaderInput, type ParsedCloudEvent } from './cloudevents.ts';

// Requests travel over a real socket to a real node:http server, which hands over rawHeaders and the
// body the way the ingress does.
interface Received {
  headers: Array<[string, string]>;
  body: Uint8Array;
}
let server: Server;
const waiting: Array<(r: Received) => void> = [];

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Array<[string, string]> = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
      waiting.shift()!({ headers, body: new Uint8Array(Buffer.concat(chunks)) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** POST the given header lines and body as raw HTTP/1.1 bytes. */
async function post(headerLines: string[], body: string | Uint8Array = ''): Promise<Received> {
  const bytes = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body);
  const head = ['POST /someresource HTTP/1.1', 'Host: webhook.example.com', ...headerLines, `Content-Length: ${bytes.byteLength}`, 'Connection: close', '', ''].join('\r\n');
  const received = new Promise<Received>((resolve) => waiting.push(resolve));
  const { port } = server.address() as AddressInfo;
  const socket = connect(port, '127.0.0.1', () => socket.end(Buffer.concat([Buffer.from(head), bytes])));
  socket.resume();
  return received;
}

async function parsePosted(headerLines: string[], body: string | Uint8Array = ''): Promise<ParsedCloudEvent[]> {
  const r = await post(headerLines, body);
  return parseCloudEvents(r.headers, r.body);
}

const text = (s: string) => new TextEncoder().encode(s);
const thrift = new Uint8Array([0x80, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0xff, 0x00, 0x7f]);
const thriftBase64 = Buffer.from(thrift).toString('base64');

// The binary-mode headers of the JSON format spec's examples (§3.2), minus id and content type.
const specHeaders = ['ce-specversion: 1.0', 'ce-type: com.example.someevent', 'ce-source: /mycontext', 'ce-time: 2018-04-05T17:31:00Z', 'ce-comexampleextension1: value', 'ce-comexampleothervalue: 5'];
const specAttributes = { specversion: '1.0', type: 'com.example.someevent', source: '/mycontext', time: '2018-04-05T17:31:00Z', comexampleextension1: 'value', comexampleothervalue: '5' };

function rejects(fn: () => unknown, code: ErrorCode, pointer: string | undefined, message: RegExp, name: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ContinuumError, `${name}: ${String(e)}`);
    assert.equal(e.code, code, `${name}: ${e.message}`);
    assert.equal(e.details?.pointer, pointer, `${name}: ${e.message}`);
    assert.match(e.message, message, name);
    return true;
  }, name);
}

test('binary mode: the spec examples', async () => {
  const rows: Array<[string, string[], string | Uint8Array, ParsedCloudEvent]> = [
    [
      'HTTP binding §3.1.4: JSON data, charset parameter',
      ['ce-specversion: 1.0', 'ce-type: com.example.someevent', 'ce-time: 2018-04-05T03:56:24Z', 'ce-id: 1234-1234-1234', 'ce-source: /mycontext/subcontext', 'Content-Type: application/json; charset=utf-8'],
      '{\n    "appinfoA" : "abc"\n}',
      {
        attributes: { specversion: '1.0', type: 'com.example.someevent', time: '2018-04-05T03:56:24Z', id: '1234-1234-1234', source: '/mycontext/subcontext' },
        data: text('{\n    "appinfoA" : "abc"\n}'),
        dataContentType: 'application/json; charset=utf-8',
      },
    ],
    [
      'JSON format §3.2: binary data (thrift) stays bytes',
      [...specHeaders, 'ce-id: A234-1234-1234', 'content-type: application/vnd.apache.thrift.binary'],
      thrift,
      { attributes: { ...specAttributes, id: 'A234-1234-1234' }, data: thrift, dataContentType: 'application/vnd.apache.thrift.binary' },
    ],
    [
      'JSON format §3.2: XML data',
      [...specHeaders, 'ce-id: B234-1234-1234', 'content-type: application/xml'],
      '<much wow="xml"/>',
      { attributes: { ...specAttributes, id: 'B234-1234-1234' }, data: text('<much wow="xml"/>'), dataContentType: 'application/xml' },
    ],
    [
      'JSON format §3.2: a literal JSON string',
      [...specHeaders, 'ce-id: D234-1234-1234', 'content-type: application/json'],
      '"I\'m just a string"',
      { attributes: { ...specAttributes, id: 'D234-1234-1234' }, data: text('"I\'m just a string"'), dataContentType: 'application/json' },
    ],
    [
      'header names in any case; no body, no content type',
      ['Ce-Specversion: 1.0', 'CE-ID: 42', 'Ce-Source: urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66', 'ce-TYPE: t', 'Ce-ComExampleExt: x'],
      '',
      { attributes: { specversion: '1.0', id: '42', source: 'urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66', type: 't', comexampleext: 'x' }, data: null, dataContentType: null },
    ],
    [
      'HTTP binding §3.1.3.2: percent-encoded and quoted values; optional attributes',
      [
        'ce-specversion: 1.0', 'ce-id: 1', 'ce-source: https://github.com/cloudevents', 'ce-type: t',
        'ce-subject: Euro%20%e2%82%ac%20%F0%9F%98%80', 'ce-quoted: "a \\"quoted\\" value"', 'ce-dataschema: https://example.com/schema.json',
        'ce-time: 2016-12-31T23:59:60.123456+01:00', 'content-type: text/plain',
      ],
      'hi',
      {
        attributes: {
          specversion: '1.0', id: '1', source: 'https://github.com/cloudevents', type: 't', subject: 'Euro € 😀', quoted: 'a "quoted" value',
          dataschema: 'https://example.com/schema.json', time: '2016-12-31T23:59:60.123456+01:00',
        },
        data: text('hi'),
        dataContentType: 'text/plain',
      },
    ],
  ];
  for (const [name, headers, body, expected] of rows) assert.deepEqual(await parsePosted(headers, body), [expected], name);
});

test('binary mode: invalid events name the failing attribute', async () => {
  const ok = ['ce-specversion: 1.0', 'ce-id: 1', 'ce-source: /s', 'ce-type: t'];
  const without = (name: string) => ok.filter((h) => !h.startsWith(`ce-${name}:`));
  const rows: Array<[string, string[], string, RegExp]> = [
    ['no specversion', without('specversion'), 'specversion', /specversion is required/],
    ['specversion 0.3', [...without('specversion'), 'ce-specversion: 0.3'], 'specversion', /specversion must be "1.0"/],
    ['specversion 2.0', [...without('specversion'), 'ce-specversion: 2.0'], 'specversion', /specversion must be "1.0"/],
    ['no id', without('id'), 'id', /id is required/],
    ['empty id', [...without('id'), 'ce-id: '], 'id', /id must not be empty/],
    ['no source', without('source'), 'source', /source is required/],
    ['empty source', [...without('source'), 'ce-source:'], 'source', /source must not be empty/],
    ['source with a space', [...without('source'), 'ce-source: a%20b'], 'source', /URI-reference/],
    ['source with a bad escape', [...without('source'), 'ce-source: http://x/%25zz'], 'source', /URI-reference/],
    ['no type', without('type'), 'type', /type is required/],
    ['empty type', [...without('type'), 'ce-type: '], 'type', /type must not be empty/],
    ['time in words', [...ok, 'ce-time: yesterday'], 'time', /RFC 3339/],
    ['time without an offset', [...ok, 'ce-time: 2018-04-05T17:31:00'], 'time', /RFC 3339/],
    ['time with a space for T', [...ok, 'ce-time: 2018-04-05%2017:31:00Z'], 'time', /RFC 3339/],
    ['time as a date only', [...ok, 'ce-time: 2018-04-05'], 'time', /RFC 3339/],
    ['time on February 30', [...ok, 'ce-time: 2018-02-30T17:31:00Z'], 'time', /RFC 3339/],
    ['time at hour 24', [...ok, 'ce-time: 2018-04-05T24:00:00Z'], 'time', /RFC 3339/],
    ['time with an offset lacking its colon', [...ok, 'ce-time: 2018-04-05T17:31:00+0100'], 'time', /RFC 3339/],
    ['relative dataschema', [...ok, 'ce-dataschema: schema.json'], 'dataschema', /absolute URI/],
    ['empty subject', [...ok, 'ce-subject: '], 'subject', /subject must not be empty/],
    ['datacontenttype as a ce- header', [...ok, 'ce-datacontenttype: application/json'], 'datacontenttype', /Content-Type in binary mode/],
    ['content type that is not a media type', [...ok, 'content-type: json'], 'datacontenttype', /media type/],
    ['extension name with an underscore', [...ok, 'ce-my_ext: v'], 'my_ext', /a-z, 0-9/],
    ['extension name over 20 characters', [...ok, 'ce-abcdefghijklmnopqrstu: v'], 'abcdefghijklmnopqrstu', /a-z, 0-9/],
    ['extension named data', [...ok, 'ce-data: v'], 'data', /reserved/],
    ['id given twice', [...ok, 'ce-id: 2'], 'id', /appears twice/],
    ['a bare percent sign', [...ok, 'ce-subject: 100%'], 'subject', /percent-encoded UTF-8/],
    ['an overlong UTF-8 encoding', [...ok, 'ce-subject: %C0%A0'], 'subject', /percent-encoded UTF-8/],
    ['an encoded surrogate', [...ok, 'ce-subject: %ED%A0%80'], 'subject', /percent-encoded UTF-8/],
    ['an encoded control character', [...ok, 'ce-subject: a%00b'], 'subject', /forbids/],
    ['an encoded noncharacter', [...ok, 'ce-comexampleext: %EF%BF%BF'], 'comexampleext', /forbids/],
    ['an unterminated quoted string', [...ok, 'ce-subject: "abc'], 'subject', /quoted/],
  ];
  for (const [name, headers, pointer, message] of rows) {
    const r = await post(headers, '{}');
    rejects(() => parseCloudEvents(r.headers, r.body), 'bad_request', pointer, message, name);
  }
});

test('binary mode: header input as a record, raw non-ASCII, size bound', () => {
  const headers = { 'ce-specversion': '1.0', 'ce-id': '1', 'ce-source': '/s', 'ce-type': 't', 'Content-Type': 'application/octet-stream' };
  assert.deepEqual(parseCloudEvents(headers, thrift), [{ attributes: { specversion: '1.0', id: '1', source: '/s', type: 't' }, data: thrift, dataContentType: 'application/octet-stream' }]);
  rejects(() => parseCloudEvents({ ...headers, 'ce-subject': 'Größe' }, thrift), 'bad_request', 'subject', /percent-encoded/, 'raw non-ASCII');
  rejects(() => parseCloudEvents([['content-type', 'text/plain'], ['Content-Type', 'text/plain']], thrift), 'bad_request', undefined, /content-type header appears twice/, 'two content types');
  const max = EVENT_DEFAULTS.queue.maxMessageBytes;
  assert.equal(parseCloudEvents(headers, new Uint8Array(max))[0]!.data!.byteLength, max);
  rejects(() => parseCloudEvents(headers, new Uint8Array(max + 1)), 'payload_too_large', 'data', /limit/, 'data over the limit');
});

const structured = ['Content-Type: application/cloudevents+json; charset=utf-8'];

test('structured mode: the spec examples', async () => {
  const spec = { specversion: '1.0', type: 'com.example.someevent', source: '/mycontext', time: '2018-04-05T17:31:00Z', comexampleextension1: 'value', comexampleothervalue: 5 };
  const rows: Array<[string, string[], object, ParsedCloudEvent]> = [
    [
      'binary data as data_base64',
      structured,
      { ...spec, id: 'A234-1234-1234', datacontenttype: 'application/vnd.apache.thrift.binary', data_base64: thriftBase64 },
      { attributes: { ...specAttributes, id: 'A234-1234-1234' }, data: thrift, dataContentType: 'application/vnd.apache.thrift.binary' },
    ],
    [
      'XML data as a string; a null extension is unset',
      structured,
      { ...spec, id: 'B234-1234-1234', unsetextension: null, datacontenttype: 'application/xml', data: '<much wow="xml"/>' },
      { attributes: { ...specAttributes, id: 'B234-1234-1234' }, data: text('<much wow="xml"/>'), dataContentType: 'application/xml' },
    ],
    [
      'JSON object data; a null subject is unset',
      structured,
      { ...spec, subject: null, id: 'C234-1234-1234', datacontenttype: 'application/json', data: { appinfoA: 'abc', appinfoB: 123, appinfoC: true } },
      { attributes: { ...specAttributes, id: 'C234-1234-1234' }, data: text('{"appinfoA":"abc","appinfoB":123,"appinfoC":true}'), dataContentType: 'application/json' },
    ],
    [
      'a string without datacontenttype is JSON, and says so',
      structured,
      { ...spec, subject: null, id: 'D234-1234-1234', data: "I'm just a string" },
      { attributes: { ...specAttributes, id: 'D234-1234-1234' }, data: text('"I\'m just a string"'), dataContentType: 'application/json' },
    ],
    [
      'JSON null data is a payload, distinct from no data',
      ['content-type: Application/CloudEvents+JSON'],
      { specversion: '1.0', id: '1', source: '/s', type: 't', datacontenttype: 'application/vnd.api+json', data: null },
      { attributes: { specversion: '1.0', id: '1', source: '/s', type: 't' }, data: text('null'), dataContentType: 'application/vnd.api+json' },
    ],
    [
      'no data; boolean and integer extensions in their canonical strings',
      ['content-type: application/cloudevents+json'],
      { specversion: '1.0', id: '1', source: '/s', type: 't', flag: false, big: -2147483648 },
      { attributes: { specversion: '1.0', id: '1', source: '/s', type: 't', flag: 'false', big: '-2147483648' }, data: null, dataContentType: null },
    ],
  ];
  for (const [name, headers, event, expected] of rows) assert.deepEqual(await parsePosted(headers, JSON.stringify(event)), [expected], name);
});

test('structured mode: invalid events name the failing attribute', async () => {
  const ok = { specversion: '1.0', id: '1', source: '/s', type: 't' };
  const without = (name: string) => Object.fromEntries(Object.entries(ok).filter(([k]) => k !== name));
  const rows: Array<[string, object, string, RegExp]> = [
    ['no specversion', without('specversion'), 'specversion', /specversion is required/],
    ['specversion as a number', { ...ok, specversion: 1.0 }, 'specversion', /must be "1.0"/],
    ['specversion 0.3', { ...ok, specversion: '0.3' }, 'specversion', /must be "1.0"/],
    ['no id', without('id'), 'id', /id is required/],
    ['null id', { ...ok, id: null }, 'id', /id is required/],
    ['id as a number', { ...ok, id: 1 }, 'id', /id must be a string/],
    ['empty id', { ...ok, id: '' }, 'id', /id must not be empty/],
    ['no source', without('source'), 'source', /source is required/],
    ['source not a URI-reference', { ...ok, source: 'not a uri' }, 'source', /URI-reference/],
    ['source with non-ASCII', { ...ok, source: '/ü' }, 'source', /URI-reference/],
    ['no type', without('type'), 'type', /type is required/],
    ['type as a number', { ...ok, type: 42 }, 'type', /type must be a string/],
    ['time as a number', { ...ok, time: 1522949460 }, 'time', /time must be a string/],
    ['time as a date only', { ...ok, time: '2018-04-05' }, 'time', /RFC 3339/],
    ['time with a lower-case z and no seconds', { ...ok, time: '2018-04-05T17:31z' }, 'time', /RFC 3339/],
    ['subject as a boolean', { ...ok, subject: true }, 'subject', /subject must be a string/],
    ['relative dataschema', { ...ok, dataschema: '/schema.json' }, 'dataschema', /absolute URI/],
    ['datacontenttype without a subtype', { ...ok, datacontenttype: 'application' }, 'datacontenttype', /media type/],
    ['datacontenttype with a space', { ...ok, datacontenttype: 'application json' }, 'datacontenttype', /media type/],
    ['a fractional extension', { ...ok, comexampleothervalue: 1.5 }, 'comexampleothervalue', /32-bit integer/],
    ['an extension beyond 32 bits', { ...ok, big: 2147483648 }, 'big', /32-bit integer/],
    ['an object extension', { ...ok, nested: { a: 1 } }, 'nested', /32-bit integer/],
    ['an upper-case attribute name', { ...ok, Subject: 'x' }, 'Subject', /a-z, 0-9/],
    ['an attribute name over 20 characters', { ...ok, comexampleextension12: 'x' }, 'comexampleextension12', /a-z, 0-9/],
    ['a __proto__ member', JSON.parse('{"specversion":"1.0","id":"1","source":"/s","type":"t","__proto__":"x"}'), '__proto__', /a-z, 0-9/],
    ['data and data_base64 together', { ...ok, data: 'a', data_base64: 'YQ==' }, 'data', /must not both/],
    ['data_base64 without padding', { ...ok, data_base64: 'YQ' }, 'data_base64', /base64/],
    ['data_base64 as a number', { ...ok, data_base64: 12 }, 'data_base64', /base64/],
    ['non-JSON data that is not a string', { ...ok, datacontenttype: 'text/plain', data: { a: 1 } }, 'data', /must be a string/],
    ['an extension with a control character', { ...ok, comexampleext: 'a\u0007b' }, 'comexampleext', /forbids/],
    ['an id with a lone surrogate', { ...ok, id: 'a\ud800' }, 'id', /forbids/],
  ];
  for (const [name, event, pointer, message] of rows) {
    const r = await post(structured, JSON.stringify(event));
    rejects(() => parseCloudEvents(r.headers, r.body), 'bad_request', pointer, message, name);
  }
});

test('structured mode: bodies that are not one JSON event, formats we do not read, size bounds', () => {
  const ct = (value: string) => [['content-type', value]] as HeaderInput;
  const event = text(JSON.stringify({ specversion: '1.0', id: '1', source: '/s', type: 't' }));
  const deep = text(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
  const rows: Array<[string, HeaderInput, Uint8Array, ErrorCode, string | undefined, RegExp]> = [
    ['not JSON', ct('application/cloudevents+json'), text('{"id":'), 'bad_request', undefined, /not UTF-8 JSON/],
    ['not UTF-8', ct('application/cloudevents+json'), new Uint8Array([0x7b, 0xff, 0x7d]), 'bad_request', undefined, /not UTF-8 JSON/],
    ['an array in structured mode', ct('application/cloudevents+json'), text('[]'), 'bad_request', undefined, /JSON object/],
    ['data nested past the stack', ct('application/cloudevents+json'), deep, 'bad_request', 'data', /nests too deeply/],
    ['Avro format', ct('application/cloudevents+avro'), event, 'unsupported_media_type', undefined, /JSON event format/],
    ['a bare cloudevents media type', ct('application/cloudevents'), event, 'unsupported_media_type', undefined, /JSON event format/],
    ['Avro batch', ct('application/cloudevents-batch+avro'), event, 'unsupported_media_type', undefined, /JSON event format/],
    ['Latin-1 JSON', ct('application/cloudevents+json; charset=ISO-8859-1'), event, 'unsupported_media_type', undefined, /UTF-8/],
  ];
  for (const [name, headers, body, code, pointer, message] of rows) rejects(() => parseCloudEvents(headers, body), code, pointer, message, name);
  assert.equal(parseCloudEvents(ct('application/cloudevents+json; charset="UTF-8"'), event).length, 1, 'quoted charset');

  const max = EVENT_DEFAULTS.queue.maxMessageBytes;
  const withData = (bytes: number) => text(JSON.stringify({ specversion: '1.0', id: '1', source: '/s', type: 't', data_base64: Buffer.alloc(bytes, 7).toString('base64') }));
  assert.equal(parseCloudEvents(ct('application/cloudevents+json'), withData(max))[0]!.data!.byteLength, max);
  rejects(() => parseCloudEvents(ct('application/cloudevents+json'), withData(max + 1)), 'payload_too_large', 'data', /limit/, 'data over the limit');
  const huge = new Uint8Array(2 * max + 64 * 1024).fill(0x20);
  rejects(() => parseCloudEvents(ct('application/cloudevents+json'), huge), 'payload_too_large', undefined, /body is/, 'body over the bound, refused before parsing');
});

test('batch mode: the spec example, an empty batch, and errors naming the item', async () => {
  const batch = ['Content-Type: application/cloudevents-batch+json; charset=UTF-8'];
  const events = [
    { specversion: '1.0', type: 'com.example.someevent', source: '/mycontext/4', id: 'B234-1234-1234', time: '2018-04-05T17:31:00Z', datacontenttype: 'application/vnd.apache.thrift.binary', data_base64: thriftBase64 },
    { specversion: '1.0', type: 'com.example.someotherevent', source: '/mycontext/9', id: 'C234-1234-1234', time: '2018-04-05T17:31:05Z', datacontenttype: 'application/json', data: { appinfoA: 'abc' } },
  ];
  assert.deepEqual(await parsePosted(batch, JSON.stringify(events)), [
    { attributes: { specversion: '1.0', type: 'com.example.someevent', source: '/mycontext/4', id: 'B234-1234-1234', time: '2018-04-05T17:31:00Z' }, data: thrift, dataContentType: 'application/vnd.apache.thrift.binary' },
    { attributes: { specversion: '1.0', type: 'com.example.someotherevent', source: '/mycontext/9', id: 'C234-1234-1234', time: '2018-04-05T17:31:05Z' }, data: text('{"appinfoA":"abc"}'), dataContentType: 'application/json' },
  ]);
  assert.deepEqual(await parsePosted(batch, '[]'), []);

  const ct = [['content-type', 'application/cloudevents-batch+json']] as HeaderInput;
  const bad = [events[0], { ...events[1], id: '' }];
  rejects(() => parseCloudEvents(ct, text(JSON.stringify(bad))), 'bad_request', '1/id', /^cloudevent\[1\]: attribute id must not be empty$/, 'second event invalid');
  rejects(() => parseCloudEvents(ct, text('[1]')), 'bad_request', '0', /JSON object/, 'an item that is not an object');
  rejects(() => parseCloudEvents(ct, text(JSON.stringify(events[0]))), 'bad_request', undefined, /JSON array/, 'an object, not an array');
  const tooMany = JSON.stringify(Array.from({ length: EVENT_DEFAULTS.queue.maxSendBatch + 1 }, (_, i) => ({ ...events[1], id: String(i) })));
  rejects(() => parseCloudEvents(ct, text(tooMany)), 'bad_request', undefined, /at most 100 events/, 'more events than one send takes');
});

test('toBinaryHeaders percent-encodes what HTTP headers cannot carry', () => {
  const event: ParsedCloudEvent = {
    attributes: { specversion: '1.0', id: 'x', source: '/s', type: 't', subject: 'Euro € 😀', quote: 'say "hi" 100%' },
    data: text('<a/>'),
    dataContentType: 'application/xml',
  };
  assert.deepEqual(toBinaryHeaders(event), [
    ['ce-specversion', '1.0'],
    ['ce-id', 'x'],
    ['ce-source', '/s'],
    ['ce-type', 't'],
    ['ce-subject', 'Euro%20%E2%82%AC%20%F0%9F%98%80'],
    ['ce-quote', 'say%20%22hi%22%20100%25'],
    ['content-type', 'application/xml'],
  ]);
  assert.deepEqual(toBinaryHeaders({ ...event, dataContentType: null }).at(-1), ['ce-quote', 'say%20%22hi%22%20100%25'], 'no content type without one');
});

test('binary and structured renderings parse back to the same event, over HTTP', async () => {
  const events: ParsedCloudEvent[] = [
    { attributes: { specversion: '1.0', id: 'ä/1', source: 'mailto:a@b.example', type: 't', subject: 'Euro € 😀 "q" 100%', time: '2018-04-05T17:31:00Z', n: '5' }, data: thrift, dataContentType: 'application/octet-stream' },
    { attributes: { specversion: '1.0', id: '2', source: '/s', type: 't' }, data: text('{"a":[1,2,{"b":null}]}'), dataContentType: 'application/json' },
    { attributes: { specversion: '1.0', id: '3', source: '/s', type: 't' }, data: null, dataContentType: null },
  ];
  for (const event of events) {
    const lines = toBinaryHeaders(event).map(([k, v]) => `${k}: ${v}`);
    assert.deepEqual(await parsePosted(lines, event.data ?? ''), [event], `binary ${event.attributes.id}`);
    assert.deepEqual(await parsePosted(['content-type: application/cloudevents+json'], toStructuredJson(event)), [event], `structured ${event.attributes.id}`);
  }
});

test('toStructuredJson: JSON data spliced in as it arrived, anything else as data_base64', () => {
  const attrs = { specversion: '1.0', id: '1', source: '/s', type: 't' };
  const pretty = '{\n  "appinfoA" : "abc"\n}';
  const rows: Array<[string, ParsedCloudEvent, string]> = [
    ['JSON bytes keep their layout', { attributes: attrs, data: text(pretty), dataContentType: 'application/json; charset=utf-8' }, `{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/json; charset=utf-8","data":${pretty}}`],
    ['+json subtype', { attributes: attrs, data: text('[1]'), dataContentType: 'application/vnd.api+json' }, '{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/vnd.api+json","data":[1]}'],
    ['JSON declared but not JSON', { attributes: attrs, data: text('{oops'), dataContentType: 'application/json' }, '{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/json","data_base64":"e29vcHM="}'],
    ['XML as data_base64', { attributes: attrs, data: text('<a/>'), dataContentType: 'application/xml' }, '{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/xml","data_base64":"PGEvPg=="}'],
    ['bytes without a content type', { attributes: attrs, data: thrift.subarray(8), dataContentType: null }, '{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"/wB/"}'],
    ['no data', { attributes: attrs, data: null, dataContentType: null }, '{"specversion":"1.0","id":"1","source":"/s","type":"t"}'],
  ];
  for (const [name, event, expected] of rows) assert.equal(toStructuredJson(event), expected, name);
});
