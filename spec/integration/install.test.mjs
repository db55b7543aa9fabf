// Tests of the installed tree. `make install` writes into a temporary root, a real Dovecot runs
// the installed script, and the installed check command runs against the same settings and a
// real OpenID provider over HTTPS. Then `make uninstall` empties the root. docker-mailserver's
// user-patches.sh runs in a fake root. All servers listen on 127.0.0.1.
// Run: node --test spec/integration/install.test.mjs (as root, because Dovecot drops privileges).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { makeCerts } from './lib/certs.mjs';
import { imapXoauth2 } from './lib/clients.mjs';
import { LOG_PATTERNS, startDovecot } from './lib/dovecot.mjs';
import { startIdp } from './lib/idp.mjs';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SHARE = 'usr/local/share/dovecot-oauth2-bridge';
const EXAMPLES = path.join(REPO, 'examples/docker-mailserver');

const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const CAROL = 'carol@example.test';

const ACCOUNTS = {
  alice: { email: ALICE, password: `alice-${randomBytes(8).toString('hex')}` },
  bob: { email: BOB, password: `bob-${randomBytes(8).toString('hex')}` },
  carol: { email: CAROL, password: `carol-${randomBytes(8).toString('hex')}` },
};

const EXIT = { ok: 0, refused: 1, usage: 2, temporary: 3 };

// Everything that must never appear in the check command's output.
const secrets = [];
const tokens = {};

let rootDir;
let certs;
let idp;
let introspector;

function newSecret(label) {
  const secret = `${label}-${randomBytes(18).toString('base64url')}`;
  secrets.push(secret);
  return secret;
}

function makeDir(...parts) {
  const dir = path.join(rootDir, ...parts);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  return dir;
}

function writeFile(filePath, text, mode = 0o644) {
  fs.mkdirSync(path.dirname(filePath), { recursive: true });
  fs.writeFileSync(filePath, text, { mode });
  fs.chmodSync(filePath, mode);
  return filePath;
}

function accountFile(dir) {
  return writeFile(path.join(dir, 'postfix-accounts.cf'), `${ALICE}|{SHA512-CRYPT}$6$x$y\n${BOB}|{SHA512-CRYPT}$6$x$y\n`);
}

function run(command, args, { input, env = {}, cwd = REPO } = {}) {
  const result = spawnSync(command, args, {
    cwd,
    input,
    encoding: 'utf8',
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
    timeout: 60_000,
  });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function make(target, variables) {
  const args = ['-s', '-C', REPO, target, ...Object.entries(variables).map(([name, value]) => `${name}=${value}`)];
  const result = run('make', args);
  assert.equal(result.status, 0, `make ${target} failed:\n${result.stdout}${result.stderr}`);
}

/** Lists the files and directories below `dir`, relative to it, sorted. */
function listTree(dir) {
  const entries = [];
  const walk = (current) => {
    for (const entry of fs.readdirSync(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      entries.push(path.relative(dir, full) + (entry.isDirectory() ? '/' : ''));
      if (entry.isDirectory()) walk(full);
    }
  };
  walk(dir);
  return entries.sort();
}

function modeOf(filePath) {
  return fs.statSync(filePath).mode & 0o777;
}

/** Fails when the output of a check command run contains a token or a secret. */
function assertNoSecrets(result) {
  for (const secret of [...Object.values(tokens), ...secrets]) {
    assert.equal(result.stdout.includes(secret), false, 'a secret is in the standard output');
    assert.equal(result.stderr.includes(secret), false, 'a secret is in the standard error');
  }
}

function bridgeSettings(lines) {
  return `${lines.join('\n')}\n`;
}

before(async () => {
  rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oauth2-install-'));
  fs.chmodSync(rootDir, 0o755);
  certs = makeCerts(makeDir('certs'));
  introspector = { client_id: 'dovecot', client_secret: newSecret('dovecot') };
  idp = await startIdp({
    dir: makeDir('idp'),
    accounts: ACCOUNTS,
    clients: [{ client_id: 'roundcube', client_secret: newSecret('roundcube'), redirect_uris: ['http://127.0.0.1/callback'] }],
    resourceServers: [introspector],
    https: { key: certs.serverKey, cert: certs.serverCert, ca: certs.caCert },
  });
  tokens.alice = await idp.getToken('alice');
  tokens.carol = await idp.getToken('carol');
});

after(async () => {
  await idp?.stop();
  if (rootDir) fs.rmSync(rootDir, { recursive: true, force: true });
});

describe('installed tree', () => {
  let destdir;
  let checkScript;
  let dovecot;

  /** Runs the installed check command with `args`, the token on standard input when given. */
  function check(args, input) {
    const result = run('lua5.4', [checkScript, ...args], { input: input ?? '' });
    assertNoSecrets(result);
    return result;
  }

  function checkWithSettings(args, input) {
    return check(['--config', dovecot.settingsPath, ...args], input);
  }

  before(async () => {
    destdir = makeDir('destdir');
    make('install', { DESTDIR: destdir });
    checkScript = path.join(destdir, SHARE, 'oauth2-check.lua');

    const dovecotDir = makeDir('dovecot');
    dovecot = await startDovecot({
      dir: dovecotDir,
      luaScript: path.join(destdir, SHARE, 'oauth2-bridge.lua'),
      bridgeSettings: bridgeSettings([
        `introspection_url = ${idp.userinfoUrl}`,
        `tls_ca_cert_file = ${certs.caCert}`,
        `account_file = ${accountFile(dovecotDir)}`,
        'client_id = roundcube',
        `client_secret = ${newSecret('unused')}`,
      ]),
    });
  });

  after(async () => {
    await dovecot?.stop();
  });

  test('install writes only the expected files', () => {
    assert.deepEqual(listTree(destdir), [
      'usr/',
      'usr/local/',
      'usr/local/bin/',
      'usr/local/bin/oauth2-bridge-check',
      'usr/local/share/',
      'usr/local/share/dovecot-oauth2-bridge/',
      'usr/local/share/dovecot-oauth2-bridge/10-oauth2-bridge.conf',
      'usr/local/share/dovecot-oauth2-bridge/oauth2-bridge-setup.sh',
      'usr/local/share/dovecot-oauth2-bridge/oauth2-bridge.conf.example',
      'usr/local/share/dovecot-oauth2-bridge/oauth2-bridge.lua',
      'usr/local/share/dovecot-oauth2-bridge/oauth2-check.lua',
    ]);
  });

  test('install sets file modes', () => {
    assert.equal(modeOf(path.join(destdir, SHARE, 'oauth2-bridge.lua')), 0o644);
    assert.equal(modeOf(path.join(destdir, SHARE, 'oauth2-check.lua')), 0o644);
    assert.equal(modeOf(path.join(destdir, SHARE, '10-oauth2-bridge.conf')), 0o644);
    assert.equal(modeOf(path.join(destdir, SHARE, 'oauth2-bridge-setup.sh')), 0o755);
    assert.equal(modeOf(path.join(destdir, 'usr/local/bin/oauth2-bridge-check')), 0o755);
  });

  test('installed scripts equal lua-out', () => {
    for (const name of ['oauth2-bridge.lua', 'oauth2-check.lua']) {
      const installed = fs.readFileSync(path.join(destdir, SHARE, name), 'utf8');
      assert.equal(installed, fs.readFileSync(path.join(REPO, 'lua-out', name), 'utf8'), name);
    }
  });

  test('snippet names the script under PREFIX', () => {
    const snippet = fs.readFileSync(path.join(destdir, SHARE, '10-oauth2-bridge.conf'), 'utf8');
    assert.match(snippet, /^ {2}args = file=\/usr\/local\/share\/dovecot-oauth2-bridge\/oauth2-bridge\.lua blocking=yes$/m);
  });

  test('wrapper runs the check script under PREFIX', () => {
    const wrapper = fs.readFileSync(path.join(destdir, 'usr/local/bin/oauth2-bridge-check'), 'utf8');
    assert.match(wrapper, /^exec lua5\.4 \/usr\/local\/share\/dovecot-oauth2-bridge\/oauth2-check\.lua "\$@"$/m);
  });

  test('example lists every key commented', () => {
    const example = fs.readFileSync(path.join(destdir, SHARE, 'oauth2-bridge.conf.example'), 'utf8');
    const active = example.split('\n').filter((line) => /^\s*[a-z_]+\s*=/.test(line));
    assert.deepEqual(active, ['introspection_url = https://auth.example.com/application/o/userinfo/']);
  });

  test('Dovecot logs in with the installed script', async () => {
    const since = dovecot.logOffset();
    const result = await imapXoauth2({ port: dovecot.imapPort, user: ALICE, token: tokens.alice });
    assert.equal(result.ok, true, result.response);
    const login = await dovecot.waitForLog(LOG_PATTERNS.loginSucceeded, { since });
    assert.equal(login.groups.user, ALICE);
    assert.equal(login.groups.mech, 'XOAUTH2');
  });

  test('check passes', () => {
    const result = checkWithSettings(['check']);
    assert.equal(result.status, EXIT.ok, result.stdout + result.stderr);
    assert.match(result.stdout, /^OK {6}settings: .* is valid$/m);
    assert.match(result.stdout, /^OK {6}accounts \(postfix-accounts\): .*postfix-accounts\.cf: 2 accounts$/m);
    assert.match(result.stdout, /^OK {6}introspection_url: https:\/\/127\.0\.0\.1:\d+\/\S* answers: a made-up token is rejected \(.*HTTP 401.*\)$/m);
    assert.match(result.stdout, /^All 3 checks passed\.$/m);
    assert.equal(result.stderr, '');
  });

  test('test accepts alice', () => {
    const result = checkWithSettings(['test', '--user', ALICE], tokens.alice);
    assert.equal(result.status, EXIT.ok, result.stdout + result.stderr);
    assert.match(result.stdout, /^result: {3}OK$/m);
    assert.match(result.stdout, /^claims: {3}userinfo from 127\.0\.0\.1:\d+: .*\bemail\b.*\bsub\b/m);
    assert.match(result.stdout, /^identity: email = "alice@example\.test", login name alice@example\.test$/m);
    assert.match(result.stdout, /Mailbox found in /);
  });

  test('test reads the token file', () => {
    const tokenFile = writeFile(path.join(rootDir, 'alice.token'), `${tokens.alice}\n`, 0o600);
    const result = checkWithSettings(['test', '--user', ALICE, '--token-file', tokenFile]);
    assert.equal(result.status, EXIT.ok, result.stdout + result.stderr);
    assert.match(result.stdout, /^result: {3}OK$/m);
  });

  test('test reports carol unknown', () => {
    const result = checkWithSettings(['test', '--user', CAROL], tokens.carol);
    assert.equal(result.status, EXIT.refused, result.stdout + result.stderr);
    assert.match(result.stdout, /^result: {3}USER_UNKNOWN$/m);
    assert.match(result.stdout, /^reason: {3}No mailbox for the login name in \S+postfix-accounts\.cf$/m);
    assert.match(result.stdout, /^identity: email = "carol@example\.test"/m);
  });

  test('test refuses alice token as bob', () => {
    const result = checkWithSettings(['test', '--user', BOB], tokens.alice);
    assert.equal(result.status, EXIT.refused, result.stdout + result.stderr);
    assert.match(result.stdout, /^result: {3}PASSWORD_MISMATCH$/m);
    assert.match(result.stdout, /^reason: {3}Token belongs to alice@example\.test \(claim email\), not to the login name$/m);
  });

  test('test refuses a made-up token', () => {
    const madeUp = `madeup-${randomBytes(24).toString('base64url')}`;
    tokens.madeUp = madeUp;
    const result = checkWithSettings(['test', '--user', ALICE], madeUp);
    assert.equal(result.status, EXIT.refused, result.stdout + result.stderr);
    assert.match(result.stdout, /^result: {3}PASSWORD_MISMATCH$/m);
    assert.match(result.stdout, /HTTP 401/);
    assert.match(result.stdout, /^claims: {3}none/m);
  });

  test('test needs --user', () => {
    const result = checkWithSettings(['test'], tokens.alice);
    assert.equal(result.status, EXIT.usage);
    assert.match(result.stderr, /test needs --user NAME/);
    assert.equal(result.stdout, '');
  });

  test('token option is rejected', () => {
    const result = checkWithSettings(['test', '--user', ALICE, '--token', 'not-shown']);
    assert.equal(result.status, EXIT.usage);
    assert.match(result.stderr, /--token is not supported/);
  });

  test('help lists every option', () => {
    const result = check(['--help']);
    assert.equal(result.status, EXIT.ok);
    for (const option of ['--config PATH', '--user NAME', '--token-file FILE', '--help']) {
      assert.ok(result.stdout.includes(option), option);
    }
    for (const code of ['0', '1', '2', '3']) {
      assert.match(result.stdout, new RegExp(`^ {2}${code} {2}`, 'm'), `exit code ${code}`);
    }
  });

  test('check rejects invalid settings', () => {
    const settingsPath = writeFile(path.join(rootDir, 'invalid.conf'), 'introspection_url = ftp://idp.example.test/\n');
    const result = check(['--config', settingsPath, 'check']);
    assert.equal(result.status, EXIT.usage);
    assert.match(result.stdout, /^FAILED {2}settings: oauth2-bridge: .*introspection_url = "ftp:\/\/idp\.example\.test\/" is not a valid URL/m);
  });

  test('check reads OAUTH2_BRIDGE_CONFIG', () => {
    const result = run('lua5.4', [checkScript, 'check'], { env: { OAUTH2_BRIDGE_CONFIG: dovecot.settingsPath } });
    assert.equal(result.status, EXIT.ok, result.stdout + result.stderr);
    assert.ok(result.stdout.includes(`settings: ${dovecot.settingsPath} is valid`));
  });

  test('check resolves discovery', () => {
    const dir = makeDir('discovery');
    const settingsPath = writeFile(path.join(dir, 'oauth2-bridge.conf'), bridgeSettings([
      `openid_configuration_url = ${idp.issuer}`,
      `tls_ca_cert_file = ${certs.caCert}`,
      `account_file = ${accountFile(dir)}`,
    ]));
    const result = check(['--config', settingsPath, 'check']);
    assert.equal(result.status, EXIT.ok, result.stdout + result.stderr);
    assert.ok(result.stdout.includes(`OK      discovery: ${idp.issuer}/.well-known/openid-configuration: userinfo_endpoint is ${idp.userinfoUrl}`));
    assert.match(result.stdout, /^OK {6}userinfo_endpoint: .* answers: a made-up token is rejected/m);
  });

  test('check accepts introspection credentials', () => {
    const dir = makeDir('introspection');
    const settingsPath = writeFile(path.join(dir, 'oauth2-bridge.conf'), bridgeSettings([
      `introspection_url = ${idp.introspectionUrl}`,
      'introspection_mode = post',
      `client_id = ${introspector.client_id}`,
      `client_secret = ${introspector.client_secret}`,
      `tls_ca_cert_file = ${certs.caCert}`,
      `account_file = ${accountFile(dir)}`,
    ]), 0o600);
    const result = check(['--config', settingsPath, 'check']);
    assert.equal(result.status, EXIT.ok, result.stdout + result.stderr);
    assert.match(result.stdout, /^OK {6}introspection_url: .* answers: client credentials accepted, and a made-up token is reported inactive$/m);
  });

  test('check fails on wrong credentials', () => {
    const dir = makeDir('wrong-secret');
    const settingsPath = writeFile(path.join(dir, 'oauth2-bridge.conf'), bridgeSettings([
      `introspection_url = ${idp.introspectionUrl}`,
      'introspection_mode = post',
      `client_id = ${introspector.client_id}`,
      `client_secret = ${newSecret('wrong')}`,
      `tls_ca_cert_file = ${certs.caCert}`,
      `account_file = ${accountFile(dir)}`,
    ]), 0o600);
    const result = check(['--config', settingsPath, 'check']);
    assert.equal(result.status, EXIT.refused, result.stdout + result.stderr);
    assert.match(result.stdout, /^FAILED {2}introspection_url: Introspection request failed: HTTP 401 from 127\.0\.0\.1:\d+\. Check client_id and client_secret$/m);
    assert.match(result.stdout, /^1 of 3 checks FAILED\.$/m);
  });

  test('check fails without the CA', () => {
    const dir = makeDir('no-ca');
    const settingsPath = writeFile(path.join(dir, 'oauth2-bridge.conf'), bridgeSettings([
      `introspection_url = ${idp.userinfoUrl}`,
      `account_file = ${accountFile(dir)}`,
    ]));
    const result = check(['--config', settingsPath, 'check']);
    assert.equal(result.status, EXIT.refused, result.stdout + result.stderr);
    assert.match(result.stdout, /^FAILED {2}introspection_url: Userinfo request failed: TLS handshake failed: .*\(127\.0\.0\.1:\d+\)$/m);
  });

  test('uninstall empties DESTDIR', () => {
    make('uninstall', { DESTDIR: destdir });
    assert.deepEqual(fs.readdirSync(destdir), []);
  });
});

describe('install with PREFIX', () => {
  test('wrapper runs the installed check command', () => {
    const prefix = makeDir('prefix');
    make('install', { PREFIX: prefix });
    const wrapper = path.join(prefix, 'bin/oauth2-bridge-check');
    const snippet = fs.readFileSync(path.join(prefix, 'share/dovecot-oauth2-bridge/10-oauth2-bridge.conf'), 'utf8');

    const result = run(wrapper, ['--help']);

    assert.equal(result.status, EXIT.ok, result.stderr);
    assert.match(result.stdout, /^Usage: oauth2-check\.lua/);
    assert.ok(snippet.includes(`args = file=${prefix}/share/dovecot-oauth2-bridge/oauth2-bridge.lua blocking=yes`));
  });

  test('uninstall keeps only standard directories', () => {
    const prefix = path.join(rootDir, 'prefix');
    make('uninstall', { PREFIX: prefix });
    assert.deepEqual(listTree(prefix), ['bin/', 'share/']);
  });
});

describe('docker-mailserver user-patches.sh', () => {
  const DMS_PASSDB = 'passdb {\n    driver = oauth2\n    mechanisms = xoauth2 oauthbearer\n    args = /etc/dovecot/dovecot-oauth2.conf.ext\n}\n';
  let fakeRoot;
  let stubDir;
  let aptLog;

  /** Runs user-patches.sh in the fake root, with stand-ins for dpkg-query and apt-get on PATH. */
  function userPatches(variables, { missingPackages = '' } = {}) {
    const result = run('bash', [path.join(EXAMPLES, 'user-patches.sh')], {
      env: {
        PATH: `${stubDir}:/usr/sbin:/usr/bin:/sbin:/bin`,
        OAUTH2_BRIDGE_ROOT: fakeRoot,
        STUB_MISSING_PACKAGES: missingPackages,
        STUB_APT_LOG: aptLog,
        ...variables,
      },
    });
    assertNoSecrets(result);
    return result;
  }

  function oauth2Variables() {
    return {
      ENABLE_OAUTH2: '1',
      OAUTH2_INTROSPECTION_URL: idp.userinfoUrl,
      OAUTH2_CLIENT_ID: 'roundcube',
      OAUTH2_CLIENT_SECRET: newSecret('dms'),
      OAUTH2_TLS_CA_CERT_FILE: certs.caCert,
      OAUTH2_BRIDGE_ACCOUNT_FILE: path.join(fakeRoot, 'tmp/docker-mailserver/postfix-accounts.cf'),
    };
  }

  before(() => {
    fakeRoot = makeDir('dms-root');
    make('install', { DESTDIR: path.join(fakeRoot, 'tmp/docker-mailserver/oauth2-bridge') });
    accountFile(path.join(fakeRoot, 'tmp/docker-mailserver'));
    writeFile(path.join(fakeRoot, 'etc/dovecot/conf.d/10-auth.conf'), '!include auth-passwdfile.inc\n#!include auth-oauth2.conf.ext\n');
    writeFile(path.join(fakeRoot, 'etc/dovecot/conf.d/auth-oauth2.conf.ext'), DMS_PASSDB);

    stubDir = makeDir('stubs');
    aptLog = path.join(rootDir, 'apt.log');
    // dpkg-query reports every package installed except those in STUB_MISSING_PACKAGES.
    writeFile(path.join(stubDir, 'dpkg-query'), [
      '#!/bin/sh',
      'for package; do :; done',
      'case " $STUB_MISSING_PACKAGES " in *" $package "*) exit 1 ;; esac',
      "printf 'install ok installed'",
      '',
    ].join('\n'), 0o755);
    // apt-get records its arguments and changes nothing.
    writeFile(path.join(stubDir, 'apt-get'), '#!/bin/sh\necho "$*" >> "$STUB_APT_LOG"\n', 0o755);
  });

  test('scripts pass bash -n', () => {
    for (const script of ['user-patches.sh', 'oauth2-bridge-start.sh']) {
      const result = run('bash', ['-n', path.join(EXAMPLES, script)]);
      assert.equal(result.status, 0, `${script}: ${result.stderr}`);
    }
  });

  test('nothing happens without ENABLE_OAUTH2', () => {
    const result = userPatches({ ENABLE_OAUTH2: '0' });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(fs.existsSync(path.join(fakeRoot, 'etc/dovecot/oauth2-bridge.conf')), false);
    assert.equal(fs.readFileSync(path.join(fakeRoot, 'etc/dovecot/conf.d/auth-oauth2.conf.ext'), 'utf8'), DMS_PASSDB);
  });

  test('missing bridge files fail', () => {
    const result = userPatches({ ...oauth2Variables(), OAUTH2_BRIDGE_SOURCE: '/nonexistent' });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /oauth2-bridge\.lua is missing\. Run 'make install DESTDIR=/);
  });

  test('user-patches sets up the bridge', () => {
    const variables = oauth2Variables();
    const result = userPatches(variables);
    assert.equal(result.status, 0, result.stdout + result.stderr);

    const snippet = fs.readFileSync(path.join(fakeRoot, 'etc/dovecot/conf.d/auth-oauth2.conf.ext'), 'utf8');
    assert.match(snippet, /^ {2}driver = lua$/m);
    assert.match(snippet, /^ {2}args = file=\/usr\/local\/share\/dovecot-oauth2-bridge\/oauth2-bridge\.lua blocking=yes$/m);
    assert.doesNotMatch(snippet, /driver = oauth2/);

    const authConf = fs.readFileSync(path.join(fakeRoot, 'etc/dovecot/conf.d/10-auth.conf'), 'utf8');
    assert.match(authConf, /^!include auth-oauth2\.conf\.ext$/m);

    const settingsPath = path.join(fakeRoot, 'etc/dovecot/oauth2-bridge.conf');
    const settings = fs.readFileSync(settingsPath, 'utf8');
    assert.ok(settings.includes(`introspection_url = "${idp.userinfoUrl}"`));
    assert.ok(settings.includes(`client_secret = "${variables.OAUTH2_CLIENT_SECRET}"`));
    assert.equal(modeOf(settingsPath), 0o640);

    for (const name of ['oauth2-bridge.lua', 'oauth2-check.lua', 'oauth2-bridge-setup.sh']) {
      assert.ok(fs.existsSync(path.join(fakeRoot, SHARE, name)), name);
    }
    assert.match(result.stdout, /^All 3 checks passed\.$/m);
    assert.equal(fs.existsSync(aptLog), false, 'apt-get ran although every package is installed');
  });

  test('user-patches installs missing packages', () => {
    const result = userPatches(oauth2Variables(), { missingPackages: 'lua-cjson lua5.4' });
    assert.equal(result.status, 0, result.stdout + result.stderr);
    const calls = fs.readFileSync(aptLog, 'utf8').trim().split('\n');
    assert.equal(calls.length, 2);
    assert.equal(calls[0], 'update -qq');
    assert.equal(calls[1], 'install -y -qq --no-install-recommends lua5.4 lua-cjson');
  });

  test('Dockerfile copies existing files', () => {
    const dockerfile = fs.readFileSync(path.join(EXAMPLES, 'Dockerfile'), 'utf8');
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(?:--\S+ )*(\S+) \S+$/gm)].map((match) => match[1]);
    assert.deepEqual(sources, ['Makefile', 'lua-out/', 'dovecot/', 'examples/docker-mailserver/oauth2-bridge-start.sh']);
    for (const source of sources) {
      assert.ok(fs.existsSync(path.join(REPO, source)), source);
    }
    assert.match(dockerfile, /^CMD \["\/usr\/local\/bin\/oauth2-bridge-start", "supervisord", /m);
  });
});

describe('identity provider down', () => {
  let settingsPath;

  before(async () => {
    const dir = makeDir('down');
    settingsPath = writeFile(path.join(dir, 'oauth2-bridge.conf'), bridgeSettings([
      `introspection_url = ${idp.userinfoUrl}`,
      `tls_ca_cert_file = ${certs.caCert}`,
      `account_file = ${accountFile(dir)}`,
      'timeout_msecs = 2000',
    ]));
    await idp.stop();
  });

  test('check reports the connection failure', () => {
    const destdir = makeDir('down-destdir');
    make('install', { DESTDIR: destdir });
    const result = run('lua5.4', [path.join(destdir, SHARE, 'oauth2-check.lua'), '--config', settingsPath, 'check']);
    make('uninstall', { DESTDIR: destdir });

    assert.equal(result.status, EXIT.refused, result.stdout + result.stderr);
    assert.match(result.stdout, /^FAILED {2}introspection_url: Userinfo request failed: connection refused \(127\.0\.0\.1:\d+\)$/m);
  });

  test('test is a temporary failure', () => {
    const result = run('lua5.4', [path.join(REPO, 'lua-out/oauth2-check.lua'), '--config', settingsPath, 'test', '--user', ALICE], {
      input: tokens.alice,
    });
    assertNoSecrets(result);
    assert.equal(result.status, EXIT.temporary, result.stdout + result.stderr);
    assert.match(result.stdout, /^result: {3}INTERNAL_FAILURE$/m);
    assert.match(result.stdout, /^reason: {3}Userinfo request failed: connection refused/m);
  });
});
