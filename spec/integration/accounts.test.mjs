// Integration tests of the account sources: lua-out/oauth2-bridge.lua in a real Dovecot 2.3
// looks mailboxes up in a real OpenLDAP slapd (plain, StartTLS, stopped and hung), in a
// passwd-file, and in a postfix-accounts.cf that is rewritten while logins run. Tokens come from
// a real OpenID provider (oidc-provider) and logins from Python's imaplib. Every server listens
// on 127.0.0.1 and keeps its files in one temporary directory.
// Run: node --test spec/integration/accounts.test.mjs (as root, because Dovecot drops privileges).

import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { makeCerts } from './lib/certs.mjs';
import { imapOauthbearer, imapPlain, imapXoauth2 } from './lib/clients.mjs';
import { findAllLogLines, LOG_PATTERNS, startDovecot } from './lib/dovecot.mjs';
import { startIdp } from './lib/idp.mjs';
import { startSlapd } from './lib/slapd.mjs';

const BRIDGE_SCRIPT = fileURLToPath(new URL('../../lua-out/oauth2-bridge.lua', import.meta.url));

const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const CAROL = 'carol@example.test';
const DAVE = 'dave@example.test';
// A passwd-file user of the harness's password passdb, which logs in with PLAIN.
const PLAIN_USER = 'plain-user@example.test';
// Login names with the LDAP filter metacharacters of RFC 4515: * ( ) and \.
const STAR = 'star*user@example.test';
// An LDAP entry only: the unescaped filter (mail=star*user@example.test) matches it too.
const STARGAZER = 'stargazer-user@example.test';
const PAREN = 'paren(x)@example.test';
const BACKSLASH = 'back\\slash@example.test';
const WILDCARD = '*@example.test';
const ALICE_WILDCARD = 'ali*@example.test';

// IdP accounts: the key is the name on the IdP's login form, the email is the token's claim.
const IDP_USERS = {
  alice: ALICE,
  bob: BOB,
  carol: CAROL,
  dave: DAVE,
  star: STAR,
  paren: PAREN,
  backslash: BACKSLASH,
  wildcard: WILDCARD,
  aliceWildcard: ALICE_WILDCARD,
};
const ACCOUNTS = Object.fromEntries(Object.entries(IDP_USERS).map(([name, email]) => [
  name, { email, password: `${name}-${randomBytes(8).toString('hex')}` },
]));

// Entries as docker-mailserver's LDAP provisioner keeps them. carol has none. The entries with
// metacharacters have no uid of their own, so their DNs contain the address (escaped per
// RFC 4514), and the base search of ldap_disabled_filter must use such a DN.
const LDAP_ENTRIES = [
  { uid: 'alice', mail: ALICE, mailEnabled: true },
  { uid: 'dave', mail: DAVE, mailEnabled: false },
  { mail: STAR, mailEnabled: true },
  { uid: 'stargazer', mail: STARGAZER, mailEnabled: true },
  { mail: PAREN, mailEnabled: true },
  { mail: BACKSLASH, mailEnabled: true },
];
const ENABLED_FILTER = '(&(mail=%u)(mailEnabled=TRUE))';

const IMAPLIB_SELECT_OK = /^\w+ OK \[READ-WRITE\] Select completed/m;
const AUTH_FAILED = /NO \[AUTHENTICATIONFAILED\]/;
const TEMPORARY_FAILURE = /NO \[UNAVAILABLE\] Temporary authentication failure/;
const TEMPORARY_FAILURE_REASON = 'auth service reported temporary failure';

// imap-login's line for a refused login. LOG_PATTERNS.loginFailed leaves out USER_DISABLED, for
// which Dovecot 2.3.19 logs "Disconnected: Aborted login by logging out (user disabled): ...".
const LOGIN_REFUSED = /^.* imap-login: Info: Disconnected: [^(]*\((?<reason>auth failed|auth service reported temporary failure|user disabled)[^)]*\): user=<(?<user>[^>]*)>, method=(?<mech>[A-Z0-9_-]+), .*$/m;

// Log lines that mean an auth process or worker died or the script raised an error. The master
// logs a child's crash as "... killed with signal N", but its own stop as "Killed with signal 15".
const CRASH_PATTERNS = [
  LOG_PATTERNS.anyFatal,
  /^.*killed with signal.*$/m,
  /^.*lua_pcall\(.*\) failed.*$/m,
];

// Everything the log hygiene test looks for: every token a client sent, every secret and LDAP
// bind password, and every log file written by a server of this file.
const sentTokens = [];
const secrets = [];
const logFiles = [];
const runningServers = [];
// The harness's stop() of a Dovecot 2.3.19 takes about 3 s (measured), so the after hook of each
// group starts its stops and the after hook of the file waits for all of them.
const pendingStops = [];

let rootDir;
let idp;
let tokens;
let dovecotGid;

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

function groupId(name) {
  const line = fs.readFileSync('/etc/group', 'utf8').split('\n').find((entry) => entry.startsWith(`${name}:`));
  if (!line) throw new Error(`group ${name} not found in /etc/group; is dovecot-core installed?`);
  return Number(line.split(':')[2]);
}

/** Writes a file that the auth process, which runs as user dovecot, can read and others cannot. */
function writeDovecotReadable(filePath, text) {
  fs.writeFileSync(filePath, text, { mode: 0o640 });
  fs.chmodSync(filePath, 0o640);
  fs.chownSync(filePath, 0, dovecotGid);
}

/**
 * Returns a dovecot.conf line that adds `variables` to import_environment. `$import_environment`
 * keeps the harness's OAUTH2_BRIDGE_CONFIG (checked with doveconf 2.3.19). LDAPCONF=/dev/null
 * keeps the machine's /etc/ldap/ldap.conf, e.g. its TLS_CACERT, out of every result here.
 */
function importEnvironment(variables = {}) {
  const all = { LDAPCONF: '/dev/null', ...variables };
  const pairs = Object.entries(all).map(([name, value]) => {
    if (/\s/.test(value)) throw new Error(`import_environment cannot carry whitespace: ${name}=${value}`);
    return `${name}=${value}`;
  });
  return `import_environment = $import_environment ${pairs.join(' ')}`;
}

async function startTestSlapd(name, options = {}) {
  const slapd = await startSlapd({
    dir: makeDir(`${name}-slapd`),
    entries: LDAP_ENTRIES,
    bindPassword: `ldap-${randomBytes(12).toString('hex')}`,
    ...options,
  });
  runningServers.push(slapd);
  secrets.push(slapd.bindPassword);
  logFiles.push(path.join(slapd.dir, 'slapd.log'));
  return slapd;
}

function ldapLocation(slapd) {
  return `${slapd.uri} (${slapd.peopleDn})`;
}

/** Returns the bridge settings for the LDAP source of `slapd`. */
function ldapSettings(slapd, { userFilter = ENABLED_FILTER, disabledFilter, passwordFile, startTls = false } = {}) {
  const lines = [
    `introspection_url = ${idp.userinfoUrl}`,
    'timeout_msecs = 3000',
    // The token cache is off, so every login shows the whole chain in the log.
    'cache_ttl_secs = 0',
    'client_id = dovecot',
    `client_secret = ${newSecret('bridge')}`,
    'account_source = ldap',
    `ldap_uris = ${slapd.uri}`,
    `ldap_base = ${slapd.peopleDn}`,
    `ldap_bind_dn = ${slapd.bindDn}`,
    passwordFile === undefined ? `ldap_bind_password = ${slapd.bindPassword}` : `ldap_bind_password_file = ${passwordFile}`,
    `ldap_user_filter = ${userFilter}`,
  ];
  if (disabledFilter !== undefined) lines.push(`ldap_disabled_filter = ${disabledFilter}`);
  if (startTls) lines.push('ldap_starttls = yes');
  return `${lines.join('\n')}\n`;
}

function fileSettings(source, accountFile) {
  return [
    `introspection_url = ${idp.userinfoUrl}`,
    'timeout_msecs = 3000',
    // The token cache is off, so every login shows the whole chain in the log.
    'cache_ttl_secs = 0',
    `account_source = ${source}`,
    `account_file = ${accountFile}`,
    '',
  ].join('\n');
}

/** Starts a Dovecot in its own directory. `prepare(dir)` returns the bridge settings. */
async function startBridgeDovecot(name, { prepare, extraConfig = importEnvironment(), passwdUsers }) {
  const dir = makeDir(`${name}-dovecot`);
  logFiles.push(path.join(dir, 'dovecot.log'));
  const dovecot = await startDovecot({ dir, luaScript: BRIDGE_SCRIPT, bridgeSettings: prepare(dir), extraConfig, passwdUsers });
  runningServers.push(dovecot);
  return dovecot;
}

async function stopServers(servers) {
  await Promise.all(servers.map((server) => server?.stop()));
}

/** Starts stopping `servers` without waiting, for the after hook of a group. */
function beginStopping(servers) {
  pendingStops.push(stopServers(servers));
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
 * Runs one client login as `user` with the token of `user`, and waits until Dovecot has logged
 * the login line, the auth process's reply and the auth worker's "Finished" line. Returns the
 * client result, the login line and the log text of this session.
 */
async function login(dovecot, user, { client = imapXoauth2, token = tokens[user] } = {}) {
  const since = dovecot.logOffset();
  const result = await client({ port: dovecot.imapPort, user, token });

  const loginPattern = result.authenticated ? LOG_PATTERNS.loginSucceeded : LOGIN_REFUSED;
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

function assertLoggedIn({ result, loginLine, log }, { user, mechanism = 'XOAUTH2' }) {
  assert.equal(result.ok, true, result.response);
  assert.match(result.response, IMAPLIB_SELECT_OK);
  assert.equal(loginLine.groups.mech, mechanism);
  assert.equal(loginLine.groups.user, user);
  assertLuaCalled(log, { mechanism, user });
  assert.equal(workerResult(log), undefined, 'the auth worker finishes without a result name after OK');
  assert.equal(LOG_PATTERNS.authReply.exec(log)?.groups.reply, 'OK');
  assert.ok(bridgeMessages(log, 'Info').includes('Token accepted'), bridgeMessages(log, 'Info').join('\n'));
}

function assertRejected({ result, loginLine, log }, { user, mechanism = 'XOAUTH2', reason = 'auth failed', response = AUTH_FAILED }) {
  assert.equal(result.ok, false);
  assert.equal(result.authenticated, false);
  assert.match(result.response, response);
  assert.equal(loginLine.groups.reason, reason);
  assert.equal(loginLine.groups.mech, mechanism);
  assertLuaCalled(log, { mechanism, user });
  assert.equal(LOG_PATTERNS.authReply.exec(log)?.groups.reply, 'FAIL');
  assert.ok(!bridgeMessages(log, 'Info').includes('Token accepted'));
}

function assertUserUnknown(session, { user, location, mechanism }) {
  assertRejected(session, { user, mechanism });
  assert.equal(workerResult(session.log), 'user_unknown');
  const info = bridgeMessages(session.log, 'Info');
  assert.ok(info.includes(`No mailbox for the login name in ${location}`), info.join('\n'));
  // The token itself was fine: the identity matched before the account lookup, in this login or
  // in the earlier one whose acceptance the token cache reused.
  const debug = bridgeMessages(session.log, 'Debug');
  const identityChecked = debug.includes('Identity claim email matches the login name') || debug.includes('Token cache hit (accepted)');
  assert.ok(identityChecked, debug.join('\n'));
}

function assertUserDisabled(session, { user, location }) {
  // Dovecot 2.3.19 sends the client the same NO [AUTHENTICATIONFAILED] as for a wrong password.
  assertRejected(session, { user, reason: 'user disabled' });
  assert.equal(workerResult(session.log), 'user_disabled');
  assert.equal(LOG_PATTERNS.authReply.exec(session.log)?.groups.fields, 'code=user_disabled');
  const info = bridgeMessages(session.log, 'Info');
  assert.ok(info.includes(`Mailbox is disabled in ${location}`), info.join('\n'));
}

function assertTemporaryFailure({ result, loginLine, log }, { user, mechanism = 'XOAUTH2' }) {
  assert.equal(result.ok, false);
  assert.equal(result.authenticated, false);
  assert.match(result.response, TEMPORARY_FAILURE);
  assert.equal(loginLine.groups.reason, TEMPORARY_FAILURE_REASON);
  assert.equal(loginLine.groups.mech, mechanism);
  assertLuaCalled(log, { mechanism, user });
  assert.equal(workerResult(log), 'internal_failure');
  assert.equal(LOG_PATTERNS.authReply.exec(log)?.groups.fields, 'code=temp_fail');
}

/** Returns the first line of `text` that one of CRASH_PATTERNS matches, or undefined. */
function crashLine(text) {
  for (const pattern of CRASH_PATTERNS) {
    const match = pattern.exec(text);
    if (match) return match[0];
  }
  return undefined;
}

/** Escapes * ( ) \ and NUL for an LDAP filter (RFC 4515) with upper-case hex, as slapd logs filters. */
function escapeFilterValue(value) {
  return value.replace(/[*()\\\0]/g, (character) => `\\${character.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`);
}

/** Returns the DN that the bridge logged as found, from its "LDAP entry found: DN" debug line. */
function foundDn(log) {
  const prefix = 'LDAP entry found: ';
  return bridgeMessages(log, 'Debug').find((message) => message.startsWith(prefix))?.slice(prefix.length);
}

before(async () => {
  rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oauth2-bridge-accounts-'));
  // The auth process runs as user dovecot and must reach the settings, account and CA files.
  fs.chmodSync(rootDir, 0o755);
  dovecotGid = groupId('dovecot');

  const dir = makeDir('idp');
  const clients = [{ client_id: 'roundcube', client_secret: newSecret('roundcube'), redirect_uris: ['http://127.0.0.1/callback'] }];
  idp = await startIdp({ dir, accounts: ACCOUNTS, clients });
  runningServers.push(idp);
  logFiles.push(path.join(dir, 'idp.log'));

  // One token per user, reused by every test: the bridge keeps no state per token.
  const issued = await Promise.all(Object.entries(IDP_USERS).map(async ([name, email]) => [email, await idp.getToken(name)]));
  tokens = Object.fromEntries(issued);
  sentTokens.push(...Object.values(tokens));
});

after(async () => {
  await Promise.allSettled(pendingStops);
  await stopServers(runningServers);
  if (process.env.OAUTH2_BRIDGE_KEEP_TMP) {
    console.log(`Kept the temporary directory ${rootDir} because OAUTH2_BRIDGE_KEEP_TMP is set`);
    return;
  }
  fs.rmSync(rootDir, { recursive: true, force: true });
});

describe('LDAP accounts', () => {
  let slapd;
  // ldap_user_filter = (mail=%u) with ldap_disabled_filter = (mailEnabled=FALSE).
  let withDisabledFilter;
  // The default ldap_user_filter, and the bind password read from ldap_bind_password_file.
  let withEnabledFilter;
  let location;

  before(async () => {
    slapd = await startTestSlapd('ldap');
    location = ldapLocation(slapd);
    // Dovecot's default auth_username_chars refuses * ( ) and \ before any passdb runs (see
    // the passwd-file tests), so these instances allow every character.
    const extraConfig = `${importEnvironment()}\nauth_username_chars =\n`;
    [withDisabledFilter, withEnabledFilter] = await startAll([
      startBridgeDovecot('ldap-disabled-filter', {
        extraConfig,
        prepare: () => ldapSettings(slapd, { userFilter: '(mail=%u)', disabledFilter: '(mailEnabled=FALSE)' }),
      }),
      startBridgeDovecot('ldap-enabled-filter', {
        extraConfig,
        prepare: (dir) => {
          const passwordFile = path.join(dir, 'ldap-password');
          writeDovecotReadable(passwordFile, `${slapd.bindPassword}\n`);
          return ldapSettings(slapd, { passwordFile });
        },
      }),
    ]);
  });

  after(() => {
    beginStopping([withDisabledFilter, withEnabledFilter, slapd]);
  });

  test('settings name the password file', () => {
    const settings = fs.readFileSync(withEnabledFilter.settingsPath, 'utf8');
    assert.match(settings, /^ldap_bind_password_file = \//m);
    assert.doesNotMatch(settings, /^ldap_bind_password =/m);
  });

  for (const [label, instance] of [['disabled filter', () => withDisabledFilter], ['password file', () => withEnabledFilter]]) {
    test(`alice logs in (${label})`, async () => {
      const session = await login(instance(), ALICE);

      assertLoggedIn(session, { user: ALICE });
      assert.equal(foundDn(session.log), `uid=alice,${slapd.peopleDn}`);
      assert.ok(bridgeMessages(session.log, 'Debug').includes(`Mailbox found in ${location}`));
    });

    test(`carol without entry is unknown (${label})`, async () => {
      const session = await login(instance(), CAROL);

      assertUserUnknown(session, { user: CAROL, location });
    });
  }

  test('OAUTHBEARER logs alice in', async () => {
    const session = await login(withDisabledFilter, ALICE, { client: imapOauthbearer });

    assertLoggedIn(session, { user: ALICE, mechanism: 'OAUTHBEARER' });
  });

  test('dave is disabled by disabled filter', async () => {
    const session = await login(withDisabledFilter, DAVE);

    assertUserDisabled(session, { user: DAVE, location });
    assert.equal(foundDn(session.log), `uid=dave,${slapd.peopleDn}`);
  });

  test('dave is unknown to enabled filter', async () => {
    const session = await login(withEnabledFilter, DAVE);

    assertUserUnknown(session, { user: DAVE, location });
  });

  // Both SASL mechanisms carry these names: XOAUTH2 as is, OAUTHBEARER's GS2 header escapes only
  // "," and "=".
  for (const user of [STAR, PAREN, BACKSLASH]) {
    for (const [label, instance, client, mechanism] of [
      ['disabled filter', () => withDisabledFilter, imapXoauth2, 'XOAUTH2'],
      ['password file', () => withEnabledFilter, imapOauthbearer, 'OAUTHBEARER'],
    ]) {
      test(`${user} logs in as itself (${label})`, async () => {
        const session = await login(instance(), user, { client });

        assertLoggedIn(session, { user, mechanism });
        const own = await slapd.search(`(mail=${escapeFilterValue(user)})`);
        assert.equal(own.entries.length, 1, own.stderr);
        assert.equal(foundDn(session.log), own.entries[0].dn);
      });
    }
  }

  // Unescaped, (mail=*@example.test) would match every entry, which is an internal failure, and
  // (&(mail=ali*@example.test)(mailEnabled=TRUE)) only alice's, which would let the user in.
  for (const [user, label, instance] of [
    [WILDCARD, 'disabled filter', () => withDisabledFilter],
    [ALICE_WILDCARD, 'password file', () => withEnabledFilter],
  ]) {
    test(`${user} matches no entry (${label})`, async () => {
      const session = await login(instance(), user);

      assertUserUnknown(session, { user, location });
      assert.equal(foundDn(session.log), undefined);
    });
  }

  test('slapd received escaped filters', () => {
    const filters = [...slapd.log().matchAll(/ SRCH base="[^"]*" scope=2 deref=0 filter="([^"]*)"$/gm)].map((match) => match[1]);
    const expected = [
      ...[STAR, PAREN, BACKSLASH, WILDCARD].map((user) => `(mail=${escapeFilterValue(user)})`),
      ...[STAR, PAREN, BACKSLASH, ALICE_WILDCARD].map((user) => `(&(mail=${escapeFilterValue(user)})(mailEnabled=TRUE))`),
    ];
    for (const filter of expected) {
      assert.ok(filters.includes(filter), `${filter} not in:\n${filters.join('\n')}`);
    }
  });

  test('logs show no crash', () => {
    for (const dovecot of [withDisabledFilter, withEnabledFilter]) {
      assert.equal(crashLine(dovecot.readLog()), undefined);
    }
  });
});

describe('LDAP with StartTLS', () => {
  let certs;
  let tlsFiles;
  let slapd;
  let dovecot;
  let location;

  before(async () => {
    certs = makeCerts(makeDir('certs'));
    // The auth process reads the CA as user dovecot when script_init connects.
    fs.chmodSync(certs.caCert, 0o644);
    // slapd reads copies, so a test can swap in the untrusted certificate and restart it.
    const tlsDir = makeDir('ldap-tls');
    tlsFiles = { caCert: certs.caCert, serverCert: path.join(tlsDir, 'cert.pem'), serverKey: path.join(tlsDir, 'key.pem') };
    fs.copyFileSync(certs.serverCert, tlsFiles.serverCert);
    fs.copyFileSync(certs.serverKey, tlsFiles.serverKey);

    slapd = await startTestSlapd('starttls', { tls: tlsFiles });
    location = ldapLocation(slapd);
    dovecot = await startBridgeDovecot('starttls', {
      extraConfig: importEnvironment({ LDAPTLS_CACERT: certs.caCert }),
      prepare: () => ldapSettings(slapd, { startTls: true }),
    });
  });

  after(() => {
    beginStopping([dovecot, slapd]);
  });

  test('alice logs in over StartTLS', async () => {
    const session = await login(dovecot, ALICE);

    assertLoggedIn(session, { user: ALICE });
    assert.ok(bridgeMessages(session.log, 'Debug').includes(`Mailbox found in ${location}`));
    // Only the bridge uses StartTLS here (the harness's readiness probe does not), and slapd
    // logs the extended operation and the TLS session.
    const slapdLog = slapd.log();
    assert.match(slapdLog, / EXT oid=1\.3\.6\.1\.4\.1\.1466\.20037$/m);
    assert.match(slapdLog, / TLS established tls_ssf=\d+ ssf=\d+/);
  });

  test('carol is unknown over StartTLS', async () => {
    const session = await login(dovecot, CAROL);

    assertUserUnknown(session, { user: CAROL, location });
  });

  test('missing CA stops the auth process', async () => {
    let startError;
    try {
      await startBridgeDovecot('starttls-no-ca', { prepare: () => ldapSettings(slapd, { startTls: true }) });
    } catch (err) {
      startError = err;
    }

    assert.ok(startError, 'Dovecot started although the LDAP server could not be trusted');
    const log = fs.readFileSync(path.join(rootDir, 'starttls-no-ca-dovecot', 'dovecot.log'), 'utf8');
    const fatal = LOG_PATTERNS.luaInitFailed.exec(log)?.groups.message;
    assert.equal(
      fatal,
      `lua_pcall(script_init, 0, 1) failed: oauth2-bridge: account_source = ldap: cannot connect: ${slapd.uri}: Connect error. Check the account settings`,
    );
    assert.ok(startError.message.includes('Dovecot logged a fatal error'), startError.message);
  });

  // Runs last: slapd keeps the untrusted certificate.
  test('untrusted certificate fails a login', async () => {
    fs.copyFileSync(certs.untrustedCert, tlsFiles.serverCert);
    fs.copyFileSync(certs.untrustedKey, tlsFiles.serverKey);
    await slapd.stop();
    await slapd.start();

    const session = await login(dovecot, ALICE);

    assertTemporaryFailure(session, { user: ALICE });
    assert.equal(luaPassdbError(session.log), `Account list unavailable: LDAP search failed: cannot connect: ${slapd.uri}: Connect error`);
    // Closing the kept TLS connection to the old slapd wrote to a dead socket.
    assert.equal(crashLine(dovecot.readLog()), undefined);
  });
});

describe('LDAP outage', () => {
  const LDAP_TIMEOUT_SECONDS = 2;
  let slapd;
  let dovecot;
  let location;

  before(async () => {
    slapd = await startTestSlapd('outage');
    location = ldapLocation(slapd);
    const timeout = String(LDAP_TIMEOUT_SECONDS);
    dovecot = await startBridgeDovecot('outage', {
      extraConfig: importEnvironment({ LDAPTIMEOUT: timeout, LDAPNETWORK_TIMEOUT: timeout }),
      prepare: () => ldapSettings(slapd),
    });
  });

  after(() => {
    slapd?.thaw();
    beginStopping([dovecot, slapd]);
  });

  test('alice logs in before the outage', async () => {
    const session = await login(dovecot, ALICE);

    assertLoggedIn(session, { user: ALICE });
  });

  test('slapd restart between logins is invisible', async () => {
    await slapd.stop();
    await slapd.start();

    const session = await login(dovecot, ALICE);

    assertLoggedIn(session, { user: ALICE });
    assert.deepEqual(bridgeMessages(session.log, 'Info').filter((message) => message.startsWith('LDAP search failed')), [
      'LDAP search failed on the kept connection (LuaLDAP: result error), reconnecting',
    ]);
  });

  test('stopped slapd fails temporarily', async () => {
    await slapd.stop();

    for (const user of [ALICE, CAROL]) {
      const session = await login(dovecot, user);

      assertTemporaryFailure(session, { user });
      assert.equal(
        luaPassdbError(session.log),
        `Account list unavailable: LDAP search failed: cannot connect: ${slapd.uri}: Can't contact LDAP server`,
      );
    }
  });

  // The bridge reads ldap_base in script_init, which Dovecot 2.3 runs when the auth process and
  // each auth worker start. An LDAP server that is down at that moment must only warn, or it
  // would stop the auth process and with it the password logins of every other passdb.
  test('Dovecot starts while slapd is down', async () => {
    assert.equal(slapd.running, false);
    const plainPassword = newSecret('plain');

    const late = await startBridgeDovecot('outage-start', {
      extraConfig: importEnvironment({ LDAPTIMEOUT: '2', LDAPNETWORK_TIMEOUT: '2' }),
      prepare: () => ldapSettings(slapd),
      passwdUsers: { [PLAIN_USER]: plainPassword },
    });
    const tokenSession = await login(late, ALICE);
    const plain = await imapPlain({ port: late.imapPort, user: PLAIN_USER, password: plainPassword });
    await slapd.start();
    const afterStart = await login(late, ALICE);

    assertTemporaryFailure(tokenSession, { user: ALICE });
    assert.equal(plain.ok, true, plain.response);
    assertLoggedIn(afterStart, { user: ALICE });
  });

  test('restarted slapd serves logins', async () => {
    await slapd.start();

    const aliceSession = await login(dovecot, ALICE);
    const carolSession = await login(dovecot, CAROL);

    assertLoggedIn(aliceSession, { user: ALICE });
    assertUserUnknown(carolSession, { user: CAROL, location });
  });

  test('hung slapd fails within seconds', async () => {
    await slapd.freeze();
    const started = Date.now();

    const session = await login(dovecot, ALICE);

    const seconds = (Date.now() - started) / 1000;
    assertTemporaryFailure(session, { user: ALICE });
    // The search on the kept connection and the bind of its replacement each wait LDAPTIMEOUT.
    assert.ok(seconds >= LDAP_TIMEOUT_SECONDS, `failed after ${seconds} s`);
    assert.ok(seconds < 4 * LDAP_TIMEOUT_SECONDS + 2, `failed after ${seconds} s`);
    assert.equal(luaPassdbError(session.log), `Account list unavailable: LDAP search failed: cannot connect: ${slapd.uri}: Timed out`);
  });

  test('thawed slapd serves logins', async () => {
    slapd.thaw();

    const session = await login(dovecot, ALICE);

    assertLoggedIn(session, { user: ALICE });
  });

  test('outage log shows no crash', () => {
    assert.equal(crashLine(dovecot.readLog()), undefined);
  });
});

describe('passwd-file accounts', () => {
  let dovecot;
  let accountFile;

  before(async () => {
    dovecot = await startBridgeDovecot('passwd-file', {
      prepare: (dir) => {
        accountFile = path.join(dir, 'users');
        // Dovecot's passwd-file format: user:password:uid:gid:gecos:home:shell:extra_fields.
        writeDovecotReadable(accountFile, [
          '# Written by accounts.test.mjs',
          `${ALICE}:{PLAIN}not-used-by-the-bridge::::::`,
          `${STAR}:{PLAIN}not-used-by-the-bridge::::::`,
          '',
        ].join('\n'));
        return fileSettings('passwd-file', accountFile);
      },
    });
  });

  after(() => {
    beginStopping([dovecot]);
  });

  test('alice logs in', async () => {
    const session = await login(dovecot, ALICE);

    assertLoggedIn(session, { user: ALICE });
    assert.ok(bridgeMessages(session.log, 'Debug').includes(`Mailbox found in ${accountFile}`));
  });

  test('carol is unknown', async () => {
    const session = await login(dovecot, CAROL);

    assertUserUnknown(session, { user: CAROL, location: accountFile });
  });

  // Dovecot's default auth_username_chars has no * ( ) or \, so the LDAP tests above allow all.
  test('default username chars stop star user', async () => {
    const since = dovecot.logOffset();

    const result = await imapXoauth2({ port: dovecot.imapPort, user: STAR, token: tokens[STAR] });

    await dovecot.waitForLog(LOG_PATTERNS.authReply, { since });
    const log = dovecot.logSince(since);
    assert.equal(result.ok, false);
    assert.match(result.response, AUTH_FAILED);
    assert.match(log, /: Username character disallowed by auth_username_chars: 0x2a \(username: star\*user@example\.test\)$/m);
    assert.equal(LOG_PATTERNS.luaVerifyCalled.exec(log)?.[0], undefined);
  });
});

describe('account file rewritten during logins', () => {
  // Parallel clients: a refused login takes about 0.5 s in Dovecot 2.3.19 even with
  // auth_failure_delay = 0. Eight kept a two-core test machine busy.
  const CONCURRENCY = 8;
  // alice is in every version of the file, carol in none, and bob in every other version.
  const LOGIN_ROTATION = [ALICE, CAROL, ALICE, BOB];
  const EVE = 'eve@example.test';
  let dovecot;
  let accountFile;

  function accountText(addresses) {
    const lines = addresses.map((address) => `${address}|{SHA512-CRYPT}$6$${address.split('@')[0]}salt$notarealhash\n`);
    return `# Written by accounts.test.mjs\n${lines.join('')}`;
  }

  /** Returns the addresses in random order, so a cut can fall into any line. */
  function shuffled(addresses) {
    const copy = [...addresses];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = randomInt(i + 1);
      [copy[i], copy[j]] = [copy[j], copy[i]];
    }
    return copy;
  }

  /**
   * Rewrites the account file with `addresses`:
   *   'in place': truncate and write, keeping the inode (fs.writeFileSync);
   *   'two halves': truncate, write up to a random byte, pause 2 to 10 ms, write the rest;
   *   'rename': write a new file and rename(2) it over the old one.
   */
  async function rewriteAccountFile(addresses, mode) {
    const text = Buffer.from(accountText(shuffled(addresses)));
    if (mode === 'rename') {
      const temporary = `${accountFile}.new`;
      fs.writeFileSync(temporary, text, { mode: 0o644 });
      fs.renameSync(temporary, accountFile);
    } else if (mode === 'in place') {
      fs.writeFileSync(accountFile, text);
    } else if (mode === 'two halves') {
      const cut = randomInt(1, text.length);
      const fd = fs.openSync(accountFile, 'w');
      try {
        fs.writeSync(fd, text, 0, cut);
        await sleep(randomInt(2, 11));
        fs.writeSync(fd, text, cut, text.length - cut);
      } finally {
        fs.closeSync(fd);
      }
    } else {
      throw new Error(`unknown rewrite mode ${mode}`);
    }
  }

  /** Appends the line of `address` in two writes with a pause of 2 to 10 ms, as `echo >>` may. */
  async function appendAccountLine(address) {
    const text = Buffer.from(accountText([address]).replace(/^#.*\n/, ''));
    const cut = randomInt(1, text.length);
    const fd = fs.openSync(accountFile, 'a');
    try {
      fs.writeSync(fd, text, 0, cut);
      await sleep(randomInt(2, 11));
      fs.writeSync(fd, text, cut, text.length - cut);
    } finally {
      fs.closeSync(fd);
    }
  }

  // docker-mailserver's `setup email add` appends a line to postfix-accounts.cf and `setup email
  // del` removes it with sed -i, which renames a new file over the old one.
  async function mailserverRewrite(round) {
    if (round % 2 === 0) {
      await appendAccountLine(BOB);
      return 'append';
    }
    await rewriteAccountFile([ALICE], 'rename');
    return 'rename';
  }

  // Every mode in turn, and bob in every other version whatever the mode.
  async function everyRewrite(round) {
    const modes = ['in place', 'two halves', 'rename'];
    const mode = modes[round % modes.length];
    const withBob = Math.floor(round / modes.length) % 2 === 0;
    await rewriteAccountFile(withBob ? [ALICE, BOB] : [ALICE], mode);
    return mode;
  }

  function outcomeOf(result) {
    if (result.ok) return 'ok';
    if (TEMPORARY_FAILURE.test(result.response)) return 'temporary';
    if (AUTH_FAILED.test(result.response)) return 'refused';
    return 'other';
  }

  /** Counts `key` of each item into { [user]: { [key]: count } }. */
  function tally(items, keyOf) {
    const counts = {};
    for (const item of items) {
      const key = keyOf(item);
      if (key === undefined) continue;
      counts[item.user] ??= {};
      counts[item.user][key] = (counts[item.user][key] ?? 0) + 1;
    }
    return counts;
  }

  /**
   * Runs `logins` logins, CONCURRENCY at a time, while `rewrite(round)` changes the account
   * file again and again and returns the name of its mode. Returns the client outcomes per user,
   * the bridge's results per user taken from the log, the rewrite counts per mode, and the log.
   */
  async function loginsDuringRewrites({ logins, rewrite }) {
    const since = dovecot.logOffset();
    const rewrites = {};
    let loginsDone = false;
    const rewriter = (async () => {
      for (let round = 0; !loginsDone; round++) {
        const mode = await rewrite(round);
        rewrites[mode] = (rewrites[mode] ?? 0) + 1;
        await sleep(randomInt(1, 6));
      }
    })();

    const sessions = [];
    let next = 0;
    const client = async () => {
      while (next < logins) {
        const user = LOGIN_ROTATION[next % LOGIN_ROTATION.length];
        next += 1;
        const result = await imapXoauth2({ port: dovecot.imapPort, user, token: tokens[user] });
        sessions.push({ user, outcome: outcomeOf(result), response: result.response });
      }
    };
    try {
      await Promise.all(Array.from({ length: CONCURRENCY }, client));
    } finally {
      loginsDone = true;
      await rewriter;
    }
    await dovecot.waitForLogLines(LOG_PATTERNS.workerFinished, logins, { since, timeoutMs: 10000 });
    await dovecot.waitForLogLines(LOG_PATTERNS.authReply, logins, { since, timeoutMs: 10000 });
    const log = dovecot.logSince(since);

    const bridgeLines = findAllLogLines(LOG_PATTERNS.luaScriptLog, log).map((match) => ({ ...match.groups }));
    const passdbErrors = findAllLogLines(LOG_PATTERNS.luaPassdbError, log).map((match) => ({ ...match.groups }));
    const bridge = tally([
      ...bridgeLines,
      ...passdbErrors.map((error) => ({ ...error, level: 'Error' })),
    ], (line) => {
      if (line.level === 'Error') return 'temporary';
      if (line.message === 'Token accepted') return 'ok';
      if (line.message === `No mailbox for the login name in ${accountFile}`) return 'refused';
      return undefined;
    });
    return {
      sessions,
      clients: tally(sessions, (session) => session.outcome),
      bridge,
      passdbErrors: passdbErrors.map((error) => error.message),
      reloads: bridgeLines.filter((line) => line.message.startsWith('Account list loaded from ')).length,
      malformed: bridgeLines.filter((line) => line.level === 'Warning' && line.message.includes('skipped malformed lines')).length,
      rewrites,
      log,
    };
  }

  before(async () => {
    dovecot = await startBridgeDovecot('rewrites', {
      prepare: (dir) => {
        accountFile = path.join(dir, 'postfix-accounts.cf');
        fs.writeFileSync(accountFile, accountText([ALICE, BOB]), { mode: 0o644 });
        return fileSettings('postfix-accounts', accountFile);
      },
    });
  });

  after(() => {
    beginStopping([dovecot]);
  });

  test('append and rename keep alice', async (t) => {
    await rewriteAccountFile([ALICE], 'rename');

    const run = await loginsDuringRewrites({ logins: 40, rewrite: mailserverRewrite });
    // A half-appended line of bob is skipped as malformed. These counts show how often.
    t.diagnostic(JSON.stringify({ clients: run.clients, rewrites: run.rewrites, reloads: run.reloads, malformed: run.malformed }));

    assert.deepEqual(run.clients[ALICE], { ok: 20 }, JSON.stringify(run.sessions.filter((session) => session.user === ALICE && session.outcome !== 'ok')));
    assert.deepEqual(run.clients[CAROL], { refused: 10 });
    assert.equal((run.clients[BOB].ok ?? 0) + (run.clients[BOB].refused ?? 0), 10);
    assert.deepEqual(run.bridge, run.clients);
    assert.deepEqual(run.passdbErrors, []);
    assert.equal(findAllLogLines(LOG_PATTERNS.workerFinished, run.log).length, 40);
    assert.ok(run.rewrites.append >= 10, `only ${run.rewrites.append} appends`);
    assert.ok(run.rewrites.rename >= 10, `only ${run.rewrites.rename} renames`);
    assert.ok(run.reloads >= 2, `only ${run.reloads} reloads`);
  });

  test('half-written files never admit carol', async (t) => {
    const run = await loginsDuringRewrites({ logins: 80, rewrite: everyRewrite });
    // alice may be refused, or fail temporarily, while a file is half-written. These counts
    // show how often that happened.
    t.diagnostic(JSON.stringify({ clients: run.clients, rewrites: run.rewrites, reloads: run.reloads, malformed: run.malformed }));

    assert.equal(run.clients[CAROL].ok, undefined);
    assert.equal((run.clients[CAROL].refused ?? 0) + (run.clients[CAROL].temporary ?? 0), 20);
    assert.ok(run.clients[ALICE].ok > 0);
    assert.deepEqual(run.sessions.filter((session) => session.outcome === 'other'), []);
    assert.deepEqual(run.bridge, run.clients);
    for (const message of run.passdbErrors) assert.match(message, /^Account list unavailable: /);
    const internalFailures = findAllLogLines(LOG_PATTERNS.workerFinished, run.log).filter((match) => match.groups.result === 'internal_failure');
    assert.equal(internalFailures.length, run.passdbErrors.length);
    for (const mode of ['in place', 'two halves', 'rename']) {
      assert.ok(run.rewrites[mode] >= 5, `only ${run.rewrites[mode]} rewrites ${mode}`);
    }
  });

  test('final version is read', async () => {
    await rewriteAccountFile([ALICE, BOB], 'rename');

    const alice = await login(dovecot, ALICE);
    const bob = await login(dovecot, BOB);
    const carol = await login(dovecot, CAROL);

    assertLoggedIn(alice, { user: ALICE });
    assertLoggedIn(bob, { user: BOB });
    assertUserUnknown(carol, { user: CAROL, location: accountFile });
  });

  // The bridge's fingerprint has one-second timestamps, so an in-place rewrite to the same size
  // within the same second must still be read.
  test('same-size rewrite in one second is read', async () => {
    assert.equal(accountText([ALICE, BOB]).length, accountText([ALICE, EVE]).length);
    let run;
    // A slow login can push the second rewrite into the next second. Then the case is retried.
    for (let attempt = 1; attempt <= 3 && !run?.sameSecond; attempt++) {
      // Start 100 ms into a second: file times come from the kernel's coarse clock, which can
      // lag Date.now() by a few milliseconds.
      await sleep(1100 - (Date.now() % 1000));
      await rewriteAccountFile([ALICE, BOB], 'in place');
      const first = fs.statSync(accountFile);
      const withBob = await login(dovecot, BOB);
      await rewriteAccountFile([ALICE, EVE], 'in place');
      const second = fs.statSync(accountFile);
      const withoutBob = await login(dovecot, BOB);
      const sameSecond = Math.floor(first.mtimeMs / 1000) === Math.floor(second.mtimeMs / 1000);
      run = { first, second, withBob, withoutBob, sameSecond };
    }

    assert.equal(run.sameSecond, true);
    assert.equal(run.second.size, run.first.size);
    assert.equal(run.second.ino, run.first.ino);
    assertLoggedIn(run.withBob, { user: BOB });
    assertUserUnknown(run.withoutBob, { user: BOB, location: accountFile });
  });

  test('rewrite log shows no crash', () => {
    assert.equal(crashLine(dovecot.readLog()), undefined);
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

  before(async () => {
    // Shutdown lines are part of the logs too.
    await Promise.allSettled(pendingStops);
  });

  test('file collected tokens, secrets and logs', () => {
    assert.equal(sentTokens.length, Object.keys(IDP_USERS).length);
    // Three LDAP bind passwords, the IdP's client secret, a bridge client secret for each of the
    // six LDAP Dovecots, and the PLAIN password.
    assert.equal(secrets.length, 11);
    assert.equal(logFiles.filter((file) => file.endsWith('slapd.log')).length, 3);
    assert.equal(logFiles.filter((file) => file.endsWith('dovecot.log')).length, 8);
    assert.equal(logFiles.filter((file) => file.endsWith('idp.log')).length, 1);
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
