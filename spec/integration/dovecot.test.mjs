// Self-test of the Dovecot harness and the IMAP clients, using a stub Lua
// passdb in place of the bridge. Run: node --test spec/integration/dovecot.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { startDovecot, LOG_PATTERNS, findAllLogLines, listInstanceProcesses } from './lib/dovecot.mjs';
import { imapXoauth2, imapOauthbearer, curlOauthbearer, imapPlain } from './lib/clients.mjs';

// The stub accepts the token "good". Two more tokens select the other passdb
// results, and every other token is a password mismatch.
const STUB_LUA = `
local settings_path = os.getenv("OAUTH2_BRIDGE_CONFIG")

-- Dovecot 2.3 runs script_init() in the auth process (as user dovecot) and in
-- each auth-worker (as root). Returning non-zero makes the auth process fail
-- with "passdb-lua: initialization failed", so a login that succeeds shows that
-- both saw the variable and could read the settings file.
function script_init()
  local file = io.open(settings_path or "", "r")
  if file == nil then
    return -1
  end
  file:close()
  return 0
end

function auth_password_verify(req, token)
  req:log_info("OAUTH2_BRIDGE_CONFIG=" .. tostring(os.getenv("OAUTH2_BRIDGE_CONFIG")))
  if token == "good" then
    return dovecot.auth.PASSDB_RESULT_OK, {}
  end
  if token == "stub-user-unknown" then
    return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, "no such user"
  end
  if token == "stub-internal-failure" then
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "stub internal failure"
  end
  return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, "bad token"
end
`;

const MAILBOX_USER = 'alice@example.test';
const PLAIN_USER = 'plain-user@example.test';
const PLAIN_PASSWORD = 'plain-password';
const SELECT_OK = /^A\d+ OK \[READ-WRITE\] Select completed/m;
const IMAPLIB_SELECT_OK = /^\w+ OK \[READ-WRITE\] Select completed/m;

let tempDirs = [];
let dovecot;

async function makeTempDir() {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'oauth2-bridge-dovecot-'));
  tempDirs.push(dir);
  return dir;
}

before(async () => {
  const dir = await makeTempDir();
  const luaScript = path.join(dir, 'stub-passdb.lua');
  await fs.writeFile(luaScript, STUB_LUA, { mode: 0o644 });

  dovecot = await startDovecot({
    dir,
    luaScript,
    bridgeSettings: '# Not read by the stub passdb beyond checking that it can be opened.\ntimeout_msecs = 2000\n',
    passwdUsers: { [PLAIN_USER]: PLAIN_PASSWORD },
  });
});

after(async () => {
  await dovecot?.stop();
  await Promise.all(tempDirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
  tempDirs = [];
});

test('XOAUTH2 with valid token logs in', async () => {
  const since = dovecot.logOffset();

  const result = await imapXoauth2({ port: dovecot.imapPort, user: MAILBOX_USER, token: 'good' });

  assert.equal(result.ok, true, result.response);
  assert.match(result.response, IMAPLIB_SELECT_OK);
  const login = await dovecot.waitForLog(LOG_PATTERNS.loginSucceeded, { since });
  assert.equal(login.groups.mech, 'XOAUTH2');
  assert.equal(login.groups.user, MAILBOX_USER);
  const log = dovecot.logSince(since);
  assert.equal(LOG_PATTERNS.authRequest.exec(log)?.groups.mech, 'XOAUTH2');
  assert.equal(LOG_PATTERNS.luaVerifyCalled.exec(log)?.groups.user, MAILBOX_USER);
  assert.equal(LOG_PATTERNS.workerFinished.exec(log)?.groups.result, undefined);
  assert.equal(LOG_PATTERNS.authReply.exec(log)?.groups.reply, 'OK');
});

test('Lua passdb sees OAUTH2_BRIDGE_CONFIG', async () => {
  const since = dovecot.logOffset();

  const result = await imapXoauth2({ port: dovecot.imapPort, user: MAILBOX_USER, token: 'good' });

  assert.equal(result.ok, true, result.response);
  const line = await dovecot.waitForLog(LOG_PATTERNS.luaScriptLog, { since });
  assert.equal(line.groups.level, 'Info');
  assert.equal(line.groups.message, `OAUTH2_BRIDGE_CONFIG=${dovecot.settingsPath}`);
  assert.doesNotMatch(dovecot.readLog(), LOG_PATTERNS.luaInitFailed);
  assert.doesNotMatch(dovecot.readLog(), LOG_PATTERNS.anyFatal);
});

test('OAUTHBEARER via imaplib logs in', async () => {
  const since = dovecot.logOffset();

  const result = await imapOauthbearer({ port: dovecot.imapPort, user: MAILBOX_USER, token: 'good' });

  assert.equal(result.ok, true, result.response);
  assert.match(result.response, IMAPLIB_SELECT_OK);
  const login = await dovecot.waitForLog(LOG_PATTERNS.loginSucceeded, { since });
  assert.equal(login.groups.mech, 'OAUTHBEARER');
  assert.equal(login.groups.user, MAILBOX_USER);
});

test('OAUTHBEARER via curl logs in', async () => {
  const since = dovecot.logOffset();

  const result = await curlOauthbearer({ port: dovecot.imapPort, user: MAILBOX_USER, token: 'good' });

  assert.equal(result.ok, true, result.response);
  assert.equal(result.authenticated, true);
  assert.match(result.response, SELECT_OK);
  const login = await dovecot.waitForLog(LOG_PATTERNS.loginSucceeded, { since });
  assert.equal(login.groups.mech, 'OAUTHBEARER');
});

test('XOAUTH2 with bad token is rejected', async () => {
  const token = `bad-token-${randomBytes(8).toString('hex')}`;
  const since = dovecot.logOffset();

  const result = await imapXoauth2({ port: dovecot.imapPort, user: MAILBOX_USER, token });

  assert.equal(result.ok, false);
  assert.equal(result.authenticated, false);
  assert.match(result.response, /NO \[AUTHENTICATIONFAILED\]/);
  // Dovecot's XOAUTH2 error challenge, base64 of {"status":"401","schemes":"bearer","scope":"mail"}.
  assert.match(result.response, /^\+ eyJzdGF0dXMiOiI0MDEi/m);
  const failure = await dovecot.waitForLog(LOG_PATTERNS.loginFailed, { since });
  assert.equal(failure.groups.reason, 'auth failed');
  assert.equal(failure.groups.mech, 'XOAUTH2');
  const log = dovecot.logSince(since);
  assert.equal(LOG_PATTERNS.passwordMismatch.exec(log)?.groups.passdb, 'lua');
  assert.equal(LOG_PATTERNS.workerFinished.exec(log)?.groups.result, 'password_mismatch');
  assert.equal(LOG_PATTERNS.authReply.exec(log)?.groups.reply, 'FAIL');
  assert.ok(!dovecot.readLog().includes(token), 'the token must not appear in the Dovecot log');
});

test('OAUTHBEARER with bad token is rejected', async () => {
  const token = `bad-token-${randomBytes(8).toString('hex')}`;

  const viaImaplib = await imapOauthbearer({ port: dovecot.imapPort, user: MAILBOX_USER, token });
  const viaCurl = await curlOauthbearer({ port: dovecot.imapPort, user: MAILBOX_USER, token });

  assert.equal(viaImaplib.ok, false);
  assert.match(viaImaplib.response, /NO \[AUTHENTICATIONFAILED\]/);
  // Base64 of {"status":"invalid_token"}.
  assert.match(viaImaplib.response, /^\+ eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=$/m);
  assert.equal(viaCurl.ok, false);
  assert.equal(viaCurl.authenticated, false);
  assert.match(viaCurl.response, /NO \[AUTHENTICATIONFAILED\]/);
  assert.match(viaCurl.error, /Login denied/);
  assert.ok(!viaCurl.response.includes(token), 'curl response must hold only server lines');
});

test('passdb user unknown is rejected', async () => {
  const since = dovecot.logOffset();

  const result = await imapXoauth2({ port: dovecot.imapPort, user: 'nobody@example.test', token: 'stub-user-unknown' });

  assert.equal(result.ok, false);
  assert.match(result.response, /NO \[AUTHENTICATIONFAILED\]/);
  await dovecot.waitForLog(LOG_PATTERNS.loginFailed, { since });
  const log = dovecot.logSince(since);
  assert.equal(LOG_PATTERNS.workerFinished.exec(log)?.groups.result, 'user_unknown');
  assert.doesNotMatch(log, LOG_PATTERNS.passwordMismatch);
});

test('passdb internal failure is a temporary failure', async () => {
  const since = dovecot.logOffset();

  const result = await curlOauthbearer({ port: dovecot.imapPort, user: MAILBOX_USER, token: 'stub-internal-failure' });

  assert.equal(result.ok, false);
  assert.match(result.response, /NO \[UNAVAILABLE\] Temporary authentication failure/);
  const failure = await dovecot.waitForLog(LOG_PATTERNS.loginFailed, { since });
  assert.equal(failure.groups.reason, 'auth service reported temporary failure');
  const log = dovecot.logSince(since);
  assert.equal(LOG_PATTERNS.luaPassdbError.exec(log)?.groups.message, 'stub internal failure');
  assert.equal(LOG_PATTERNS.workerFinished.exec(log)?.groups.result, 'internal_failure');
  assert.equal(LOG_PATTERNS.authReply.exec(log)?.groups.fields, 'code=temp_fail');
});

test('PLAIN with passwd-file password logs in', async () => {
  const since = dovecot.logOffset();

  const result = await imapPlain({ port: dovecot.imapPort, user: PLAIN_USER, password: PLAIN_PASSWORD });

  assert.equal(result.ok, true, result.response);
  const login = await dovecot.waitForLog(LOG_PATTERNS.loginSucceeded, { since });
  assert.equal(login.groups.mech, 'PLAIN');
  assert.equal(login.groups.user, PLAIN_USER);
  const log = dovecot.logSince(since);
  assert.doesNotMatch(log, LOG_PATTERNS.luaVerifyCalled);
  assert.equal(LOG_PATTERNS.passdbSkipped.exec(log)?.groups.mech, 'plain');
});

test('token as PLAIN password never reaches Lua', async () => {
  const since = dovecot.logOffset();

  const knownUser = await imapPlain({ port: dovecot.imapPort, user: PLAIN_USER, password: 'good' });
  const mailboxUser = await imapPlain({ port: dovecot.imapPort, user: MAILBOX_USER, password: 'good' });

  assert.equal(knownUser.ok, false);
  assert.match(knownUser.response, /NO \[AUTHENTICATIONFAILED\]/);
  assert.equal(mailboxUser.ok, false);
  assert.match(mailboxUser.response, /NO \[AUTHENTICATIONFAILED\]/);
  const failures = await dovecot.waitForLogLines(LOG_PATTERNS.loginFailed, 2, { since });
  assert.deepEqual(failures.map((match) => match.groups.mech), ['PLAIN', 'PLAIN']);
  const log = dovecot.logSince(since);
  assert.equal(LOG_PATTERNS.passwordMismatch.exec(log)?.groups.passdb, 'passwd-file');
  assert.equal(LOG_PATTERNS.passwdFileUnknownUser.exec(log)?.groups.user, MAILBOX_USER);
  assert.equal(findAllLogLines(LOG_PATTERNS.passdbSkipped, log).length, 2);
  assert.doesNotMatch(log, LOG_PATTERNS.luaVerifyCalled);
  assert.doesNotMatch(log, LOG_PATTERNS.luaScriptLog);
});

test('startDovecot rejects missing Lua script', async () => {
  const dir = await makeTempDir();

  await assert.rejects(
    startDovecot({ dir, luaScript: path.join(dir, 'missing.lua'), bridgeSettings: '' }),
    /Lua script not found/,
  );
});

test('startDovecot reports config errors', async () => {
  const dir = await makeTempDir();
  const luaScript = path.join(dir, 'stub-passdb.lua');
  await fs.writeFile(luaScript, STUB_LUA, { mode: 0o644 });

  await assert.rejects(
    startDovecot({ dir, luaScript, bridgeSettings: '', extraConfig: 'no_such_setting = 1\n' }),
    /Dovecot did not start[\s\S]*Unknown setting: no_such_setting/,
  );
});

test('stop ends every Dovecot process', async () => {
  const processesBefore = listInstanceProcesses(dovecot);
  assert.ok(processesBefore.includes(dovecot.pid), `master PID ${dovecot.pid} not found among ${processesBefore}`);

  await dovecot.stop();
  await dovecot.stop();

  assert.deepEqual(listInstanceProcesses(dovecot), []);
});
