import { BUILD_DEFAULTS } from '../core/defaults.ts';

export type BuildLimits = { -readonly [K in keyof typeof BUILD_DEFAULTS]: number };

/** Defaults overlaid with the caller's overrides (only finite, non-negative numbers are taken). */
export function resolveLimits(overrides?: Partial<BuildLimits>): BuildLimits {
  const limits: BuildLimits = { ...BUILD_DEFAULTS };
  for (const key of Object.keys(BUILD_DEFAULTS) as Array<keyof BuildLimits>) {
    const v = overrides?.[key];
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) limits[key] = v;
  }
  return limits;
}
