// The `node` anchor: a plain node:http server calling the same handler logic through a native (req, res)
// adapter (no Request/Response bridge). Usage: node bench/targets/node-server.ts PORT hello|html
import http from 'node:http';
import { HELLO_BODY } from '../functions/hello-body.js';
import { htmlParams, renderHtml } from '../functions/render.js';

const port = Number(process.argv[2]);
const fn = process.argv[3] ?? 'hello';
const helloBytes = Buffer.from(HELLO_BODY);

const server = http.createServer(fn === 'html'
  ? (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const { username, items } = htmlParams(new URLSearchParams(q < 0 ? '' : url.slice(q + 1)));
    const body = Buffer.from(renderHtml(username, items));
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': body.length });
    res.end(body);
  }
  : (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': helloBytes.length });
    res.end(helloBytes);
  });
server.keepAliveTimeout = 30_000;
server.listen(port, '127.0.0.1', () => console.log(`node-server ${fn} ready on ${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
