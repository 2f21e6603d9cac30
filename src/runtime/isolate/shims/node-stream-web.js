// undici checks for Node's internal ReadableStreamTee; absent here, it falls back to stream.tee().
export const ReadableStreamTee = undefined;
export default {};
