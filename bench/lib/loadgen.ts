// Fallback load generator when `wrk` is unavailable: closed-loop HTTP/1.1 keep-alive clients on raw
// sockets (no http module parsing overhead), one request in flight per connection, like wrk.
// Usage: node bench/lib/loadgen.ts URL DURATION_S CONNECTIONS  → prints one LOADGEN_JSON line.
import net from 'node:net';

const [urlArg, durationArg, connArg] = process.argv.slice(2);
if (!urlArg) {
  console.error('usage: loadgen.ts URL DURATION_S CONNECTIONS');
  process.exit(1);
}
const url = new URL(urlArg);
const durationMs = Number(durationArg ?? 10) * 1000;
const connections = Number(connArg ?? 32);
const requestBytes = Buffer.from(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);

const latenciesUs: number[] = [];
let requests = 0;
let bytes = 0;
let errStatus = 0;
let errConnect = 0;
let errRead = 0;
let stopping = false;
const start = process.hrtime.bigint();

function client(): Promise<void> {
  return new Promise((resolve) => {
    const sock = net.connect(Number(url.port), url.hostname);
    sock.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    let sentAt = 0n;
    const send = (): void => {
      if (stopping) {
        sock.end();
        resolve();
        return;
      }
      sentAt = process.hrtime.bigint();
      sock.write(requestBytes);
    };
    // Parses as many complete responses as `buf` holds (Content-Length or chunked bodies).
    const parse = (): void => {
      for (;;) {
        const headEnd = buf.indexOf('\r\n\r\n');
        if (headEnd < 0) return;
        const head = buf.subarray(0, headEnd).toString('latin1');
        const status = Number(head.slice(9, 12));
        const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        let total: number;
        if (cl) {
          total = headEnd + 4 + Number(cl[1]);
          if (buf.length < total) return;
        } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
          const end = buf.indexOf('\r\n0\r\n\r\n', headEnd + 2);
          if (end < 0) return;
          total = end + 7;
        } else {
          total = headEnd + 4;
        }
        bytes += total;
        buf = buf.subarray(total);
        requests++;
        if (status < 200 || status >= 400) errStatus++;
        latenciesUs.push(Number(process.hrtime.bigint() - sentAt) / 1000);
        send();
      }
    };
    sock.on('connect', send);
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      parse();
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') errConnect++;
      else errRead++;
      resolve();
    });
    sock.on('close', () => resolve());
  });
}

setTimeout(() => {
  stopping = true;
}, durationMs);
await Promise.all(Array.from({ length: connections }, () => client()));
const durationUs = Number(process.hrtime.bigint() - start) / 1000;
latenciesUs.sort((a, b) => a - b);
const pct = (p: number): number => latenciesUs[Math.max(Math.ceil((p / 100) * latenciesUs.length) - 1, 0)] ?? 0;
console.log(`LOADGEN_JSON ${JSON.stringify({
  requests, duration_us: Math.round(durationUs), bytes, p50_us: pct(50), p99_us: pct(99), max_us: latenciesUs.at(-1) ?? 0,
  err_connect: errConnect, err_read: errRead, err_write: 0, err_status: errStatus, err_timeout: 0,
})}`);
