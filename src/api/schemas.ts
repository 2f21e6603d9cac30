/** Request and response schemas of the control API: they validate requests and generate /v1/openapi.json. */
import { Type, type Static } from '@sinclair/typebox';
import { FunctionConfigInputSchema, NameSchema, TierSchema } from '../core/config.ts';
import { ERROR_CODES, type ErrorCode } from '../core/errors.ts';
import { HANDLER_FORMATS } from '../core/types.ts';

const strict = { additionalProperties: false } as const;

export const NameParams = Type.Object({ name: NameSchema }, strict);
export const VersionParams = Type.Object({ name: NameSchema, id: Type.String({ pattern: '^v_[0-9a-f]{24}$' }) }, strict);
export const InvocationParams = Type.Object({ id: Type.String({ format: 'uuid', maxLength: 36 }) }, strict);

export const CreateFunctionBody = Type.Object({ name: NameSchema, config: Type.Optional(FunctionConfigInputSchema) }, strict);
export const UpdateFunctionBody = Type.Object({ config: FunctionConfigInputSchema }, strict);

const LimitQuery = Type.String({ pattern: '^[1-9][0-9]{0,3}$', description: 'Page size, 1-1000' });

/** Epoch milliseconds or an RFC 3339 date-time. */
const TimeQuery = Type.Union([Type.String({ pattern: '^[0-9]{1,15}$' }), Type.String({ format: 'date-time', maxLength: 40 })], {
  description: 'Epoch milliseconds or an RFC 3339 time',
});

export const InvocationsQuery = Type.Object(
  {
    function: Type.Optional(NameSchema),
    outcome: Type.Optional(Type.Union([Type.Literal('ok'), Type.Literal('error')])),
    errorCode: Type.Optional(Type.Union((Object.keys(ERROR_CODES) as ErrorCode[]).map((c) => Type.Literal(c)))),
    coldStart: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
    tier: Type.Optional(TierSchema),
    since: Type.Optional(TimeQuery),
    until: Type.Optional(TimeQuery),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
    limit: Type.Optional(LimitQuery),
  },
  strict,
);
export type InvocationsQueryType = Static<typeof InvocationsQuery>;

export const LogsQuery = Type.Object(
  {
    function: Type.Optional(NameSchema),
    invocation: Type.Optional(Type.String({ format: 'uuid', maxLength: 36 })),
    q: Type.Optional(Type.String({ maxLength: 200, description: 'Literal text in the message, ASCII case-insensitive' })),
    since: Type.Optional(TimeQuery),
    until: Type.Optional(TimeQuery),
    after: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: 'Only lines with a higher sequence number' })),
    follow: Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('0'), Type.Literal('true'), Type.Literal('false')])),
    limit: Type.Optional(LimitQuery),
  },
  strict,
);
export type LogsQueryType = Static<typeof LogsQuery>;

export const SeriesQuery = Type.Object({ function: Type.Optional(NameSchema) }, strict);
export const SeriesView = Type.Object({
  function: Type.Union([Type.String(), Type.Null()]),
  bucketMs: Type.Integer(),
  points: Type.Array(
    Type.Object({
      t: Type.Integer(),
      requests: Type.Integer(),
      errors: Type.Integer(),
      coldStarts: Type.Integer(),
      p50Ms: Type.Union([Type.Number(), Type.Null()]),
      p99Ms: Type.Union([Type.Number(), Type.Null()]),
      instances: Type.Integer(),
    }),
  ),
});

export const UsageQuery = Type.Object({ since: Type.Optional(TimeQuery), until: Type.Optional(TimeQuery) }, strict);
export const UsageView = Type.Object({
  since: Type.String(),
  until: Type.String(),
  items: Type.Array(
    Type.Object({
      functionName: Type.String(),
      invocations: Type.Integer(),
      errors: Type.Integer(),
      coldStarts: Type.Integer(),
      cpuSeconds: Type.Number(),
      gbSeconds: Type.Number(),
    }),
  ),
});

export const InvokeQuery = Type.Object(
  { mode: Type.Optional(Type.Union([Type.Literal('sync'), Type.Literal('async')], { description: 'async: accept and run later (202)' })) },
  strict,
);

export const DeployQuery = Type.Object(
  { filename: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$', description: 'Original file name (decides the loader)' })) },
  strict,
);

const Limits = Type.Record(Type.String(), Type.Integer());
export const FunctionConfigView = Type.Object({
  tier: TierSchema,
  handler: Type.Object({ format: Type.String(), export: Type.Union([Type.String(), Type.Null()]), lambdaPayload: Type.Optional(Type.String()) }),
  limits: Limits,
  scale: Limits,
  routes: Type.Array(Type.Object({ path: Type.String(), methods: Type.Optional(Type.Array(Type.String())), host: Type.Optional(Type.String()) })),
  env: Type.Record(Type.String(), Type.String()),
  triggers: Type.Array(Type.Object({ type: Type.String() }, { additionalProperties: true })),
  bindings: Type.Record(Type.String(), Type.Object({ queue: Type.Optional(Type.String()), function: Type.Optional(Type.String()) })),
  async: Type.Object({}, { additionalProperties: true }),
});

export const FunctionView = Type.Object({
  name: Type.String(),
  tier: TierSchema,
  activeVersion: Type.Union([Type.String(), Type.Null()]),
  config: FunctionConfigView,
  createdAt: Type.String(),
  updatedAt: Type.String(),
  instances: Type.Integer(),
});

export const VersionView = Type.Object({
  id: Type.String(),
  functionName: Type.String(),
  bundleDigest: Type.String(),
  bundleBytes: Type.Integer(),
  format: Type.Union(HANDLER_FORMATS.map((f) => Type.Literal(f))),
  exportName: Type.String(),
  config: FunctionConfigView,
  dependencies: Type.Array(Type.Object({ name: Type.String(), version: Type.String(), license: Type.String() })),
  files: Type.Optional(Type.Array(Type.Object({ path: Type.String(), digest: Type.String(), bytes: Type.Integer() }))),
  image: Type.Optional(Type.String()),
  createdAt: Type.String(),
});

export const InvocationView = Type.Object({
  id: Type.String(),
  functionName: Type.String(),
  versionId: Type.String(),
  tier: TierSchema,
  trigger: Type.String(),
  startedAt: Type.String(),
  coldStart: Type.Boolean(),
  // Records stored before the cold-start split lack the newer phases.
  phases: Type.Object({
    queueMs: Type.Number(),
    initMs: Type.Number(),
    sandboxMs: Type.Optional(Type.Number()),
    runtimeInitMs: Type.Optional(Type.Number()),
    moduleLoadMs: Type.Optional(Type.Number()),
    execMs: Type.Number(),
    overheadMs: Type.Optional(Type.Number()),
    totalMs: Type.Optional(Type.Number()),
  }),
  outcome: Type.Union([Type.Literal('ok'), Type.Literal('error')]),
  status: Type.Union([Type.Integer(), Type.Null()]),
  errorCode: Type.Union([Type.String(), Type.Null()]),
  errorMessage: Type.Union([Type.String(), Type.Null()]),
  cpuMs: Type.Number(),
  peakMemoryBytes: Type.Number(),
  instanceId: Type.Union([Type.String(), Type.Null()]),
  node: Type.String(),
  logBytes: Type.Integer(),
  logsTruncated: Type.Boolean(),
  event: Type.Optional(Type.Object({ id: Type.String(), attempt: Type.Integer(), queue: Type.String() })),
  parentInvocationId: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  callerFunction: Type.Optional(Type.String()),
  traceId: Type.Optional(Type.String()),
});

export const LogLineView = Type.Object({
  seq: Type.Integer(),
  invocationId: Type.String(),
  functionName: Type.String(),
  ts: Type.Number(),
  level: Type.String(),
  message: Type.String(),
});

export const ErrorView = Type.Object({
  error: Type.Object({
    code: Type.Union((Object.keys(ERROR_CODES) as ErrorCode[]).map((c) => Type.Literal(c))),
    message: Type.String(),
    retryable: Type.Boolean(),
    details: Type.Optional(Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()]))),
  }),
});

export const Items = <T extends Parameters<typeof Type.Array>[0]>(item: T) => Type.Object({ items: Type.Array(item) });

// ---------------------------------------------------------------- queues and async invocations

export const QueueParams = NameParams;
export const CreateQueueBody = Type.Object({ name: NameSchema }, strict);

export const QueueView = Type.Object({
  name: Type.String(),
  createdAt: Type.String(),
  stats: Type.Object({
    depth: Type.Integer(),
    ready: Type.Integer(),
    delayed: Type.Integer(),
    inFlight: Type.Integer(),
    oldestAgeMs: Type.Number(),
    deadLetters: Type.Integer(),
  }),
  consumers: Type.Array(Type.String()),
});

export const SendMessagesBody = Type.Object(
  {
    messages: Type.Array(
      Type.Object(
        {
          body: Type.String({ description: 'Message body: text, or base64 when encoding is base64' }),
          encoding: Type.Optional(Type.Union([Type.Literal('utf8'), Type.Literal('base64')])),
          contentType: Type.Optional(Type.String({ maxLength: 256 })),
          delaySeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 43_200 })),
          idempotencyKey: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
        },
        strict,
      ),
      { minItems: 1, maxItems: 100 },
    ),
  },
  strict,
);

export const SentView = Type.Object({ items: Type.Array(Type.Object({ id: Type.String(), duplicate: Type.Boolean() })) });

export const DeadLettersQuery = Type.Object(
  { limit: Type.Optional(LimitQuery), after: Type.Optional(Type.String({ maxLength: 64 })) },
  strict,
);

export const DeadLetterView = Type.Object({
  id: Type.String(),
  body: Type.String(),
  encoding: Type.String(),
  contentType: Type.Union([Type.String(), Type.Null()]),
  attributes: Type.Record(Type.String(), Type.String()),
  idempotencyKey: Type.Union([Type.String(), Type.Null()]),
  enqueuedAt: Type.Number(),
  deadAt: Type.Number(),
  attempts: Type.Integer(),
  reason: Type.String(),
  errors: Type.Array(Type.String()),
});

export const IdsBody = Type.Object(
  { ids: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { minItems: 1, maxItems: 1000 })) },
  strict,
);

export const AsyncAcceptedView = Type.Object({ invocationId: Type.String(), duplicate: Type.Boolean() });

export const AsyncStatusView = Type.Object({
  kind: Type.Literal('async'),
  id: Type.String(),
  functionName: Type.Union([Type.String(), Type.Null()]),
  queue: Type.String(),
  state: Type.String(),
  attempt: Type.Integer(),
  enqueuedAt: Type.Number(),
  idempotencyKey: Type.Union([Type.String(), Type.Null()]),
  outcome: Type.Union([
    Type.Null(),
    Type.Object({
      state: Type.String(),
      attempt: Type.Integer(),
      finishedAt: Type.Number(),
      result: Type.Optional(Type.Object({ status: Type.Union([Type.Integer(), Type.Null()]), contentType: Type.Union([Type.String(), Type.Null()]), body: Type.String(), encoding: Type.String() })),
      error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
    }),
  ]),
});

export const ReceiveBody = Type.Object(
  {
    max: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'Most messages to return (default 10)' })),
    visibilitySeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 43_200, description: 'How long the receipts stay valid (default 30)' })),
  },
  strict,
);

export const ReceivedView = Type.Object({
  items: Type.Array(
    Type.Object({
      id: Type.String(),
      receipt: Type.String(),
      body: Type.String(),
      encoding: Type.String(),
      contentType: Type.Union([Type.String(), Type.Null()]),
      attributes: Type.Record(Type.String(), Type.String()),
      idempotencyKey: Type.Union([Type.String(), Type.Null()]),
      enqueuedAt: Type.Number(),
      attempt: Type.Integer(),
    }),
  ),
});

export const AckBody = Type.Object({ receipts: Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { minItems: 1, maxItems: 100 }) }, strict);
