// Client side of Dovecot's auth-client protocol (version 1.2), spoken directly to the
// auth-client UNIX socket in a Dovecot base_dir, and a load runner built on it.
//
// The message formats were checked against src/auth/auth-request-handler.c and
// src/auth/mech-oauth2.c of Dovecot 2.3.19.1:
//   client: VERSION\t1\t2 and CPID\t<pid>, then AUTH\t<id>\t<MECH>\tservice=imap\t...\tresp=<base64>
//   server: VERSION, MECH lines, SPID, CUID, COOKIE, DONE; then OK\t<id>..., FAIL\t<id>... or
//           CONT\t<id>\t<base64>.
// A rejected XOAUTH2 or OAUTHBEARER token gets a CONT with a JSON error first. The client
// acknowledges it with an empty CONT and then receives the FAIL.

import net from 'node:net';
import { performance } from 'node:perf_hooks';

const HANDSHAKE_TIMEOUT_MS = 10000;

// Open connections, kept so that an interrupted benchmark can close them all.
const openClients = new Set();

/** Closes every open connection and rejects its pending requests. */
export function closeAllAuthClients() {
  for (const client of openClients) client.close();
}

/** Builds the XOAUTH2 initial response for `user` and `token`, base64-encoded. */
export function xoauth2Response(user, token) {
  return Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`, 'utf8').toString('base64');
}

/**
 * Connects to the auth-client socket at `socketPath`, sends the handshake with client PID
 * `cpid` and resolves once the server's DONE line arrived. Each connection needs its own
 * `cpid`, because the auth process drops a second connection that reports a PID in use.
 */
export function connectAuthClient(socketPath, cpid) {
  return new Promise((resolve, reject) => {
    const client = new AuthClient(socketPath, cpid);
    const timer = setTimeout(() => {
      client.close();
      reject(new Error(`no DONE line from ${socketPath} within ${HANDSHAKE_TIMEOUT_MS} ms`));
    }, HANDSHAKE_TIMEOUT_MS);
    client.handshake.then(
      () => {
        clearTimeout(timer);
        resolve(client);
      },
      (err) => {
        clearTimeout(timer);
        client.close();
        reject(err);
      },
    );
  });
}

/** One auth-client connection with any number of AUTH requests in flight, matched by id. */
export class AuthClient {
  constructor(socketPath, cpid) {
    this.socketPath = socketPath;
    this.mechanisms = new Set();
    this.pending = new Map();
    this.nextId = 1;
    this.buffered = '';
    this.closedError = undefined;

    this.socket = net.connect(socketPath);
    openClients.add(this);
    this.socket.setEncoding('utf8');
    this.handshake = new Promise((resolve, reject) => {
      this.handshakeDone = resolve;
      this.handshakeFailed = reject;
    });
    this.socket.on('connect', () => {
      this.socket.write(`VERSION\t1\t2\nCPID\t${cpid}\n`);
    });
    this.socket.on('data', (chunk) => this.receive(chunk));
    this.socket.on('error', (err) => this.fail(new Error(`auth-client socket ${socketPath}: ${err.message}`)));
    this.socket.on('close', () => this.fail(new Error(`auth-client socket ${socketPath} closed by the server`)));
  }

  /**
   * Sends one AUTH request with an XOAUTH2 initial response and resolves with
   * `{ ok, reply }`, where `reply` is the server's final OK or FAIL line. It rejects only when
   * the connection fails.
   */
  authenticateXoauth2(user, token) {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const resp = xoauth2Response(user, token);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(`AUTH\t${id}\tXOAUTH2\tservice=imap\tsecured\tresp=${resp}\n`);
    });
  }

  close() {
    this.closedError ??= new Error(`auth-client connection to ${this.socketPath} closed by the benchmark`);
    openClients.delete(this);
    this.socket.destroy();
    this.rejectPending(this.closedError);
  }

  receive(chunk) {
    this.buffered += chunk;
    let end;
    while ((end = this.buffered.indexOf('\n')) !== -1) {
      const line = this.buffered.slice(0, end);
      this.buffered = this.buffered.slice(end + 1);
      this.handleLine(line);
    }
  }

  handleLine(line) {
    const fields = line.split('\t');
    switch (fields[0]) {
      case 'OK':
      case 'FAIL': {
        const request = this.takePending(fields[1], line);
        request?.resolve({ ok: fields[0] === 'OK', reply: line });
        return;
      }
      case 'CONT': {
        // The mechanism's failure challenge; an empty response makes the server send FAIL.
        if (this.pending.has(Number(fields[1]))) this.socket.write(`CONT\t${fields[1]}\t\n`);
        return;
      }
      case 'MECH':
        this.mechanisms.add(fields[1]);
        return;
      case 'DONE':
        this.handshakeDone();
        return;
      case 'VERSION':
        if (fields[1] !== '1') this.fail(new Error(`unsupported auth-client protocol version in: ${line}`));
        return;
      default:
        // SPID, CUID and COOKIE are not needed by this client.
        return;
    }
  }

  takePending(idText, line) {
    const id = Number(idText);
    const request = this.pending.get(id);
    if (request === undefined) {
      this.fail(new Error(`reply for unknown request id ${idText}: ${line.slice(0, 200)}`));
      return undefined;
    }
    this.pending.delete(id);
    return request;
  }

  fail(err) {
    if (this.closedError === undefined) this.closedError = err;
    this.handshakeFailed(this.closedError);
    openClients.delete(this);
    this.socket.destroy();
    this.rejectPending(this.closedError);
  }

  rejectPending(err) {
    for (const request of this.pending.values()) request.reject(err);
    this.pending.clear();
  }
}

/**
 * Sends XOAUTH2 logins over `connections` connections to `socketPath`, keeping `inFlight`
 * requests in flight in total. Request number i logs in as `logins[order[i % order.length]]`,
 * an object `{ user, token }`. Sending stops after `maxRequests` requests or `durationMs`,
 * whichever comes first. Replies still missing `graceMs` later fail the run.
 *
 * `onReply(login, ok, reply, latencyMs)`, when given, is called for each reply with the login
 * object, whether it was OK, the OK or FAIL line and the reply's latency in ms.
 *
 * Resolves with the number of OK and FAIL replies, the first FAIL line, the latency of each
 * reply in ms, and the time from the first request to the last reply in ms.
 */
export async function runLoad({ socketPath, cpidBase, connections, inFlight, logins, order, maxRequests, durationMs, graceMs, onReply }) {
  const clients = [];
  try {
    for (let index = 0; index < connections; index++) {
      clients.push(await connectAuthClient(socketPath, cpidBase + index));
    }
    for (const client of clients) {
      if (!client.mechanisms.has('XOAUTH2')) {
        throw new Error(`the auth process at ${socketPath} does not offer XOAUTH2 (offers ${[...client.mechanisms].join(' ')})`);
      }
    }

    const latenciesMs = [];
    let okCount = 0;
    let failCount = 0;
    let firstFailure;
    let sent = 0;
    const startedAt = performance.now();
    const stopSendingAt = startedAt + durationMs;

    // Each slot sends its next request as soon as the previous reply arrived.
    const runSlot = async (client) => {
      while (sent < maxRequests && performance.now() < stopSendingAt) {
        const login = logins[order[sent % order.length]];
        sent += 1;
        const requestStart = performance.now();
        const { ok, reply } = await client.authenticateXoauth2(login.user, login.token);
        const latencyMs = performance.now() - requestStart;
        latenciesMs.push(latencyMs);
        onReply?.(login, ok, reply, latencyMs);
        if (ok) {
          okCount += 1;
        } else {
          failCount += 1;
          firstFailure ??= reply;
        }
      }
    };

    const slots = [];
    for (let slot = 0; slot < inFlight; slot++) slots.push(runSlot(clients[slot % clients.length]));

    let deadlineTimer;
    const deadline = new Promise((_, reject) => {
      deadlineTimer = setTimeout(
        () => reject(new Error(`replies still missing ${graceMs} ms after the sending stopped (sent ${sent})`)),
        durationMs + graceMs,
      );
    });
    try {
      await Promise.race([Promise.all(slots), deadline]);
    } finally {
      clearTimeout(deadlineTimer);
    }

    return { okCount, failCount, firstFailure, latenciesMs, elapsedMs: performance.now() - startedAt };
  } finally {
    for (const client of clients) client.close();
  }
}

/** Returns the nearest-rank percentile `p` (0 to 100) of the sorted array `sorted`. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}
