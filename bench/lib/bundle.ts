// Bundles the fetch-form functions in bench/functions into single ES modules (mustache inlined), the
// form in which both workerd and Continuum receive them.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type FunctionName = 'hello' | 'html';

const functionsDir = fileURLToPath(new URL('../functions/', import.meta.url));

export interface Bundles { dir: string; files: Record<FunctionName, string>; code: Record<FunctionName, string> }

export async function bundleFunctions(outDir: string): Promise<Bundles> {
  const names: FunctionName[] = ['hello', 'html'];
  const files = {} as Record<FunctionName, string>;
  const code = {} as Record<FunctionName, string>;
  for (const name of names) {
    const outfile = join(outDir, `${name}.bundle.js`);
    await build({
      entryPoints: [join(functionsDir, `${name}.js`)],
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      target: 'es2022',
      outfile,
      logLevel: 'warning',
    });
    files[name] = outfile;
    code[name] = readFileSync(outfile, 'utf8');
  }
  return { dir: outDir, files, code };
}
