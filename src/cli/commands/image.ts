/**
 * `continuum image build FUNCTION`: the function's active version as an OCI image layout tarball that any
 * OCI runtime can run (the node builds it: GET /v1/functions/{name}/image): the pinned Node binary, its
 * libraries, an HTTP server on `$PORT` and the bundle.
 */
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { assertName } from '../../core/names.ts';
import type { Context } from '../context.ts';
import { formatBytes } from '../output.ts';
import type { ImageBuildOptions } from '../program.ts';

export async function imageBuild(ctx: Context, name: string, opts: ImageBuildOptions): Promise<number> {
  assertName(name, 'function name');
  const client = await ctx.client();
  const image = await client.exportImage(name);
  const output = opts.output ?? `${name}.oci.tar`;
  await writeFile(output, image);
  const digest = `sha256:${createHash('sha256').update(image).digest('hex')}`;
  ctx.out.result({ function: name, output, bytes: image.length, digest }, () =>
    `${output}: OCI image layout of ${name}, ${formatBytes(image.length)}\nany OCI runtime can run it; it serves HTTP on $PORT (default 8080)`,
  );
  return 0;
}
