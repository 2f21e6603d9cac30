/** Test support shared by the isolate driver's suites: instance specs with unique ids. */
import { FUNCTION_DEFAULTS } from '../../core/defaults.ts';
import type { InstanceSpec } from '../../core/driver.ts';

let seq = 0;

export function testSpec(code: string, limits: Partial<InstanceSpec['limits']> = {}, functionName = 'fn-a'): InstanceSpec {
  return {
    instanceId: `i-${++seq}`,
    functionName,
    versionId: 'v_test',
    code,
    format: 'fetch',
    exportName: 'default',
    lambdaPayload: '2.0',
    limits: { ...FUNCTION_DEFAULTS.limits, ...limits },
    concurrency: 64,
    env: { GREETING: 'hi' },
    bindings: {},
  };
}
