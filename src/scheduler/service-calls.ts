/**
 * Service bindings (`env.USERS.fetch(request)`): a function calls another function's current version
 * through this node's scheduler — no network hop, no public route. The request and response are buffered
 * and bounded by the callee's own limits (its driver enforces requestBodyBytes and responseBytes).
 * Whatever the callee does, errors included, comes back as a response, as it would over HTTP; the call
 * itself fails (a ContinuumError the caller sees as `err.code`) only when it cannot be made.
 */
import { SERVICE_DEFAULTS } from '../core/defaults.ts';
import type { CallerContext, ServiceRequest, ServiceResponse } from '../core/driver.ts';
import { ContinuumError, ERROR_CODES, errorBody } from '../core/errors.ts';
import { uuidv7 } from '../core/ids.ts';
import type { Scheduler } from './scheduler.ts';

/** Connection-level headers of the caller's request that mean nothing to an in-process call. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);

export function serviceCaller(scheduler: Scheduler, maxDepth: number = SERVICE_DEFAULTS.maxCallDepth) {
  return async (caller: CallerContext, target: string, request: ServiceRequest): Promise<ServiceResponse> => {
    const depth = caller.depth + 1;
    if (depth > maxDepth) {
      throw new ContinuumError(
        'call_depth_exceeded',
        `${caller.functionName} → ${target} would be call ${depth} of one chain of service-binding calls; the limit is ${maxDepth} (is there a loop?)`,
        { limit: maxDepth },
      );
    }
    const headers = request.headers.filter(([name]) => !HOP_BY_HOP.has(name.toLowerCase()));
    // The caller's trace context goes along unless the function set its own (its span around the call).
    let traceparent = headers.find(([name]) => name.toLowerCase() === 'traceparent')?.[1];
    if (traceparent === undefined && caller.traceparent !== undefined) {
      traceparent = caller.traceparent;
      headers.push(['traceparent', traceparent]);
    }
    const invocationId = uuidv7();
    const body = request.body;
    const { result } = await scheduler.invoke(
      target,
      {
        kind: 'http',
        invocationId,
        request: { method: request.method, url: request.url, headers },
        body: body === null ? null : once(body),
        ...(traceparent !== undefined ? { traceparent } : {}),
        caller: { functionName: caller.functionName, invocationId: caller.invocationId, depth },
      },
      'binding',
    );
    const idHeader: [string, string] = ['x-continuum-invocation-id', invocationId];
    if (result.kind === 'error') {
      const err = result.completion.error ?? { code: 'internal' as const, message: 'internal error' };
      // No record exists when the target is not deployed: that is the caller's mistake, not a response.
      if (err.code === 'not_found') throw new ContinuumError('not_found', `service binding target: function ${target} is not deployed`);
      return errorResponse(err.code, err.message, idHeader);
    }
    const chunks: Uint8Array[] = [];
    try {
      for await (const chunk of result.body) chunks.push(chunk);
    } catch {
      const c = await result.completion.catch(() => null);
      const err = c?.error ?? { code: 'internal' as const, message: 'the response failed' };
      return errorResponse(err.code, err.message, idHeader);
    }
    return { status: result.status, headers: [idHeader, ...result.headers.filter(([name]) => !HOP_BY_HOP.has(name.toLowerCase()))], body: Buffer.concat(chunks) };
  };
}

function errorResponse(code: keyof typeof ERROR_CODES, message: string, idHeader: [string, string]): ServiceResponse {
  const body = Buffer.from(JSON.stringify(errorBody(code, message)));
  return { status: ERROR_CODES[code].status, headers: [idHeader, ['content-type', 'application/json']], body };
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}
