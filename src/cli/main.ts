/**
 * Entry point of the `continuum` command (bin/continuum.mjs imports this). Everything thrown ends here and
 * leaves as one line on stderr (or one JSON error body on stdout with --json) and exit code 1 or 2.
 */
import { readFileSync } from 'node:fs';
import { CommanderError } from 'commander';
import { createContext } from './context.ts';
import { CliError, EXIT_PLATFORM, EXIT_USER, toCliError } from './errors.ts';
import { Output } from './output.ts';
import { allCommands, createProgram, type CommonOptions, type Handlers } from './program.ts';

function readVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

const queueVerbs = () => import('./commands/queue.ts');

export async function run(argv: readonly string[]): Promise<number> {
  const io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
  const version = readVersion();
  let lastOptions: CommonOptions = { json: argv.includes('--json'), verbose: argv.includes('--verbose') || argv.includes('-v') };
  let lastOutput: Output | undefined;
  const ctxFor = (opts: CommonOptions) => {
    lastOptions = opts;
    const ctx = createContext(opts, io);
    lastOutput = ctx.out;
    return ctx;
  };
  // Verbs load on use: a quick `ls` should not pay for the YAML parser, the schema compiler or the node.
  const handlers: Handlers = {
    up: async (o) => (await import('./commands/up.ts')).up(ctxFor(o), o, version),
    deploy: async (t, o) => (await import('./commands/deploy.ts')).deploy(ctxFor(o), t, o),
    ls: async (o) => (await import('./commands/functions.ts')).ls(ctxFor(o)),
    status: async (o) => (await import('./commands/functions.ts')).status(ctxFor(o)),
    versions: async (n, o) => (await import('./commands/functions.ts')).versions(ctxFor(o), n),
    rm: async (n, o) => (await import('./commands/functions.ts')).rm(ctxFor(o), n),
    invoke: async (n, o) => (await import('./commands/invoke.ts')).invoke(ctxFor(o), n, o),
    logs: async (n, o) => (await import('./commands/logs.ts')).logs(ctxFor(o), n, o),
    invocation: async (id, o) => (await import('./commands/invocation.ts')).invocation(ctxFor(o), id, o),
    invocations: async (n, o) => (await import('./commands/invocations.ts')).invocations(ctxFor(o), n, o),
    image: {
      build: async (t, o) => (await import('./commands/image.ts')).imageBuild(ctxFor(o), t, o),
    },
    queue: {
      create: async (n, o) => (await queueVerbs()).create(ctxFor(o), n),
      ls: async (o) => (await queueVerbs()).ls(ctxFor(o)),
      show: async (n, o) => (await queueVerbs()).show(ctxFor(o), n),
      rm: async (n, o) => (await queueVerbs()).rm(ctxFor(o), n),
      purge: async (n, o) => (await queueVerbs()).purge(ctxFor(o), n),
      send: async (n, o) => (await queueVerbs()).send(ctxFor(o), n, o),
      dlq: async (n, o) => (await queueVerbs()).dlq(ctxFor(o), n, o),
      redrive: async (n, o) => (await queueVerbs()).redrive(ctxFor(o), n, o),
    },
  };
  let exitCode = 0;
  const program = createProgram(handlers, version, (code) => {
    exitCode = code;
  });
  program.exitOverride();
  // Usage errors are reported by the catch below in the CLI's own format; help and --version still print.
  program.configureOutput({ outputError: () => {} });
  for (const cmd of allCommands(program)) {
    cmd.exitOverride();
    cmd.configureOutput({ outputError: () => {} });
  }
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      if (err.code === 'commander.executeSubCommandAsync') return EXIT_PLATFORM;
      const message = err.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim();
      report(new CliError('bad_request', `${message} (see 'continuum --help')`, { exitCode: EXIT_USER }), lastOptions, io);
      return EXIT_USER;
    }
    const cli = toCliError(err);
    report(cli, lastOptions, io, lastOutput);
    return cli.exitCode;
  }
}

function report(err: CliError, opts: CommonOptions, io: { stdout: NodeJS.WriteStream; stderr: NodeJS.WriteStream; env: NodeJS.ProcessEnv }, out?: Output): void {
  (out ?? new Output(io, { json: opts.json === true, verbose: opts.verbose === true, env: io.env })).error(err);
  if (opts.verbose && err.cause instanceof Error && err.cause.stack) io.stderr.write(`${err.cause.stack}\n`);
}

// `continuum … | head` closes stdout early: stop quietly instead of crashing on EPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
});

const code = await run(process.argv.slice(2));
// Flush before exiting: the verb is done, open keep-alive sockets must not hold the process.
await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
process.exit(code);
