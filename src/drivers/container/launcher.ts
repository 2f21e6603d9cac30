/**
 * Starts the container tiers' processes — the OCI runtime's long-running ones (`runc run`, `runsc run`) and
 * short commands (`runc kill`/`delete`, `ip`) — from a small helper process (launcher-process.ts) instead
 * of from the node. Spawning blocks the spawner until the child has exec'd, and from a process of several
 * hundred MB that took 10–15 ms here (the kernel copies, then tears down, the large address space between
 * fork and exec): on every container cold start, and on every request the node was serving meanwhile.
 * From the helper the same spawn costs about a millisecond, of its time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface Launched {
  /** Resolves when the process has ended (and its output is read). */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /** Its stdout and stderr, as they come. */
  onOutput(fn: (text: string) => void): void;
  kill(signal?: NodeJS.Signals): void;
}

interface Entry {
  helper: ChildProcess;
  output: Array<(text: string) => void>;
  done: (result: { code: number | null; signal: string | null }) => void;
}

export class Launcher {
  readonly #nodePath: string;
  #helper: ChildProcess | null = null;
  readonly #entries = new Map<number, Entry>();
  #next = 0;

  constructor(nodePath: string) {
    this.#nodePath = nodePath;
  }

  /** Start `file`; `input`, when given, is written to its stdin (otherwise stdin is /dev/null). */
  run(file: string, args: string[], input?: string): Launched {
    const helper = this.#ensure();
    const id = ++this.#next;
    const output: Entry['output'] = [];
    const exited = new Promise<{ code: number | null; signal: string | null }>((done) => this.#entries.set(id, { helper, output, done }));
    helper.stdin!.write(`${JSON.stringify({ run: id, file, args, ...(input !== undefined ? { input } : {}) })}\n`);
    return {
      exited,
      onOutput: (fn) => void output.push(fn),
      kill: (signal = 'SIGKILL') => {
        if (this.#entries.has(id) && helper.stdin!.writable) helper.stdin!.write(`${JSON.stringify({ kill: id, signal })}\n`);
      },
    };
  }

  /**
   * Run a short command to its end: resolves with its output (stdout and stderr as they came) when it exits
   * with 0; rejects with the command and the end of its output otherwise, or when it runs past `timeoutMs`
   * (then it is killed; the error's `timedOut` is true).
   */
  async exec(file: string, args: string[], options: { input?: string; timeoutMs: number }): Promise<string> {
    const child = this.run(file, args, options.input);
    let output = '';
    child.onOutput((text) => (output = (output + text).slice(-8000)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    const { code, signal } = await child.exited.finally(() => clearTimeout(timer));
    if (code === 0) return output;
    const what = `${file.split('/').at(-1)} ${args.join(' ')}`.slice(0, 200);
    const why = timedOut ? 'timed out' : `${code !== null ? `exit ${code}` : `signal ${signal}`}: ${output.trim().slice(-300)}`;
    throw Object.assign(new Error(`${what}: ${why}`), { timedOut, output });
  }

  /** Ends the helper; processes it started keep running (their owners remove them by name). */
  close(): void {
    this.#helper?.stdin!.end();
    this.#helper = null;
  }

  #ensure(): ChildProcess {
    if (this.#helper) return this.#helper;
    const script = new URL('./launcher-process.ts', import.meta.url).pathname;
    const helper = spawn(this.#nodePath, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.#helper = helper;
    helper.on('error', () => this.#lost(helper));
    helper.on('exit', () => this.#lost(helper));
    createInterface({ input: helper.stdout! }).on('line', (line) => {
      let m: { out?: number; exit?: number; data?: string; code?: number | null; signal?: string | null; error?: string };
      try {
        m = JSON.parse(line);
      } catch {
        return;
      }
      if (typeof m.out === 'number') {
        for (const fn of this.#entries.get(m.out)?.output ?? []) fn(String(m.data));
      } else if (typeof m.exit === 'number') {
        const entry = this.#entries.get(m.exit);
        this.#entries.delete(m.exit);
        if (entry && m.error) for (const fn of entry.output) fn(`${m.error}\n`);
        entry?.done({ code: m.code ?? null, signal: m.signal ?? null });
      }
    });
    return helper;
  }

  /** A helper died: what it was running can no longer be followed, so it counts as ended. */
  #lost(helper: ChildProcess): void {
    if (this.#helper === helper) this.#helper = null;
    for (const [id, entry] of this.#entries) {
      if (entry.helper !== helper) continue;
      this.#entries.delete(id);
      entry.done({ code: null, signal: null });
    }
  }
}
