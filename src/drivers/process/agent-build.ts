/**
 * Bundles sandbox-entry.ts (frame loop + Node engine) into one CommonJS script for the sandbox, where
 * only the Node binary, this script and the function's bundle are visible.
 */
import * as esbuild from 'esbuild';
import { fileURLToPath } from 'node:url';

export async function buildAgent(): Promise<string> {
  const result = await esbuild.build({
    entryPoints: [fileURLToPath(new URL('./sandbox-entry.ts', import.meta.url))],
    bundle: true,
    write: false,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    logLevel: 'silent',
    legalComments: 'none',
  });
  return result.outputFiles[0]!.text;
}
