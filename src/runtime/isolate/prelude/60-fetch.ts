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
export const getResponseState: (response: unknown) => { body: { source: unknown; stream: ReadableStream | null } | null } = response.getResponseState;
