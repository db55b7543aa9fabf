// End-to-end tests of the bridge: lua-out/oauth2-bridge.lua in a real Dovecot 2.3, access
// tokens from a real OpenID provider (oidc-provider, authorization-code flow), and real IMAP
// clients (Python's imaplib and curl). All servers listen on 127.0.0.1 and keep their files in
// one temporary directory.
// Run: node --test spec/integration/bridge.test.mjs (as root, because Dovecot drops privileges).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { makeCerts } from './lib/certs.mjs';
import { curlOauthbearer, imapOauthbearer, imapPlain, imapXoauth2 } from './lib/clients.mjs';
import { findAllLogLines, LOG_PATTERNS, startDovecot } from './lib/dovecot.mjs';
import { startIdp } from './lib/idp.mjs';

const BRIDGE_SCRIPT = fileURLToPath(new URL('../../lua-out/oauth2-bridge.lua', import.meta.url));

const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const CAROL = 'carol@example.test';
const PLAIN_USER = 'plain-user@example.test';
const PLAIN_PASSWORD = `plain-${randomBytes(12).toString('hex')}`;

// Passwords for the IdP's login form. Only the IdP's config file contains them.
const ACCOUNTS = {
  alice: { email: ALICE, password: `alice-${randomBytes(8).toString('hex')}` },
  bob: { email: BOB, password: `bob-${randomBytes(8).toString('hex')}` },
  carol: { email: CAROL, password: `carol-${randomBytes(8).toString('hex')}` },
};

// docker-mailserver's postfix-accounts.cf lines. The bridge reads only the address.
const MAILBOX_LINES = {
  [ALICE]: `${ALICE}|{SHA512-CRYPT}$6$alicesalt$notarealhash`,
  [BOB]: `${BOB}|{SHA512-CRYPT}$6$bobsalt$notarealhash`,
  [CAROL]: `${CAROL}|{SHA512-CRYPT}$6$carolsalt$notarealhash`,
};

const SHORT_LIVED_CLIENT = 'short-lived';
const EXPIRED_AFTER_MS = 2100;

const IMAPLIB_SELECT_OK = /^\w+ OK \[READ-WRITE\] Select completed/m;
const CURL_SELECT_OK = /^A\d+ OK \[READ-WRITE\] Select completed/m;
const AUTH_FAILED = /NO \[AUTHENTICATIONFAILED\]/;
const TEMPORARY_FAILURE = /NO \[UNAVAILABLE\] Temporary authentication failure/;
const TEMPORARY_FAILURE_REASON = 'auth service reported temporary failure';

// Everything the log hygiene test looks for: every token a client sent, every client secret,
// and every log file written by a Dovecot or an IdP of this suite.
const sentTokens = [];
const secrets = [PLAIN_PASSWORD];
const logFiles = [];
const runningServers = [];

let rootDir;

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

function newClients() {
  return [
    { client_id: 'roundcube', client_secret: newSecret('roundcube'), redirect_uris: ['http://127.0.0.1/callback'] },
    {
      client_id: SHORT_LIVED_CLIENT,
      client_secret: newSecret('short-lived'),
      redirect_uris: ['http://127.0.0.1/callback'],
      accessTokenTtlSeconds: 1,
    },
  ];
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

/** Writes postfix-accounts.cf in place, keeping its inode, readable by the auth process. */
function writeAccountFile(filePath, addresses) {
  const text = `# Written by bridge.test.mjs\n${addresses.map((address) => `${MAILBOX_LINES[address]}\n`).join('')}`;
  fs.writeFileSync(filePath, text, { mode: 0o644 });
  fs.chmodSync(filePath, 0o644);
}

/** Replaces postfix-accounts.cf with a new file by rename(2), the way editors and setup scripts do. */
function replaceAccountFile(filePath, addresses) {
  const temporary = `${filePath}.new`;
  writeAccountFile(temporary, addresses);
  fs.renameSync(temporary, filePath);
}

function bridgeSettings({ userinfoUrl, accountFile, caFile }) {
  const lines = [
    `introspection_url = ${userinfoUrl}`,
    `account_file = ${accountFile}`,
    'timeout_msecs = 3000',
    'client_id = dovecot',
    `client_secret = ${newSecret('bridge')}`,
  ];
  if (caFile !== undefined) lines.push(`tls_ca_cert_file = ${caFile}`);
  return `${lines.join('\n')}\n`;
}

/** Starts an IdP in its own directory, with accounts alice, bob and carol and fresh client secrets. */
async function startTestIdp(name, idpOptions) {
  const dir = makeDir(`${name}-idp`);
  const idp = await startIdp({ dir, accounts: ACCOUNTS, clients: newClients(), ...idpOptions });
  runningServers.push(idp);
  logFiles.push(path.join(dir, 'idp.log'));
  return idp;
}

/** Starts a Dovecot whose bridge sends tokens to `userinfoUrl`, with mailboxes for `accountAddresses`. */
async function startBridgeDovecot(name, { userinfoUrl, caFile, accountAddresses = [ALICE, BOB] }) {
  const dir = makeDir(`${name}-dovecot`);
  const accountFile = path.join(dir, 'postfix-accounts.cf');
  writeAccountFile(accountFile, accountAddresses);

  const dovecot = await startDovecot({
    dir,
    luaScript: BRIDGE_SCRIPT,
    bridgeSettings: bridgeSettings({ userinfoUrl, accountFile, caFile }),
    passwdUsers: { [PLAIN_USER]: PLAIN_PASSWORD },
  });
  runningServers.push(dovecot);
  logFiles.push(dovecot.logPath);
  return { dovecot, accountFile };
}

async function stopServers(servers) {
  await Promise.all(servers.map((server) => server?.stop()));
}

/**
 * Waits for all `starts` and returns their values in order. Unlike Promise.all it rejects only
 * after every start has settled, so each server that did start is already in runningServers
 * when the after hooks run.
 */
async function startAll(starts) {
  const outcomes = await Promise.allSettled(starts);
  const failed = outcomes.find((outcome) => outcome.status === 'rejected');
  if (failed) throw failed.reason;
  return outcomes.map((outcome) => outcome.value);
}

/**
 * Runs one client login and waits until Dovecot has logged its outcome: the login line, and,
 * when the Lua passdb is expected to run, the auth worker's "Finished" line. Returns the client
 * result, the login line and the log text of this session.
 */
async function login(dovecot, client, options, { expectLua = true } = {}) {
  const since = dovecot.logOffset();
  const result = await client({ port: dovecot.imapPort, ...options });

  const loginPattern = result.authenticated ? LOG_PATTERNS.loginSucceeded : LOG_PATTERNS.loginFailed;
  const loginLine = await dovecot.waitForLog(loginPattern, { since });
  // Each process writes to its own log pipe, so the auth process's reply and the worker's
  // result can reach the log file after the login process's line.
  await dovecot.waitForLog(LOG_PATTERNS.authReply, { since });
  if (expectLua) {
    await dovecot.waitForLog(LOG_PATTERNS.workerFinished, { since });
  }
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

/** Asserts the log lines every token login has: the mechanism and the Lua passdb call for `user`. */
function assertLuaCalled(log, { mechanism, user }) {
  assert.equal(LOG_PATTERNS.authRequest.exec(log)?.groups.mech, mechanism);
  assert.equal(LOG_PATTERNS.luaVerifyCalled.exec(log)?.groups.user, user);
}

function assertLoggedIn({ result, loginLine, log }, { mechanism, user, selectOk = IMAPLIB_SELECT_OK }) {
  assert.equal(result.ok, true, result.response);
  assert.match(result.response, selectOk);
  assert.equal(loginLine.groups.mech, mechanism);
  assert.equal(loginLine.groups.user, user);
  assertLuaCalled(log, { mechanism, user });
  assert.equal(workerResult(log), undefined, 'the auth worker finishes without a result name after OK');
  assert.equal(LOG_PATTERNS.authReply.exec(log)?.groups.reply, 'OK');
  assert.ok(bridgeMessages(log, 'Info').includes('Token accepted'));
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

function assertPasswordMismatch(session, { mechanism, user }) {
  assertRejected(session, { mechanism, user });
  assert.equal(workerResult(session.log), 'password_mismatch');
  assert.equal(LOG_PATTERNS.passwordMismatch.exec(session.log)?.groups.passdb, 'lua');
}

function assertUserUnknown(session, { mechanism, user, accountFile }) {
  assertRejected(session, { mechanism, user });
  assert.equal(workerResult(session.log), 'user_unknown');
  // Comparing the first match with undefined shows only that line on failure, where
  // assert.doesNotMatch would print the whole session log.
  assert.equal(LOG_PATTERNS.passwordMismatch.exec(session.log)?.[0], undefined);
  // A worker that notices a changed account file also logs "Account list loaded from ...".
  const info = bridgeMessages(session.log, 'Info');
  assert.ok(info.includes(`No mailbox for the login name in ${accountFile}`), info.join('\n'));
  assert.ok(!info.includes('Token accepted'), info.join('\n'));
}

function assertTemporaryFailure({ result, loginLine, log }, { mechanism, user }) {
  assert.equal(result.ok, false);
  assert.equal(result.authenticated, false);
  assert.match(result.response, TEMPORARY_FAILURE);
  assert.equal(loginLine.groups.reason, TEMPORARY_FAILURE_REASON);
  assert.equal(loginLine.groups.mech, mechanism);
  assertLuaCalled(log, { mechanism, user });
  assert.equal(workerResult(log), 'internal_failure');
  assert.equal(LOG_PATTERNS.authReply.exec(log)?.groups.fields, 'code=temp_fail');
}

function luaPassdbError(log) {
  return LOG_PATTERNS.luaPassdbError.exec(log)?.groups.message;
}

/**
 * Writes a server certificate signed by the test CA that names only DNS:idp.invalid, so it
 * names neither 127.0.0.1 nor localhost. Returns { key, cert }.
 */
function makeMisnamedCert(dir, { caCert, caKey }) {
  const file = (name) => path.join(dir, name);
  fs.writeFileSync(file('misnamed.cnf'), `
[req]
distinguished_name = dn
prompt = no

[dn]
CN = idp.invalid

[misnamed_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:idp.invalid
`);
  const openssl = (args) => execFileSync('/usr/bin/openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  openssl([
    'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-config', file('misnamed.cnf'), '-keyout', file('misnamed-key.pem'), '-out', file('misnamed.csr'),
  ]);
  openssl([
    'x509', '-req', '-in', file('misnamed.csr'), '-CA', caCert, '-CAkey', caKey,
    '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', '2',
    '-extfile', file('misnamed.cnf'), '-extensions', 'misnamed_ext', '-out', file('misnamed-cert.pem'),
  ]);
  return { key: file('misnamed-key.pem'), cert: file('misnamed-cert.pem') };
}

before(() => {
  rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oauth2-bridge-e2e-'));
  // The auth process runs as user dovecot and must reach the settings, account and CA files.
  fs.chmodSync(rootDir, 0o755);
});

after(async () => {
  await stopServers(runningServers);
  if (process.env.OAUTH2_BRIDGE_KEEP_TMP) {
    console.log(`Kept the temporary directory ${rootDir} because OAUTH2_BRIDGE_KEEP_TMP is set`);
    return;
  }
  fs.rmSync(rootDir, { recursive: true, force: true });
});

describe('bridge with HTTP IdP', () => {
  let idp;
  let dovecot;
  let accountFile;
  let aliceToken;
  let shortLivedToken;
  let shortLivedIssuedAt;

  before(async () => {
    idp = await startTestIdp('main');
    ({ dovecot, accountFile } = await startBridgeDovecot('main', { userinfoUrl: idp.userinfoUrl }));

    aliceToken = await obtainToken(idp, 'alice');
    // Issued first, so its 1 s lifetime runs out while other tests run.
    shortLivedIssuedAt = Date.now();
    shortLivedToken = await obtainToken(idp, 'alice', { clientId: SHORT_LIVED_CLIENT });
  });

  after(async () => {
    await stopServers([dovecot, idp]);
  });

  describe('valid token', () => {
    test('XOAUTH2 with own token logs in', async () => {
      const session = await login(dovecot, imapXoauth2, { user: ALICE, token: aliceToken });

      assertLoggedIn(session, { mechanism: 'XOAUTH2', user: ALICE });
      const debug = bridgeMessages(session.log, 'Debug');
      assert.ok(debug.includes(`Userinfo request: GET http://127.0.0.1:${idp.port}`), debug.join('\n'));
      assert.ok(debug.some((message) => /^Userinfo response: HTTP 200, \d+ bytes$/.test(message)), debug.join('\n'));
      assert.ok(debug.includes('Identity claim email matches the login name'), debug.join('\n'));
      assert.ok(debug.includes(`Mailbox found in ${accountFile}`), debug.join('\n'));
    });

    test('OAUTHBEARER via imaplib logs in', async () => {
      const session = await login(dovecot, imapOauthbearer, { user: ALICE, token: aliceToken });

      assertLoggedIn(session, { mechanism: 'OAUTHBEARER', user: ALICE });
    });

    test('OAUTHBEARER via curl logs in', async () => {
      const session = await login(dovecot, curlOauthbearer, { user: ALICE, token: aliceToken });

      assertLoggedIn(session, { mechanism: 'OAUTHBEARER', user: ALICE, selectOk: CURL_SELECT_OK });
      assert.equal(session.result.authenticated, true);
    });
  });

  describe('identity and mailbox', () => {
    test('token of alice rejected for bob', async () => {
      const session = await login(dovecot, imapXoauth2, { user: BOB, token: aliceToken });

      assertPasswordMismatch(session, { mechanism: 'XOAUTH2', user: BOB });
      assert.deepEqual(bridgeMessages(session.log, 'Info'), [`Token belongs to ${ALICE} (claim email), not to the login name`]);
    });

    test('carol without mailbox is unknown', async () => {
      const carolToken = await obtainToken(idp, 'carol');

      const session = await login(dovecot, imapXoauth2, { user: CAROL, token: carolToken });

      assertUserUnknown(session, { mechanism: 'XOAUTH2', user: CAROL, accountFile });
      assert.ok(bridgeMessages(session.log, 'Debug').includes('Identity claim email matches the login name'));
    });
  });

  describe('invalid tokens', () => {
    test('made-up token is a mismatch', async () => {
      const session = await login(dovecot, imapXoauth2, { user: ALICE, token: madeUpToken() });

      assertPasswordMismatch(session, { mechanism: 'XOAUTH2', user: ALICE });
      assert.deepEqual(bridgeMessages(session.log, 'Info'), [
        `Token rejected by the identity provider: HTTP 401 from 127.0.0.1:${idp.port}`,
      ]);
    });

    test('expired token is a mismatch', async () => {
      const remainingMs = shortLivedIssuedAt + EXPIRED_AFTER_MS - Date.now();
      if (remainingMs > 0) await sleep(remainingMs);

      const session = await login(dovecot, imapOauthbearer, { user: ALICE, token: shortLivedToken });

      assertPasswordMismatch(session, { mechanism: 'OAUTHBEARER', user: ALICE });
      assert.deepEqual(bridgeMessages(session.log, 'Info'), [
        `Token rejected by the identity provider: HTTP 401 from 127.0.0.1:${idp.port}`,
      ]);
    });

    for (const [label, character] of [['space', ' '], ['quote', '"']]) {
      test(`token with ${label} skips userinfo`, async () => {
        const token = `${aliceToken.slice(0, 20)}${character}${randomBytes(8).toString('hex')}`;
        sentTokens.push(token);

        const session = await login(dovecot, imapXoauth2, { user: ALICE, token });

        assertPasswordMismatch(session, { mechanism: 'XOAUTH2', user: ALICE });
        assert.deepEqual(bridgeMessages(session.log, 'Info'), [`Token is not a valid bearer token (${token.length} bytes)`]);
        const userinfoLines = bridgeMessages(session.log, 'Debug').filter((message) => message.startsWith('Userinfo request'));
        assert.deepEqual(userinfoLines, []);
      });
    }
  });

  describe('password logins', () => {
    test('PLAIN with passwd-file password logs in', async () => {
      const session = await login(dovecot, imapPlain, { user: PLAIN_USER, password: PLAIN_PASSWORD }, { expectLua: false });

      assert.equal(session.result.ok, true, session.result.response);
      assert.equal(session.loginLine.groups.mech, 'PLAIN');
      assert.equal(session.loginLine.groups.user, PLAIN_USER);
      assert.equal(LOG_PATTERNS.authRequest.exec(session.log)?.groups.mech, 'PLAIN');
      assert.equal(LOG_PATTERNS.luaVerifyCalled.exec(session.log)?.[0], undefined);
      assert.equal(LOG_PATTERNS.passdbSkipped.exec(session.log)?.groups.mech, 'plain');
    });

    test('token as PLAIN password skips Lua', async () => {
      const session = await login(dovecot, imapPlain, { user: ALICE, password: aliceToken }, { expectLua: false });

      assert.equal(session.result.ok, false);
      assert.match(session.result.response, AUTH_FAILED);
      assert.equal(session.loginLine.groups.reason, 'auth failed');
      assert.equal(session.loginLine.groups.mech, 'PLAIN');
      assert.equal(LOG_PATTERNS.authRequest.exec(session.log)?.groups.mech, 'PLAIN');
      assert.equal(LOG_PATTERNS.passdbSkipped.exec(session.log)?.groups.mech, 'plain');
      assert.equal(LOG_PATTERNS.passdbSkipped.exec(session.log)?.groups.user, ALICE);
      assert.equal(LOG_PATTERNS.luaVerifyCalled.exec(session.log)?.[0], undefined);
      assert.equal(LOG_PATTERNS.luaScriptLog.exec(session.log)?.[0], undefined);
      assert.equal(LOG_PATTERNS.passwdFileUnknownUser.exec(session.log)?.groups.user, ALICE);
    });
  });

  // Runs after 'carol without mailbox is unknown', which needs carol absent from the file.
  describe('account file changes', () => {
    test('carol added by rename logs in', async () => {
      const carolToken = await obtainToken(idp, 'carol');
      const inodeBefore = fs.statSync(accountFile).ino;

      replaceAccountFile(accountFile, [ALICE, BOB, CAROL]);
      const session = await login(dovecot, imapXoauth2, { user: CAROL, token: carolToken });

      assert.notEqual(fs.statSync(accountFile).ino, inodeBefore, 'rename must give the file a new inode');
      assertLoggedIn(session, { mechanism: 'XOAUTH2', user: CAROL });
    });

    test('carol removed in place is unknown', async () => {
      const carolToken = await obtainToken(idp, 'carol');
      const inodeBefore = fs.statSync(accountFile).ino;

      writeAccountFile(accountFile, [ALICE, BOB]);
      const session = await login(dovecot, imapOauthbearer, { user: CAROL, token: carolToken });

      assert.equal(fs.statSync(accountFile).ino, inodeBefore, 'an in-place rewrite must keep the inode');
      assertUserUnknown(session, { mechanism: 'OAUTHBEARER', user: CAROL, accountFile });
    });
  });
});

describe('bridge with stopped IdP', () => {
  let idp;
  let dovecot;
  let aliceToken;

  before(async () => {
    idp = await startTestIdp('stopped');
    ({ dovecot } = await startBridgeDovecot('stopped', { userinfoUrl: idp.userinfoUrl }));
    aliceToken = await obtainToken(idp, 'alice');
    await idp.stop();
  });

  after(async () => {
    await stopServers([dovecot, idp]);
  });

  test('curl gets a temporary failure', async () => {
    const session = await login(dovecot, curlOauthbearer, { user: ALICE, token: aliceToken });

    assertTemporaryFailure(session, { mechanism: 'OAUTHBEARER', user: ALICE });
    assert.equal(luaPassdbError(session.log), `Userinfo request failed: connection refused (127.0.0.1:${idp.port})`);
  });

  test('imaplib gets a temporary failure', async () => {
    const session = await login(dovecot, imapXoauth2, { user: ALICE, token: aliceToken });

    assertTemporaryFailure(session, { mechanism: 'XOAUTH2', user: ALICE });
    assert.equal(luaPassdbError(session.log), `Userinfo request failed: connection refused (127.0.0.1:${idp.port})`);
  });
});

describe('bridge with HTTPS IdP', () => {
  let trusted;
  let untrusted;
  let misnamed;

  before(async () => {
    const certDir = makeDir('certs');
    const certs = makeCerts(certDir);
    const misnamedCert = makeMisnamedCert(certDir, certs);
    // The auth process reads tls_ca_cert_file as user dovecot when it checks the settings.
    fs.chmodSync(certs.caCert, 0o644);

    const [trustedIdp, untrustedIdp, misnamedIdp] = await startAll([
      startTestIdp('trusted', { https: { key: certs.serverKey, cert: certs.serverCert, ca: certs.caCert } }),
      startTestIdp('untrusted', { https: { key: certs.untrustedKey, cert: certs.untrustedCert } }),
      startTestIdp('misnamed', { https: { key: misnamedCert.key, cert: misnamedCert.cert, ca: certs.caCert } }),
    ]);

    // Every bridge trusts only the test CA, which signed the trusted and the misnamed certificates.
    const [trustedBridge, untrustedBridge, misnamedBridge] = await startAll([
      startBridgeDovecot('trusted', { userinfoUrl: trustedIdp.userinfoUrl, caFile: certs.caCert }),
      startBridgeDovecot('untrusted', { userinfoUrl: untrustedIdp.userinfoUrl, caFile: certs.caCert }),
      startBridgeDovecot('misnamed', { userinfoUrl: misnamedIdp.userinfoUrl, caFile: certs.caCert }),
    ]);
    trusted = { idp: trustedIdp, dovecot: trustedBridge.dovecot };
    untrusted = { idp: untrustedIdp, dovecot: untrustedBridge.dovecot };
    misnamed = { idp: misnamedIdp, dovecot: misnamedBridge.dovecot };
  });

  after(async () => {
    await stopServers([trusted, untrusted, misnamed].flatMap((pair) => [pair?.dovecot, pair?.idp]));
  });

  test('CA-signed certificate logs alice in', async () => {
    assert.match(trusted.idp.userinfoUrl, /^https:\/\/127\.0\.0\.1:\d+\//);
    const token = await obtainToken(trusted.idp, 'alice');

    const session = await login(trusted.dovecot, imapXoauth2, { user: ALICE, token });

    assertLoggedIn(session, { mechanism: 'XOAUTH2', user: ALICE });
    assert.ok(bridgeMessages(session.log, 'Debug').includes(`Userinfo request: GET https://127.0.0.1:${trusted.idp.port}`));
  });

  test('untrusted certificate fails temporarily', async () => {
    const token = await obtainToken(untrusted.idp, 'alice');

    const session = await login(untrusted.dovecot, imapXoauth2, { user: ALICE, token });

    assertTemporaryFailure(session, { mechanism: 'XOAUTH2', user: ALICE });
    const message = luaPassdbError(session.log);
    assert.match(message, /^Userinfo request failed: TLS handshake failed: /);
    assert.match(message, /certificate verify failed/);
    assert.ok(message.endsWith(`(127.0.0.1:${untrusted.idp.port})`), message);
  });

  test('misnamed certificate fails temporarily', async () => {
    // getToken cannot run here: Node rejects the certificate for 127.0.0.1 as the bridge
    // should. Any well-formed token makes the bridge connect, and TLS fails before HTTP.
    const session = await login(misnamed.dovecot, imapOauthbearer, { user: ALICE, token: madeUpToken() });

    assertTemporaryFailure(session, { mechanism: 'OAUTHBEARER', user: ALICE });
    assert.equal(
      luaPassdbError(session.log),
      `Userinfo request failed: TLS certificate does not name 127.0.0.1 (127.0.0.1:${misnamed.idp.port})`,
    );
  });
});

// Runs last, when every token has been sent and every server has written its log.
describe('log hygiene', () => {
  // Case-sensitive "Bearer" and a space, so Dovecot's "OAUTHBEARER<TAB>" and the bridge's
  // "not a valid bearer token" do not count. Tokens here are far longer than 8 characters.
  const BEARER_VALUE = /\bBearer +[A-Za-z0-9\-._~+/]{8,}/;
  const AUTHORIZATION_VALUE = /\bAuthorization *[:=] *\S+/i;

  /** Returns the 1-based numbers of the lines of `text` that contain `needle` (a string or a RegExp). */
  function linesContaining(text, needle) {
    const numbers = [];
    for (const [index, line] of text.split('\n').entries()) {
      const found = typeof needle === 'string' ? line.includes(needle) : needle.test(line);
      if (found) numbers.push(index + 1);
    }
    return numbers;
  }

  test('suite collected tokens and logs', () => {
    assert.ok(sentTokens.length >= 8, `only ${sentTokens.length} tokens collected`);
    assert.ok(logFiles.length >= 10, `only ${logFiles.length} log files collected`);
    for (const file of logFiles.filter((name) => name.endsWith('dovecot.log'))) {
      const text = fs.readFileSync(file, 'utf8');
      assert.match(text, LOG_PATTERNS.luaVerifyCalled, `${file} shows no Lua passdb call`);
    }
  });

  // The messages name the file, the token or secret by index and the line numbers, never the
  // matching text, so a failure does not copy a token into the test output.
  test('logs hold no tokens or secrets', () => {
    for (const file of logFiles) {
      const text = fs.readFileSync(file, 'utf8');

      for (const [index, token] of sentTokens.entries()) {
        assert.deepEqual(linesContaining(text, token), [], `${file} contains token #${index} on these lines`);
      }
      for (const [index, secret] of secrets.entries()) {
        assert.deepEqual(linesContaining(text, secret), [], `${file} contains secret #${index} on these lines`);
      }
      assert.deepEqual(linesContaining(text, BEARER_VALUE), [], `${file} contains a Bearer value on these lines`);
      assert.deepEqual(linesContaining(text, AUTHORIZATION_VALUE), [], `${file} contains an Authorization value on these lines`);
    }
  });
});
