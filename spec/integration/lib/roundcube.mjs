// Starts Debian's Roundcube 1.6 for end-to-end tests, served by PHP's built-in web server on
// 127.0.0.1 with its own configuration, SQLite database, logs and temp files in a test directory,
// and drives it with Debian's Chromium through playwright-core.
//
// Roundcube reads its configuration from the directory in the ROUNDCUBE_CONFIG_DIR environment
// variable (program/include/iniset.php), so /etc/roundcube is never read or changed; only its
// defaults.inc.php is copied. The document root is Debian's /var/lib/roundcube/public_html.
// Checked against Debian 12's roundcube-core 1.6.5, php8.2-cli and chromium 156.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const PHP_BINARY = '/usr/bin/php';
const DOCUMENT_ROOT = '/var/lib/roundcube/public_html';
const DEFAULTS_FILE = '/etc/roundcube/defaults.inc.php';
const CHROMIUM_BINARY = '/usr/bin/chromium';

// PHP runs as the web server user, never as root; it writes only the database, logs and temp files.
const WEB_USER = 'www-data';
const WEB_GROUP = 'www-data';

const START_TIMEOUT_MS = 20000;
const STOP_TIMEOUT_MS = 5000;
const OUTPUT_LIMIT_CHARS = 64 * 1024;

/**
 * Chromium's switches for the tests: headless, no sandbox (the tests run as root), and no
 * connections of Chromium's own: no background networking, component updates, sync, QUIC or
 * first-run pages. The host resolver rule makes every host name and address but 127.0.0.1 fail.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-domain-reliability',
  '--no-pings',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
];

/** Returns the redirect URI that Roundcube 1.6 sends to the IdP (rcmail_oauth::get_redirect_uri). */
export function roundcubeRedirectUri(port) {
  return `http://127.0.0.1:${port}/index.php/login/oauth`;
}

// A PHP single-quoted string literal: only \ and ' need escaping.
function phpString(value) {
  return `'${String(value).replace(/[\\']/g, (character) => `\\${character}`)}'`;
}

function phpValue(value) {
  if (typeof value === 'string') return phpString(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return String(value);
  if (Array.isArray(value)) return `[${value.map(phpValue).join(', ')}]`;
  const entries = Object.entries(value).map(([key, item]) => `${phpString(key)} => ${phpValue(item)}`);
  return `[${entries.join(', ')}]`;
}

/**
 * Renders config.inc.php. The OAuth settings are those of docker-mailserver's guide for
 * Authentik; IMAP and SMTP use STARTTLS and trust only `caCert`.
 */
export function renderRoundcubeConfig({ dir, imapPort, smtpPort, caCert, oauth, desKey }) {
  const tlsOptions = {
    ssl: { verify_peer: true, verify_peer_name: true, peer_name: '127.0.0.1', cafile: caCert, allow_self_signed: false },
  };
  const settings = {
    db_dsnw: `sqlite:///${dir}/db/roundcube.sqlite?mode=0640`,
    log_driver: 'file',
    log_dir: `${dir}/logs`,
    temp_dir: `${dir}/temp`,
    log_logins: true,
    smtp_log: true,
    imap_host: `tls://127.0.0.1:${imapPort}`,
    imap_conn_options: tlsOptions,
    smtp_host: `tls://127.0.0.1:${smtpPort}`,
    smtp_conn_options: tlsOptions,
    smtp_user: '%u',
    smtp_pass: '%p',
    oauth_provider: 'generic',
    oauth_provider_name: oauth.providerName,
    oauth_client_id: oauth.clientId,
    oauth_client_secret: oauth.clientSecret,
    oauth_auth_uri: oauth.authUri,
    oauth_token_uri: oauth.tokenUri,
    oauth_identity_uri: oauth.identityUri,
    oauth_scope: 'email openid profile',
    oauth_identity_fields: ['email'],
    oauth_login_redirect: false,
    des_key: desKey,
    product_name: 'Roundcube Webmail',
    support_url: '',
    plugins: [],
    skin: 'elastic',
    enable_installer: false,
    enable_spellcheck: false,
    // A fixed language and time zone make the screenshots the same on every machine.
    default_list_mode: 'list',
    language: 'en_US',
    timezone: 'UTC',
    create_default_folders: true,
  };
  const lines = Object.entries(settings).map(([key, value]) => `$config[${phpString(key)}] = ${phpValue(value)};`);
  return `<?php
// Written by spec/integration/lib/roundcube.mjs for one test run.
$config = [];
${lines.join('\n')}
`;
}

function lookupId(databasePath, name) {
  const line = fs.readFileSync(databasePath, 'utf8').split('\n').find((entry) => entry.startsWith(`${name}:`));
  if (!line) throw new Error(`startRoundcube: ${name} not found in ${databasePath}`);
  return Number(line.split(':')[2]);
}

/**
 * Writes Roundcube's configuration into `dir` and starts `php -S 127.0.0.1:port` on its
 * document root, as user www-data. Resolves once the login page responds with HTTP 200.
 *
 * dir: an existing absolute directory, made world-traversable (0755).
 * port: the port to listen on; the IdP must know the redirect URI (roundcubeRedirectUri(port))
 *   before Roundcube starts, so the caller picks it.
 * imapPort, smtpPort: Dovecot's IMAP and Postfix's submission port on 127.0.0.1 (STARTTLS).
 * caCert: the CA file that IMAP and SMTP certificates must chain to.
 * oauth: { providerName, clientId, clientSecret, authUri, tokenUri, identityUri }.
 *
 * Resolves to { url, port, pid, logDir, serverLogPath, logFiles(), readLog(name), stop }.
 */
export async function startRoundcube({ dir, port, imapPort, smtpPort, caCert, oauth }) {
  if (typeof dir !== 'string' || !path.isAbsolute(dir) || !fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`startRoundcube: dir must be an existing absolute directory, got ${JSON.stringify(dir)}`);
  }
  fs.chmodSync(dir, 0o755);
  const uid = lookupId('/etc/passwd', WEB_USER);
  const gid = lookupId('/etc/group', WEB_GROUP);

  const configDir = path.join(dir, 'config');
  fs.mkdirSync(configDir, { recursive: true, mode: 0o750 });
  fs.chownSync(configDir, 0, gid);
  fs.copyFileSync(DEFAULTS_FILE, path.join(configDir, 'defaults.inc.php'));
  const configPath = path.join(configDir, 'config.inc.php');
  // The file contains the client secret and the DES key, so only root and the web group may read it.
  fs.writeFileSync(configPath, renderRoundcubeConfig({ dir, imapPort, smtpPort, caCert, oauth, desKey: randomBytes(12).toString('hex') }), { mode: 0o640 });
  fs.chmodSync(configPath, 0o640);
  for (const file of ['defaults.inc.php', 'config.inc.php']) {
    fs.chownSync(path.join(configDir, file), 0, gid);
  }

  // Roundcube creates the SQLite database from SQL/sqlite.initial.sql on first use.
  for (const name of ['db', 'logs', 'temp']) {
    const writable = path.join(dir, name);
    fs.mkdirSync(writable, { recursive: true, mode: 0o750 });
    fs.chownSync(writable, uid, gid);
  }

  const serverLogPath = path.join(dir, 'php-server.log');
  const serverLog = fs.openSync(serverLogPath, 'a', 0o640);
  const child = spawn(PHP_BINARY, [
    '-S', `127.0.0.1:${port}`,
    '-t', DOCUMENT_ROOT,
    '-d', 'display_errors=0',
    '-d', 'log_errors=1',
    '-d', `error_log=${dir}/logs/php-errors.log`,
    '-d', 'expose_php=0',
  ], {
    cwd: DOCUMENT_ROOT,
    uid,
    gid,
    detached: true,
    stdio: ['ignore', serverLog, serverLog],
    env: {
      PATH: '/usr/bin:/bin',
      ROUNDCUBE_CONFIG_DIR: configDir,
      // Several workers serve Roundcube's parallel requests at once; one would serve them in turn.
      PHP_CLI_SERVER_WORKERS: '4',
      TZ: 'UTC',
    },
  });
  fs.closeSync(serverLog);
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (err) => resolve({ error: err }));
  });
  let exitInfo;
  exited.then((info) => {
    exitInfo = info;
  });
  const watchdog = startWatchdog(child.pid);
  child.unref();

  let stopping;
  const stop = () => {
    stopping ??= (async () => {
      watchdog.disarm();
      if (exitInfo === undefined) signalGroup(child.pid, 'SIGTERM');
      let timer;
      const timeout = new Promise((resolve) => {
        timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS);
      });
      const outcome = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        signalGroup(child.pid, 'SIGKILL');
        await exited;
      }
    })();
    return stopping;
  };

  const url = `http://127.0.0.1:${port}/`;
  try {
    await waitForHttp(url, () => exitInfo);
  } catch (err) {
    await stop();
    throw new Error(`${err.message}\n--- ${serverLogPath} ---\n${tail(readText(serverLogPath))}\n--- ${dir}/logs/errors.log ---\n${tail(readText(path.join(dir, 'logs', 'errors.log')))}`);
  }

  const logDir = path.join(dir, 'logs');
  return {
    url,
    port,
    pid: child.pid,
    logDir,
    serverLogPath,
    configPath,
    logFiles: () => [serverLogPath, ...fs.readdirSync(logDir).map((name) => path.join(logDir, name))],
    readLog: (name) => readText(path.join(logDir, name)),
    stop,
  };
}

// Sends SIGTERM to the PHP server's process group once this Node process ends without stop(),
// as dovecot.mjs does for its master: the shell's stdin reaches EOF when its parent is gone.
function startWatchdog(serverPid) {
  const watchdog = spawn('/bin/sh', ['-c', 'read -r line; kill -TERM "-$0" 2>/dev/null', String(serverPid)], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  watchdog.on('error', () => {});
  watchdog.stdin.on('error', () => {});
  watchdog.unref();
  watchdog.stdin.unref?.();
  return {
    disarm() {
      if (watchdog.exitCode === null && watchdog.signalCode === null) watchdog.kill('SIGKILL');
    },
  };
}

// The PHP server and its workers are in the process group that `detached` gave the child.
function signalGroup(pid, signal) {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if (err.code !== 'ESRCH') throw err;
  }
}

async function waitForHttp(url, exitInfo) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let lastError = 'no request made';
  while (Date.now() < deadline) {
    const info = exitInfo();
    if (info) throw new Error(`php -S exited before it responded: ${JSON.stringify(info)}`);
    try {
      const status = await new Promise((resolve, reject) => {
        const req = http.get(url, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        });
        req.on('error', reject);
        req.setTimeout(2000, () => req.destroy(new Error('no response within 2 s')));
      });
      if (status === 200) return;
      lastError = `HTTP ${status}`;
    } catch (err) {
      lastError = err.message;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Roundcube did not respond at ${url} within ${START_TIMEOUT_MS} ms: ${lastError}. Check the PHP server log`);
}

function readText(filePath) {
  try {
    return fs.readFileSync(filePath, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') return '';
    throw err;
  }
}

function tail(text, lines = 30) {
  return text.split('\n').slice(-lines - 1).join('\n').slice(-OUTPUT_LIMIT_CHARS);
}

/**
 * Launches Debian's Chromium through playwright-core with a fresh profile in `profileDir` and
 * CHROMIUM_ARGS. Every request of a page to anything but 127.0.0.1 is aborted and recorded in
 * `blockedRequests`, which a test can assert to be empty.
 * Resolves to { context, page, blockedRequests, close }.
 */
export async function openBrowser({ profileDir }) {
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (err) {
    throw new Error(`playwright-core cannot be loaded (${err.message}). Add it to the npm devDependencies and run npm ci`);
  }
  fs.mkdirSync(profileDir, { recursive: true, mode: 0o700 });
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM_BINARY,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
    locale: 'en-US',
    timezoneId: 'UTC',
    timeout: 30000,
  });
  const blockedRequests = [];
  await context.route('**/*', (route) => {
    const target = new URL(route.request().url());
    const local = ['http:', 'https:'].includes(target.protocol) && target.hostname === '127.0.0.1';
    if (local || target.protocol === 'data:' || target.protocol === 'blob:') {
      return route.continue();
    }
    blockedRequests.push(`${target.protocol}//${target.host}`);
    return route.abort('blockedbyclient');
  });
  const page = context.pages()[0] ?? await context.newPage();
  return { context, page, blockedRequests, close: () => context.close() };
}
