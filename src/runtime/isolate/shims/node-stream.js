// undici only needs these for Node streams; web streams from web-streams-polyfill keep their state in
// `_disturbed` / `_state`, which we read so that Body#bodyUsed is right.
export function isDisturbed(stream) {
  return !!(stream && stream._disturbed);
}
export function isErrored(stream) {
  return !!(stream && stream._state === 'errored');
}
export function isDestroyed() {
  return false;
}
export function isReadable() {
  return false;
}
export class Readable {}
export class Transform {}
export function pipeline() {
  throw new TypeError('stream.pipeline is unavailable in the isolate tier');
}
export function finished() {}
export default { isDisturbed, isErrored, isDestroyed, isReadable, Readable, Transform, pipeline, finished };
