// Integration tests of the token cache and of kept connections to the identity provider:
// lua-out/oauth2-bridge.lua in a real Dovecot 2.3 with a single auth worker, tokens from a real
// OpenID provider (oidc-provider), and logins from Python's imaplib. A counting proxy
// (lib/counting-proxy.mjs) between the bridge and the IdP shows how many connections and
// userinfo requests reached the IdP. Every server listens on 127.0.0.1 and keeps its files in
// one temporary directory.
// Run: node --test spec/integration/cache.test.mjs (as root, because Dovecot drops privileges).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { imapOauthbearer, imapXoauth2 } from './lib/clients.mjs';
import { startCountingProxy } from './lib/counting-proxy.mjs';
import { findAllLogLines, LOG_PATTERNS, startDovecot } from './lib/dovecot.mjs';
import { startIdp } from './lib/idp.mjs';

// OAUTH2_BRIDGE_BUNDLE can name another build, such as a scratch build of a fix, as in the unit specs.
const BRIDGE_SCRIPT = path.resolve(process.env.OAUTH2_BRIDGE_BUNDLE ?? fileURLToPath(new URL('../../lua-out/oauth2-bridge.lua', import.meta.url)));

const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';

const ACCOUNTS = {
  alice: { email: ALICE, password: `alice-${randomBytes(8).toString('hex')}` },
  bob: { email: BOB, password: `bob-${randomBytes(8).toString('hex')}` },
};

// Each auth worker has its own cache, and Dovecot 2.3 starts up to 30 of them. With one worker
// every login meets the same cache and the same kept connection, so the counts are exact.
const ONE_AUTH_WORKER = `
auth_worker_max_count = 1
service auth-worker {
  process_limit = 1
}
`;

const IMAPLIB_SELECT_OK = /^\w+ OK \[READ-WRITE\] Select completed/m;
const AUTH_FAILED = /NO \[AUTHENTICATIONFAILED\]/;
const TEMPORARY_FAILURE = /NO \[UNAVAILABLE\] Temporary authentication failure/;
const TEMPORARY_FAILURE_REASON = 'auth service reported temporary failure';

// Everything the log hygiene test looks for.
const sentTokens = [];
const secrets = [];
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

async function obtainToken(idp, accountName) {
  const token = await idp.getToken(accountName);
  sentTokens.push(token);
  return token;
}

async function obtainTokens(idp, accountNames) {
  return Promise.all(accountNames.map((name) => obtainToken(idp, name)));
}

/** Writes postfix-accounts.cf in place, readable by the auth process. */
function writeAccountFile(filePath, addresses) {
  const lines = addresses.map((address) => `${address}|{SHA512-CRYPT}$6$salt$notarealhash\n`);
  fs.writeFileSync(filePath, `# Written by cache.test.mjs\n${lines.join('')}`, { mode: 0o644 });
  fs.chmodSync(filePath, 0o644);
}

async function startTestIdp(name) {
  const dir = makeDir(`${name}-idp`);
  const clients = [{ client_id: 'roundcube', client_secret: newSecret('roundcube'), redirect_uris: ['http://127.0.0.1/callback'] }];
  const idp = await startIdp({ dir, accounts: ACCOUNTS, clients });
  runningServers.push(idp);
  logFiles.push(path.join(dir, 'idp.log'));
  return idp;
}

/**
 * Starts a counting proxy in front of `idp` and a Dovecot with one auth worker whose bridge sends
 * its userinfo requests through the proxy. `settings` are extra lines of the bridge's settings
 * file. Resolves to { dovecot, proxy, accountFile, userinfoPath }.
 */
async function startCachingBridge(name, idp, settings = []) {
  const proxy = await startCountingProxy({ targetPort: idp.port });
  runningServers.push(proxy);

  const dir = makeDir(`${name}-dovecot`);
  const accountFile = path.join(dir, 'postfix-accounts.cf');
  writeAccountFile(accountFile, [ALICE, BOB]);
  const userinfoPath = new URL(idp.userinfoUrl).pathname;
  const bridgeSettings = [
    `introspection_url = http://127.0.0.1:${proxy.port}${userinfoPath}`,
    `account_file = ${accountFile}`,
    'timeout_msecs = 3000',
    'client_id = dovecot',
    `client_secret = ${newSecret('bridge')}`,
    ...settings,
  ];

  const dovecot = await startDovecot({
    dir,
    luaScript: BRIDGE_SCRIPT,
    bridgeSettings: `${bridgeSettings.join('\n')}\n`,
    extraConfig: ONE_AUTH_WORKER,
  });
  runningServers.push(dovecot);
  logFiles.push(dovecot.logPath);
  return { dovecot, proxy, accountFile, userinfoPath };
}

async function stopServers(servers) {
  await Promise.all(servers.map((server) => server?.stop()));
}

/** Returns the userinfo requests that reached the proxy so far. */
function userinfoRequests(bridge) {
  return bridge.proxy.requests().filter((request) => request.target === bridge.userinfoPath);
}

/**
 * Runs one client login and waits until Dovecot has logged its outcome. Returns the client
 * result, the login line, the log text of this session, and how many userinfo requests and
 * proxy connections it caused.
 */
async function login(bridge, client, options) {
  const { dovecot, proxy } = bridge;
  const since = dovecot.logOffset();
  const requestsBefore = userinfoRequests(bridge).length;
  const connectionsBefore = proxy.connections();

  const result = await client({ port: dovecot.imapPort, ...options });

  const loginPattern = result.authenticated ? LOG_PATTERNS.loginSucceeded : LOG_PATTERNS.loginFailed;
  const loginLine = await dovecot.waitForLog(loginPattern, { since });
  await dovecot.waitForLog(LOG_PATTERNS.authReply, { since });
  await dovecot.waitForLog(LOG_PATTERNS.workerFinished, { since });
  return {
    result,
    loginLine,
    log: dovecot.logSince(since),
    userinfoRequests: userinfoRequests(bridge).length - requestsBefore,
    newConnections: proxy.connections() - connectionsBefore,
  };
}

function bridgeMessages(log, level) {
  return findAllLogLines(LOG_PATTERNS.luaScriptLog, log)
    .filter((match) => match.groups.level === level)
    .map((match) => match.groups.message);
}

function workerResult(log) {
  return LOG_PATTERNS.workerFinished.exec(log)?.groups.result;
}

function assertLoggedIn({ result, loginLine, log }, { mechanism = 'XOAUTH2', user = ALICE } = {}) {
  assert.equal(result.ok, true, result.response);
  assert.match(result.response, IMAPLIB_SELECT_OK);
  assert.equal(loginLine.groups.mech, mechanism);
  assert.equal(loginLine.groups.user, user);
  assert.equal(LOG_PATTERNS.authReply.exec(log)?.groups.reply, 'OK');
  assert.ok(bridgeMessages(log, 'Info').includes('Token accepted'), bridgeMessages(log, 'Info').join('\n'));
}

function assertRejected({ result, loginLine, log }, { user, workerResultName }) {
  assert.equal(result.ok, false);
  assert.match(result.response, AUTH_FAILED);
  assert.equal(loginLine.groups.reason, 'auth failed');
  assert.equal(loginLine.groups.user, user);
  assert.equal(workerResult(log), workerResultName);
}

function assertTemporaryFailure({ result, loginLine, log }) {
  assert.equal(result.ok, false);
  assert.match(result.response, TEMPORARY_FAILURE);
  assert.equal(loginLine.groups.reason, TEMPORARY_FAILURE_REASON);
  assert.equal(workerResult(log), 'internal_failure');
}

function assertCacheHit(log) {
  const debug = bridgeMessages(log, 'Debug');
  assert.ok(debug.includes('Token cache hit (accepted)'), debug.join('\n'));
  assert.ok(!debug.some((message) => message.startsWith('Userinfo request')), debug.join('\n'));
}

function luaPassdbError(log) {
  return LOG_PATTERNS.luaPassdbError.exec(log)?.groups.message;
}

before(() => {
  rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oauth2-bridge-cache-'));
  // The auth process runs as user dovecot and must reach the settings and account files.
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

describe('token cache', () => {
  let idp;
  let bridge;
  let aliceToken;
  // Tokens that no login used yet, for the connection tests, each a pair of user and token.
  let freshTokens;

  before(async () => {
    idp = await startTestIdp('cache');
    bridge = await startCachingBridge('cache', idp);
    const users = [ALICE, BOB, ALICE, BOB, ALICE, BOB];
    const tokens = await obtainTokens(idp, ['alice', ...users.map((user) => (user === ALICE ? 'alice' : 'bob'))]);
    aliceToken = tokens[0];
    freshTokens = users.map((user, index) => ({ user, token: tokens[index + 1] }));
  });

  after(async () => {
    await stopServers([bridge?.dovecot, bridge?.proxy, idp]);
  });

  describe('accepted token', () => {
    test('second login skips the IdP', async () => {
      const first = await login(bridge, imapXoauth2, { user: ALICE, token: aliceToken });
      const second = await login(bridge, imapXoauth2, { user: ALICE, token: aliceToken });

      assertLoggedIn(first);
      assertLoggedIn(second);
      assert.equal(first.userinfoRequests, 1);
      assert.equal(second.userinfoRequests, 0);
      assertCacheHit(second.log);
    });

    test('OAUTHBEARER reuses the entry', async () => {
      const session = await login(bridge, imapOauthbearer, { user: ALICE, token: aliceToken });

      assertLoggedIn(session, { mechanism: 'OAUTHBEARER' });
      assert.equal(session.userinfoRequests, 0);
      assertCacheHit(session.log);
    });

    test('alice token for bob is rechecked', async () => {
      const session = await login(bridge, imapXoauth2, { user: BOB, token: aliceToken });

      assertRejected(session, { user: BOB, workerResultName: 'password_mismatch' });
      assert.equal(session.userinfoRequests, 1);
      assert.deepEqual(bridgeMessages(session.log, 'Info'), [`Token belongs to ${ALICE} (claim email), not to the login name`]);
    });

    test('removed mailbox is unknown though cached', async () => {
      writeAccountFile(bridge.accountFile, [BOB]);
      let session;
      try {
        session = await login(bridge, imapXoauth2, { user: ALICE, token: aliceToken });
      } finally {
        writeAccountFile(bridge.accountFile, [ALICE, BOB]);
      }

      assertRejected(session, { user: ALICE, workerResultName: 'user_unknown' });
      assert.equal(session.userinfoRequests, 0);
      assertCacheHit(session.log);
      assert.ok(bridgeMessages(session.log, 'Info').includes(`No mailbox for the login name in ${bridge.accountFile}`));
    });

    test('restored mailbox logs in from cache', async () => {
      const session = await login(bridge, imapXoauth2, { user: ALICE, token: aliceToken });

      assertLoggedIn(session);
      assert.equal(session.userinfoRequests, 0);
    });

    test('one auth worker ran every login', () => {
      const workers = new Set(findAllLogLines(LOG_PATTERNS.luaVerifyCalled, bridge.dovecot.readLog())
        .map((match) => /auth-worker\((\d+)\)/.exec(match[0])[1]));

      assert.equal(workers.size, 1, [...workers].join(', '));
    });
  });

  describe('IdP connections', () => {
    test('logins share one connection', async () => {
      // Starts from a fresh connection, whatever the earlier tests left.
      bridge.proxy.closeConnections();
      const logins = freshTokens.slice(0, 4);
      const sessions = [];
      for (const { user, token } of logins) {
        sessions.push(await login(bridge, imapXoauth2, { user, token }));
      }

      for (const [index, session] of sessions.entries()) {
        assertLoggedIn(session, { user: logins[index].user });
        assert.equal(session.userinfoRequests, 1);
      }
      const connections = new Set(userinfoRequests(bridge).slice(-4).map((request) => request.connection));
      assert.equal(connections.size, 1);
      assert.equal(sessions.reduce((total, session) => total + session.newConnections, 0), 1);
    });

    test('idle close by the IdP is survived', async () => {
      bridge.proxy.closeConnections();

      const session = await login(bridge, imapXoauth2, freshTokens[4]);

      assertLoggedIn(session, { user: freshTokens[4].user });
      assert.equal(session.userinfoRequests, 1);
      assert.equal(session.newConnections, 1);
      assert.equal(luaPassdbError(session.log), undefined);
    });

    test('dropped request is sent again', async () => {
      bridge.proxy.dropNextKeptRequest();

      const session = await login(bridge, imapXoauth2, freshTokens[5]);

      assertLoggedIn(session, { user: freshTokens[5].user });
      const [dropped, retried] = userinfoRequests(bridge).slice(-2);
      assert.equal(session.userinfoRequests, 2);
      assert.equal(dropped.dropped, true);
      assert.equal(retried.dropped, false);
      assert.notEqual(retried.connection, dropped.connection);
      assert.equal(session.newConnections, 1);
    });
  });
});

describe('token cache with stopped IdP', () => {
  let idp;
  let bridge;
  let aliceToken;
  let unusedToken;

  before(async () => {
    idp = await startTestIdp('stopped');
    bridge = await startCachingBridge('stopped', idp);
    [aliceToken, unusedToken] = await obtainTokens(idp, ['alice', 'alice']);
  });

  after(async () => {
    await stopServers([bridge?.dovecot, bridge?.proxy, idp]);
  });

  test('cached token works after the stop', async () => {
    const before = await login(bridge, imapXoauth2, { user: ALICE, token: aliceToken });
    await idp.stop();
    await bridge.proxy.stop();

    const session = await login(bridge, imapXoauth2, { user: ALICE, token: aliceToken });

    assertLoggedIn(before);
    assertLoggedIn(session);
    assertCacheHit(session.log);
  });

  test('new token fails temporarily', async () => {
    const session = await login(bridge, imapXoauth2, { user: ALICE, token: unusedToken });

    assertTemporaryFailure(session);
    assert.equal(luaPassdbError(session.log), `Userinfo request failed: connection refused (127.0.0.1:${bridge.proxy.port})`);
  });
});

describe('token cache with 2 s lifetime', () => {
  let idp;
  let bridge;
  let aliceToken;

  before(async () => {
    idp = await startTestIdp('ttl');
    bridge = await startCachingBridge('ttl', idp, ['cache_ttl_secs = 2']);
    aliceToken = await obtainToken(idp, 'alice');
  });

  after(async () => {
    await stopServers([bridge?.dovecot, bridge?.proxy, idp]);
  });

  test('IdP is asked again after 3 s', async () => {
    const first = await login(bridge, imapXoauth2, { user: ALICE, token: aliceToken });
    const cached = await login(bridge, imapXoauth2, { user: ALICE, token: aliceToken });
    await sleep(3000);

    const later = await login(bridge, imapXoauth2, { user: ALICE, token: aliceToken });

    assertLoggedIn(first);
    assertLoggedIn(cached);
    assertLoggedIn(later);
    assert.equal(first.userinfoRequests, 1);
    assert.equal(cached.userinfoRequests, 0);
    assert.equal(later.userinfoRequests, 1);
  });
});

// Runs last, when every token has been sent and every server has written its log.
describe('log hygiene', () => {
  // Case-sensitive "Bearer" and a space, so Dovecot's "OAUTHBEARER<TAB>" does not count.
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
    assert.ok(sentTokens.length >= 10, `only ${sentTokens.length} tokens collected`);
    assert.ok(logFiles.length >= 6, `only ${logFiles.length} log files collected`);
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
