// Facts about Dovecot 2.4.1 (Debian 13 "trixie") that the bridge's 2.4 support
// depends on. Each run checks them against the real Dovecot with a small Lua
// passdb of its own, not the bridge. They cover how XOAUTH2 and OAUTHBEARER
// reach a Lua passdb after Dovecot's built-in oauth2 validation, what the
// script receives, and which result settings let a login through when the
// script rejects it.
//
// Needs root: Dovecot 2.4.1 comes from a Debian 13 root built by
// scripts/build-trixie-root.sh (about half a minute the first time, then cached)
// and runs under chroot. DOVECOT24_ROOT names another directory for that root.
// Without root, or when the root cannot be built, every test is skipped with
// the reason.
// Run: node --test spec/integration/dovecot24.test.mjs

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { startDovecot24, prepareTrixieRoot, LOG_PATTERNS_24, findAllLogLines, DEFAULT_TRIXIE_ROOT } from './lib/dovecot24.mjs';
import { startIdp } from './lib/idp.mjs';
import { imapXoauth2, imapOauthbearer, imapPlain } from './lib/clients.mjs';

// The login name's local part selects what the test passdb returns: "alice"
// is accepted, "<kind>-user@example.test" gets the result named by <kind>.
// Every hook call and every script_init() call appends one JSON line to a file
// next to the script (calls.jsonl, init.jsonl) for the tests to read.
const TEST_PASSDB_LUA = String.raw`
-- Test passdb for Dovecot 2.4.1 facts, not the bridge.
local cjson = require("cjson")
local R = dovecot.auth
-- Dovecot loads the script from lua_file; its directory is the instance directory.
local SCRIPT_DIR = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
local REQ_FIELDS = { "user", "protocol", "mechanism", "remote_ip", "local_ip", "session", "secured",
  "password", "original_user", "service", "rip", "mech" }

local function append(name, record)
  local file = assert(io.open(SCRIPT_DIR .. "/" .. name, "a"))
  file:write(cjson.encode(record), "\n")
  file:close()
end

local function run(command)
  local pipe = io.popen(command .. " 2>&1")
  if pipe == nil then return cjson.null end
  local output = pipe:read("a")
  pipe:close()
  return (output:gsub("\n$", ""))
end

function script_init(settings)
  local copy, types = {}, {}
  for key, value in pairs(settings) do
    copy[key] = value
    types[key] = type(value)
  end
  append("init.jsonl", {
    settings_type = type(settings),
    settings = copy,
    value_types = types,
    uid = run("id -u"),
    config_file = os.getenv("CONFIG_FILE") or cjson.null,
    result_failure = run("doveconf -h passdb/lua/passdb_result_failure"),
    result_internalfail = run("doveconf -h passdb/lua/passdb_result_internalfail"),
    global_result_failure = run("doveconf -h passdb_result_failure"),
    passdb_blocks = run("doveconf -n passdb"),
  })
  dovecot.i_info("TEST script_init ran")
  if settings.fail_init == "yes" then
    error("TEST script_init rejects the settings")
  end
  return tonumber(settings.init_return or "0")
end

local function record(hook, req, password)
  local fields = {}
  for _, key in ipairs(REQ_FIELDS) do
    local value = req[key]
    if value == nil then fields[key] = cjson.null else fields[key] = value end
  end
  append("calls.jsonl", {
    hook = hook,
    fields = fields,
    skip_password_check = req.skip_password_check,
    passdb_token = req.passdb.token or cjson.null,
    password_argument = password or cjson.null,
  })
  req:log_info("TEST " .. hook .. " called")
  dovecot.i_info("TEST i_info from " .. hook)
end

local function result_for(req)
  local kind = req.user:match("^([a-z]+)%-") or "ok"
  if kind == "ok" then return R.PASSDB_RESULT_OK, {} end
  if kind == "oknil" then return R.PASSDB_RESULT_OK end
  if kind == "okstring" then return R.PASSDB_RESULT_OK, "a string where a table belongs" end
  if kind == "unknown" then return R.PASSDB_RESULT_USER_UNKNOWN, "TEST no such mailbox" end
  if kind == "mismatch" then return R.PASSDB_RESULT_PASSWORD_MISMATCH, "TEST token of another user" end
  if kind == "internal" then return R.PASSDB_RESULT_INTERNAL_FAILURE, "TEST identity provider unreachable" end
  if kind == "disabled" then return R.PASSDB_RESULT_USER_DISABLED, "TEST mailbox disabled" end
  if kind == "next" then return R.PASSDB_RESULT_NEXT, "TEST next" end
  if kind == "raise" then error("TEST raised error") end
  if kind == "crash" then os.exit(3) end
  return R.PASSDB_RESULT_INTERNAL_FAILURE, "TEST unexpected login name " .. req.user
end

function auth_passdb_lookup(req)
  record("auth_passdb_lookup", req, nil)
  return result_for(req)
end

function auth_password_verify(req, password)
  record("auth_password_verify", req, password)
  return result_for(req)
end
`;

const DOMAIN = 'example.test';
const ALICE = `alice@${DOMAIN}`;
// Kinds whose login the script rejects, by result code, Lua error, invalid return value or exit.
const REJECTED_KINDS = ['unknown', 'mismatch', 'internal', 'raise', 'okstring', 'crash'];
const ALL_KINDS = ['oknil', ...REJECTED_KINDS, 'disabled', 'next'];
const userOf = (kind) => `${kind}-user@${DOMAIN}`;

const LUA_SETTINGS = [
  'plain_key = a value with spaces',
  'dotted.key = dot',
  'Mixed-Case_Key = mixed',
  'empty_value =',
  'client_secret = s3cret',
  // Dovecot 2.4 expands %{...} in lua_settings; %%{ is the escape for a literal %{.
  'pass_attrs = "mail=%%{oauth2:email} 100%"',
  'init_return = -1',
].join('\n');

const FAIL_CLOSED = 'result_failure = return-fail\nresult_internalfail = return-fail';

const clients = { XOAUTH2: imapXoauth2, OAUTHBEARER: imapOauthbearer };
const MECHANISMS = Object.keys(clients);

const setup = await checkEnvironment();

/** Decides whether this file can run: root, and a trixie root that builds or is cached. */
async function checkEnvironment() {
  if (process.getuid?.() !== 0) {
    return { skip: 'needs root: the Dovecot 2.4 tests build a Debian root with debootstrap and run Dovecot under chroot' };
  }
  try {
    const prepared = await prepareTrixieRoot({ root: process.env.DOVECOT24_ROOT || DEFAULT_TRIXIE_ROOT });
    return { skip: false, ...prepared };
  } catch (err) {
    return { skip: `the Debian 13 root with Dovecot 2.4 cannot be built: ${err.message}` };
  }
}

/** Returns the JSON objects of one record file in the instance directory. */
function readRecords(dovecot, name) {
  const file = path.join(dovecot.hostInstanceDir, name);
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

/** Returns the messages of the Error lines that the Lua passdb wrote for a request. */
function luaErrors(log) {
  return findAllLogLines(LOG_PATTERNS_24.luaRequestLog, log)
    .filter((match) => match.groups.level === 'Error')
    .map((match) => match.groups.message);
}

/** Decodes the JSON error challenge ("+ BASE64") that Dovecot sends before NO, or returns undefined. */
function errorChallenge(response) {
  const line = response.split('\n').find((entry) => /^\+ \S+/.test(entry));
  return line === undefined ? undefined : JSON.parse(Buffer.from(line.slice(2), 'base64').toString('utf8'));
}

describe('Dovecot 2.4.1 with a Lua passdb after oauth2', { skip: setup.skip }, () => {
  const tempDirs = [];
  const instances = [];
  const tokens = {};
  let idp;
  let failOpen;
  let failClosed;

  const makeTempDir = (name) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `oauth2-bridge-dovecot24-${name}-`));
    tempDirs.push(dir);
    return dir;
  };

  /** Starts Dovecot 2.4 with the test passdb and an oauth2 block that checks tokens at the IdP's userinfo endpoint. */
  const startInstance = async (name, options = {}) => {
    const dir = makeTempDir(name);
    const luaScript = path.join(dir, 'test-passdb.lua');
    fs.writeFileSync(luaScript, TEST_PASSDB_LUA, { mode: 0o644 });
    const dovecot = await startDovecot24({
      root: setup.root,
      dir,
      luaScript,
      bridgeSettings: LUA_SETTINGS,
      oauth2: { introspection_mode: 'auth', introspection_url: idp.userinfoUrl, username_attribute: 'email' },
      ...options,
    });
    instances.push(dovecot);
    return dovecot;
  };

  /** Logs in with `mechanism` and waits until imap-login has logged the outcome. */
  const login = async (dovecot, mechanism, user, token) => {
    const since = dovecot.logOffset();
    const result = await clients[mechanism]({ port: dovecot.imapPort, user, token });
    const outcome = result.ok ? LOG_PATTERNS_24.loginSucceeded : LOG_PATTERNS_24.loginFailed;
    const line = await dovecot.waitForLog(outcome, { since });
    return { ...result, line, log: dovecot.logSince(since) };
  };

  before(async () => {
    const accounts = { alice: { email: ALICE, password: 'alice-password' } };
    for (const kind of ALL_KINDS) accounts[kind] = { email: userOf(kind), password: `${kind}-password` };
    idp = await startIdp({ dir: makeTempDir('idp'), accounts });
    for (const name of Object.keys(accounts)) tokens[name] = await idp.getToken(name);

    failOpen = await startInstance('fail-open');
    failClosed = await startInstance('fail-closed', { passdbConfig: `mechanisms_filter = xoauth2 oauthbearer\n${FAIL_CLOSED}` });
  });

  after(async () => {
    await Promise.all(instances.map((dovecot) => dovecot.stop()));
    await idp?.stop();
    for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('trixie root has Dovecot 2.4.1', (t) => {
    t.diagnostic(`trixie root ready in ${setup.seconds.toFixed(1)} s${setup.output ? `: ${setup.output}` : ' (cached)'}`);
    assert.match(failOpen.readLog(), /master: Info: Dovecot v2\.4\.1-\d+ .*starting up/);
    // Settings of a named block are read as BLOCK/KEY.
    assert.equal(failOpen.doveconf(['-h', 'oauth2/introspection_url']).trim(), idp.userinfoUrl);
  });

  test('script_init gets lua_settings as strings', () => {
    const records = readRecords(failOpen, 'init.jsonl');
    // Once in the auth process at start, once in each auth-worker.
    assert.ok(records.length >= 1, 'script_init() wrote no record');
    const [init] = records;
    assert.equal(init.settings_type, 'table');
    assert.deepEqual(init.settings, {
      plain_key: 'a value with spaces',
      'dotted.key': 'dot',
      'Mixed-Case_Key': 'mixed',
      empty_value: '',
      client_secret: 's3cret',
      pass_attrs: 'mail=%{oauth2:email} 100%',
      init_return: '-1',
    });
    assert.ok(Object.values(init.value_types).every((type) => type === 'string'));
    const initLines = findAllLogLines(LOG_PATTERNS_24.luaProcessLog, failOpen.readLog())
      .filter((match) => match.groups.message === 'TEST script_init ran');
    assert.ok(initLines.some((match) => match.groups.process === 'auth'), 'script_init() did not run in the auth process');
  });

  test('unescaped %{ in lua_settings stops auth', async () => {
    await assert.rejects(
      startInstance('percent', { bridgeSettings: 'pass_attrs = mail=%{oauth2:email}' }),
      /auth: Fatal: passdb-lua: dlua settings: Failed to parse configuration: Failed to expand lua_settings\/pass_attrs setting variables/,
    );
  });

  test('script_init error stops auth, return value is ignored', async () => {
    await assert.rejects(
      startInstance('init-error', { bridgeSettings: 'fail_init = yes' }),
      /auth: Fatal: passdb-lua: script_init\(\) failed: lua_pcall\(script_init, 1, 0\) failed: .*TEST script_init rejects the settings/,
    );
    // failOpen's script_init returns -1 (init_return), and its logins work.
    const result = await login(failOpen, 'XOAUTH2', ALICE, tokens.alice);
    assert.equal(result.ok, true, result.response);
  });

  test('script can run doveconf to read passdb results', () => {
    const [open] = readRecords(failOpen, 'init.jsonl');
    const [closed] = readRecords(failClosed, 'init.jsonl');
    assert.equal(open.uid, '0');
    assert.equal(open.config_file, failOpen.chrootConfigPath);
    // doveconf -h prints a passdb block's value only when the block sets it.
    assert.equal(open.result_failure, '');
    assert.equal(open.result_internalfail, '');
    assert.equal(open.global_result_failure, 'continue');
    assert.equal(closed.result_failure, 'return-fail');
    assert.equal(closed.result_internalfail, 'return-fail');
    assert.match(closed.passdb_blocks, /^passdb lua \{\n {2}lua_file = \/run\/test-\w+\/passdb\.lua\n/m);
    // doveconf hides values of settings named like secrets, even inside lua_settings.
    assert.match(closed.passdb_blocks, /client_secret = # hidden, use -P to show it/);
  });

  for (const mechanism of MECHANISMS) {
    test(`${mechanism} calls auth_passdb_lookup with the token`, async () => {
      const since = failOpen.logOffset();
      const callsBefore = readRecords(failOpen, 'calls.jsonl').length;

      const result = await login(failOpen, mechanism, ALICE, tokens.alice);

      assert.equal(result.ok, true, result.response);
      assert.deepEqual({ ...result.line.groups }, { user: ALICE, mech: mechanism });
      const calls = readRecords(failOpen, 'calls.jsonl').slice(callsBefore);
      assert.equal(calls.length, 1);
      const [call] = calls;
      // The script also defines auth_password_verify, but Dovecot calls auth_passdb_lookup.
      assert.equal(call.hook, 'auth_passdb_lookup');
      assert.equal(call.passdb_token, tokens.alice);
      assert.equal(call.skip_password_check, true);
      assert.deepEqual(call.fields, {
        user: ALICE,
        protocol: 'imap',
        mechanism,
        remote_ip: '127.0.0.1',
        local_ip: '127.0.0.1',
        session: call.fields.session,
        secured: 'secured',
        password: null,
        original_user: ALICE,
        service: null,
        rip: null,
        mech: null,
      });
      assert.match(call.fields.session, /^[A-Za-z0-9+/]{16}$/);
      const log = failOpen.logSince(since);
      assert.equal(LOG_PATTERNS_24.luaHookCalled.exec(log)?.groups.hook, 'auth_passdb_lookup');
      assert.deepEqual({ ...LOG_PATTERNS_24.luaRequestLog.exec(log)?.groups }, {
        user: ALICE, level: 'Info', message: 'TEST auth_passdb_lookup called',
      });
      assert.match(log, /^.* auth-worker\(\d+\): Info: TEST i_info from auth_passdb_lookup$/m);
    });
  }

  test('auth_debug logs the token in passdb replies', async () => {
    const result = await login(failOpen, 'XOAUTH2', ALICE, tokens.alice);
    assert.equal(result.ok, true, result.response);

    // Dovecot 2.4.1 itself, with auth_debug = yes and auth_debug_passwords = no, writes the
    // token field that its oauth2 mechanism adds: "client passdb out: OK<TAB>1<TAB>user=...<TAB>token=...".
    const linesWithToken = result.log.split('\n').filter((line) => line.includes(tokens.alice));
    assert.equal(linesWithToken.length, 1, linesWithToken.join('\n'));
    assert.match(linesWithToken[0], /^.* auth: Debug: conn unix:login .*: client passdb out: OK\t\d+\tuser=alice@example\.test\ttoken=/);
  });

  test('default result settings let rejections through', async () => {
    for (const kind of REJECTED_KINDS) {
      for (const mechanism of MECHANISMS) {
        const result = await login(failOpen, mechanism, userOf(kind), tokens[kind]);
        assert.equal(result.ok, true, `${kind} via ${mechanism} was rejected:\n${result.response}`);
        assert.match(result.log, /Calling auth_passdb_lookup/);
      }
    }
  });

  test('USER_DISABLED rejects under any setting', async () => {
    for (const dovecot of [failOpen, failClosed]) {
      const result = await login(dovecot, 'XOAUTH2', userOf('disabled'), tokens.disabled);
      assert.equal(result.ok, false, result.response);
      assert.equal(result.line.groups.code, 'user_disabled');
      assert.deepEqual(errorChallenge(result.response), { schemes: 'bearer', status: '403', scope: 'mail', 'openid-configuration': '' });
    }
  });

  test('return-fail result settings reject logins', async () => {
    for (const kind of REJECTED_KINDS) {
      for (const mechanism of MECHANISMS) {
        const result = await login(failClosed, mechanism, userOf(kind), tokens[kind]);
        assert.equal(result.ok, false, `${kind} via ${mechanism} logged in:\n${result.response}`);
        assert.match(result.response, /NO \[AUTHENTICATIONFAILED\] Authentication failed\./);
        assert.equal(result.line.groups.code, 'auth_failed');
      }
    }
    const allowed = await login(failClosed, 'XOAUTH2', ALICE, tokens.alice);
    assert.equal(allowed.ok, true, allowed.response);
  });

  test('PASSDB_RESULT_NEXT logs in even with return-fail', async () => {
    for (const dovecot of [failOpen, failClosed]) {
      const result = await login(dovecot, 'XOAUTH2', userOf('next'), tokens.next);
      assert.equal(result.ok, true, result.response);
    }
  });

  test('OK return values: nil and string', async () => {
    const withoutTable = await login(failClosed, 'OAUTHBEARER', userOf('oknil'), tokens.oknil);
    assert.equal(withoutTable.ok, true, withoutTable.response);

    const withString = await login(failClosed, 'OAUTHBEARER', userOf('okstring'), tokens.okstring);
    assert.equal(withString.ok, false);
    assert.deepEqual(luaErrors(withString.log), [
      'db-lua: auth_passdb_lookup(req) invalid return value (expected nil or table, got string)',
    ]);
  });

  test('rejections reach the client as SASL errors', async () => {
    const challenges = {};
    for (const kind of ['unknown', 'mismatch', 'internal']) {
      for (const mechanism of MECHANISMS) {
        const result = await login(failClosed, mechanism, userOf(kind), tokens[kind]);
        challenges[`${kind} ${mechanism}`] = errorChallenge(result.response)?.status;
      }
    }
    assert.deepEqual(challenges, {
      // USER_UNKNOWN gets a plain NO, without an error challenge.
      'unknown XOAUTH2': undefined,
      'unknown OAUTHBEARER': undefined,
      'mismatch XOAUTH2': '401',
      'mismatch OAUTHBEARER': 'invalid_token',
      'internal XOAUTH2': '500',
      'internal OAUTHBEARER': 'internal_failure',
    });
  });

  test('script reasons logged for internal failures', async () => {
    const internal = await login(failClosed, 'XOAUTH2', userOf('internal'), tokens.internal);
    assert.deepEqual(luaErrors(internal.log), ['TEST identity provider unreachable']);

    for (const kind of ['unknown', 'mismatch']) {
      const result = await login(failClosed, 'XOAUTH2', userOf(kind), tokens[kind]);
      assert.doesNotMatch(result.log, /TEST no such mailbox|TEST token of another user/);
    }

    const raised = await login(failClosed, 'XOAUTH2', userOf('raise'), tokens.raise);
    // A stack traceback follows, one "lua:" Error line per frame.
    assert.match(
      luaErrors(raised.log)[0] ?? '',
      /^lua_pcall\(auth_passdb_lookup, 1, 2\) failed: \/run\/test-\w+\/passdb\.lua:\d+: TEST raised error$/,
    );
  });

  test('auth-worker crash fails open by default', async () => {
    const open = await login(failOpen, 'XOAUTH2', userOf('crash'), tokens.crash);
    assert.equal(open.ok, true, open.response);
    assert.equal(LOG_PATTERNS_24.workerDied.exec(open.log)?.groups.user, userOf('crash'));

    const closed = await login(failClosed, 'XOAUTH2', userOf('crash'), tokens.crash);
    assert.equal(closed.ok, false, closed.response);
    assert.equal(LOG_PATTERNS_24.workerDied.exec(closed.log)?.groups.user, userOf('crash'));
  });

  test('oauth2 rejects bad tokens before Lua', async () => {
    const bogus = await login(failOpen, 'XOAUTH2', ALICE, 'not-a-token-the-idp-issued');
    assert.equal(bogus.ok, false);
    // The IdP rejects the token with a JSON "error" body, and Dovecot 2.4.1's oauth2 client
    // (src/lib-oauth2/oauth2-request.c) turns any such body into an internal failure.
    assert.equal(errorChallenge(bogus.response)?.status, '500');
    assert.deepEqual({ ...LOG_PATTERNS_24.oauth2Failed.exec(bogus.log)?.groups }, {
      user: ALICE, level: 'Error', mech: 'xoauth2', message: 'Introspection failed: invalid token provided',
    });
    assert.doesNotMatch(bogus.log, LOG_PATTERNS_24.luaHookCalled);

    const otherUser = await login(failOpen, 'OAUTHBEARER', ALICE, tokens.unknown);
    assert.equal(otherUser.ok, false);
    assert.equal(errorChallenge(otherUser.response), undefined);
    assert.deepEqual({ ...LOG_PATTERNS_24.oauth2Failed.exec(otherUser.log)?.groups }, {
      user: ALICE, level: 'Info', mech: 'oauthbearer', message: `Introspection failed: Username '${ALICE}' did not match '${userOf('unknown')}'`,
    });
    assert.doesNotMatch(otherUser.log, LOG_PATTERNS_24.luaHookCalled);
  });

  test('Lua passdb filtered out lets tokens through', async () => {
    const dovecot = await startInstance('filtered', { passdbConfig: `mechanisms_filter = plain login\n${FAIL_CLOSED}` });

    const result = await login(dovecot, 'XOAUTH2', userOf('unknown'), tokens.unknown);

    assert.equal(result.ok, true, result.response);
    assert.doesNotMatch(result.log, LOG_PATTERNS_24.luaHookCalled);
  });

  test('PLAIN with a token calls auth_password_verify', async () => {
    const dovecot = await startInstance('plain', { passdbConfig: `mechanisms_filter = plain login xoauth2 oauthbearer\n${FAIL_CLOSED}` });

    const result = await imapPlain({ port: dovecot.imapPort, user: ALICE, password: tokens.alice });

    assert.equal(result.ok, true, result.response);
    const [call] = readRecords(dovecot, 'calls.jsonl');
    assert.equal(call.hook, 'auth_password_verify');
    assert.equal(call.password_argument, tokens.alice);
    assert.equal(call.fields.password, tokens.alice);
    assert.equal(call.fields.mechanism, 'PLAIN');
    assert.equal(call.passdb_token, null);
    assert.equal(call.skip_password_check, false);
    const line = await dovecot.waitForLog(LOG_PATTERNS_24.loginSucceeded);
    assert.equal(line.groups.mech, 'PLAIN');
  });

  test('2.3 passdb syntax is rejected', async () => {
    await assert.rejects(
      startInstance('syntax-23', { passdbConfig: 'mechanisms = xoauth2 oauthbearer' }),
      /Unknown setting: mechanisms/,
    );
  });

  test('stop ends every process and removes the directory', async () => {
    const dovecot = await startInstance('stop');
    const processes = dovecot.listProcesses();
    assert.ok(processes.includes(dovecot.pid));
    assert.equal(fs.readlinkSync(`/proc/${dovecot.pid}/exe`), path.join(setup.root, 'usr/sbin/dovecot'));
    assert.ok(processes.length >= 4, `expected the master and its children, found ${processes.length}`);

    await dovecot.stop();

    assert.deepEqual(dovecot.listProcesses(), []);
    assert.equal(fs.existsSync(dovecot.hostInstanceDir), false);
    assert.match(dovecot.readLog(), /master: Info: Dovecot v2\.4\.1/);
  });
});
