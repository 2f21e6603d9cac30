/**
 * Function configuration: raw (what a user sends) → validated (strict schema, unknown keys are errors) →
 * resolved (every default filled in from defaults.ts). The same TypeBox schemas validate API bodies and
 * generate the OpenAPI document.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { ContinuumError } from './errors.ts';
import { EVENT_DEFAULTS, FUNCTION_CEILINGS, FUNCTION_DEFAULTS } from './defaults.ts';
import { HANDLER_FORMATS, TIERS } from './types.ts';
import { NAME_PATTERN } from './names.ts';

const strict = { additionalProperties: false } as const;

const intIn = (min: number, max: number, description: string) => Type.Integer({ minimum: min, maximum: max, description });

export const NameSchema = Type.String({ pattern: NAME_PATTERN, description: 'Resource name: [a-z][a-z0-9-]{0,62}' });
export const TierSchema = Type.Union(TIERS.map((t) => Type.Literal(t)), { description: 'Execution tier' });
export const HandlerFormatSchema = Type.Union(
  [Type.Literal('auto'), ...HANDLER_FORMATS.map((f) => Type.Literal(f))],
  { description: 'Handler shape; auto detects it from the module exports' },
);

const C = FUNCTION_CEILINGS;

export const LimitsInputSchema = Type.Object(
  {
    timeoutMs: Type.Optional(intIn(1, C.limits.timeoutMs, 'Wall-clock limit per invocation')),
    cpuMs: Type.Optional(intIn(1, C.limits.cpuMs, 'CPU-time limit per invocation')),
    memoryMb: Type.Optional(intIn(16, C.limits.memoryMb, 'Heap limit per instance, MiB')),
    responseBytes: Type.Optional(intIn(0, C.limits.responseBytes, 'Largest response body')),
    requestBodyBytes: Type.Optional(intIn(0, C.limits.requestBodyBytes, 'Largest synchronous request body')),
    subrequests: Type.Optional(intIn(0, C.limits.subrequests, 'Outbound fetches per invocation')),
    logBytes: Type.Optional(intIn(0, C.limits.logBytes, 'Log bytes kept per invocation')),
  },
  strict,
);

export const ScaleInputSchema = Type.Object(
  {
    concurrency: Type.Optional(intIn(1, C.scale.concurrency, 'Concurrent invocations per instance')),
    maxInstances: Type.Optional(intIn(1, C.scale.maxInstances, 'Most instances of this function at once')),
    minInstances: Type.Optional(intIn(0, C.scale.minInstances, 'Instances kept warm while idle')),
    idleTimeoutMs: Type.Optional(intIn(1000, C.scale.idleTimeoutMs, 'Idle time before an instance is evicted')),
    queueTimeoutMs: Type.Optional(intIn(0, C.scale.queueTimeoutMs, 'Wait for capacity before overloaded')),
    maxQueued: Type.Optional(intIn(0, C.scale.maxQueued, 'Requests that may wait for capacity at once')),
  },
  strict,
);

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

export const RouteSchema = Type.Object(
  {
    path: Type.String({
      pattern: "^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]{0,255}$",
      description: 'Path prefix (literal, matched on segment boundaries)',
    }),
    methods: Type.Optional(Type.Array(Type.Union(HTTP_METHODS.map((m) => Type.Literal(m))), { minItems: 1, maxItems: HTTP_METHODS.length, uniqueItems: true })),
    host: Type.Optional(Type.String({
      pattern: '^(\\*\\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$',
      maxLength: 253,
      description: 'Exact host, or *.suffix',
    })),
  },
  strict,
);

export const EnvSchema = Type.Record(
  Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' }),
  Type.String({ maxLength: C.envValueBytes }),
  { maxProperties: C.envVars, additionalProperties: false, description: 'Plain environment variables visible to the function as env' },
);

export const HandlerSchema = Type.Object(
  {
    format: Type.Optional(HandlerFormatSchema),
    export: Type.Optional(Type.String({ pattern: '^[A-Za-z_$][A-Za-z0-9_$]{0,127}$', description: 'Export that holds the handler' })),
    lambdaPayload: Type.Optional(Type.Union([Type.Literal('2.0'), Type.Literal('1.0')], { description: 'API Gateway event shape for Lambda handlers: 2.0 (HTTP API) or 1.0 (REST API)' })),
  },
  strict,
);

const QT = C.queueTrigger;

export const QueueTriggerSchema = Type.Object(
  {
    type: Type.Literal('queue'),
    queue: NameSchema,
    batchSize: Type.Optional(intIn(1, QT.batchSize, 'Most messages per invocation')),
    maxBatchWaitMs: Type.Optional(intIn(0, QT.maxBatchWaitMs, 'Wait to fill a batch once one message is ready')),
    maxConcurrency: Type.Optional(intIn(1, QT.maxConcurrency, 'Batches in flight at once')),
    maxRetries: Type.Optional(intIn(0, QT.maxRetries, 'Retries before a message goes to the dead letters')),
    retryBaseDelayMs: Type.Optional(intIn(0, QT.retryBaseDelayMs, 'First retry delay; doubles per attempt, with full jitter')),
    retryMaxDelayMs: Type.Optional(intIn(0, QT.retryMaxDelayMs, 'Largest retry delay')),
    maxMessageAgeMs: Type.Optional(intIn(1000, QT.maxMessageAgeMs, 'Older messages go to the dead letters unexecuted (reason expired)')),
  },
  strict,
);

export const CronTriggerSchema = Type.Object(
  {
    type: Type.Literal('cron'),
    schedule: Type.String({ minLength: 9, maxLength: 256, description: 'Five-field cron expression, or six with leading seconds' }),
    timezone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z][A-Za-z0-9_+\\-/]*$', description: 'IANA time zone (default UTC)' })),
    missed: Type.Optional(Type.Union([Type.Literal('skip'), Type.Literal('run-once')], { description: 'Fires missed while the node was down: skip them, or run once' })),
  },
  strict,
);

export const TriggerSchema = Type.Union([QueueTriggerSchema, CronTriggerSchema]);

export const DestinationSchema = Type.Union(
  [Type.Object({ queue: NameSchema }, strict), Type.Object({ function: NameSchema }, strict)],
  { description: 'Where an async invocation record goes: a queue or a function' },
);

export const AsyncInputSchema = Type.Object(
  {
    maxRetries: Type.Optional(intIn(0, C.async.maxRetries, 'Retries of a failed async invocation')),
    maxEventAgeMs: Type.Optional(intIn(1000, C.async.maxEventAgeMs, 'Older async events go to the dead letters unexecuted')),
    onSuccess: Type.Optional(DestinationSchema),
    onFailure: Type.Optional(DestinationSchema),
  },
  strict,
);

export const BindingsSchema = Type.Record(
  Type.String({ pattern: '^[A-Z][A-Z0-9_]{0,63}$' }),
  Type.Union([
    Type.Object({ queue: NameSchema }, { ...strict, description: 'A queue producer: env.<NAME>.send(body), sendBatch(messages)' }),
    Type.Object({ function: NameSchema }, { ...strict, description: "A service binding: env.<NAME>.fetch(request) invokes that function's current version" }),
  ]),
  { maxProperties: C.bindings, additionalProperties: false, description: 'Resources granted to the function, visible as env.<NAME>' },
);

export const FunctionConfigInputSchema = Type.Object(
  {
    tier: Type.Optional(TierSchema),
    handler: Type.Optional(HandlerSchema),
    limits: Type.Optional(LimitsInputSchema),
    scale: Type.Optional(ScaleInputSchema),
    routes: Type.Optional(Type.Array(RouteSchema, { maxItems: C.routes })),
    env: Type.Optional(EnvSchema),
    triggers: Type.Optional(Type.Array(TriggerSchema, { maxItems: C.triggers })),
    bindings: Type.Optional(BindingsSchema),
    async: Type.Optional(AsyncInputSchema),
  },
  { ...strict, $id: 'FunctionConfigInput' },
);
export type FunctionConfigInput = Static<typeof FunctionConfigInputSchema>;

export type Route = Static<typeof RouteSchema>;
export type Destination = Static<typeof DestinationSchema>;

type QueueTriggerDefaults = { -readonly [K in keyof typeof EVENT_DEFAULTS.queueTrigger]: number };
export type QueueTrigger = { type: 'queue'; queue: string } & QueueTriggerDefaults;
export interface CronTrigger {
  type: 'cron';
  schedule: string;
  timezone: string;
  missed: 'skip' | 'run-once';
}
export type TriggerConfig = QueueTrigger | CronTrigger;

export interface AsyncConfig {
  maxRetries: number;
  maxEventAgeMs: number;
  onSuccess: Destination | null;
  onFailure: Destination | null;
}

export interface FunctionConfig {
  tier: (typeof TIERS)[number];
  handler: { format: 'auto' | (typeof HANDLER_FORMATS)[number]; export: string | null; lambdaPayload: '1.0' | '2.0' };
  limits: { [K in keyof typeof FUNCTION_DEFAULTS.limits]: number };
  scale: { [K in keyof typeof FUNCTION_DEFAULTS.scale]: number };
  routes: Route[];
  env: Record<string, string>;
  triggers: TriggerConfig[];
  bindings: Record<string, Binding>;
  async: AsyncConfig;
}

function resolveTrigger(t: Static<typeof TriggerSchema>): TriggerConfig {
  if (t.type === 'queue') {
    const resolved: QueueTrigger = { ...EVENT_DEFAULTS.queueTrigger, ...t };
    if (resolved.retryMaxDelayMs < resolved.retryBaseDelayMs) {
      throw new ContinuumError('bad_request', 'triggers: retryMaxDelayMs must not be below retryBaseDelayMs', { pointer: '/triggers' });
    }
    return resolved;
  }
  return { type: 'cron', schedule: t.schedule, timezone: t.timezone ?? 'UTC', missed: t.missed ?? EVENT_DEFAULTS.cron.missed };
}

/** Fill every default. `base` lets an update merge over the stored config instead of the defaults. */
export function resolveFunctionConfig(input: FunctionConfigInput, base?: FunctionConfig): FunctionConfig {
  const from = base ?? {
    tier: 'isolate' as const,
    handler: { format: 'auto' as const, export: null, lambdaPayload: '2.0' as const },
    limits: { ...FUNCTION_DEFAULTS.limits },
    scale: { ...FUNCTION_DEFAULTS.scale },
    routes: [],
    env: {},
    triggers: [],
    bindings: {},
    async: { maxRetries: EVENT_DEFAULTS.async.maxRetries, maxEventAgeMs: EVENT_DEFAULTS.async.maxEventAgeMs, onSuccess: null, onFailure: null },
  };
  const resolved: FunctionConfig = {
    tier: input.tier ?? from.tier,
    handler: {
      format: input.handler?.format ?? from.handler.format,
      export: input.handler?.export ?? from.handler.export,
      lambdaPayload: input.handler?.lambdaPayload ?? from.handler.lambdaPayload ?? '2.0',
    },
    limits: { ...from.limits, ...input.limits },
    scale: { ...from.scale, ...input.scale },
    routes: input.routes ? input.routes.map((r) => ({ ...r })) : from.routes.map((r) => ({ ...r })),
    env: input.env ? { ...input.env } : { ...from.env },
    triggers: input.triggers ? input.triggers.map(resolveTrigger) : (from.triggers ?? []).map((t) => ({ ...t })),
    bindings: input.bindings ? copyBindings(input.bindings) : copyBindings(from.bindings ?? {}),
    async: {
      maxRetries: input.async?.maxRetries ?? from.async?.maxRetries ?? EVENT_DEFAULTS.async.maxRetries,
      maxEventAgeMs: input.async?.maxEventAgeMs ?? from.async?.maxEventAgeMs ?? EVENT_DEFAULTS.async.maxEventAgeMs,
      onSuccess: input.async?.onSuccess ?? from.async?.onSuccess ?? null,
      onFailure: input.async?.onFailure ?? from.async?.onFailure ?? null,
    },
  };
  if (resolved.scale.minInstances > resolved.scale.maxInstances) {
    throw new ContinuumError('bad_request', 'scale.minInstances must not exceed scale.maxInstances', { pointer: '/scale/minInstances' });
  }
  return resolved;
}

/** A queue producer or a service binding (another function). */
export type Binding = { queue: string } | { function: string };

function copyBindings(b: Record<string, Binding>): Record<string, Binding> {
  const out: Record<string, Binding> = {};
  for (const [k, v] of Object.entries(b)) out[k] = 'queue' in v ? { queue: v.queue } : { function: v.function };
  return out;
}

/** Canonical JSON (sorted keys) so equal configs hash equally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

// One Ajv for the whole process: strict mode, no coercion, no silent removal of unknown keys.
const ajv = new Ajv2020({ allErrors: false, strict: true, coerceTypes: false, removeAdditional: false, useDefaults: false });
ajv.addKeyword('kind').addKeyword('modifier');

const compiled = new WeakMap<TSchema, ReturnType<typeof ajv.compile>>();

/** Validate against a schema; throws `bad_request` with a JSON pointer to the first bad field. */
export function validate<T extends TSchema>(schema: T, value: unknown, what = 'request'): Static<T> {
  let check = compiled.get(schema);
  if (!check) {
    check = ajv.compile(schema);
    compiled.set(schema, check);
  }
  if (check(value)) return value as Static<T>;
  const first = check.errors?.[0];
  let pointer = first?.instancePath || '/';
  let message = first?.message ?? 'is invalid';
  if (first?.keyword === 'additionalProperties') {
    const extra = String((first.params as { additionalProperty?: string }).additionalProperty);
    pointer = `${first.instancePath}/${extra}`;
    message = 'is not a known field';
  }
  throw new ContinuumError('bad_request', `${what}: ${pointer} ${message}`, { pointer });
}
