/**
 * Lambda (API Gateway HTTP API v2 and REST v1 proxy shapes) and OpenWhisk event/result conversions.
 * Pure functions over plain data; runtime.ts wires them to invocations.
 */
import type { WireRequestHead } from './protocol.ts';

export interface PlainResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Uint8Array;
}

export interface InvocationFacts {
  invocationId: string;
  functionName: string;
  versionId: string;
  clientIp: string;
  now: number;
}

const encoder = new TextEncoder();
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export function isTextType(contentType: string | undefined): boolean {
  if (!contentType) return true;
  const t = contentType.toLowerCase();
  return (
    t.startsWith('text/') ||
    /[/+](json|xml|javascript|ecmascript|x-www-form-urlencoded|graphql|yaml|csv)\b/.test(t) ||
    t.startsWith('multipart/form-data') === false && /charset=/.test(t)
  );
}

export function base64Encode(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function base64Decode(text: string): Uint8Array {
  const bin = atob(text.replace(/[\s]/g, ''));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function clfTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

function bodyFields(headers: Array<[string, string]>, body: Uint8Array | null): { body: string | undefined; isBase64Encoded: boolean } {
  if (body === null) return { body: undefined, isBase64Encoded: false };
  const ct = headers.find(([k]) => k.toLowerCase() === 'content-type')?.[1];
  if (isTextType(ct)) {
    try {
      return { body: new TextDecoder('utf-8', { fatal: true }).decode(body), isBase64Encoded: false };
    } catch {
      // not UTF-8: fall through to base64
    }
  }
  return { body: base64Encode(body), isBase64Encoded: true };
}

/** API Gateway HTTP API payload format 2.0. */
export function lambdaEventV2(head: WireRequestHead, body: Uint8Array | null, facts: InvocationFacts): Record<string, unknown> {
  const url = new URL(head.url);
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (const [rawName, value] of head.headers) {
    const name = rawName.toLowerCase();
    if (name === 'cookie') {
      for (const c of value.split(';')) if (c.trim()) cookies.push(c.trim());
      continue;
    }
    headers[name] = name in headers ? `${headers[name]},${value}` : value;
  }
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = k in query ? `${query[k]},${v}` : v;
  const host = headers.host ?? url.host;
  const { body: text, isBase64Encoded } = bodyFields(head.headers, body);
  const event: Record<string, unknown> = {
    version: '2.0',
    routeKey: '$default',
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
  };
  if (cookies.length > 0) event.cookies = cookies;
  event.headers = headers;
  if (Object.keys(query).length > 0) event.queryStringParameters = query;
  event.requestContext = {
    accountId: 'anonymous',
    apiId: facts.functionName,
    domainName: host,
    domainPrefix: host.split('.')[0] ?? host,
    http: {
      method: head.method,
      path: url.pathname,
      protocol: 'HTTP/1.1',
      sourceIp: facts.clientIp,
      userAgent: headers['user-agent'] ?? '',
    },
    requestId: facts.invocationId,
    routeKey: '$default',
    stage: '$default',
    time: clfTime(facts.now),
    timeEpoch: facts.now,
  };
  if (text !== undefined) event.body = text;
  event.isBase64Encoded = isBase64Encoded;
  return event;
}

/** API Gateway REST API payload format 1.0 (proxy integration, resource /{proxy+}). */
export function lambdaEventV1(head: WireRequestHead, body: Uint8Array | null, facts: InvocationFacts): Record<string, unknown> {
  const url = new URL(head.url);
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (const [rawName, value] of head.headers) {
    const name = rawName.toLowerCase();
    headers[name] = value;
    (multiValueHeaders[name] ??= []).push(value);
  }
  let query: Record<string, string> | null = null;
  let multiQuery: Record<string, string[]> | null = null;
  for (const [k, v] of url.searchParams) {
    (query ??= {})[k] = v;
    ((multiQuery ??= {})[k] ??= []).push(v);
  }
  const host = headers.host ?? url.host;
  const { body: text, isBase64Encoded } = bodyFields(head.headers, body);
  return {
    resource: '/{proxy+}',
    path: url.pathname,
    httpMethod: head.method,
    headers,
    multiValueHeaders,
    queryStringParameters: query,
    multiValueQueryStringParameters: multiQuery,
    pathParameters: url.pathname.length > 1 ? { proxy: url.pathname.slice(1) } : null,
    stageVariables: null,
    requestContext: {
      accountId: 'anonymous',
      apiId: facts.functionName,
      authorizer: null,
      domainName: host,
      domainPrefix: host.split('.')[0] ?? host,
      extendedRequestId: facts.invocationId,
      httpMethod: head.method,
      identity: {
        accessKey: null,
        accountId: null,
        apiKey: null,
        apiKeyId: null,
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: facts.clientIp,
        user: null,
        userAgent: headers['user-agent'] ?? '',
        userArn: null,
      },
      path: url.pathname,
      protocol: 'HTTP/1.1',
      requestId: facts.invocationId,
      requestTime: clfTime(facts.now),
      requestTimeEpoch: facts.now,
      resourceId: 'proxy',
      resourcePath: '/{proxy+}',
      stage: '$default',
    },
    body: text ?? null,
    isBase64Encoded,
  };
}

function addHeaderObject(out: Array<[string, string]>, headers: unknown, multi: boolean): void {
  if (headers === null || typeof headers !== 'object') return;
  for (const [k, v] of Object.entries(headers as Record<string, unknown>)) {
    if (v === undefined || v === null) continue;
    if (multi && Array.isArray(v)) for (const item of v) out.push([k.toLowerCase(), String(item)]);
    else out.push([k.toLowerCase(), Array.isArray(v) ? v.map(String).join(', ') : String(v)]);
  }
}

function bodyBytes(body: unknown, base64: boolean): Uint8Array {
  if (body === undefined || body === null) return new Uint8Array(0);
  const text = typeof body === 'string' ? body : JSON.stringify(body) ?? '';
  return base64 ? base64Decode(text) : encoder.encode(text);
}

function validStatus(v: unknown): number {
  const n = typeof v === 'string' && /^\d{3}$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 100 || n > 599) {
    throw new TypeError(`invalid statusCode in Lambda response: ${String(v).slice(0, 40)}`);
  }
  return n;
}

/** Lambda result → HTTP response (v2 inference rules, or strict v1 proxy shape). */
export function lambdaResult(result: unknown, payload: '1.0' | '2.0'): PlainResponse {
  const structured = result !== null && typeof result === 'object' && 'statusCode' in (result as object);
  if (!structured) {
    if (payload === '1.0') throw new TypeError('Lambda proxy response must be an object with statusCode (payload format 1.0)');
    const text = typeof result === 'string' ? result : result === undefined ? '' : JSON.stringify(result) ?? '';
    return { status: 200, headers: [['content-type', 'application/json']], body: encoder.encode(text) };
  }
  const r = result as Record<string, unknown>;
  const headers: Array<[string, string]> = [];
  addHeaderObject(headers, r.headers, false);
  addHeaderObject(headers, r.multiValueHeaders, true);
  if (payload === '2.0' && Array.isArray(r.cookies)) for (const c of r.cookies) headers.push(['set-cookie', String(c)]);
  if (payload === '2.0' && !headers.some(([k]) => k === 'content-type') && r.body !== undefined) headers.push(['content-type', 'text/plain; charset=utf-8']);
  return { status: validStatus(r.statusCode), headers, body: bodyBytes(r.body, r.isBase64Encoded === true) };
}

/** OpenWhisk web-action params: query + JSON/form body merged, plus __ow_* fields. */
export function openwhiskParams(head: WireRequestHead, body: Uint8Array | null, env: Record<string, string>): Record<string, unknown> {
  const url = new URL(head.url);
  const params: Record<string, unknown> = {};
  const set = (k: string, v: unknown) => Object.defineProperty(params, k, { value: v, enumerable: true, writable: true, configurable: true });
  for (const [k, v] of url.searchParams) set(k, v);
  const headers: Record<string, string> = {};
  for (const [k, v] of head.headers) headers[k.toLowerCase()] = k.toLowerCase() in headers ? `${headers[k.toLowerCase()]}, ${v}` : v;
  const ct = (headers['content-type'] ?? '').toLowerCase();
  if (body !== null && body.byteLength > 0) {
    let merged = false;
    if (ct.includes('json')) {
      try {
        const parsed: unknown = JSON.parse(new TextDecoder().decode(body));
        if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
          for (const [k, v] of Object.entries(parsed)) set(k, v);
          merged = true;
        }
      } catch {
        merged = false;
      }
    } else if (ct.startsWith('application/x-www-form-urlencoded')) {
      for (const [k, v] of new URLSearchParams(new TextDecoder().decode(body))) set(k, v);
      merged = true;
    }
    if (!merged) set('__ow_body', isTextType(ct || undefined) ? new TextDecoder().decode(body) : base64Encode(body));
  }
  set('__ow_method', head.method.toLowerCase());
  set('__ow_headers', headers);
  set('__ow_path', url.pathname);
  set('__ow_query', url.search.slice(1));
  void env;
  return params;
}

/** OpenWhisk result → HTTP response: `{statusCode, headers, body}` web-action style, else JSON. */
export function openwhiskResult(result: unknown): PlainResponse {
  if (result !== null && typeof result === 'object' && !Array.isArray(result)) {
    const r = result as Record<string, unknown>;
    if ('statusCode' in r || 'headers' in r || 'body' in r) {
      const headers: Array<[string, string]> = [];
      addHeaderObject(headers, r.headers, false);
      const ct = headers.find(([k]) => k === 'content-type')?.[1];
      let body: Uint8Array;
      if (r.body === undefined || r.body === null) body = new Uint8Array(0);
      else if (typeof r.body === 'string') body = ct && !isTextType(ct) ? safeBase64(r.body) : encoder.encode(r.body);
      else {
        body = encoder.encode(JSON.stringify(r.body) ?? '');
        if (!ct) headers.push(['content-type', 'application/json']);
      }
      const status = r.statusCode === undefined ? (body.byteLength === 0 ? 204 : 200) : validStatus(r.statusCode);
      return { status, headers, body };
    }
  }
  const text = result === undefined ? '{}' : JSON.stringify(result) ?? '{}';
  return { status: 200, headers: [['content-type', 'application/json']], body: encoder.encode(text) };
}

function safeBase64(text: string): Uint8Array {
  try {
    return base64Decode(text);
  } catch {
    return encoder.encode(text);
  }
}
