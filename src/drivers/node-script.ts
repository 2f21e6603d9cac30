/**
 * Bundles a TypeScript entry point into one CommonJS script for the pinned Node binary inside a sandbox
 * (the process tier's agent, the container tiers' HTTP server), where nothing but that script, the Node
 * binary and the function's bundle is visible.
 */
import * as esbuild from 'esbuild';
import { fileURLToPath } from 'node:url';

export async function bundleNodeScript(entry: URL): Promise<string> {
  const result = await esbuild.build({
    entryPoints: [fileURLToPath(entry)],
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
