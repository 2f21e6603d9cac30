// undici's WPT-tested Web fetch classes. response.js must load before request.js (BodyInit converter).
import { defineGlobal } from './00-base.ts';
import headers from 'undici/lib/web/fetch/headers.js';
import response from 'undici/lib/web/fetch/response.js';
import request from 'undici/lib/web/fetch/request.js';
import formdata from 'undici/lib/web/fetch/formdata.js';

defineGlobal('Headers', headers.Headers);
defineGlobal('Response', response.Response);
defineGlobal('Request', request.Request);
defineGlobal('FormData', formdata.FormData);

/** undici's inner response state; runtime.ts reads `body.source` to skip the stream for fixed bodies. */
export const getResponseState: (response: unknown) => {
  body: { source: unknown; stream: ReadableStream | null; lazyStreamPending?: boolean } | null;
  headersList: { headersMap: Map<string, { name: string; value: string }>; cookies: string[] | null };
} = response.getResponseState;

/**
 * undici's inner request record and header list, for building an incoming Request from host data
 * without re-running the constructor's WebIDL conversions (runtime.ts checks the data first and falls
 * back to `new Request` for anything unusual).
 */
export const makeRequest: (init: Record<string, unknown>) => { headersList: unknown } = request.makeRequest;
export const fromInnerRequest: (inner: unknown, dispatcher: unknown, signal: AbortSignal, guard: string) => Request = request.fromInnerRequest;
export const HeadersList: new () => { append(name: string, value: string, isLowerCase: boolean): void } = headers.HeadersList;
