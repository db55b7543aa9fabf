// End-to-end tests of the ways the bridge validates a token with the identity provider: RFC 7662
// introspection (introspection_mode = post, with client_secret_basic and client_secret_post),
// the token in the URL (introspection_mode = get, tokeninfo_url), OpenID discovery, and the token
// policy (scope, issuers, audience). They run lua-out/oauth2-bridge.lua in a real Dovecot 2.3
// against a real OpenID provider (oidc-provider with introspection and RFC 7009 revocation) and
// against a capture server that records the exact requests the bridge sends. Every server
// listens on 127.0.0.1 and keeps its files in one temporary directory.
// Run: node --test spec/integration/introspection.test.mjs (as root, because Dovecot drops privileges).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { makeCerts } from './lib/certs.mjs';
import { imapOauthbearer, imapXoauth2 } from './lib/clients.mjs';
import { findAllLogLines, LOG_PATTERNS, startDovecot } from './lib/dovecot.mjs';
import { startIdp } from './lib/idp.mjs';

const BRIDGE_SCRIPT = fileURLToPath(new URL('../../lua-out/oauth2-bridge.lua', import.meta.url));

const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';

// Passwords for the IdP's login form. Only the IdP's config file contains them.
const ACCOUNTS = {
  alice: { email: ALICE, password: `alice-${randomBytes(8).toString('hex')}` },
  bob: { email: BOB, password: `bob-${randomBytes(8).toString('hex')}` },
};

// docker-mailserver's postfix-accounts.cf lines. The bridge reads only the address.
const ACCOUNT_FILE_TEXT = [
  '# Written by introspection.test.mjs',
  `${ALICE}|{SHA512-CRYPT}$6$alicesalt$notarealhash`,
  `${BOB}|{SHA512-CRYPT}$6$bobsalt$notarealhash`,
  '',
].join('\n');

// The client that obtains tokens (webmail) and the resource servers (the mail server) that
// introspect them. Only a resource server may introspect the tokens of another client.
const WEBMAIL_CLIENT = 'roundcube';
const RESOURCE_SERVER = 'mail-server';
// RFC 6749 section 2.3.1 form-encodes id and secret before Basic encoding, so each character
// here that form encoding changes must survive the round trip.
const ODD_RESOURCE_SERVER = 'urn:mail:server';
const ODD_SECRET_PREFIX = 'odd:se+cr%2Fet/with space';

const IMAPLIB_SELECT_OK = /^\w+ OK \[READ-WRITE\] Select completed/m;
const AUTH_FAILED = /NO \[AUTHENTICATIONFAILED\]/;
const TEMPORARY_FAILURE = /NO \[UNAVAILABLE\] Temporary authentication failure/;
const TEMPORARY_FAILURE_REASON = 'auth service reported temporary failure';

// Everything the log hygiene tests look for, collected from every group of this file.
const sentTokens = [];
const secrets = [];
const basicCredentials = [];
const logFiles = [];

const runningServers = [];
const pendingStops = [];

let rootDir;
let mainIdpStart;

function makeDir(name) {
  const dir = path.join(rootDir, name);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  return dir;
}

function newSecret(label) {
  const secret = `${label}-${randomBytes(24).toString('base64url')}`;
  secrets.push(secret);
  return secret;
}

/**
 * Encodes a value as application/x-www-form-urlencoded does (WHATWG URL standard): letters,
 * digits and `*-._` stay, a space becomes `+`, every other byte becomes %XX.
 */
function formEncode(value) {
  return new URLSearchParams({ v: value }).toString().slice('v='.length);
}

/** Returns the Authorization header for client_secret_basic and adds it to what the log hygiene tests look for. */
function basicAuthorization(clientId, clientSecret) {
  const value = `Basic ${Buffer.from(`${formEncode(clientId)}:${formEncode(clientSecret)}`).toString('base64')}`;
  basicCredentials.push(value);
  return value;
}

async function obtainToken(idp, accountName, options) {
  const token = await idp.getToken(accountName, options);
  sentTokens.push(token);
  return token;
}

/** Returns a token in RFC 6750 syntax that no IdP issued. */
function madeUpToken() {
  const token = `madeup-${randomBytes(24).toString('base64url')}`;
  sentTokens.push(token);
  return token;
}

/** Renders the bridge settings file from key/value pairs, leaving out undefined values. */
function settingsText(entries) {
  const lines = Object.entries(entries)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key} = ${value}`);
  return `${lines.join('\n')}\n`;
}

/** Starts a Dovecot whose bridge uses `settings`, with mailboxes for alice and bob. */
async function startBridgeDovecot(name, settings) {
  const dir = makeDir(`${name}-dovecot`);
  const accountFile = path.join(dir, 'postfix-accounts.cf');
  fs.writeFileSync(accountFile, ACCOUNT_FILE_TEXT, { mode: 0o644 });

  if (settings.client_id !== undefined && settings.client_secret !== undefined) {
    basicAuthorization(settings.client_id, settings.client_secret);
  }
  const dovecot = await startDovecot({
    dir,
    luaScript: BRIDGE_SCRIPT,
    // The token cache is off: these cases check what the identity provider answers each time.
    bridgeSettings: settingsText({ account_file: accountFile, timeout_msecs: 3000, cache_ttl_secs: 0, ...settings }),
  });
  runningServers.push(dovecot);
  logFiles.push(dovecot.logPath);
  return dovecot;
}

/** Starts one Dovecot per entry of `settingsByName` and resolves to an object with the same keys. */
async function startBridgeDovecots(group, settingsByName) {
  const names = Object.keys(settingsByName);
  const outcomes = await Promise.allSettled(
    names.map((name) => startBridgeDovecot(`${group}-${name}`, settingsByName[name])),
  );
  // Every start has settled here, so each Dovecot that did start is in runningServers.
  const failed = outcomes.find((outcome) => outcome.status === 'rejected');
  if (failed) throw failed.reason;
  return Object.fromEntries(names.map((name, index) => [name, outcomes[index].value]));
}

/** Starts an IdP in its own directory with the webmail client and both resource servers. */
async function startTestIdp(name, idpOptions = {}) {
  const dir = makeDir(`${name}-idp`);
  const resourceServers = [
    { client_id: RESOURCE_SERVER, client_secret: newSecret('rs') },
    { client_id: ODD_RESOURCE_SERVER, client_secret: newSecret(ODD_SECRET_PREFIX) },
  ];
  const idp = await startIdp({
    dir,
    accounts: ACCOUNTS,
    clients: [{ client_id: WEBMAIL_CLIENT, client_secret: newSecret('webmail'), redirect_uris: ['http://127.0.0.1/callback'] }],
    resourceServers,
    acceptQueryParamAccessTokens: true,
    ...idpOptions,
  });
  runningServers.push(idp);
  logFiles.push(path.join(dir, 'idp.log'));

  const secretOf = (clientId) => resourceServers.find((server) => server.client_id === clientId).client_secret;
  return { idp, secretOf };
}

/** Returns the IdP shared by every group that talks to a real provider, and starts it on first use. */
function mainIdp() {
  mainIdpStart ??= startTestIdp('main');
  return mainIdpStart;
}

/** Settings for RFC 7662 introspection at the main IdP as the resource server `clientId`. */
function introspectionSettings(main, clientId = RESOURCE_SERVER, extra = {}) {
  return {
    introspection_mode: 'post',
    introspection_url: main.idp.introspectionUrl,
    client_id: clientId,
    client_secret: main.secretOf(clientId),
    ...extra,
  };
}

async function stopServers(servers) {
  await Promise.all(servers.map((server) => server?.stop()));
}

/**
 * Starts stopping `servers` without waiting, because a Dovecot master takes seconds to stop and
 * the next group need not wait for it. stopAll() waits for every stop and reports its failure.
 */
function stopLater(servers) {
  const stopping = stopServers(servers);
  // Keeps a failed stop from being an unhandled rejection until stopAll() awaits it.
  stopping.catch(() => {});
  pendingStops.push(stopping);
}

async function stopAll() {
  await Promise.all(pendingStops);
  await stopServers(runningServers);
}

// ---------------------------------------------------------------- capture server

/**
 * Starts an HTTP server on 127.0.0.1 that records each request (method, URL, headers, body)
 * and responds with `respond(request, res, port)`, by default a canned introspection or userinfo
 * response for alice.
 */
async function startCaptureServer() {
  const requests = [];
  let respond = cannedResponse;

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const request = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(request);
      respond(request, res, server.address().port);
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    reset() {
      requests.length = 0;
      respond = cannedResponse;
    },
    answerWith(handler) {
      respond = handler;
    },
    stop() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function sendJson(res, status, object) {
  const body = JSON.stringify(object);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function cannedResponse(request, res, port) {
  if (request.url.startsWith('/introspect')) {
    sendJson(res, 200, {
      active: true,
      sub: 'alice',
      email: ALICE,
      client_id: WEBMAIL_CLIENT,
      scope: 'openid email',
      iss: `http://127.0.0.1:${port}`,
      exp: Math.floor(Date.now() / 1000) + 3600,
    });
  } else {
    sendJson(res, 200, { sub: 'alice', email: ALICE, email_verified: true });
  }
}

function redirectResponse(_request, res, port) {
  res.writeHead(302, { Location: `http://127.0.0.1:${port}/moved`, 'Content-Length': 0 });
  res.end();
}

// ---------------------------------------------------------------- logins and log lines

/**
 * Runs one client login and waits until Dovecot has logged its outcome: the login line, the
 * auth process's reply and the auth worker's "Finished" line. Returns the client result, the
 * login line and the log text of this session.
 */
async function login(dovecot, client, options) {
  const since = dovecot.logOffset();
  const result = await client({ port: dovecot.imapPort, ...options });

  const loginPattern = result.authenticated ? LOG_PATTERNS.loginSucceeded : LOG_PATTERNS.loginFailed;
  const loginLine = await dovecot.waitForLog(loginPattern, { since });
  // Each process writes to its own log pipe, so the auth process's reply and the worker's
  // result can reach the log file after the login process's line.
  await dovecot.waitForLog(LOG_PATTERNS.authReply, { since });
  await dovecot.waitForLog(LOG_PATTERNS.workerFinished, { since });
  return { result, loginLine, log: dovecot.logSince(since) };
}

/** Returns the messages the bridge logged with req:log_* at `level` in `log`. */
function bridgeMessages(log, level) {
  return findAllLogLines(LOG_PATTERNS.luaScriptLog, log)
    .filter((match) => match.groups.level === level)
    .map((match) => match.groups.message);
}

function workerResult(log) {
  return LOG_PATTERNS.workerFinished.exec(log)?.groups.result;
}

function luaPassdbError(log) {
  return LOG_PATTERNS.luaPassdbError.exec(log)?.groups.message;
}

function assertLuaCalled(log, { mechanism, user }) {
  assert.equal(LOG_PATTERNS.authRequest.exec(log)?.groups.mech, mechanism);
  assert.equal(LOG_PATTERNS.luaVerifyCalled.exec(log)?.groups.user, user);
}

function assertLoggedIn({ result, loginLine, log }, { mechanism = 'XOAUTH2', user = ALICE } = {}) {
  assert.equal(result.ok, true, result.response);
  assert.match(result.response, IMAPLIB_SELECT_OK);
  assert.equal(loginLine.groups.mech, mechanism);
  assert.equal(loginLine.groups.user, user);
  assertLuaCalled(log, { mechanism, user });
  assert.equal(workerResult(log), undefined, 'the auth worker finishes without a result name after OK');
  assert.equal(LOG_PATTERNS.authReply.exec(log)?.groups.reply, 'OK');
  assert.ok(bridgeMessages(log, 'Info').includes('Token accepted'), bridgeMessages(log, 'Info').join('\n'));
}

function assertRejected({ result, loginLine, log }, { mechanism, user }) {
  assert.equal(result.ok, false);
  assert.equal(result.authenticated, false);
  assert.match(result.response, AUTH_FAILED);
  assert.equal(loginLine.groups.reason, 'auth failed');
  assert.equal(loginLine.groups.mech, mechanism);
  assertLuaCalled(log, { mechanism, user });
  assert.equal(LOG_PATTERNS.authReply.exec(log)?.groups.reply, 'FAIL');
}

/** Asserts a PASSWORD_MISMATCH whose only info line from the bridge is `reason`. */
function assertPasswordMismatch(session, reason, { mechanism = 'XOAUTH2', user = ALICE } = {}) {
  assertRejected(session, { mechanism, user });
  assert.equal(workerResult(session.log), 'password_mismatch');
  assert.equal(LOG_PATTERNS.passwordMismatch.exec(session.log)?.groups.passdb, 'lua');
  assert.deepEqual(bridgeMessages(session.log, 'Info'), [reason]);
}

/** Asserts an INTERNAL_FAILURE whose reason Dovecot logged as "passdb-lua: `reason`". */
function assertTemporaryFailure({ result, loginLine, log }, reason, { mechanism = 'XOAUTH2', user = ALICE } = {}) {
  assert.equal(result.ok, false);
  assert.equal(result.authenticated, false);
  assert.match(result.response, TEMPORARY_FAILURE);
  assert.equal(loginLine.groups.reason, TEMPORARY_FAILURE_REASON);
  assert.equal(loginLine.groups.mech, mechanism);
  assertLuaCalled(log, { mechanism, user });
  assert.equal(workerResult(log), 'internal_failure');
  assert.equal(LOG_PATTERNS.authReply.exec(log)?.groups.fields, 'code=temp_fail');
  assert.equal(LOG_PATTERNS.passwordMismatch.exec(log)?.[0], undefined);
  assert.equal(luaPassdbError(log), reason);
}

function assertDebugIncludes(log, message) {
  const debug = bridgeMessages(log, 'Debug');
  assert.ok(debug.includes(message), `no debug line "${message}" in:\n${debug.join('\n')}`);
}

function assertDebugLacks(log, prefix) {
  const debug = bridgeMessages(log, 'Debug');
  assert.deepEqual(debug.filter((message) => message.startsWith(prefix)), []);
}

// ---------------------------------------------------------------- suites

before(() => {
  rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oauth2-bridge-introspection-'));
  // The auth process runs as user dovecot and must reach the settings and account files.
  fs.chmodSync(rootDir, 0o755);
});

after(async () => {
  await stopAll();
  if (process.env.OAUTH2_BRIDGE_KEEP_TMP) {
    console.log(`Kept the temporary directory ${rootDir} because OAUTH2_BRIDGE_KEEP_TMP is set`);
    return;
  }
  fs.rmSync(rootDir, { recursive: true, force: true });
});

describe('introspection with client credentials', () => {
  let main;
  let dovecots;
  let aliceToken;

  before(async () => {
    main = await mainIdp();
    dovecots = await startBridgeDovecots('post', {
      basic: introspectionSettings(main),
      wrongSecret: { ...introspectionSettings(main), client_secret: newSecret('wrong') },
      post: introspectionSettings(main, RESOURCE_SERVER, { client_auth_method: 'client_secret_post' }),
    });
    aliceToken = await obtainToken(main.idp, 'alice');
  });

  after(() => {
    stopLater(Object.values(dovecots ?? {}));
  });

  test('basic auth logs alice in', async () => {
    const session = await login(dovecots.basic, imapXoauth2, { user: ALICE, token: aliceToken });

    assertLoggedIn(session);
    assertDebugIncludes(session.log, `Introspection request: POST http://127.0.0.1:${main.idp.port}`);
    const debug = bridgeMessages(session.log, 'Debug');
    assert.ok(debug.some((message) => /^Introspection response: HTTP 200, \d+ bytes$/.test(message)), debug.join('\n'));
    assertDebugIncludes(session.log, 'Identity claim email matches the login name');
  });

  test('OAUTHBEARER logs alice in', async () => {
    const session = await login(dovecots.basic, imapOauthbearer, { user: ALICE, token: aliceToken });

    assertLoggedIn(session, { mechanism: 'OAUTHBEARER' });
  });

  test('client_secret_post logs alice in', async () => {
    const session = await login(dovecots.post, imapXoauth2, { user: ALICE, token: aliceToken });

    assertLoggedIn(session);
    assertDebugIncludes(session.log, `Introspection request: POST http://127.0.0.1:${main.idp.port}`);
  });

  test('wrong secret fails temporarily', async () => {
    const session = await login(dovecots.wrongSecret, imapXoauth2, { user: ALICE, token: aliceToken });

    assertTemporaryFailure(
      session,
      `Introspection request failed: HTTP 401 from 127.0.0.1:${main.idp.port}. Check client_id and client_secret`,
    );
  });

  test('token of alice rejected for bob', async () => {
    const session = await login(dovecots.basic, imapXoauth2, { user: BOB, token: aliceToken });

    assertPasswordMismatch(session, `Token belongs to ${ALICE} (claim email), not to the login name`, { user: BOB });
  });

  test('made-up token is not active', async () => {
    const session = await login(dovecots.basic, imapXoauth2, { user: ALICE, token: madeUpToken() });

    assertPasswordMismatch(session, 'Token is not active');
  });

  test('revoked token is not active', async () => {
    const token = await obtainToken(main.idp, 'alice');
    const first = await login(dovecots.basic, imapXoauth2, { user: ALICE, token });
    assertLoggedIn(first);

    await main.idp.revokeToken(token, WEBMAIL_CLIENT);
    const session = await login(dovecots.basic, imapXoauth2, { user: ALICE, token });

    assertPasswordMismatch(session, 'Token is not active');
  });
});

describe('client secret with special characters', () => {
  let main;
  let dovecots;
  let aliceToken;

  before(async () => {
    main = await mainIdp();
    dovecots = await startBridgeDovecots('odd-secret', {
      basic: introspectionSettings(main, ODD_RESOURCE_SERVER),
      post: introspectionSettings(main, ODD_RESOURCE_SERVER, { client_auth_method: 'client_secret_post' }),
    });
    aliceToken = await obtainToken(main.idp, 'alice');
  });

  after(() => {
    stopLater(Object.values(dovecots ?? {}));
  });

  test('secret has the special characters', () => {
    const secret = main.secretOf(ODD_RESOURCE_SERVER);
    for (const character of [':', '+', '%', '/', ' ']) {
      assert.ok(secret.includes(character), `the secret lacks ${JSON.stringify(character)}`);
    }
    assert.ok(ODD_RESOURCE_SERVER.includes(':'), 'the client id lacks ":"');
  });

  test('basic auth logs alice in', async () => {
    const session = await login(dovecots.basic, imapXoauth2, { user: ALICE, token: aliceToken });

    assertLoggedIn(session);
  });

  test('client_secret_post logs alice in', async () => {
    const session = await login(dovecots.post, imapXoauth2, { user: ALICE, token: aliceToken });

    assertLoggedIn(session);
  });
});

describe('requests the bridge sends', () => {
  const CLIENT_ID = ODD_RESOURCE_SERVER;
  const CLIENT_SECRET = newSecret(ODD_SECRET_PREFIX);
  // Every character RFC 6750 allows in a b64token that is not a letter or digit.
  const TOKEN_SUFFIX = `${randomBytes(12).toString('hex')}.a_b-c~d+e/f==`;
  const TOKEN = `capture${TOKEN_SUFFIX}`;
  // Written out by hand: form encoding keeps `.`, `_` and `-` and encodes `~`, `+`, `/` and `=`.
  const ENCODED_TOKEN = `capture${TOKEN_SUFFIX.replace('~', '%7E').replace('+', '%2B').replace('/', '%2F').replaceAll('=', '%3D')}`;
  const ENCODED_CLIENT_ID = 'urn%3Amail%3Aserver';
  const ENCODED_SECRET = `odd%3Ase%2Bcr%252Fet%2Fwith+space-${CLIENT_SECRET.slice(`${ODD_SECRET_PREFIX}-`.length)}`;

  let capture;
  let dovecots;

  before(async () => {
    sentTokens.push(TOKEN);
    capture = await startCaptureServer();
    const credentials = { client_id: CLIENT_ID, client_secret: CLIENT_SECRET };
    dovecots = await startBridgeDovecots('capture', {
      basic: { introspection_mode: 'post', introspection_url: `${capture.url}/introspect`, ...credentials },
      post: {
        introspection_mode: 'post',
        introspection_url: `${capture.url}/introspect`,
        client_auth_method: 'client_secret_post',
        ...credentials,
      },
      // Dovecot's oauth2 driver takes the client credentials from the URL, percent-encoded.
      urlCredentials: {
        introspection_mode: 'post',
        introspection_url: `http://${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(CLIENT_SECRET)}@127.0.0.1:${capture.port}/introspect`,
      },
      auth: { introspection_mode: 'auth', introspection_url: `${capture.url}/userinfo` },
      get: { introspection_mode: 'get', introspection_url: `${capture.url}/userinfo?access_token=` },
    });
  });

  after(() => {
    stopLater([...Object.values(dovecots ?? {}), capture]);
  });

  test('expected encodings are right', () => {
    assert.equal(formEncode(TOKEN), ENCODED_TOKEN);
    assert.equal(formEncode(CLIENT_ID), ENCODED_CLIENT_ID);
    assert.equal(formEncode(CLIENT_SECRET), ENCODED_SECRET);
  });

  test('basic sends form and Basic header', async () => {
    capture.reset();

    const session = await login(dovecots.basic, imapXoauth2, { user: ALICE, token: TOKEN });

    assertLoggedIn(session);
    assertDebugIncludes(session.log, `Introspection request: POST http://127.0.0.1:${capture.port}`);
    assert.equal(capture.requests.length, 1);
    const [request] = capture.requests;
    assert.equal(request.method, 'POST');
    assert.equal(request.url, '/introspect');
    assert.equal(request.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(request.headers.accept, 'application/json');
    assert.equal(request.headers['content-length'], String(Buffer.byteLength(request.body)));
    assert.equal(request.body, `token=${ENCODED_TOKEN}&token_type_hint=access_token`);
    assert.equal(
      request.headers.authorization,
      `Basic ${Buffer.from(`${ENCODED_CLIENT_ID}:${ENCODED_SECRET}`).toString('base64')}`,
    );
    assert.equal(request.headers.authorization, basicAuthorization(CLIENT_ID, CLIENT_SECRET));
  });

  test('post sends credentials in form', async () => {
    capture.reset();

    const session = await login(dovecots.post, imapXoauth2, { user: ALICE, token: TOKEN });

    assertLoggedIn(session);
    assert.equal(capture.requests.length, 1);
    const [request] = capture.requests;
    assert.equal(request.method, 'POST');
    assert.equal(request.url, '/introspect');
    assert.equal(request.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(request.headers.authorization, undefined);
    assert.equal(
      request.body,
      `token=${ENCODED_TOKEN}&token_type_hint=access_token&client_id=${ENCODED_CLIENT_ID}&client_secret=${ENCODED_SECRET}`,
    );
    const form = new URLSearchParams(request.body);
    assert.equal(form.get('token'), TOKEN);
    assert.equal(form.get('client_id'), CLIENT_ID);
    assert.equal(form.get('client_secret'), CLIENT_SECRET);
  });

  test('URL credentials become Basic header', async () => {
    capture.reset();

    const session = await login(dovecots.urlCredentials, imapXoauth2, { user: ALICE, token: TOKEN });

    assertLoggedIn(session);
    assert.equal(capture.requests.length, 1);
    const [request] = capture.requests;
    assert.equal(request.method, 'POST');
    assert.equal(request.url, '/introspect');
    assert.equal(request.body, `token=${ENCODED_TOKEN}&token_type_hint=access_token`);
    assert.equal(request.headers.authorization, basicAuthorization(CLIENT_ID, CLIENT_SECRET));
  });

  test('auth sends Bearer GET', async () => {
    capture.reset();

    const session = await login(dovecots.auth, imapXoauth2, { user: ALICE, token: TOKEN });

    assertLoggedIn(session);
    assertDebugIncludes(session.log, `Userinfo request: GET http://127.0.0.1:${capture.port}`);
    assert.equal(capture.requests.length, 1);
    const [request] = capture.requests;
    assert.equal(request.method, 'GET');
    assert.equal(request.url, '/userinfo');
    assert.equal(request.headers.authorization, `Bearer ${TOKEN}`);
    assert.equal(request.headers.accept, 'application/json');
    assert.equal(request.headers['content-type'], undefined);
    assert.equal(request.body, '');
  });

  test('get appends token to URL', async () => {
    capture.reset();

    const session = await login(dovecots.get, imapXoauth2, { user: ALICE, token: TOKEN });

    assertLoggedIn(session);
    assertDebugIncludes(session.log, `Userinfo request: GET http://127.0.0.1:${capture.port}`);
    assert.equal(capture.requests.length, 1);
    const [request] = capture.requests;
    assert.equal(request.method, 'GET');
    assert.equal(request.url, `/userinfo?access_token=${ENCODED_TOKEN}`);
    assert.equal(request.headers.authorization, undefined);
    assert.equal(request.body, '');
  });

  test('redirect is not followed', async () => {
    capture.reset();
    capture.answerWith(redirectResponse);

    const session = await login(dovecots.basic, imapXoauth2, { user: ALICE, token: TOKEN });

    assertTemporaryFailure(
      session,
      `Introspection request failed: HTTP 302 redirect from 127.0.0.1:${capture.port} not followed`,
    );
    assert.equal(capture.requests.length, 1);
    assert.equal(capture.requests[0].url, '/introspect');
  });
});

describe('OpenID discovery', () => {
  let main;
  let stopped;
  let secure;
  let dovecots;
  let aliceToken;

  before(async () => {
    const certs = makeCerts(makeDir('certs'));
    // The auth process reads tls_ca_cert_file as user dovecot when it checks the settings.
    fs.chmodSync(certs.caCert, 0o644);
    const https = { key: certs.serverKey, cert: certs.serverCert, ca: certs.caCert };
    const starts = await Promise.allSettled([mainIdp(), startTestIdp('stopped'), startTestIdp('secure', { https })]);
    const failed = starts.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
    [main, stopped, secure] = starts.map((outcome) => outcome.value);

    const wellKnown = `${main.idp.issuer}/.well-known/openid-configuration`;
    dovecots = await startBridgeDovecots('discovery', {
      auth: { openid_configuration_url: wellKnown },
      post: {
        openid_configuration_url: wellKnown,
        introspection_mode: 'post',
        client_id: RESOURCE_SERVER,
        client_secret: main.secretOf(RESOURCE_SERVER),
      },
      issuer: { openid_configuration_url: main.idp.issuer },
      get: { openid_configuration_url: wellKnown, introspection_mode: 'get' },
      secure: {
        openid_configuration_url: secure.idp.issuer,
        introspection_mode: 'post',
        client_id: RESOURCE_SERVER,
        client_secret: secure.secretOf(RESOURCE_SERVER),
        tls_ca_cert_file: certs.caCert,
      },
      stopped: { openid_configuration_url: `${stopped.idp.issuer}/.well-known/openid-configuration` },
    });
    aliceToken = await obtainToken(main.idp, 'alice');
  });

  after(() => {
    stopLater([...Object.values(dovecots ?? {}), stopped?.idp, secure?.idp]);
  });

  test('document gives userinfo endpoint', async () => {
    const session = await login(dovecots.auth, imapXoauth2, { user: ALICE, token: aliceToken });

    assertLoggedIn(session);
    assertDebugIncludes(session.log, `OpenID discovery request: GET http://127.0.0.1:${main.idp.port}`);
    assertDebugIncludes(session.log, `Userinfo request: GET http://127.0.0.1:${main.idp.port}`);
    assertDebugLacks(session.log, 'Introspection request');
  });

  test('document gives introspection endpoint', async () => {
    const session = await login(dovecots.post, imapXoauth2, { user: ALICE, token: aliceToken });

    assertLoggedIn(session);
    assertDebugIncludes(session.log, `OpenID discovery request: GET http://127.0.0.1:${main.idp.port}`);
    assertDebugIncludes(session.log, `Introspection request: POST http://127.0.0.1:${main.idp.port}`);
    assertDebugLacks(session.log, 'Userinfo request');
  });

  test('bare issuer URL logs alice in', async () => {
    const session = await login(dovecots.issuer, imapXoauth2, { user: ALICE, token: aliceToken });

    assertLoggedIn(session);
    assertDebugIncludes(session.log, `OpenID discovery request: GET http://127.0.0.1:${main.idp.port}`);
    assertDebugIncludes(session.log, `Userinfo request: GET http://127.0.0.1:${main.idp.port}`);
  });

  test('HTTPS discovery and introspection', async () => {
    assert.match(secure.idp.issuer, /^https:\/\/127\.0\.0\.1:\d+$/);
    const token = await obtainToken(secure.idp, 'alice');

    const session = await login(dovecots.secure, imapXoauth2, { user: ALICE, token });

    assertLoggedIn(session);
    assertDebugIncludes(session.log, `OpenID discovery request: GET https://127.0.0.1:${secure.idp.port}`);
    assertDebugIncludes(session.log, `Introspection request: POST https://127.0.0.1:${secure.idp.port}`);
  });

  // A discovered userinfo_endpoint gets the token as the access_token query parameter.
  test('get mode uses userinfo endpoint', async () => {
    const session = await login(dovecots.get, imapXoauth2, { user: ALICE, token: aliceToken });

    assertLoggedIn(session);
    assertDebugIncludes(session.log, `Userinfo request: GET http://127.0.0.1:${main.idp.port}`);
  });

  test('stopped provider fails temporarily', async () => {
    const token = await obtainToken(stopped.idp, 'alice');
    await stopped.idp.stop();

    const session = await login(dovecots.stopped, imapXoauth2, { user: ALICE, token });

    assertTemporaryFailure(session, `OpenID discovery failed: connection refused (127.0.0.1:${stopped.idp.port})`);
    assertDebugLacks(session.log, 'Userinfo request');
  });
});

describe('token in the URL', () => {
  let main;
  let dovecots;
  let aliceToken;

  before(async () => {
    main = await mainIdp();
    const tokenUrl = `${main.idp.userinfoUrl}?access_token=`;
    dovecots = await startBridgeDovecots('token-url', {
      get: { introspection_mode: 'get', introspection_url: tokenUrl },
      tokeninfo: { tokeninfo_url: tokenUrl },
      // Userinfo has no iss claim, so issuers passes only with the introspection response.
      forced: introspectionSettings(main, RESOURCE_SERVER, {
        tokeninfo_url: tokenUrl,
        force_introspection: 'yes',
        issuers: main.idp.issuer,
      }),
    });
    aliceToken = await obtainToken(main.idp, 'alice');
  });

  after(() => {
    stopLater(Object.values(dovecots ?? {}));
  });

  test('get mode logs alice in', async () => {
    const session = await login(dovecots.get, imapXoauth2, { user: ALICE, token: aliceToken });

    assertLoggedIn(session);
    assertDebugIncludes(session.log, `Userinfo request: GET http://127.0.0.1:${main.idp.port}`);
  });

  test('get mode rejects made-up token', async () => {
    const session = await login(dovecots.get, imapXoauth2, { user: ALICE, token: madeUpToken() });

    assertPasswordMismatch(session, `Token rejected by the identity provider: HTTP 401 from 127.0.0.1:${main.idp.port}`);
  });

  test('tokeninfo alone logs alice in', async () => {
    const session = await login(dovecots.tokeninfo, imapXoauth2, { user: ALICE, token: aliceToken });

    assertLoggedIn(session);
    assertDebugIncludes(session.log, `Tokeninfo request: GET http://127.0.0.1:${main.idp.port}`);
    assertDebugLacks(session.log, 'Userinfo request');
    assertDebugLacks(session.log, 'Introspection request');
  });

  test('forced introspection merges claims', async () => {
    const session = await login(dovecots.forced, imapXoauth2, { user: ALICE, token: aliceToken });

    assertLoggedIn(session);
    assertDebugIncludes(session.log, `Tokeninfo request: GET http://127.0.0.1:${main.idp.port}`);
    assertDebugIncludes(session.log, `Introspection request: POST http://127.0.0.1:${main.idp.port}`);
  });
});

describe('token policy', () => {
  let main;
  let dovecots;
  let aliceToken;

  before(async () => {
    main = await mainIdp();
    const policy = (extra) => introspectionSettings(main, RESOURCE_SERVER, extra);
    dovecots = await startBridgeDovecots('policy', {
      scopeHeld: policy({ scope: 'email' }),
      scopeMissing: policy({ scope: 'mail.access' }),
      issuer: policy({ issuers: main.idp.issuer }),
      otherIssuer: policy({ issuers: `${main.idp.issuer}/other` }),
      clientAudience: policy({ audience: WEBMAIL_CLIENT }),
      serverAudience: policy({ audience: RESOURCE_SERVER }),
    });
    aliceToken = await obtainToken(main.idp, 'alice');
  });

  after(() => {
    stopLater(Object.values(dovecots ?? {}));
  });

  test('introspection response has no aud', async () => {
    const response = await main.idp.introspect(aliceToken, RESOURCE_SERVER);

    assert.equal(response.active, true);
    assert.equal(response.aud, undefined);
    assert.equal(response.client_id, WEBMAIL_CLIENT);
    assert.equal(response.iss, main.idp.issuer);
    assert.equal(response.scope, 'openid email');
    assert.equal(response.email, ALICE);
  });

  test('held scope logs alice in', async () => {
    const session = await login(dovecots.scopeHeld, imapXoauth2, { user: ALICE, token: aliceToken });

    assertLoggedIn(session);
  });

  test('missing scope is a mismatch', async () => {
    const session = await login(dovecots.scopeMissing, imapXoauth2, { user: ALICE, token: aliceToken });

    assertPasswordMismatch(session, 'Token lacks the required scope (one of: mail.access)');
  });

  test('own issuer logs alice in', async () => {
    const session = await login(dovecots.issuer, imapXoauth2, { user: ALICE, token: aliceToken });

    assertLoggedIn(session);
  });

  test('other issuer is a mismatch', async () => {
    const session = await login(dovecots.otherIssuer, imapXoauth2, { user: ALICE, token: aliceToken });

    assertPasswordMismatch(session, `Token issuer ${main.idp.issuer} is not in issuers`);
  });

  test('client_id audience logs alice in', async () => {
    const session = await login(dovecots.clientAudience, imapXoauth2, { user: ALICE, token: aliceToken });

    assertLoggedIn(session);
  });

  test('resource server audience is a mismatch', async () => {
    const session = await login(dovecots.serverAudience, imapXoauth2, { user: ALICE, token: aliceToken });

    assertPasswordMismatch(session, 'Token is not for an accepted audience (aud, azp, client_id)');
  });
});

// Runs last, when every token has been sent and every server has written its log.
describe('log hygiene', () => {
  // Case-sensitive "Bearer" and "Basic" and a space, so Dovecot's "OAUTHBEARER<TAB>" and the
  // bridge's "not a valid bearer token" do not count.
  const BEARER_VALUE = /\bBearer +[A-Za-z0-9\-._~+/]{8,}/;
  const BASIC_VALUE = /\bBasic +[A-Za-z0-9+/]{8,}/;
  const AUTHORIZATION_VALUE = /\bAuthorization *[:=] *\S+/i;
  // Fragments of request and response bodies.
  const BODY_FRAGMENTS = ['token_type_hint', 'client_secret=', 'access_token=', '"active"', '"email"'];

  /** Returns the 1-based numbers of the lines of `text` that contain `needle` (a string or a RegExp). */
  function linesContaining(text, needle) {
    const numbers = [];
    for (const [index, line] of text.split('\n').entries()) {
      const found = typeof needle === 'string' ? line.includes(needle) : needle.test(line);
      if (found) numbers.push(index + 1);
    }
    return numbers;
  }

  /** Returns the value itself and the forms it takes in a URL, a form body or a Basic header. */
  function spellings(value) {
    return [...new Set([value, formEncode(value), encodeURIComponent(value)])];
  }

  before(async () => {
    // Dovecot writes its last lines while it stops.
    await stopAll();
  });

  test('file collected tokens and logs', () => {
    assert.ok(sentTokens.length >= 6, `only ${sentTokens.length} tokens collected`);
    assert.ok(secrets.length >= 6, `only ${secrets.length} secrets collected`);
    assert.ok(basicCredentials.length >= 10, `only ${basicCredentials.length} Basic credentials collected`);
    assert.ok(logFiles.length >= 20, `only ${logFiles.length} log files collected`);
  });

  // The messages name the file, the value by index and the line numbers, never the matching
  // text, so a failure does not copy a token into the test output.
  test('logs hold no tokens or secrets', () => {
    for (const file of logFiles) {
      const text = fs.readFileSync(file, 'utf8');

      for (const [index, token] of sentTokens.entries()) {
        for (const spelling of spellings(token)) {
          assert.deepEqual(linesContaining(text, spelling), [], `${file} contains token #${index} on these lines`);
        }
      }
      for (const [index, secret] of secrets.entries()) {
        for (const spelling of spellings(secret)) {
          assert.deepEqual(linesContaining(text, spelling), [], `${file} contains secret #${index} on these lines`);
        }
      }
      for (const [index, credential] of basicCredentials.entries()) {
        assert.deepEqual(linesContaining(text, credential.slice('Basic '.length)), [], `${file} contains Basic credential #${index}`);
      }
    }
  });

  test('logs hold no headers or bodies', () => {
    for (const file of logFiles) {
      const text = fs.readFileSync(file, 'utf8');

      assert.deepEqual(linesContaining(text, BEARER_VALUE), [], `${file} contains a Bearer value on these lines`);
      assert.deepEqual(linesContaining(text, BASIC_VALUE), [], `${file} contains a Basic value on these lines`);
      assert.deepEqual(linesContaining(text, AUTHORIZATION_VALUE), [], `${file} contains an Authorization value on these lines`);
      for (const fragment of BODY_FRAGMENTS) {
        assert.deepEqual(linesContaining(text, fragment), [], `${file} contains ${fragment} on these lines`);
      }
    }
  });
});
