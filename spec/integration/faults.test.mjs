// Fault matrix: the bridge in a real Dovecot 2.3 against an identity provider that fails in one
// way per case (lib/fault-idp.mjs). Every case must end in its row of the outcome table, never OK,
// with one log line that names the fault, and with no token, secret or body text in the log.
// One Dovecot serves all plain HTTP cases and one all HTTPS cases. The token cache is off, so
// every login sends a request to the identity provider.
// Run: node --test spec/integration/faults.test.mjs (as root, because Dovecot drops privileges).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { makeCerts } from './lib/certs.mjs';
import { imapXoauth2 } from './lib/clients.mjs';
import { findAllLogLines, LOG_PATTERNS, startDovecot } from './lib/dovecot.mjs';
import { behaviours, jsonResponse, responseBytes, startFaultIdp } from './lib/fault-idp.mjs';

// OAUTH2_BRIDGE_SCRIPT can name another build, such as a scratch build of a fix.
const BRIDGE_SCRIPT = process.env.OAUTH2_BRIDGE_SCRIPT
  ? path.resolve(process.env.OAUTH2_BRIDGE_SCRIPT)
  : fileURLToPath(new URL('../../lua-out/oauth2-bridge.lua', import.meta.url));

const ALICE = 'alice@example.test';
const TIMEOUT_MS = 1500;
const MAX_RESPONSE_BYTES = 4096;
// How far from timeout_msecs the bridge may close a connection that never completes a response.
const DEADLINE_EARLY_MS = 100;
const DEADLINE_LATE_MS = 700;

const TEMPORARY_FAILURE = /NO \[UNAVAILABLE\] Temporary authentication failure/;
const AUTH_FAILED = /NO \[AUTHENTICATIONFAILED\]/;

// Every token a client sent, every secret in a settings file and every marker put into a
// response body: none of them may reach a log.
const sentTokens = [];
const secrets = [];
const bodyMarkers = [];
const logFiles = [];
const runningServers = [];

let rootDir;

function makeDir(name) {
  const dir = path.join(rootDir, name);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  return dir;
}

/** Returns a fresh RFC 6750 b64token that uses every character class the syntax allows. */
function newToken() {
  const token = `fault.${randomBytes(18).toString('hex')}-_~+/${randomBytes(6).toString('base64url')}==`;
  sentTokens.push(token);
  return token;
}

/** Returns a marker to put into a response body, which the log hygiene checks search for. */
function newMarker() {
  const marker = `BODYMARK${randomBytes(8).toString('hex')}`;
  bodyMarkers.push(marker);
  return marker;
}

function newSecret(label) {
  const secret = `${label}-${randomBytes(18).toString('base64url')}`;
  secrets.push(secret);
  return secret;
}

// ---------------------------------------------------------------- certificates

function openssl(args, cwd) {
  execFileSync('/usr/bin/openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

const SERVER_EXTENSIONS = `basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth`;

/**
 * Signs a server certificate with the test CA through `openssl ca`, which can set validity dates
 * in the past. Returns { key, cert } as PEM text.
 */
function signWithCa(dir, name, { caCert, caKey, subjectAltName, startDate, endDate }) {
  const work = path.join(dir, name);
  fs.mkdirSync(work, { recursive: true });
  fs.writeFileSync(path.join(work, 'index.txt'), '');
  fs.writeFileSync(path.join(work, 'serial'), `${randomBytes(8).toString('hex')}\n`);
  fs.writeFileSync(path.join(work, 'ca.cnf'), `[ca]
default_ca = test_ca

[test_ca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any_name
unique_subject = no

[any_name]
commonName = supplied

[server_ext]
${SERVER_EXTENSIONS}
subjectAltName = ${subjectAltName}

[req]
distinguished_name = dn
prompt = no

[dn]
CN = ${name}
`);
  openssl(['req', '-new', ...NEW_KEY, '-config', 'ca.cnf', '-keyout', 'key.pem', '-out', 'request.csr'], work);
  openssl([
    'ca', '-batch', '-notext', '-config', 'ca.cnf', '-cert', caCert, '-keyfile', caKey, '-in', 'request.csr',
    '-out', 'cert.pem', '-extensions', 'server_ext', '-startdate', startDate, '-enddate', endDate,
  ], work);
  return { key: fs.readFileSync(path.join(work, 'key.pem')), cert: fs.readFileSync(path.join(work, 'cert.pem')) };
}

/** Returns YYYYMMDDHHMMSSZ for `date`, the form `openssl ca -startdate` takes. */
function asn1Time(date) {
  return `${date.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

function makeFaultCerts(dir) {
  const certs = makeCerts(dir);
  const day = 24 * 3600 * 1000;
  const now = Date.now();
  const signed = (name, subjectAltName, startMs, endMs) =>
    signWithCa(dir, name, {
      caCert: certs.caCert,
      caKey: certs.caKey,
      subjectAltName,
      startDate: asn1Time(new Date(startMs)),
      endDate: asn1Time(new Date(endMs)),
    });
  return {
    caCert: certs.caCert,
    trusted: { key: fs.readFileSync(certs.serverKey), cert: fs.readFileSync(certs.serverCert) },
    selfSigned: { key: fs.readFileSync(certs.untrustedKey), cert: fs.readFileSync(certs.untrustedCert) },
    expired: signed('expired', 'IP:127.0.0.1, DNS:localhost', now - 30 * day, now - 29 * day),
    notYetValid: signed('not-yet-valid', 'IP:127.0.0.1, DNS:localhost', now + 29 * day, now + 30 * day),
    misnamed: signed('misnamed', 'DNS:idp.invalid', now - day, now + day),
  };
}

// ---------------------------------------------------------------- servers

async function startBridge(name, idp, extraSettings = []) {
  const dir = makeDir(name);
  const accountFile = path.join(dir, 'postfix-accounts.cf');
  fs.writeFileSync(accountFile, `${ALICE}|{SHA512-CRYPT}$6$salt$notarealhash\n`, { mode: 0o644 });

  const settings = [
    `introspection_url = ${idp.url}`,
    `account_file = ${accountFile}`,
    'cache_ttl_secs = 0',
    `timeout_msecs = ${TIMEOUT_MS}`,
    `max_response_bytes = ${MAX_RESPONSE_BYTES}`,
    'client_id = dovecot',
    `client_secret = ${newSecret('fault-bridge')}`,
    ...extraSettings,
  ];
  const dovecot = await startDovecot({ dir, luaScript: BRIDGE_SCRIPT, bridgeSettings: `${settings.join('\n')}\n` });
  runningServers.push(dovecot);
  logFiles.push(dovecot.logPath);
  return dovecot;
}

async function startServer(start) {
  const server = await start();
  runningServers.push(server);
  return server;
}

// ---------------------------------------------------------------- logins and log lines

/**
 * Logs alice in with a fresh token and waits for Dovecot's outcome lines. Returns the client
 * result, the token and the log text of this session.
 */
async function login(dovecot) {
  const token = newToken();
  const since = dovecot.logOffset();
  const result = await imapXoauth2({ port: dovecot.imapPort, user: ALICE, token });

  await dovecot.waitForLog(result.authenticated ? LOG_PATTERNS.loginSucceeded : LOG_PATTERNS.loginFailed, { since });
  await dovecot.waitForLog(LOG_PATTERNS.authReply, { since });
  await dovecot.waitForLog(LOG_PATTERNS.workerFinished, { since });
  return { result, token, log: dovecot.logSince(since) };
}

function bridgeMessages(log, level) {
  return findAllLogLines(LOG_PATTERNS.luaScriptLog, log)
    .filter((match) => match.groups.level === level)
    .map((match) => match.groups.message);
}

function passdbErrors(log) {
  return findAllLogLines(LOG_PATTERNS.luaPassdbError, log).map((match) => match.groups.message);
}

function linesContaining(text, needle) {
  const numbers = [];
  for (const [index, line] of text.split('\n').entries()) {
    if (typeof needle === 'string' ? line.includes(needle) : needle.test(line)) numbers.push(index + 1);
  }
  return numbers;
}

/** Asserts that no token, secret or body marker of this file occurs in `text`. */
function assertLogClean(text, where) {
  for (const [index, token] of sentTokens.entries()) {
    assert.deepEqual(linesContaining(text, token), [], `${where} contains token #${index} on these lines`);
  }
  for (const [index, secret] of secrets.entries()) {
    assert.deepEqual(linesContaining(text, secret), [], `${where} contains secret #${index} on these lines`);
  }
  for (const [index, marker] of bodyMarkers.entries()) {
    assert.deepEqual(linesContaining(text, marker), [], `${where} contains body marker #${index} on these lines`);
  }
  assert.deepEqual(linesContaining(text, /\bBearer +[A-Za-z0-9\-._~+/]{8,}/), [], `${where} contains a Bearer value`);
  assert.deepEqual(linesContaining(text, /\bAuthorization *[:=] *\S+/i), [], `${where} contains an Authorization value`);
}

/** Asserts a temporary failure whose only passdb error is `message`. */
function assertInternalFailure(session, message) {
  assert.equal(session.result.ok, false);
  assert.equal(session.result.authenticated, false);
  assert.match(session.result.response, TEMPORARY_FAILURE);
  assert.equal(LOG_PATTERNS.workerFinished.exec(session.log)?.groups.result, 'internal_failure');
  assert.equal(LOG_PATTERNS.authReply.exec(session.log)?.groups.fields, 'code=temp_fail');
  assert.deepEqual(passdbErrors(session.log), [message]);
  assert.deepEqual(bridgeMessages(session.log, 'Info'), []);
}

/** Asserts a password mismatch whose only bridge message above debug is `message`. */
function assertPasswordMismatch(session, message) {
  assert.equal(session.result.ok, false);
  assert.equal(session.result.authenticated, false);
  assert.match(session.result.response, AUTH_FAILED);
  assert.equal(LOG_PATTERNS.workerFinished.exec(session.log)?.groups.result, 'password_mismatch');
  assert.equal(LOG_PATTERNS.authReply.exec(session.log)?.groups.reply, 'FAIL');
  assert.deepEqual(bridgeMessages(session.log, 'Info'), [message]);
  assert.deepEqual(passdbErrors(session.log), []);
}

function assertNotLoggedIn(session) {
  assert.equal(LOG_PATTERNS.loginSucceeded.exec(session.log)?.[0], undefined);
  assert.equal(LOG_PATTERNS.authReply.exec(session.log)?.groups.reply, 'FAIL');
  assert.ok(!bridgeMessages(session.log, 'Info').includes('Token accepted'));
}

/** Asserts that the bridge closed the only connection about timeout_msecs after it was accepted. */
function assertClosedAtDeadline(idp) {
  assert.equal(idp.connections.length, 1);
  const { acceptedAt, closedAt } = idp.connections[0];
  assert.notEqual(closedAt, undefined, 'the bridge left the connection open');
  const heldMs = closedAt - acceptedAt;
  assert.ok(heldMs >= TIMEOUT_MS - DEADLINE_EARLY_MS, `connection closed after ${heldMs.toFixed(0)} ms`);
  assert.ok(heldMs <= TIMEOUT_MS + DEADLINE_LATE_MS, `connection closed after ${heldMs.toFixed(0)} ms`);
}

// ---------------------------------------------------------------- the cases

const INTERNAL_FAILURE = 'INTERNAL_FAILURE';
const PASSWORD_MISMATCH = 'PASSWORD_MISMATCH';

const aliceClaims = (marker) => ({ sub: 'alice', email: ALICE, name: marker });
const invalidUtf8Body = (marker) => Buffer.concat([
  Buffer.from(`{"email":"${ALICE}","name":"${marker} `),
  Buffer.from([0xff, 0xfe, 0xc3]),
  Buffer.from('"}'),
]);

/**
 * The plain HTTP cases. `behaviour(marker, idp)` returns the fault, and `reason(origin)` the one
 * log line expected. `requests` is the number of requests the identity provider must receive,
 * left out where it never reads one. `deadline` means the bridge must give up at timeout_msecs.
 */
const HTTP_CASES = [
  {
    name: 'connection refused',
    behaviour: () => behaviours.refuse(),
    result: INTERNAL_FAILURE,
    reason: (origin) => `Userinfo request failed: connection refused (${origin})`,
    requests: 0,
  },
  {
    name: 'accepts, never reads',
    behaviour: () => behaviours.silent(),
    result: INTERNAL_FAILURE,
    reason: (origin) => `Userinfo request failed: timeout (${origin})`,
    deadline: true,
  },
  {
    name: 'reads, never answers',
    behaviour: () => behaviours.noAnswer(),
    result: INTERNAL_FAILURE,
    reason: (origin) => `Userinfo request failed: timeout (${origin})`,
    requests: 1,
    deadline: true,
  },
  {
    name: 'answers byte by byte',
    // 40 ms a byte: the status line alone takes 0.7 s, the whole response about 8 s.
    behaviour: (marker) => behaviours.dribble(jsonResponse(200, aliceClaims(marker)), 40),
    result: INTERNAL_FAILURE,
    reason: (origin) => `Userinfo request failed: timeout (${origin})`,
    requests: 1,
    deadline: true,
  },
  {
    name: 'headers, then no body',
    behaviour: () => behaviours.stall(Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{"em')),
    result: INTERNAL_FAILURE,
    reason: (origin) => `Userinfo request failed: timeout (${origin})`,
    requests: 1,
    deadline: true,
  },
  {
    name: 'closes at accept',
    behaviour: () => behaviours.closeAtAccept(),
    result: INTERNAL_FAILURE,
    reason: (origin) => `Userinfo request failed: closed (${origin})`,
  },
  {
    name: 'body cut short',
    behaviour: (marker) => behaviours.reply(Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{"email":"${ALICE}","n":"${marker}`)),
    result: INTERNAL_FAILURE,
    reason: (origin) => `Userinfo request failed: closed (${origin})`,
    requests: 1,
  },
  {
    name: 'not HTTP',
    behaviour: (marker) => behaviours.reply(Buffer.from(`SSH-2.0-${marker}\r\n`)),
    result: INTERNAL_FAILURE,
    reason: (origin) => `Userinfo request failed: the reply is not HTTP/1.x (${origin})`,
    requests: 1,
  },
  {
    name: 'invalid Content-Length',
    behaviour: (marker) => behaviours.reply(Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n{"n":"${marker}"}`)),
    result: INTERNAL_FAILURE,
    reason: (origin) => `Userinfo request failed: invalid content-length (${origin})`,
    requests: 1,
  },
  ...[500, 502, 503, 404, 204].map((status) => ({
    name: `HTTP ${status}`,
    behaviour: (marker) => behaviours.reply(responseBytes(status, { body: status === 204 ? '' : `<html><body>${marker}</body></html>` })),
    result: INTERNAL_FAILURE,
    reason: (origin) => `Userinfo request failed: HTTP ${status} from ${origin}`,
    requests: 1,
  })),
  {
    name: '200 with HTML',
    behaviour: (marker) => behaviours.reply(responseBytes(200, {
      headers: { 'Content-Type': 'text/html' },
      body: `<!DOCTYPE html><html><body>Sign in ${marker}</body></html>`,
    })),
    result: INTERNAL_FAILURE,
    reason: (origin) => `Userinfo request failed: body is not valid JSON (HTTP 200 from ${origin})`,
    requests: 1,
  },
  {
    name: '200 with empty body',
    behaviour: () => behaviours.reply(responseBytes(200, { headers: { 'Content-Type': 'application/json' } })),
    result: INTERNAL_FAILURE,
    reason: (origin) => `Userinfo request failed: body is not valid JSON (HTTP 200 from ${origin})`,
    requests: 1,
  },
  {
    name: '200 with JSON array',
    behaviour: (marker) => behaviours.reply(jsonResponse(200, [aliceClaims(marker)])),
    result: INTERNAL_FAILURE,
    reason: (origin) => `Userinfo request failed: body is not a JSON object (HTTP 200 from ${origin})`,
    requests: 1,
  },
  ...[['string', (marker) => `${ALICE} ${marker}`], ['number', () => 42], ['null', () => null], ['true', () => true]].map(([label, value]) => ({
    name: `200 with JSON ${label}`,
    behaviour: (marker) => behaviours.reply(jsonResponse(200, value(marker))),
    result: INTERNAL_FAILURE,
    reason: (origin) => `Userinfo request failed: body is not a JSON object (HTTP 200 from ${origin})`,
    requests: 1,
  })),
  {
    name: '200 with invalid UTF-8',
    behaviour: (marker) => behaviours.reply(responseBytes(200, { headers: { 'Content-Type': 'application/json' }, body: invalidUtf8Body(marker) })),
    result: INTERNAL_FAILURE,
    reason: (origin) => `Userinfo request failed: body is not valid UTF-8 (HTTP 200 from ${origin})`,
    requests: 1,
    // lua-cjson 2.1 does not check UTF-8, so decodeObject does (RFC 8259 section 8.1).
  },
  ...['content-length', 'chunked', 'close'].map((length) => ({
    name: `body over limit, ${length}`,
    behaviour: (marker) => behaviours.reply(jsonResponse(200, { ...aliceClaims(marker), padding: 'x'.repeat(MAX_RESPONSE_BYTES) }, { length })),
    result: INTERNAL_FAILURE,
    reason: (origin) => `Userinfo request failed: response body larger than ${MAX_RESPONSE_BYTES} bytes (${origin})`,
    requests: 1,
  })),
  ...[301, 302, 307].flatMap((status) => [
    {
      name: `HTTP ${status} to same host`,
      behaviour: (marker, idp) => behaviours.reply(responseBytes(status, {
        headers: { Location: `http://${idp.origin}/moved?${marker}` },
        body: marker,
      })),
      result: INTERNAL_FAILURE,
      reason: (origin) => `Userinfo request failed: HTTP ${status} redirect from ${origin} not followed`,
      requests: 1,
    },
    {
      // Nothing listens on 127.0.0.2, so a bridge that followed would log "connection refused".
      name: `HTTP ${status} to other host`,
      behaviour: (marker, idp) => behaviours.reply(responseBytes(status, {
        headers: { Location: `http://127.0.0.2:${idp.port}/userinfo?${marker}` },
      })),
      result: INTERNAL_FAILURE,
      reason: (origin) => `Userinfo request failed: HTTP ${status} redirect from ${origin} not followed`,
      requests: 1,
    },
  ]),
  {
    name: 'HTTP 401 invalid_token',
    behaviour: (marker) => behaviours.reply(jsonResponse(401, { error: 'invalid_token', error_description: marker }, {
      headers: { 'WWW-Authenticate': `Bearer error="invalid_token", error_description="${marker}"` },
    })),
    result: PASSWORD_MISMATCH,
    reason: (origin) => `Token rejected by the identity provider: HTTP 401 from ${origin}`,
    requests: 1,
  },
  {
    name: 'HTTP 403 insufficient_scope',
    behaviour: (marker) => behaviours.reply(jsonResponse(403, { error: 'insufficient_scope', error_description: marker }, {
      headers: { 'WWW-Authenticate': `Bearer error="insufficient_scope", scope="openid email ${marker}"` },
    })),
    result: PASSWORD_MISMATCH,
    reason: (origin) => `Token rejected by the identity provider: HTTP 403 from ${origin}`,
    requests: 1,
  },
];

/** The HTTPS cases: `certificate(certs)` is what the identity provider presents. */
const TLS_CASES = [
  {
    name: 'self-signed certificate',
    certificate: (certs) => certs.selfSigned,
    reason: /^Userinfo request failed: TLS handshake failed: .*certificate verify failed/,
  },
  {
    name: 'expired certificate',
    certificate: (certs) => certs.expired,
    reason: /^Userinfo request failed: TLS handshake failed: .*certificate verify failed/,
  },
  {
    name: 'not yet valid certificate',
    certificate: (certs) => certs.notYetValid,
    reason: /^Userinfo request failed: TLS handshake failed: .*certificate verify failed/,
  },
  {
    name: 'wrong host name',
    certificate: (certs) => certs.misnamed,
    reason: /^Userinfo request failed: TLS certificate does not name 127\.0\.0\.1 /,
  },
];

// ---------------------------------------------------------------- tests

before(() => {
  rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oauth2-bridge-faults-'));
  fs.chmodSync(rootDir, 0o755);
});

after(async () => {
  await Promise.all(runningServers.map((server) => server.stop()));
  if (process.env.OAUTH2_BRIDGE_KEEP_TMP) {
    console.log(`Kept the temporary directory ${rootDir} because OAUTH2_BRIDGE_KEEP_TMP is set`);
    return;
  }
  fs.rmSync(rootDir, { recursive: true, force: true });
});

describe('faults over HTTP', () => {
  let idp;
  let dovecot;

  before(async () => {
    idp = await startServer(() => startFaultIdp());
    dovecot = await startBridge('http-dovecot', idp);
  });

  test('healthy IdP logs alice in', async () => {
    await idp.setBehaviour(behaviours.reply(jsonResponse(200, aliceClaims(newMarker()))));
    idp.reset();

    const session = await login(dovecot);

    assert.equal(session.result.ok, true, session.result.response);
    assert.deepEqual(bridgeMessages(session.log, 'Info'), ['Token accepted']);
    assert.equal(idp.requests.length, 1);
    assert.equal(idp.requests[0].headers.authorization, `Bearer ${session.token}`);
    assertLogClean(session.log, 'session log');
  });

  for (const fault of HTTP_CASES) {
    test(fault.name, { todo: fault.todo }, async () => {
      await idp.setBehaviour(fault.behaviour(newMarker(), idp));
      idp.reset();

      const session = await login(dovecot);

      assertNotLoggedIn(session);
      const reason = fault.reason(idp.origin);
      if (fault.result === PASSWORD_MISMATCH) {
        assertPasswordMismatch(session, reason);
      } else {
        assertInternalFailure(session, reason);
      }
      if (fault.requests !== undefined) {
        assert.equal(idp.requests.length, fault.requests);
      }
      if (fault.requests > 0) {
        assert.equal(idp.requests[0].headers.authorization, `Bearer ${session.token}`);
      }
      if (fault.deadline) {
        assertClosedAtDeadline(idp);
      }
      assertLogClean(session.log, 'session log');
    });
  }

  test('healthy again after faults', async () => {
    await idp.setBehaviour(behaviours.reply(jsonResponse(200, aliceClaims(newMarker()))));
    idp.reset();

    const session = await login(dovecot);

    assert.equal(session.result.ok, true, session.result.response);
    assert.equal(idp.requests.length, 1);
  });
});

describe('faults over HTTPS', () => {
  let certs;
  let idp;
  let dovecot;

  before(async () => {
    certs = makeFaultCerts(makeDir('certs'));
    // The auth process reads tls_ca_cert_file as user dovecot when it checks the settings.
    fs.chmodSync(certs.caCert, 0o644);
    idp = await startServer(() => startFaultIdp({ certificate: certs.trusted }));
    dovecot = await startBridge('https-dovecot', idp, [`tls_ca_cert_file = ${certs.caCert}`]);
    await idp.setBehaviour(behaviours.reply(jsonResponse(200, aliceClaims(newMarker()))));
  });

  test('CA-signed certificate logs in', async () => {
    idp.setCertificate(certs.trusted);
    idp.reset();

    const session = await login(dovecot);

    assert.match(idp.url, /^https:\/\/127\.0\.0\.1:\d+\//);
    assert.equal(session.result.ok, true, session.result.response);
    assert.equal(idp.requests.length, 1);
  });

  for (const fault of TLS_CASES) {
    test(fault.name, async () => {
      idp.setCertificate(fault.certificate(certs));
      idp.reset();

      const session = await login(dovecot);

      assertNotLoggedIn(session);
      assert.match(session.result.response, TEMPORARY_FAILURE);
      assert.equal(LOG_PATTERNS.workerFinished.exec(session.log)?.groups.result, 'internal_failure');
      const errors = passdbErrors(session.log);
      assert.equal(errors.length, 1, errors.join('\n'));
      assert.match(errors[0], fault.reason);
      assert.ok(errors[0].endsWith(`(${idp.origin})`), errors[0]);
      assert.equal(idp.requests.length, 0, 'no HTTP request may pass a failed TLS check');
      assertLogClean(session.log, 'session log');
    });
  }
});

describe('log hygiene', () => {
  before(async () => {
    // Dovecot writes its last lines while it stops.
    await Promise.all(runningServers.map((server) => server.stop()));
  });

  test('file collected tokens and logs', () => {
    assert.ok(sentTokens.length >= HTTP_CASES.length + TLS_CASES.length, `only ${sentTokens.length} tokens`);
    assert.ok(bodyMarkers.length >= HTTP_CASES.length, `only ${bodyMarkers.length} body markers`);
    assert.equal(logFiles.length, 2);
  });

  test('logs hold no tokens or bodies', () => {
    for (const file of logFiles) {
      assertLogClean(fs.readFileSync(file, 'utf8'), file);
    }
  });

  test('Dovecot stayed up', () => {
    for (const file of logFiles) {
      const text = fs.readFileSync(file, 'utf8');
      assert.deepEqual(linesContaining(text, /: (Fatal|Panic): /), [], `${file} has fatal lines`);
      assert.deepEqual(linesContaining(text, /died unexpectedly|killed with signal|Worker is buggy/), [], `${file} has crashed processes`);
      assert.deepEqual(linesContaining(text, /lua_pcall\(auth_password_verify/), [], `${file} has a Lua error`);
    }
  });
});
