/**
 * The channel from a container back to its node, for the function's bindings (`env.ORDERS.send(…)`,
 * `env.USERS.fetch(…)`): HTTP/1.1 on a unix socket that the node makes for each instance whose function
 * has bindings and mounts at `HOST_SOCKET`. The socket is the instance's alone, and the node resolves
 * binding names through that instance's own grants, so a container reaches exactly what its function was
 * given. Any image can use it (plain HTTP over a unix socket); a Continuum function image's server does
 * (server.ts). Under a bare OCI runtime there is no socket, and bindings fail with `unavailable`.
 *
 * - `POST /v1/queues/<BINDING>`, body `WireQueueSend` → 200 `{ ids }`;
 * - `POST /v1/services/<BINDING>`, body `WireServiceCall` → 200 `WireServiceAnswer` (the callee's response);
 * - `x-continuum-invocation: <id>` (the header each proxied request brought) names the calling invocation:
 *   its trace context goes with the message, its depth with the call;
 * - a refusal is the error's status with `{ error: { code, message } }` (codes of the error registry).
 *
 * Bodies travel as base64 in JSON. Imports nothing from the host side.
 */

/** The socket's path inside the container (a directory in the /dev tmpfs: nothing is made in the image). */
export const HOST_SOCKET_DIR = '/dev/continuum';
export const HOST_SOCKET = `${HOST_SOCKET_DIR}/host.sock`;
/** Environment of a container whose function has bindings: the socket, and the binding names by kind (comma-separated). */
export const HOST_ENV = { socket: 'CONTINUUM_HOST_SOCKET', queues: 'CONTINUUM_QUEUE_BINDINGS', services: 'CONTINUUM_SERVICE_BINDINGS' } as const;
export const INVOCATION_HEADER = 'x-continuum-invocation';

export const queueSendPath = (binding: string): string => `/v1/queues/${binding}`;
export const serviceCallPath = (binding: string): string => `/v1/services/${binding}`;

export interface WireQueueSend {
  messages: Array<{ body: string; contentType: string; delayMs?: number }>;
}
export interface WireQueueSent {
  ids: string[];
}
export interface WireServiceCall {
  method: string;
  url: string;
  headers: Array<[string, string]>;
  body: string | null;
}
export interface WireServiceAnswer {
  status: number;
  headers: Array<[string, string]>;
  body: string;
}
export interface WireChannelError {
  error: { code: string; message: string };
}
