// A TCP proxy on 127.0.0.1 between the bridge and the test IdP that counts what the bridge
// sends: each connection it accepts and each HTTP request on it. Every accepted connection gets
// its own connection to the IdP, so the counts are what the IdP itself would see. The proxy can
// also close its connections, as a server with a keep-alive timeout closes idle ones, and drop
// the next request that arrives on a connection that already carried one.

import net from 'node:net';

const LISTEN_HOST = '127.0.0.1';
const MAX_HEAD_BYTES = 64 * 1024;

/**
 * Starts the proxy in front of 127.0.0.1:targetPort. Resolves to an object with:
 *   port: the port to give the bridge instead of targetPort.
 *   connections(): the number of connections the proxy has accepted.
 *   requests(): a copy of [{ connection, method, target, dropped }], one per request, in order.
 *   closeConnections(): closes every open connection with a FIN on both sides, as an IdP closes
 *     idle connections. Call it between logins, when no request is in flight.
 *   dropNextKeptRequest(): makes the proxy close, without forwarding or replying, the next
 *     request that arrives on a connection that already carried a request.
 *   stop(): closes the listener and every connection.
 */
export async function startCountingProxy({ targetPort }) {
  const requests = [];
  const open = new Set();
  let connectionCount = 0;
  let dropNextKept = false;

  const server = net.createServer((client) => {
    connectionCount += 1;
    const connection = { id: connectionCount, requests: 0, buffer: Buffer.alloc(0) };
    const upstream = net.connect({ host: LISTEN_HOST, port: targetPort });
    const pair = { client, upstream };
    open.add(pair);

    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
      open.delete(pair);
    };
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);
    client.on('close', closeBoth);
    upstream.on('close', () => client.end());
    upstream.on('data', (data) => client.write(data));

    // Forwards each complete request, so a request to drop is never partly forwarded.
    client.on('data', (data) => {
      connection.buffer = Buffer.concat([connection.buffer, data]);
      for (;;) {
        const request = takeRequest(connection);
        if (request === undefined) break;
        connection.requests += 1;
        const dropped = dropNextKept && connection.requests > 1;
        requests.push({ connection: connection.id, method: request.method, target: request.target, dropped });
        if (dropped) {
          dropNextKept = false;
          closeBoth();
          return;
        }
        upstream.write(request.bytes);
      }
      if (connection.buffer.length > MAX_HEAD_BYTES) closeBoth();
    });
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: LISTEN_HOST, port: 0 }, resolve);
  });

  return {
    port: server.address().port,
    connections: () => connectionCount,
    requests: () => requests.map((request) => ({ ...request })),
    closeConnections() {
      for (const { client, upstream } of open) {
        client.end();
        upstream.end();
      }
    },
    dropNextKeptRequest() {
      dropNextKept = true;
    },
    stop() {
      for (const { client, upstream } of open) {
        client.destroy();
        upstream.destroy();
      }
      open.clear();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

// Takes one complete request (head and Content-Length body) off the front of the buffer.
function takeRequest(connection) {
  const headEnd = connection.buffer.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const head = connection.buffer.subarray(0, headEnd).toString('latin1');
  const lengthLine = head.split('\r\n').find((line) => /^content-length:/i.test(line));
  const length = lengthLine === undefined ? 0 : Number(lengthLine.slice(lengthLine.indexOf(':') + 1));
  const end = headEnd + 4 + length;
  if (connection.buffer.length < end) return undefined;

  const bytes = connection.buffer.subarray(0, end);
  connection.buffer = connection.buffer.subarray(end);
  const [method, target] = head.slice(0, head.indexOf('\r\n')).split(' ');
  return { method, target, bytes };
}
