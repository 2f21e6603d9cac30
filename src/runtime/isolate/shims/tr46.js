// Replaces tr46 (and its 240 KB of Unicode tables) with the host's url.domainToASCII, reached through
// a bridge the runtime installs after the isolate is restored. Plain ASCII names skip the bridge.
let hostToASCII = null;

export function setDomainToASCII(fn) {
  hostToASCII = fn;
}

const plain = /^[a-z0-9.-]+$/i;

export function toASCII(domain) {
  if (plain.test(domain) && !/(^|\.)xn--/i.test(domain)) return domain.toLowerCase();
  if (hostToASCII === null) return null;
  const out = hostToASCII(String(domain));
  return out === '' ? null : out;
}
export function toUnicode(domain) {
  return { domain, error: false };
}
export default { toASCII, toUnicode };
