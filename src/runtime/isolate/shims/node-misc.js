// Small stand-ins for node:* modules that undici imports but the Web fetch classes never use.
export class IncomingMessage {}
export function isIP(input) {
  if (/^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(input)) return 4;
  if (/^[0-9a-fA-F:.]+$/.test(input) && input.includes(':')) return 6;
  return 0;
}
export function stringify(obj) {
  return new URLSearchParams(obj).toString();
}
export const performance = {
  now: () => Date.now(),
  timeOrigin: 0,
};
export function markAsUncloneable() {}
export function randomInt(max) {
  const bytes = crypto.getRandomValues(new Uint32Array(1));
  return bytes[0] % max;
}
export const constants = {};
export default { IncomingMessage, isIP, stringify, performance, markAsUncloneable, randomInt, constants };
