import { Blob, File } from 'formdata-node';
import { defineGlobal } from './00-base.ts';

const proto = Blob.prototype as unknown as { bytes?: () => Promise<Uint8Array>; arrayBuffer(): Promise<ArrayBuffer> };
if (typeof proto.bytes !== 'function') {
  Object.defineProperty(proto, 'bytes', {
    value: async function bytes(this: typeof proto) {
      return new Uint8Array(await this.arrayBuffer());
    },
    writable: true,
    configurable: true,
  });
}
defineGlobal('Blob', Blob);
defineGlobal('File', File);
