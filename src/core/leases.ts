/**
 * Holds on keys (content digests, image ids) that a garbage collection must keep: several holders may hold
 * one key; each hold ends once, by the release function `hold` returns (a second call does nothing).
 */
export class Leases {
  readonly #held = new Map<string, number>();

  hold(keys: Iterable<string>): () => void {
    const list = [...keys];
    for (const k of list) this.#held.set(k, (this.#held.get(k) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const k of list) {
        const n = (this.#held.get(k) ?? 1) - 1;
        if (n > 0) this.#held.set(k, n);
        else this.#held.delete(k);
      }
    };
  }

  has(key: string): boolean {
    return this.#held.has(key);
  }
}
