import stream from 'stream';
export const pipeline = stream.promises.pipeline;
export const finished = stream.promises.finished;
export default stream.promises;
