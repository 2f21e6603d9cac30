/**
 * Function configuration: raw (what a user sends) → validated (strict schema, unknown keys are errors) →
 * resolved (every default filled in from defaults.ts). The same TypeBox schemas validate API bodies and
 * generate the OpenAPI document.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { ContinuumError } from './errors.ts';
import { FUNCTION_CEILINGS, FUNCTION_DEFAULTS } from './defaults.ts';
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

export const FunctionConfigInputSchema = Type.Object(
  {
    tier: Type.Optional(TierSchema),
    handler: Type.Optional(HandlerSchema),
    limits: Type.Optional(LimitsInputSchema),
    scale: Type.Optional(ScaleInputSchema),
    routes: Type.Optional(Type.Array(RouteSchema, { maxItems: C.routes })),
    env: Type.Optional(EnvSchema),
  },
  { ...strict, $id: 'FunctionConfigInput' },
);
export type FunctionConfigInput = Static<typeof FunctionConfigInputSchema>;

export type Route = Static<typeof RouteSchema>;

export interface FunctionConfig {
  tier: (typeof TIERS)[number];
  handler: { format: 'auto' | (typeof HANDLER_FORMATS)[number]; export: string | null; lambdaPayload: '1.0' | '2.0' };
  limits: { [K in keyof typeof FUNCTION_DEFAULTS.limits]: number };
  scale: { [K in keyof typeof FUNCTION_DEFAULTS.scale]: number };
  routes: Route[];
  env: Record<string, string>;
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
  };
  if (resolved.scale.minInstances > resolved.scale.maxInstances) {
    throw new ContinuumError('bad_request', 'scale.minInstances must not exceed scale.maxInstances', { pointer: '/scale/minInstances' });
  }
  return resolved;
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
