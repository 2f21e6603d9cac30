/**
 * The container tiers' process launcher, run by the driver with the pinned Node binary (see launcher.ts).
 * Reads one JSON command per line on stdin and answers with JSON lines on stdout:
 *   {"run": id, "file": "...", "args": [...], "input"?: "..."}  → {"out": id, "data": "..."}*, then {"exit": id, "code": n|null, "signal": s|null}
 *                                       (with `input`, the process gets it on stdin; otherwise stdin is /dev/null)
 *   {"kill": id, "signal": "SIGKILL"}          → (the exit follows)
 * A command this process cannot start ends at once with {"exit": id, "code": null, "signal": null, "error": "..."}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

const children = new Map<number, ChildProcess>();
const send = (message: object) => process.stdout.write(`${JSON.stringify(message)}\n`);

createInterface({ input: process.stdin }).on('line', (line) => {
  let cmd: { run?: number; kill?: number; file?: string; args?: string[]; input?: string; signal?: NodeJS.Signals };
  try {
    cmd = JSON.parse(line);
  } catch {
    return;
  }
  if (typeof cmd.kill === 'number') {
    children.get(cmd.kill)?.kill(cmd.signal ?? 'SIGKILL');
    return;
  }
  const id = cmd.run;
  if (typeof id !== 'number' || typeof cmd.file !== 'string' || !Array.isArray(cmd.args)) return;
  let child: ChildProcess;
  try {
    child = spawn(cmd.file, cmd.args, { stdio: [typeof cmd.input === 'string' ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  } catch (err) {
    send({ exit: id, code: null, signal: null, error: (err as Error).message });
    return;
  }
  children.set(id, child);
  if (typeof cmd.input === 'string') {
    child.stdin!.on('error', () => {});
    child.stdin!.end(cmd.input);
  }
  const out = (data: Buffer) => send({ out: id, data: data.toString('utf8') });
  child.stdout!.on('data', out);
  child.stderr!.on('data', out);
  child.on('error', (err) => send({ out: id, data: `${err.message}\n` }));
  child.on('close', (code, signal) => {
    children.delete(id);
    send({ exit: id, code, signal });
  });
});

// The driver is gone: so are we (the runtimes' processes keep running; the driver's next start removes them).
process.stdin.on('end', () => process.exit(0));
