// Lambda-style handler with an API Gateway HTTP API (payload 2.0) event: POST /fn/lambda-echo/anything
export const handler = async (event, context) => {
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      method: event.requestContext.http.method,
      path: event.rawPath,
      query: event.queryStringParameters ?? {},
      body: event.body ?? null,
      requestId: context.awsRequestId,
    }),
  };
};
