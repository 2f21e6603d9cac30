/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` carried into functions,
 * across service-binding calls and through queue messages. Version 00 is read; unknown future versions
 * are read by their first four fields, as the spec asks.
 */

export interface TraceParent {
  traceId: string;
  spanId: string;
  /** The sampled flag (bit 0 of trace-flags). */
  sampled: boolean;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** The parsed header, or null when it is absent or invalid (all-zero ids, version ff, junk). */
export function parseTraceparent(value: string | undefined | null): TraceParent | null {
  if (typeof value !== 'string' || value.length > 512) return null;
  const m = TRACEPARENT.exec(value.trim());
  if (!m) return null;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return null;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return null;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}
