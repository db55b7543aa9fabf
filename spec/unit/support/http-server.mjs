// A scripted HTTP/1.1 server on 127.0.0.1 for spec/unit/23-http_spec.lua. The path of each
// request picks the reply, including replies that a correct server never sends. Each event
// (connection, request, drop, close) is appended as one JSON line to EVENT_FILE before the reply
// is written, so a spec that has its response can count connections and requests.
//
// Usage: node http-server.mjs EVENT_FILE [IDLE_CLOSE_MS]
// With IDLE_CLOSE_MS above 0 the server closes a connection that stays idle that long after a
// reply, as servers with a keep-alive timeout do. It prints "READY <port>" once it listens.

import fs from 'node:fs';
import net from 'node:net';

const [eventFile, idleCloseArgument] = process.argv.slice(2);
const idleCloseMs = Number(idleCloseArgument ?? 0);
const MAX_HEAD_BYTES = 64 * 1024;

let connectionCount = 0;
let requestCount = 0;

function record(event) {
  fs.appendFileSync(eventFile, `${JSON.stringify(event)}\n`);
}

function reply(socket, statusLine, headers, body = '') {
  const lines = [statusLine, ...headers.map(([name, value]) => `${name}: ${value}`)];
  socket.write(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

function withLength(body) {
  return [['Content-Type', 'application/json'], ['Content-Length', Buffer.byteLength(body)]];
}

function chunked(body, size) {
  let text = '';
  for (let offset = 0; offset < body.length; offset += size) {
    const chunk = body.slice(offset, offset + size);
    // The first size line carries a chunk extension, which the client must skip.
    text += `${chunk.length.toString(16)}${offset === 0 ? ';name=value' : ''}\r\n${chunk}\r\n`;
  }
  return `${text}0\r\nx-trailer: done\r\n\r\n`;
}

// Sends one byte every `intervalMs` until the text ends or the client goes away.
function drip(socket, text, intervalMs) {
  let index = 0;
  const timer = setInterval(() => {
    if (index >= text.length || socket.destroyed) {
      clearInterval(timer);
      return;
    }
    socket.write(text[index]);
    index += 1;
  }, intervalMs);
  socket.once('close', () => clearInterval(timer));
}

function handle(socket, connection, request) {
  const url = new URL(request.target, 'http://127.0.0.1');
  const echo = JSON.stringify({
    connection: connection.id,
    request: connection.requests,
    method: request.method,
    target: request.target,
    head: request.head,
    body: request.body,
  });
  const reusedConnection = connection.requests >= 2;
  const bytes = Number(url.searchParams.get('bytes') ?? 0);

  switch (url.pathname) {
    case '/json':
      return reply(socket, 'HTTP/1.1 200 OK', withLength(echo), echo);
    case '/chunked':
      return reply(socket, 'HTTP/1.1 200 OK', [['Transfer-Encoding', 'chunked']], chunked(echo, 7));
    case '/until-close':
      reply(socket, 'HTTP/1.1 200 OK', [['Content-Type', 'application/json']], echo);
      return socket.end();
    case '/big-length':
      return reply(socket, 'HTTP/1.1 200 OK', withLength('x'.repeat(bytes)), 'x'.repeat(bytes));
    case '/big-chunked':
      return reply(socket, 'HTTP/1.1 200 OK', [['Transfer-Encoding', 'chunked']], chunked('x'.repeat(bytes), 512));
    case '/big-until-close':
      reply(socket, 'HTTP/1.1 200 OK', [], 'x'.repeat(bytes));
      return socket.end();
    case '/headers': {
      const count = Number(url.searchParams.get('count'));
      const headers = [...withLength('{}')];
      while (headers.length < count) headers.push([`x-header-${headers.length}`, String(headers.length)]);
      return reply(socket, 'HTTP/1.1 200 OK', headers, '{}');
    }
    case '/bad-status':
      return reply(socket, 'HTTP/2 200 OK', withLength('{}'), '{}');
    case '/no-content':
      return reply(socket, 'HTTP/1.1 204 No Content', []);
    case '/close-header':
      // Asks the client to close, but leaves the connection open, so reuse would go unnoticed.
      return reply(socket, 'HTTP/1.1 200 OK', [...withLength(echo), ['Connection', 'close']], echo);
    case '/http10':
      return reply(socket, 'HTTP/1.0 200 OK', withLength(echo), echo);
    case '/http10-keep-alive':
      return reply(socket, 'HTTP/1.0 200 OK', [...withLength(echo), ['Connection', 'keep-alive']], echo);
    case '/drop-kept':
      if (!reusedConnection) return reply(socket, 'HTTP/1.1 200 OK', withLength(echo), echo);
      record({ event: 'drop', connection: connection.id });
      return socket.destroy();
    case '/drop':
      record({ event: 'drop', connection: connection.id });
      return socket.destroy();
    case '/drop-after-first':
      if (requestCount === 1) return reply(socket, 'HTTP/1.1 200 OK', withLength(echo), echo);
      record({ event: 'drop', connection: connection.id });
      return socket.destroy();
    case '/reset-kept':
      if (!reusedConnection) return reply(socket, 'HTTP/1.1 200 OK', withLength(echo), echo);
      record({ event: 'drop', connection: connection.id });
      return socket.resetAndDestroy();
    case '/partial-kept':
      if (!reusedConnection) return reply(socket, 'HTTP/1.1 200 OK', withLength(echo), echo);
      record({ event: 'drop', connection: connection.id });
      return socket.end('HTTP/1.1 20');
    case '/slow':
      return drip(socket, `HTTP/1.1 200 OK\r\n${withLength(echo).map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n${echo}`, 1000);
    default:
      return reply(socket, 'HTTP/1.1 404 Not Found', [['Content-Length', 0]]);
  }
}

// Takes every complete request off the front of the connection's buffer.
function serveBuffered(socket, connection) {
  for (;;) {
    const headEnd = connection.buffer.indexOf('\r\n\r\n');
    if (headEnd < 0) {
      if (connection.buffer.length > MAX_HEAD_BYTES) socket.destroy();
      return;
    }
    const head = connection.buffer.subarray(0, headEnd).toString('latin1');
    const [requestLine, ...headerLines] = head.split('\r\n');
    const lengthLine = headerLines.find((line) => /^content-length:/i.test(line));
    const length = lengthLine === undefined ? 0 : Number(lengthLine.split(':')[1]);
    if (connection.buffer.length < headEnd + 4 + length) return;

    const body = connection.buffer.subarray(headEnd + 4, headEnd + 4 + length).toString('latin1');
    connection.buffer = connection.buffer.subarray(headEnd + 4 + length);
    const [method, target] = requestLine.split(' ');
    connection.requests += 1;
    requestCount += 1;
    record({ event: 'request', connection: connection.id, request: connection.requests, method, target });
    clearTimeout(connection.idleTimer);
    handle(socket, connection, { method, target, head, body });
    if (idleCloseMs > 0 && !socket.destroyed) {
      // The event is recorded once the FIN has gone to the kernel, so a client that has seen the
      // event can see the close too.
      connection.idleTimer = setTimeout(() => {
        socket.end(() => record({ event: 'idle-close', connection: connection.id }));
      }, idleCloseMs);
    }
  }
}

const server = net.createServer((socket) => {
  connectionCount += 1;
  const connection = { id: connectionCount, requests: 0, buffer: Buffer.alloc(0), idleTimer: undefined };
  record({ event: 'connection', connection: connection.id });

  socket.on('data', (data) => {
    connection.buffer = Buffer.concat([connection.buffer, data]);
    serveBuffered(socket, connection);
  });
  // Writes fail when a client gives up mid-reply, which some specs do on purpose.
  socket.on('error', () => {});
  socket.on('close', () => {
    clearTimeout(connection.idleTimer);
    record({ event: 'close', connection: connection.id });
  });
});

server.listen({ host: '127.0.0.1', port: 0 }, () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
