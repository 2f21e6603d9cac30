export const global = globalThis;
