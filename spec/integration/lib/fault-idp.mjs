// A test identity provider whose behaviour is switched per test case, to drive the bridge through
// faults: refused connections, silence, slow or broken HTTP, odd bodies and TLS certificates.
// It speaks HTTP/1.1 itself on a raw TCP (or TLS) socket, so a behaviour can send any bytes at any
// pace. It listens on 127.0.0.1 only, records every request with its exact bytes, and closes each
// connection after one response, so no kept connection carries one case's response into the next.

import net from 'node:net';
import tls from 'node:tls';

const HOST = '127.0.0.1';
const MAX_REQUEST_HEAD_BYTES = 64 * 1024;
const MAX_REQUEST_BODY_BYTES = 1024 * 1024;

const REASONS = {
  200: 'OK', 301: 'Moved Permanently', 302: 'Found', 307: 'Temporary Redirect', 400: 'Bad Request',
  401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 500: 'Internal Server Error',
  502: 'Bad Gateway', 503: 'Service Unavailable',
};

// ---------------------------------------------------------------- response builders

/**
 * Returns the bytes of an HTTP/1.1 response with `Connection: close`. `body` is a string (sent as
 * UTF-8) or a Buffer. `length` is 'content-length' (default), 'chunked' or 'close' (no length,
 * the body ends when the connection closes).
 */
export function responseBytes(status, { headers = {}, body = '', length = 'content-length' } = {}) {
  const payload = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const lines = [`HTTP/1.1 ${status} ${REASONS[status] ?? 'Status'}`, 'Connection: close'];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);

  let framed = payload;
  if (length === 'content-length') {
    lines.push(`Content-Length: ${payload.length}`);
  } else if (length === 'chunked') {
    lines.push('Transfer-Encoding: chunked');
    framed = chunkedBody(payload, 1024);
  } else if (length !== 'close') {
    throw new Error(`responseBytes: length must be content-length, chunked or close, got ${length}`);
  }
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), framed]);
}

function chunkedBody(payload, chunkSize) {
  const parts = [];
  for (let offset = 0; offset < payload.length; offset += chunkSize) {
    const chunk = payload.subarray(offset, offset + chunkSize);
    parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`, 'latin1'), chunk, Buffer.from('\r\n', 'latin1'));
  }
  parts.push(Buffer.from('0\r\n\r\n', 'latin1'));
  return Buffer.concat(parts);
}

/** Returns a response whose body is `value` as JSON. */
export function jsonResponse(status, value, options = {}) {
  return responseBytes(status, {
    ...options,
    headers: { 'Content-Type': 'application/json', ...options.headers },
    body: JSON.stringify(value),
  });
}

// ---------------------------------------------------------------- behaviours

/**
 * Behaviours for setBehaviour. Each is an object with one of:
 *   refuse: true              nothing listens on the port (connection refused)
 *   onConnection(socket, io)  takes over the connection before any byte is read
 *   onRequest(request, io)    responds to a parsed request
 * where `io` has send(bytes), end(bytes), dribble(bytes, intervalMs) and hold().
 */
export const behaviours = {
  refuse: () => ({ name: 'refuse', refuse: true }),

  /** Accepts the connection and never reads or writes. */
  silent: () => ({ name: 'silent', onConnection: (_socket, io) => io.hold() }),

  /** Reads the request and never responds. */
  noAnswer: () => ({ name: 'no answer', onRequest: (_request, io) => io.hold() }),

  /** Closes the connection as soon as it is accepted. */
  closeAtAccept: () => ({ name: 'close at accept', onConnection: (socket) => socket.destroy() }),

  /** Sends `bytes` and closes the connection. */
  reply: (bytes) => ({ name: 'reply', onRequest: (_request, io) => io.end(bytes) }),

  /** Sends `bytes` one byte each `intervalMs`, then closes. */
  dribble: (bytes, intervalMs) => ({ name: 'dribble', onRequest: (_request, io) => io.dribble(bytes, intervalMs) }),

  /** Sends `head` at once and then nothing more, keeping the connection open. */
  stall: (head) => ({
    name: 'stall',
    onRequest: (_request, io) => {
      io.send(head);
      io.hold();
    },
  }),

  /** Calls `respond(request)` and sends the bytes it returns. */
  respond: (respond) => ({ name: 'respond', onRequest: (request, io) => io.end(respond(request)) }),
};

// ---------------------------------------------------------------- request parsing

/**
 * Parses a request head (up to the blank line). Header names are lowered, and values keep
 * their exact bytes (read as latin1, so every byte maps to one character).
 */
function parseHead(head) {
  const lines = head.toString('latin1').split('\r\n');
  const [method, target, version] = lines[0].split(' ');
  const headers = {};
  const headerLines = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    headerLines.push([name, value]);
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { method, target, version, headers, headerLines };
}

// ---------------------------------------------------------------- server

/**
 * Starts the switchable IdP on 127.0.0.1. With `certificate` ({ key, cert } as PEM strings or
 * Buffers) it speaks HTTPS, and setCertificate switches the certificate for later connections.
 *
 * Resolves to { port, origin, url, requests, connections, setBehaviour, setCertificate, reset,
 * stop }. `requests` lists each parsed request as { method, target, headers, headerLines, body,
 * connection }; `connections` lists each accepted connection as { acceptedAt, closedAt,
 * requestBytes } with times from performance.now().
 */
export async function startFaultIdp({ certificate, path = '/userinfo' } = {}) {
  let behaviour = behaviours.reply(jsonResponse(404, { error: 'no behaviour set' }));
  let secureContext = certificate ? tls.createSecureContext(certificate) : undefined;
  const scheme = certificate ? 'https' : 'http';
  const requests = [];
  const connections = [];
  const sockets = new Set();
  const timers = new Set();

  const server = net.createServer((raw) => accept(raw));
  server.on('error', () => {});
  let port = await listen(server, 0);
  let listening = true;

  function accept(raw) {
    const record = { acceptedAt: performance.now(), closedAt: undefined, requestBytes: 0 };
    connections.push(record);
    const socket = secureContext ? new tls.TLSSocket(raw, { isServer: true, secureContext }) : raw;
    sockets.add(raw);
    // A client that rejects the certificate aborts the handshake, which shows up as an error.
    socket.on('error', () => {});
    raw.on('error', () => {});
    raw.once('close', () => {
      record.closedAt = performance.now();
      sockets.delete(raw);
    });

    const io = makeIo(socket, timers);
    const current = behaviour;
    if (current.onConnection) {
      current.onConnection(socket, io);
      return;
    }
    readRequest(socket, record, (request) => {
      request.connection = record;
      requests.push(request);
      current.onRequest(request, io);
    });
  }

  async function setBehaviour(next) {
    if (next.refuse && listening) {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(() => resolve()));
      listening = false;
    } else if (!next.refuse && !listening) {
      // NOTE: another process could take the port while nothing listens, and listen() then fails.
      port = await listen(server, port);
      listening = true;
    }
    behaviour = next;
  }

  return {
    get port() {
      return port;
    },
    get origin() {
      return `${HOST}:${port}`;
    },
    get url() {
      return `${scheme}://${HOST}:${port}${path}`;
    },
    requests,
    connections,
    setBehaviour,
    setCertificate(next) {
      secureContext = tls.createSecureContext(next);
    },
    /** Forgets the recorded requests and connections. */
    reset() {
      requests.length = 0;
      connections.length = 0;
    },
    async stop() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const socket of sockets) socket.destroy();
      if (listening) {
        listening = false;
        await new Promise((resolve) => server.close(() => resolve()));
      }
    },
  };
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    const onError = (err) => reject(err);
    server.once('error', onError);
    server.listen({ host: HOST, port, exclusive: true }, () => {
      server.off('error', onError);
      resolve(server.address().port);
    });
  });
}

function makeIo(socket, timers) {
  return {
    send(bytes) {
      if (!socket.destroyed) socket.write(bytes);
    },
    end(bytes) {
      if (!socket.destroyed) socket.end(bytes);
    },
    /** Writes one byte each `intervalMs` and closes after the last. Stops when the peer closes. */
    dribble(bytes, intervalMs) {
      let offset = 0;
      const step = () => {
        timers.delete(timer);
        if (socket.destroyed || offset >= bytes.length) {
          socket.end();
          return;
        }
        socket.write(bytes.subarray(offset, offset + 1));
        offset += 1;
        timer = setTimeout(step, intervalMs);
        timers.add(timer);
      };
      let timer = setTimeout(step, 0);
      timers.add(timer);
    },
    /** Keeps the connection open without writing; the peer or stop() closes it. */
    hold() {
      socket.resume();
    },
  };
}

// Reads one request: the head up to the blank line, then Content-Length bytes of body.
function readRequest(socket, record, onRequest) {
  let buffered = Buffer.alloc(0);
  let head;
  let bodyLength = 0;

  const onData = (chunk) => {
    record.requestBytes += chunk.length;
    buffered = Buffer.concat([buffered, chunk]);
    if (head === undefined) {
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) {
        if (buffered.length > MAX_REQUEST_HEAD_BYTES) socket.destroy();
        return;
      }
      head = parseHead(buffered.subarray(0, end));
      buffered = buffered.subarray(end + 4);
      bodyLength = Number(head.headers['content-length'] ?? 0);
      if (!Number.isSafeInteger(bodyLength) || bodyLength < 0 || bodyLength > MAX_REQUEST_BODY_BYTES) {
        socket.destroy();
        return;
      }
    }
    if (buffered.length < bodyLength) return;

    socket.off('data', onData);
    onRequest({ ...head, body: buffered.subarray(0, bodyLength) });
  };
  socket.on('data', onData);
}
