const toString = Object.prototype.toString;
const typedArrayTag = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), Symbol.toStringTag).get;

export function isArrayBuffer(v) {
  if (v === null || typeof v !== 'object') return false;
  try {
    Reflect.apply(Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength').get, v, []);
    return true;
  } catch {
    return false;
  }
}
export function isSharedArrayBuffer() {
  return false;
}
export function isAnyArrayBuffer(v) {
  return isArrayBuffer(v);
}
export function isArrayBufferView(v) {
  return ArrayBuffer.isView(v);
}
export function isTypedArray(v) {
  return typedArrayTag.call(v) !== undefined;
}
export function isUint8Array(v) {
  return typedArrayTag.call(v) === 'Uint8Array';
}
export function isDataView(v) {
  return ArrayBuffer.isView(v) && typedArrayTag.call(v) === undefined;
}
export function isProxy() {
  return false;
}
export function isDate(v) {
  return toString.call(v) === '[object Date]';
}
export function isRegExp(v) {
  return toString.call(v) === '[object RegExp]';
}
export function isPromise(v) {
  return v instanceof Promise;
}
export default { isArrayBuffer, isSharedArrayBuffer, isAnyArrayBuffer, isArrayBufferView, isTypedArray, isUint8Array, isDataView, isProxy, isDate, isRegExp, isPromise };
