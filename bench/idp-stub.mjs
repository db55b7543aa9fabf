// Identity provider stub for `make bench`: OIDC userinfo endpoints on 127.0.0.1 that accept a
// fixed set of access tokens, respond after a configurable delay, and count requests and TCP
// connections, so that connection reuse by the clients is visible.
//
// Each Dovecot instance gets its own listener (port), so every count belongs to one instance.
// Run by bench/run.mjs with child_process.fork(). The parent sends IPC messages and gets a
// reply with the same id:
//   { id, type: 'configure', tokens: { <token>: <email> }, delayMs }  -> { id, ok: true }
//   { id, type: 'delay', delayMs }                                      -> { id, ok: true }
//   { id, type: 'listen', name }                                        -> { id, ok: true, port }
//   { id, type: 'stats', name } -> { id, ok: true, stats: { requests, connections, openConnections, statuses } }
// The stub sends { type: 'ready' } at start and exits when the parent disconnects, so it never
// outlives the benchmark.
//
// GET /userinfo with `Authorization: Bearer <token>` returns 200 and {"sub", "email"} for a
// known token and 401 for any other. Dovecot's oauth2 driver with introspection_mode = auth and
// the bridge with introspection_mode = auth both send exactly this request, so no RFC 7662
// endpoint is needed.

import http from 'node:http';

const LISTEN_HOST = '127.0.0.1';
// Idle keep-alive connections stay open this long. Node's default of 5 s would close the
// native driver's pool between two measurements of the same instance.
const KEEP_ALIVE_TIMEOUT_MS = 120000;

let tokens = new Map();
let delayMs = 0;
const listeners = new Map();

function respond(stats, response, status, body, extraHeaders = {}) {
  stats.statuses[status] = (stats.statuses[status] ?? 0) + 1;
  const text = JSON.stringify(body);
  const send = () => {
    response.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
      ...extraHeaders,
    });
    response.end(text);
  };
  if (delayMs > 0) setTimeout(send, delayMs);
  else send();
}

function handleRequest(stats, request, response) {
  stats.requests += 1;
  const path = request.url.split('?')[0];
  if (path !== '/userinfo') {
    respond(stats, response, 404, { error: 'not_found' });
    return;
  }
  if (request.method !== 'GET') {
    respond(stats, response, 405, { error: 'method_not_allowed' }, { allow: 'GET' });
    return;
  }
  const match = /^Bearer ([^\s]+)$/i.exec(request.headers.authorization ?? '');
  const email = match ? tokens.get(match[1]) : undefined;
  if (email === undefined) {
    respond(stats, response, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
    return;
  }
  respond(stats, response, 200, { sub: email.split('@')[0], email });
}

function listen(name) {
  if (listeners.has(name)) return Promise.reject(new Error(`a listener named ${name} exists already`));
  const stats = { requests: 0, connections: 0, openConnections: 0, statuses: {} };
  const server = http.createServer((request, response) => handleRequest(stats, request, response));
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1000;
  server.on('connection', (socket) => {
    stats.connections += 1;
    stats.openConnections += 1;
    socket.setNoDelay(true);
    socket.on('close', () => {
      stats.openConnections -= 1;
    });
  });
  listeners.set(name, { server, stats });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: LISTEN_HOST, port: 0 }, () => resolve(server.address().port));
  });
}

async function handleMessage(message) {
  switch (message.type) {
    case 'configure':
      tokens = new Map(Object.entries(message.tokens));
      delayMs = message.delayMs;
      return {};
    case 'delay':
      delayMs = message.delayMs;
      return {};
    case 'listen':
      return { port: await listen(message.name) };
    case 'stats': {
      const listener = listeners.get(message.name);
      if (listener === undefined) throw new Error(`no listener named ${message.name}`);
      return { stats: structuredClone(listener.stats) };
    }
    default:
      throw new Error(`unknown message type ${message.type}`);
  }
}

process.on('message', (message) => {
  handleMessage(message).then(
    (result) => process.send({ id: message.id, ok: true, ...result }),
    (err) => process.send({ id: message.id, ok: false, error: err.message }),
  );
});

// The parent is gone, whether it stopped normally or was killed.
process.on('disconnect', () => process.exit(0));

process.send({ type: 'ready' });
