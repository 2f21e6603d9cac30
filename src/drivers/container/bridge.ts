/**
 * The connection bridge of the container tiers, run by the driver with the pinned Node binary inside its
 * hub network namespace (see network.ts): it listens on a unix socket in the driver's private directory
 * and, for each connection, reads one line `<ip>:<port>\n` naming a container, connects to it over the
 * instance's veth and pipes both ways. A line `?<ip>:<port>\n` only probes (readiness): the answer is
 * `1` (connected) or `0`, then the connection closes. Containers can reach the hub's addresses but nothing listens there.
 */
import { createConnection, createServer } from 'node:net';

const socketPath = process.argv[2]!;
const TARGET = /^10\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d{1,5}$/;

const server = createServer((client) => {
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const nl = head.indexOf(10);
    if (nl < 0) {
      if (head.length > 64) client.destroy();
      return;
    }
    client.off('data', onData);
    client.pause();
    const line = head.subarray(0, nl).toString('latin1');
    const probe = line.startsWith('?');
    const target = probe ? line.slice(1) : line;
    if (!TARGET.test(target)) return void client.destroy();
    const [host, port] = target.split(':') as [string, string];
    const upstream = createConnection({ host, port: Number(port) });
    if (probe) {
      upstream.once('connect', () => {
        upstream.destroy();
        client.end('1');
      });
      upstream.on('error', () => client.end('0'));
      return;
    }
    upstream.setNoDelay(true);
    const rest = head.subarray(nl + 1);
    upstream.once('connect', () => {
      if (rest.length > 0) upstream.write(rest);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  };
  client.on('data', onData);
  client.on('error', () => {});
});
server.listen(socketPath, () => process.stdout.write('ready\n'));
// The driver holds our stdin: when it goes away (even killed), so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
