// End-to-end tests of the bridge on Dovecot 2.4.1: lua-out/oauth2-bridge.lua as the Lua passdb
// after Dovecot's own oauth2 block, access tokens from a real OpenID provider (oidc-provider on
// the host's 127.0.0.1), and real IMAP clients (Python's imaplib). The cases follow
// bridge.test.mjs, the Dovecot 2.3 suite; dovecot24.test.mjs records the Dovecot 2.4.1
// behaviour they rely on.
//
// On 2.4.1 a token login passes two checks in turn. Dovecot's oauth2 block sends the token to
// the userinfo endpoint and compares the email claim with the login name. Only then does it call
// the bridge's auth_passdb_lookup, which sends the token to the IdP again, binds the identity and
// looks up the mailbox. So a made-up token or another user's token never reaches the bridge over
// XOAUTH2 or OAUTHBEARER, and the PLAIN tests show the bridge's own rejections of such tokens.
//
// Dovecot runs under chroot in the Debian 13 root built by scripts/build-trixie-root.sh (cached
// after the first build). Every file the bridge reads (script, settings file, account files)
// lies inside that root: the harness copies the script into each instance directory, and this
// suite keeps the settings and account files in a directory of its own, /run/bridge24-XXXXXX in
// the root, which it removes at the end. Paths in the bridge's settings are paths in the root.
//
// Needs root. DOVECOT24_ROOT names another directory for the Debian root. Without root, or when
// the root cannot be built, every test is skipped with the reason.
// Run: node --test spec/integration/bridge24.test.mjs

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { imapOauthbearer, imapPlain, imapXoauth2 } from './lib/clients.mjs';
import { DEFAULT_TRIXIE_ROOT, findAllLogLines, LOG_PATTERNS_24, prepareTrixieRoot, startDovecot24 } from './lib/dovecot24.mjs';
import { startIdp } from './lib/idp.mjs';

const BRIDGE_SCRIPT = fileURLToPath(new URL('../../lua-out/oauth2-bridge.lua', import.meta.url));

const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const CAROL = 'carol@example.test';

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

const FAIL_CLOSED = 'result_failure = return-fail\nresult_internalfail = return-fail';
const TOKEN_PASSDB = `mechanisms_filter = xoauth2 oauthbearer\n${FAIL_CLOSED}`;
const TOKEN_AND_PASSWORD_PASSDB = `mechanisms_filter = plain login xoauth2 oauthbearer\n${FAIL_CLOSED}`;
// The fix named in every start-up error about an unsafe passdb block.
const FAIL_CLOSED_FIX =
  'Set result_failure = return-fail, result_internalfail = return-fail and ' +
  'mechanisms_filter = xoauth2 oauthbearer in that passdb block';

// Dovecot 2.4.1 itself, with auth_debug = yes, writes the token that its oauth2 mechanism adds
// to the passdb reply (dovecot24.test.mjs, 'auth_debug logs the token in passdb replies'):
//   auth: Debug: conn unix:login (...): client passdb out: OK<TAB>1<TAB>user=...<TAB>token=...
// The log hygiene test leaves out exactly these lines of the instances that run with
// auth_debug = yes; the instance that runs with auth_debug = no is checked line by line.
const DOVECOT_PASSDB_OUT_WITH_TOKEN = /^.* auth: Debug: conn unix:login .*: client passdb out: OK\t\d+\tuser=[^\t]*\ttoken=/;
const AUTH_DEBUG_OFF = 'auth_debug = no';

const IMAPLIB_SELECT_OK = /^\w+ OK \[READ-WRITE\] Select completed/m;
const AUTH_FAILED = /NO \[AUTHENTICATIONFAILED\]/;

// A line that the bridge writes for a request at Info or Error level, other than the account
// file notice. Each verdict writes one: "Token accepted" or the reason of a rejection.
const BRIDGE_VERDICT = /^.* auth-worker\([^)]*\)<\d+><[^>]*>: request \[\d+\]: (?:Info|Error): lua: db-lua: (?!Account list loaded).*$/m;

const clients = { XOAUTH2: imapXoauth2, OAUTHBEARER: imapOauthbearer, PLAIN: imapPlain };
const TOKEN_MECHANISMS = ['XOAUTH2', 'OAUTHBEARER'];

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

/** Returns the messages the bridge logged with req:log_* at `level` in `log`. */
function bridgeMessages(log, level) {
  return findAllLogLines(LOG_PATTERNS_24.luaRequestLog, log)
    .filter((match) => match.groups.level === level)
    .map((match) => match.groups.message);
}

/** Decodes the JSON error challenge ("+ BASE64") that Dovecot sends before NO, or returns undefined. */
function errorChallenge(response) {
  const line = response.split('\n').find((entry) => /^\+ \S+/.test(entry));
  return line === undefined ? undefined : JSON.parse(Buffer.from(line.slice(2), 'base64').toString('utf8'));
}

/** Returns the 1-based numbers of the lines of `text` that contain `needle` (a string or a RegExp). */
function linesContaining(text, needle) {
  const numbers = [];
  for (const [index, line] of text.split('\n').entries()) {
    const found = typeof needle === 'string' ? line.includes(needle) : needle.test(line);
    if (found) numbers.push(index + 1);
  }
  return numbers;
}

describe('bridge on Dovecot 2.4.1', { skip: setup.skip }, () => {
  const tempDirs = [];
  const instances = [];
  // Every token a client sent, every secret, and the text of every log, for the hygiene test.
  const sentTokens = [];
  const secrets = [];
  const logs = [];
  const tokens = {};
  let filesDir;
  let idp;
  let tokenOnly;
  let withPlain;
  let fromFile;

  const newSecret = (label) => {
    const secret = `${label}-${randomBytes(24).toString('base64url')}`;
    secrets.push(secret);
    return secret;
  };

  /** Host and chroot paths of a file in this suite's directory inside the root. */
  const inFilesDir = (name) => ({
    host: path.join(filesDir, name),
    chroot: path.join('/run', path.basename(filesDir), name),
  });

  /** Writes an account file with `addresses` and returns its paths. */
  const writeAccountFile = (name, addresses) => {
    const file = inFilesDir(name);
    const text = `# Written by bridge24.test.mjs\n${addresses.map((address) => `${MAILBOX_LINES[address]}\n`).join('')}`;
    fs.writeFileSync(file.host, text, { mode: 0o644 });
    return file;
  };

  const bridgeSettings = (accountFile) => [
    `introspection_url = ${idp.userinfoUrl}`,
    `account_file = ${accountFile.chroot}`,
    'timeout_msecs = 3000',
    // Every login sends the token to the IdP, so each one shows the whole chain in the log.
    'cache_ttl_secs = 0',
    'client_id = dovecot',
    `client_secret = ${newSecret('bridge')}`,
  ].join('\n');

  const dovecotOauth2 = () => ({ introspection_mode: 'auth', introspection_url: idp.userinfoUrl, username_attribute: 'email' });

  const makeTempDir = (name) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `oauth2-bridge-bridge24-${name}-`));
    tempDirs.push(dir);
    return dir;
  };

  const startInstance = async (name, options) => {
    const dovecot = await startDovecot24({
      root: setup.root,
      dir: makeTempDir(name),
      luaScript: BRIDGE_SCRIPT,
      oauth2: dovecotOauth2(),
      ...options,
    });
    instances.push(dovecot);
    logs.push({ name, authDebug: !(options.extraConfig ?? '').includes(AUTH_DEBUG_OFF), read: () => dovecot.readLog() });
    return dovecot;
  };

  /** Starts an instance that must not start, and returns the log text of its last attempt. */
  const startExpectingFatal = async (name, options) => {
    let started;
    try {
      started = await startInstance(name, options);
    } catch (err) {
      const text = err.log ?? '';
      logs.push({ name, authDebug: true, read: () => text });
      return text;
    }
    await started.stop();
    assert.fail(`Dovecot ${name} started, but the bridge was expected to stop its auth process`);
  };

  /**
   * Logs in with `mechanism` and waits until imap-login has logged the outcome and, with
   * `waitFor`, until that log line appeared too. Returns the client result, the login line and
   * the log text of this session.
   */
  const login = async (dovecot, mechanism, user, token, { waitFor = BRIDGE_VERDICT } = {}) => {
    sentTokens.push(token);
    const since = dovecot.logOffset();
    const result = mechanism === 'PLAIN'
      ? await imapPlain({ port: dovecot.imapPort, user, password: token })
      : await clients[mechanism]({ port: dovecot.imapPort, user, token });
    const outcome = result.ok ? LOG_PATTERNS_24.loginSucceeded : LOG_PATTERNS_24.loginFailed;
    const line = await dovecot.waitForLog(outcome, { since });
    await dovecot.waitForLog(waitFor, { since });
    return { result, line, log: dovecot.logSince(since) };
  };

  /** Group id of `name` in the root's /etc/group. */
  const groupId = (name) => {
    const line = fs.readFileSync(path.join(setup.root, 'etc/group'), 'utf8').split('\n').find((entry) => entry.startsWith(`${name}:`));
    return Number(line.split(':')[2]);
  };

  // Dovecot 2.4 syntax: import_environment is a block of NAME = value lines, merged with the
  // defaults. The 2.3 form "import_environment = $import_environment NAME=value" is a fatal
  // error on 2.4.1 ("Setting is a string list, use 'import_environment {'").
  const importSettingsPath = () => `import_environment {\n  OAUTH2_BRIDGE_CONFIG = ${inFilesDir('oauth2-bridge.conf').chroot}\n}\n`;

  const madeUpToken = () => `madeup-${randomBytes(24).toString('base64url')}`;

  function assertLoggedIn({ result, line, log }, { mechanism, user, hook }) {
    assert.equal(result.ok, true, result.response);
    assert.match(result.response, IMAPLIB_SELECT_OK);
    assert.equal(line.groups.user, user);
    assert.equal(line.groups.mech, mechanism);
    assert.deepEqual(bridgeMessages(log, 'Info'), ['Token accepted']);
    if (hook !== undefined) {
      assert.equal(LOG_PATTERNS_24.luaHookCalled.exec(log)?.groups.hook, hook);
      assert.equal(LOG_PATTERNS_24.luaHookCalled.exec(log)?.groups.user, user);
    }
  }

  function assertLoginFailed({ result, line }, { mechanism, user }) {
    assert.equal(result.ok, false);
    assert.equal(result.authenticated, false);
    assert.equal(line.groups.user, user);
    assert.equal(line.groups.mech, mechanism);
  }

  /** Asserts a rejection by the bridge: Dovecot called `hook`, and `reason` is the bridge's only Info line. */
  function assertBridgeRejected(session, { mechanism, user, hook, reason }) {
    assertLoginFailed(session, { mechanism, user });
    assert.match(session.result.response, AUTH_FAILED);
    assert.equal(session.line.groups.code, 'auth_failed');
    assert.equal(LOG_PATTERNS_24.luaHookCalled.exec(session.log)?.groups.hook, hook);
    assert.deepEqual(bridgeMessages(session.log, 'Info'), [reason]);
  }

  /** Asserts a rejection by Dovecot's oauth2 block: it logged `message` and did not call the Lua passdb. */
  function assertDovecotRejected(session, { mechanism, user, message }) {
    assertLoginFailed(session, { mechanism, user });
    assert.match(session.result.response, AUTH_FAILED);
    assert.equal(LOG_PATTERNS_24.oauth2Failed.exec(session.log)?.groups.message, message);
    assert.equal(LOG_PATTERNS_24.luaHookCalled.exec(session.log)?.[0], undefined);
    assert.deepEqual(findAllLogLines(LOG_PATTERNS_24.luaRequestLog, session.log), []);
  }

  before(async () => {
    filesDir = fs.mkdtempSync(path.join(setup.root, 'run', 'bridge24-'));
    fs.chmodSync(filesDir, 0o755);

    const idpDir = makeTempDir('idp');
    idp = await startIdp({
      dir: idpDir,
      accounts: ACCOUNTS,
      clients: [{ client_id: 'roundcube', client_secret: newSecret('roundcube'), redirect_uris: ['http://127.0.0.1/callback'] }],
    });
    logs.push({ name: 'idp', authDebug: false, read: () => fs.readFileSync(path.join(idpDir, 'idp.log'), 'utf8') });
    for (const name of Object.keys(ACCOUNTS)) tokens[name] = await idp.getToken(name);

    // alice and bob have mailboxes here, carol has none.
    const accountFile = writeAccountFile('postfix-accounts.cf', [ALICE, BOB]);
    // The settings file of the fallback tests lists carol, whom the lua_settings instances reject.
    // It contains a client secret, so it is root:dovecot with mode 0640, as README.md advises.
    const carolAccountFile = writeAccountFile('accounts-with-carol.cf', [ALICE, CAROL]);
    const settingsFile = inFilesDir('oauth2-bridge.conf');
    fs.writeFileSync(settingsFile.host, `${bridgeSettings(carolAccountFile)}\n`, { mode: 0o640 });
    fs.chownSync(settingsFile.host, 0, groupId('dovecot'));

    tokenOnly = await startInstance('token-only', {
      bridgeSettings: bridgeSettings(accountFile),
      passdbConfig: TOKEN_PASSDB,
    });
    withPlain = await startInstance('with-plain', {
      bridgeSettings: bridgeSettings(accountFile),
      passdbConfig: TOKEN_AND_PASSWORD_PASSDB,
    });
  });

  after(async () => {
    await Promise.all(instances.map((dovecot) => dovecot.stop()));
    await idp?.stop();
    if (filesDir !== undefined) fs.rmSync(filesDir, { recursive: true, force: true });
    if (process.env.OAUTH2_BRIDGE_KEEP_TMP) {
      // stop() copied each instance's log into its directory as dovecot24.log.
      console.log(`Kept ${tempDirs.join(' ')} because OAUTH2_BRIDGE_KEEP_TMP is set`);
      return;
    }
    for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('token logins', () => {
    for (const mechanism of TOKEN_MECHANISMS) {
      test(`${mechanism} logs alice in`, async () => {
        const session = await login(tokenOnly, mechanism, ALICE, tokens.alice);

        assertLoggedIn(session, { mechanism, user: ALICE, hook: 'auth_passdb_lookup' });
        const debug = bridgeMessages(session.log, 'Debug');
        assert.ok(debug.includes(`Userinfo request: GET http://127.0.0.1:${idp.port}`), debug.join('\n'));
        assert.ok(debug.includes('Identity claim email matches the login name'), debug.join('\n'));
        assert.ok(debug.includes(`Mailbox found in ${inFilesDir('postfix-accounts.cf').chroot}`), debug.join('\n'));
      });
    }

    // Dovecot's oauth2 block compares the email claim with the login name before any passdb.
    for (const mechanism of TOKEN_MECHANISMS) {
      test(`${mechanism} rejects alice's token for bob`, async () => {
        const session = await login(tokenOnly, mechanism, BOB, tokens.alice, { waitFor: LOG_PATTERNS_24.oauth2Failed });

        assertDovecotRejected(session, {
          mechanism, user: BOB, message: `Introspection failed: Username '${BOB}' did not match '${ALICE}'`,
        });
      });
    }

    for (const mechanism of TOKEN_MECHANISMS) {
      test(`${mechanism} rejects carol without mailbox`, async () => {
        const session = await login(tokenOnly, mechanism, CAROL, tokens.carol);

        assertBridgeRejected(session, {
          mechanism,
          user: CAROL,
          hook: 'auth_passdb_lookup',
          reason: `No mailbox for the login name in ${inFilesDir('postfix-accounts.cf').chroot}`,
        });
        assert.ok(bridgeMessages(session.log, 'Debug').includes('Identity claim email matches the login name'));
        // Dovecot logs no result name here. USER_UNKNOWN is the result that gets a plain NO
        // without a SASL error challenge (dovecot24.test.mjs, 'rejections reach the client as SASL errors').
        assert.equal(errorChallenge(session.result.response), undefined);
      });
    }

    test('Dovecot rejects made-up token', async () => {
      const session = await login(tokenOnly, 'XOAUTH2', ALICE, madeUpToken(), { waitFor: LOG_PATTERNS_24.oauth2Failed });

      assertDovecotRejected(session, { mechanism: 'XOAUTH2', user: ALICE, message: 'Introspection failed: invalid token provided' });
    });
  });

  describe('PLAIN with the token as password', () => {
    test('alice logs in', async () => {
      const session = await login(withPlain, 'PLAIN', ALICE, tokens.alice);

      assertLoggedIn(session, { mechanism: 'PLAIN', user: ALICE, hook: 'auth_password_verify' });
    });

    test('alice\'s token for bob rejected', async () => {
      const session = await login(withPlain, 'PLAIN', BOB, tokens.alice);

      assertBridgeRejected(session, {
        mechanism: 'PLAIN', user: BOB, hook: 'auth_password_verify', reason: `Token belongs to ${ALICE} (claim email), not to the login name`,
      });
    });

    test('carol without mailbox rejected', async () => {
      const session = await login(withPlain, 'PLAIN', CAROL, tokens.carol);

      assertBridgeRejected(session, {
        mechanism: 'PLAIN', user: CAROL, hook: 'auth_password_verify', reason: `No mailbox for the login name in ${inFilesDir('postfix-accounts.cf').chroot}`,
      });
    });

    test('made-up token rejected', async () => {
      const session = await login(withPlain, 'PLAIN', ALICE, madeUpToken());

      assertBridgeRejected(session, {
        mechanism: 'PLAIN', user: ALICE, hook: 'auth_password_verify', reason: `Token rejected by the identity provider: HTTP 401 from 127.0.0.1:${idp.port}`,
      });
    });

    test('XOAUTH2 still uses auth_passdb_lookup', async () => {
      const session = await login(withPlain, 'XOAUTH2', ALICE, tokens.alice);

      assertLoggedIn(session, { mechanism: 'XOAUTH2', user: ALICE, hook: 'auth_passdb_lookup' });
    });
  });

  describe('settings sources', () => {
    test('lua_settings configure the bridge', () => {
      // tokenOnly has no settings file to fall back on, so its logins above used lua_settings.
      assert.equal(fs.existsSync(path.join(setup.root, 'etc/dovecot/oauth2-bridge.conf')), false);
      assert.doesNotMatch(tokenOnly.doveconf(['-n', 'import_environment']), /OAUTH2_BRIDGE_CONFIG/);
      assert.equal(tokenOnly.doveconf(['-h', 'passdb/lua/lua_settings/introspection_url']).trim(), idp.userinfoUrl);
    });

    test('empty lua_settings read the settings file', async () => {
      fromFile = await startInstance('settings-file', {
        bridgeSettings: '',
        passdbConfig: TOKEN_PASSDB,
        extraConfig: `${importSettingsPath()}${AUTH_DEBUG_OFF}\n`,
      });

      const carol = await login(fromFile, 'OAUTHBEARER', CAROL, tokens.carol);

      assertLoggedIn(carol, { mechanism: 'OAUTHBEARER', user: CAROL });
      // With auth_debug = no Dovecot logs no hook call; the bridge's Info line is the trace.
      assert.equal(LOG_PATTERNS_24.luaHookCalled.exec(carol.log)?.[0], undefined);
    });

    test('settings file rejects bob', async () => {
      const session = await login(fromFile, 'XOAUTH2', BOB, tokens.bob);

      assertLoginFailed(session, { mechanism: 'XOAUTH2', user: BOB });
      assert.match(session.result.response, AUTH_FAILED);
      assert.deepEqual(bridgeMessages(session.log, 'Info'), [`No mailbox for the login name in ${inFilesDir('accounts-with-carol.cf').chroot}`]);
    });

    test('missing settings file stops auth', async () => {
      const log = await startExpectingFatal('no-settings', { bridgeSettings: '', passdbConfig: TOKEN_PASSDB });

      assert.match(
        LOG_PATTERNS_24.luaInitFailed.exec(log)?.groups.message ?? '',
        /oauth2-bridge: cannot read the settings file: \/etc\/dovecot\/oauth2-bridge\.conf: No such file or directory\. Create it, or point the OAUTH2_BRIDGE_CONFIG environment variable at it/,
      );
    });
  });

  describe('unsafe passdb blocks stop auth', () => {
    const cases = [
      ['without result settings', 'mechanisms_filter = xoauth2 oauthbearer', 'result_failure = continue, result_internalfail = continue'],
      ['without result_internalfail', 'mechanisms_filter = xoauth2 oauthbearer\nresult_failure = return-fail', 'result_internalfail = continue'],
      ['with result_failure = continue', `mechanisms_filter = xoauth2 oauthbearer\nresult_failure = continue\nresult_internalfail = return-fail`, 'result_failure = continue'],
      ['filter without xoauth2', `mechanisms_filter = plain login oauthbearer\n${FAIL_CLOSED}`, 'mechanisms_filter lacks xoauth2'],
      ['without filter', FAIL_CLOSED, 'mechanisms_filter lacks xoauth2, mechanisms_filter lacks oauthbearer'],
    ];
    for (const [label, passdbConfig, problems] of cases) {
      test(label, async () => {
        const log = await startExpectingFatal(`unsafe-${label.replace(/\W+/g, '-')}`, {
          bridgeSettings: `introspection_url = ${idp.userinfoUrl}\naccount_file = ${inFilesDir('postfix-accounts.cf').chroot}`,
          passdbConfig,
        });

        const message = LOG_PATTERNS_24.luaInitFailed.exec(log)?.groups.message;
        assert.equal(
          message,
          'lua_pcall(script_init, 1, 0) failed: oauth2-bridge: passdb lua would let token logins through ' +
            `without the bridge's checks (${problems}). ${FAIL_CLOSED_FIX}`,
        );
      });
    }

    test('settings file without result settings', async () => {
      const log = await startExpectingFatal('unsafe-settings-file', {
        bridgeSettings: '',
        passdbConfig: 'mechanisms_filter = xoauth2 oauthbearer',
        extraConfig: importSettingsPath(),
      });

      const message = LOG_PATTERNS_24.luaInitFailed.exec(log)?.groups.message ?? '';
      assert.ok(message.includes('(result_failure = continue, result_internalfail = continue)'), message);
      assert.ok(message.endsWith(FAIL_CLOSED_FIX), message);
    });
  });

  // Runs last, when every token has been sent and every Dovecot has written its log.
  describe('log hygiene', () => {
    const BEARER_VALUE = /\bBearer +[A-Za-z0-9\-._~+/]{8,}/;
    const AUTHORIZATION_VALUE = /\bAuthorization *[:=] *\S+/i;

    test('suite collected tokens and logs', () => {
      assert.ok(sentTokens.length >= 12, `only ${sentTokens.length} tokens sent`);
      assert.ok(secrets.length >= 4, `only ${secrets.length} secrets collected`);
      assert.ok(logs.filter((entry) => !entry.authDebug).length >= 2, 'no log written with auth_debug = no');
      assert.match(fromFile.readLog(), /: Info: lua: db-lua: Token accepted$/m);
    });

    // The messages name the log, the token or secret by index and the line numbers, never the
    // matching text, so a failure does not copy a token into the test output.
    test('logs contain no tokens or secrets', () => {
      let dovecotOwnLines = 0;
      let acceptedTokenLogins = 0;
      for (const { name, authDebug, read } of logs) {
        const allLines = read().split('\n');
        const checkedLines = authDebug ? allLines.filter((line) => !DOVECOT_PASSDB_OUT_WITH_TOKEN.test(line)) : allLines;
        dovecotOwnLines += allLines.length - checkedLines.length;
        if (authDebug) {
          acceptedTokenLogins += findAllLogLines(LOG_PATTERNS_24.loginSucceeded, allLines.join('\n'))
            .filter((match) => TOKEN_MECHANISMS.includes(match.groups.mech)).length;
        }
        const text = checkedLines.join('\n');

        for (const [index, token] of sentTokens.entries()) {
          assert.deepEqual(linesContaining(text, token), [], `${name} log contains token #${index} on these lines`);
        }
        for (const [index, secret] of secrets.entries()) {
          assert.deepEqual(linesContaining(text, secret), [], `${name} log contains secret #${index} on these lines`);
        }
        assert.deepEqual(linesContaining(text, BEARER_VALUE), [], `${name} log contains a Bearer value on these lines`);
        assert.deepEqual(linesContaining(text, AUTHORIZATION_VALUE), [], `${name} log contains an Authorization value on these lines`);
      }
      // One left-out line per token login that Dovecot accepted with auth_debug = yes.
      assert.ok(acceptedTokenLogins >= 3, `only ${acceptedTokenLogins} accepted token logins with auth_debug = yes`);
      assert.equal(dovecotOwnLines, acceptedTokenLogins);
    });
  });
});
