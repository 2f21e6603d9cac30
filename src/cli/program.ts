/**
 * The command line grammar, kept apart from what the verbs do so parsing can be tested on its own:
 * createProgram(handlers) wires each verb to a handler that receives typed, checked options.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { TIERS, type Tier } from '../core/types.ts';

export interface CommonOptions {
  json?: boolean;
  verbose?: boolean;
  /** --data-dir: where the local node keeps node.json and admin-token. */
  dataDir?: string;
}

export interface UpOptions extends CommonOptions {
  port?: number;
  host?: string;
  examples?: boolean;
}

export interface DeployOptions extends CommonOptions {
  name?: string;
  tier?: Tier;
}

export interface InvokeOptions extends CommonOptions {
  data?: string;
  header: string[];
  method?: string;
  path?: string;
}

export interface LogsOptions extends CommonOptions {
  follow?: boolean;
  invocation?: string;
  since?: string;
  search?: string;
}

/** Each handler resolves with the process exit code. */
export interface Handlers {
  up(opts: UpOptions): Promise<number>;
  deploy(target: string, opts: DeployOptions): Promise<number>;
  ls(opts: CommonOptions): Promise<number>;
  versions(name: string, opts: CommonOptions): Promise<number>;
  rm(name: string, opts: CommonOptions): Promise<number>;
  invoke(name: string, opts: InvokeOptions): Promise<number>;
  logs(name: string, opts: LogsOptions): Promise<number>;
}

export function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be an integer from 0 to 65535 (0 picks a free port)');
  return n;
}

function parseMethod(value: string): string {
  const m = value.trim().toUpperCase();
  if (!/^[A-Z]{1,16}$/.test(m)) throw new InvalidArgumentError('must be an HTTP method such as GET or POST');
  return m;
}

function parsePath(value: string): string {
  if (!value.startsWith('/')) throw new InvalidArgumentError("must start with '/'");
  return value;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function common(cmd: Command): Command {
  return cmd
    .option('--json', 'print only JSON on stdout')
    .option('-v, --verbose', 'print HTTP calls on stderr')
    .option('--data-dir <dir>', 'data dir of the local node (default: $CONTINUUM_DATA or ./.continuum)');
}

/** `done` receives the exit code of the verb that ran. */
export function createProgram(handlers: Handlers, version: string, done: (exitCode: number) => void = () => {}): Command {
  const program = new Command('continuum')
    .description('Continuum: a self-hosted serverless platform')
    .version(version, '-V, --version')
    .showSuggestionAfterError(true)
    .allowExcessArguments(false)
    .addHelpText('after', `
Environment:
  CONTINUUM_URL    control API of the node to talk to (default: the local node in the data dir)
  CONTINUUM_TOKEN  bearer token (default: <data dir>/admin-token for the local node)
  CONTINUUM_DATA   data dir (default: ./.continuum); PORT: default port for 'up'

Exit codes: 0 ok, 1 user error, 2 platform or network error.`);


  common(program.command('up'))
    .description('start a node in this process')
    .option('--port <n>', 'port to listen on (default: $PORT or 8080; 0 = any free port)', parsePort)
    .option('--host <host>', 'address to listen on (default: 127.0.0.1)')
    .option('--examples', 'deploy the bundled examples')
    .action(async (opts: UpOptions) => done(await handlers.up(opts)));

  common(program.command('deploy'))
    .description('deploy a file, a directory, an archive (.zip/.tgz) or a continuum.yaml')
    .argument('<path>', 'code to deploy')
    .option('-n, --name <name>', 'function name (default: from the file or directory name; with continuum.yaml: deploy only this one)')
    .addOption(new Option('--tier <tier>', 'execution tier').choices(TIERS))
    .action(async (target: string, opts: DeployOptions) => done(await handlers.deploy(target, opts)));

  common(program.command('ls').alias('list'))
    .description('list functions')
    .action(async (opts: CommonOptions) => done(await handlers.ls(opts)));

  common(program.command('versions'))
    .description("list a function's versions")
    .argument('<name>', 'function name')
    .action(async (name: string, opts: CommonOptions) => done(await handlers.versions(name, opts)));

  common(program.command('rm').alias('remove'))
    .description('remove a function (no prompt)')
    .argument('<name>', 'function name')
    .action(async (name: string, opts: CommonOptions) => done(await handlers.rm(name, opts)));

  common(program.command('invoke'))
    .description('call a function and print its response body')
    .argument('<name>', 'function name')
    .option('-d, --data <data>', "request body: JSON text, @file, or - for stdin")
    .option('-H, --header <k:v>', 'request header (repeatable)', collect, [] as string[])
    .option('-X, --method <method>', 'HTTP method (default POST)', parseMethod)
    .option('--path <path>', "request path inside the function (default /)", parsePath)
    .action(async (name: string, opts: InvokeOptions) => done(await handlers.invoke(name, opts)));

  common(program.command('logs'))
    .description("print a function's logs")
    .argument('<name>', 'function name')
    .option('-f, --follow', 'keep streaming new lines')
    .option('--invocation <id>', 'only the logs of one invocation')
    .option('--since <when>', 'start at a duration ago (10m, 1h) or an RFC 3339 time')
    .option('--search <text>', 'only lines containing this text')
    .action(async (name: string, opts: LogsOptions) => done(await handlers.logs(name, opts)));

  return program;
}
