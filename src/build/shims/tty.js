// The isolate has no terminal: nothing is a TTY.
import { unavailable } from './unavailable.js';
const rest = unavailable('tty');
export const isatty = () => false;
export const ReadStream = rest.ReadStream;
export const WriteStream = rest.WriteStream;
export default { isatty, ReadStream, WriteStream };
