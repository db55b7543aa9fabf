// Starts a private Postfix instance for end-to-end tests. It has its own main.cf, master.cf,
// queue and data directories and log file in a test directory, and a submission service on
// 127.0.0.1 only. SMTP AUTH goes to a test Dovecot's auth socket, delivery to that Dovecot's LMTP.
// It never reads or writes /etc/postfix, /var/spool/postfix or /var/lib/postfix, and it never
// sends mail anywhere else: every domain but the test domain goes to Postfix's error transport.
// Also here: the Dovecot settings that a mail server around the bridge needs (TLS, LMTP, POP3,
// ManageSieve, the auth socket for Postfix), and a raw line client with STARTTLS for SMTP, POP3
// and ManageSieve sessions. Checked against Debian 12's Postfix 3.7.11 and Dovecot 2.3.19.1.

import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';

import { findAllLogLines, readLogSince, startDovecot } from './dovecot.mjs';
import { findFreePort, waitForGreeting } from './ports.mjs';

const POSTFIX_BINARY = '/usr/sbin/postfix';
const START_ATTEMPTS = 3;
const START_TIMEOUT_MS = 20000;
const STOP_TIMEOUT_MS = 10000;
const LOG_TAIL_LINES = 40;
const CLIENT_TIMEOUT_MS = 15000;

const execFileAsync = promisify(execFile);

/**
 * Regular expressions for the lines Postfix 3.7 writes to its maillog_file. Each one is
 * anchored to a single line (flag `m`), so `RegExp.exec` returns the first such line.
 */
export const POSTFIX_LOG_PATTERNS = {
  // postfix/submission/smtpd[PID]: 4ABC123: client=unknown[127.0.0.1], sasl_method=XOAUTH2, sasl_username=alice@example.test
  saslClient: /^.* postfix\/submission\/smtpd\[\d+\]: (?<queueId>[0-9A-F]+): client=[^,\n]*, sasl_method=(?<mech>[A-Z0-9_-]+), sasl_username=(?<user>\S+)$/m,

  // postfix/submission/smtpd[PID]: warning: unknown[127.0.0.1]: SASL XOAUTH2 authentication failed: (reason unavailable), sasl_username=carol@example.test
  // Dovecot gives Postfix no reason for a failed token login.
  saslFailed: /^.* postfix\/submission\/smtpd\[\d+\]: warning: [^:\n]*: SASL (?<mech>[A-Z0-9_-]+) authentication failed: (?<reason>[^,\n]*)(?:, sasl_username=(?<user>\S+))?$/m,

  // postfix/lmtp[PID]: 4ABC123: to=<bob@example.test>, relay=127.0.0.1[127.0.0.1]:PORT, ..., dsn=2.0.0, status=sent (250 2.0.0 <...> ... Saved)
  delivered: /^.* postfix\/lmtp\[\d+\]: (?<queueId>[0-9A-F]+): to=<(?<to>[^>]*)>, relay=(?<relay>[^,\n]*), .*status=sent .*$/m,

  anyFatal: /^.* (?:fatal|panic): .*$/m,
};

/**
 * Returns the dovecot.conf lines that turn the test Dovecot into the mail server behind
 * Postfix: STARTTLS with the test certificate, LMTP, POP3 and ManageSieve on 127.0.0.1, and an
 * auth socket `auth-postfix` in its base_dir that only user postfix may use. Pass the result
 * as startDovecot's `extraConfig`, together with `userdbArgs: 'allow_all_users=yes'` for LMTP;
 * startMailDovecot() does both.
 */
export function dovecotMailConfig({ tlsCert, tlsKey, lmtpPort, pop3Port, sievePort }) {
  return `# Written by spec/integration/lib/postfix.mjs: the mail server behind Postfix.
protocols = imap pop3 lmtp sieve
ssl = yes
ssl_cert = <${tlsCert}
ssl_key = <${tlsKey}

service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${lmtpPort}
  }
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = ${pop3Port}
  }
  inet_listener pop3s {
    port = 0
  }
}
service managesieve-login {
  inet_listener sieve {
    address = 127.0.0.1
    port = ${sievePort}
  }
}
# Postfix's smtpd runs as user postfix and asks Dovecot to check each SMTP AUTH through this socket.
service auth {
  unix_listener auth-postfix {
    mode = 0660
    user = postfix
    group = postfix
  }
}
`;
}

/** Returns the path of the socket that dovecotMailConfig() adds, for Postfix's smtpd_sasl_path. */
export function dovecotAuthSocketPath(dovecotDir) {
  return path.join(dovecotDir, 'run', 'auth-postfix');
}

/**
 * Starts a test Dovecot with dovecotMailConfig() on free ports; other options go to
 * startDovecot() from dovecot.mjs. A port taken between choosing and binding it makes Dovecot fail with "Address
 * already in use"; then it tries again with new ports. Resolves to the Dovecot handle with
 * `lmtpPort`, `pop3Port`, `sievePort` and `authSocketPath` added.
 */
export async function startMailDovecot({ dir, tlsCert, tlsKey, extraConfig = '', ...options }) {
  let lastError;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const [lmtpPort, pop3Port, sievePort] = await distinctFreePorts(3);
    const mailConfig = dovecotMailConfig({ tlsCert, tlsKey, lmtpPort, pop3Port, sievePort });
    try {
      const dovecot = await startDovecot({
        dir,
        userdbArgs: 'allow_all_users=yes',
        extraConfig: `${mailConfig}\n${extraConfig}`,
        ...options,
      });
      return { ...dovecot, lmtpPort, pop3Port, sievePort, authSocketPath: dovecotAuthSocketPath(dir) };
    } catch (err) {
      lastError = err;
      if (!/Address already in use/.test(err.message)) throw err;
    }
  }
  throw lastError;
}

async function distinctFreePorts(count) {
  const ports = new Set();
  while (ports.size < count) ports.add(await findFreePort());
  return [...ports];
}

/**
 * Renders main.cf. Every path is inside `dir`. Mail for `domain` goes to the Dovecot at
 * 127.0.0.1:`lmtpPort` when `dir`/virtual-mailboxes lists the recipient. Mail for any other
 * domain is bounced by the error transport, so nothing leaves this machine.
 */
export function renderMainCf({ dir, domain, lmtpPort, saslPath, tlsCert, tlsKey }) {
  return `# Written by spec/integration/lib/postfix.mjs for one test run.
compatibility_level = 3.6
queue_directory = ${dir}/queue
data_directory = ${dir}/data
maillog_file = ${dir}/postfix.log
# postlogd writes only below these prefixes.
maillog_file_prefixes = ${dir}

myhostname = mail.${domain}
mydomain = ${domain}
myorigin = $mydomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8

# No DNS: the client name stays "unknown", and no lookup leaves the machine.
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
lmtp_host_lookup = native

alias_maps =
alias_database =
local_recipient_maps =
relay_domains =
local_transport = error:local delivery is off in this test instance
default_transport = error:mail to other domains is off in this test instance
relay_transport = error:mail to other domains is off in this test instance
virtual_mailbox_domains = ${domain}
virtual_mailbox_maps = texthash:${dir}/virtual-mailboxes
virtual_transport = lmtp:inet:127.0.0.1:${lmtpPort}

smtpd_tls_cert_file = ${tlsCert}
smtpd_tls_key_file = ${tlsKey}
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_tls_loglevel = 1

smtpd_sasl_type = dovecot
smtpd_sasl_path = ${saslPath}
smtpd_sasl_auth_enable = no
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
biff = no
`;
}

/**
 * Renders master.cf: a submission service on 127.0.0.1:`submissionPort` that requires STARTTLS
 * and SASL, and the internal services, none of them chrooted.
 */
export function renderMasterCf({ submissionPort }) {
  return `# Written by spec/integration/lib/postfix.mjs for one test run.
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:${submissionPort} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;
}

/**
 * Writes main.cf, master.cf and the mailbox list into `dir` (which must exist), runs
 * `postfix -c DIR start` and resolves once the submission port sends its greeting.
 *
 * dir: an existing absolute directory; made world-traversable (0755), because Postfix's
 *   daemons run as user postfix.
 * domain: the one mail domain, e.g. example.test.
 * mailboxes: the addresses Postfix accepts for `domain`.
 * lmtpPort: Dovecot's LMTP port on 127.0.0.1.
 * saslPath: absolute path of Dovecot's auth socket for Postfix (dovecotAuthSocketPath()).
 * tlsCert, tlsKey: the server certificate and key for STARTTLS.
 *
 * Resolves to { dir, submissionPort, pid, configDir, logPath, readLog, logOffset, logSince,
 * waitForLog, waitForLogLines, stop }. stop() sends SIGTERM to the master PID from
 * queue/pid/master.pid and waits until it has exited; it is safe to call more than once.
 */
export async function startPostfix({ dir, domain, mailboxes, lmtpPort, saslPath, tlsCert, tlsKey }) {
  if (typeof dir !== 'string' || !path.isAbsolute(dir) || !fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`startPostfix: dir must be an existing absolute directory, got ${JSON.stringify(dir)}`);
  }
  if (/\s/.test(dir)) {
    throw new Error('startPostfix: dir must not contain whitespace');
  }
  fs.chmodSync(dir, 0o755);

  const configDir = path.join(dir, 'config');
  fs.mkdirSync(configDir, { recursive: true, mode: 0o755 });
  fs.mkdirSync(path.join(dir, 'queue'), { recursive: true, mode: 0o755 });
  const dataDir = path.join(dir, 'data');
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  fs.chownSync(dataDir, lookupId('/etc/passwd', 'postfix'), lookupId('/etc/group', 'postfix'));
  fs.writeFileSync(path.join(dir, 'virtual-mailboxes'), mailboxes.map((address) => `${address} OK\n`).join(''), { mode: 0o644 });
  fs.writeFileSync(path.join(configDir, 'main.cf'), renderMainCf({ dir, domain, lmtpPort, saslPath, tlsCert, tlsKey }), { mode: 0o644 });

  const logPath = path.join(dir, 'postfix.log');
  let lastError;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const submissionPort = await findFreePort();
    fs.writeFileSync(path.join(configDir, 'master.cf'), renderMasterCf({ submissionPort }), { mode: 0o644 });
    const logOffset = logSize(logPath);

    let output = '';
    try {
      const result = await execFileAsync(POSTFIX_BINARY, ['-c', configDir, 'start'], { timeout: START_TIMEOUT_MS });
      output = `${result.stdout}${result.stderr}`;
    } catch (err) {
      output = `${err.stdout ?? ''}${err.stderr ?? ''}${err.message}`;
      lastError = new Error(`postfix -c ${configDir} start failed (attempt ${attempt} of ${START_ATTEMPTS}):\n${output}\n--- last lines of ${logPath} ---\n${lastLines(readLogSince(logPath, logOffset))}`);
      // The master may have started before a later step failed.
      await stopMaster(readMasterPid(dir));
      if (/Address already in use/.test(output + readLogSince(logPath, logOffset))) continue;
      throw lastError;
    }

    const pid = readMasterPid(dir);
    if (pid === undefined) {
      throw new Error(`postfix -c ${configDir} start wrote no ${masterPidPath(dir)}:\n${output}`);
    }
    const watchdog = startWatchdog(pid);
    const checkFailure = () => {
      if (!isAlive(pid)) return `the Postfix master (PID ${pid}) exited`;
      const fatal = POSTFIX_LOG_PATTERNS.anyFatal.exec(readLogSince(logPath, logOffset));
      return fatal ? `Postfix logged: ${fatal[0]}` : undefined;
    };
    try {
      await waitForGreeting(submissionPort, { greetingPrefix: '220 ', timeoutMs: START_TIMEOUT_MS, checkFailure });
    } catch (err) {
      watchdog.disarm();
      await stopMaster(pid);
      const text = readLogSince(logPath, logOffset);
      lastError = new Error(`Postfix did not answer on 127.0.0.1:${submissionPort} (attempt ${attempt} of ${START_ATTEMPTS}): ${err.message}\n--- last lines of ${logPath} ---\n${lastLines(text)}`);
      if (/Address already in use/.test(text)) continue;
      throw lastError;
    }

    let stopping;
    const stop = () => {
      stopping ??= (async () => {
        watchdog.disarm();
        await stopMaster(pid);
      })();
      return stopping;
    };
    return {
      dir,
      submissionPort,
      pid,
      configDir,
      logPath,
      readLog: () => readLogSince(logPath, 0),
      logOffset: () => logSize(logPath),
      logSince: (offset) => readLogSince(logPath, offset),
      waitForLog: async (pattern, options) => (await waitForPostfixLog(logPath, pattern, 1, options))[0],
      waitForLogLines: (pattern, count, options) => waitForPostfixLog(logPath, pattern, count, options),
      stop,
    };
  }
  throw lastError;
}

function masterPidPath(dir) {
  return path.join(dir, 'queue', 'pid', 'master.pid');
}

function readMasterPid(dir) {
  let text;
  try {
    text = fs.readFileSync(masterPidPath(dir), 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  }
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if (err.code === 'ESRCH') return false;
    throw err;
  }
}

// SIGTERM makes the master stop its children and exit. It is not our child process (postfix
// start detaches it), so its exit is seen by polling.
async function stopMaster(pid) {
  if (pid === undefined || !isAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return;
    await sleep(50);
  }
  process.kill(pid, 'SIGKILL');
}

// Sends SIGTERM to the master once this Node process ends without stop(), as dovecot.mjs does
// for its master: the shell's stdin reaches EOF when its parent is gone.
function startWatchdog(masterPid) {
  const watchdog = spawn('/bin/sh', ['-c', 'read -r line; kill -TERM "$0" 2>/dev/null', String(masterPid)], {
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

async function waitForPostfixLog(logPath, pattern, count, { since = 0, timeoutMs = 10000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = readLogSince(logPath, since);
    const matches = findAllLogLines(pattern, text);
    if (matches.length >= count) return matches;
    if (Date.now() >= deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${count} line(s) matching ${pattern} in ${logPath} after byte ${since}, found ${matches.length}\n` +
        `--- log since byte ${since} (last ${LOG_TAIL_LINES} lines) ---\n${lastLines(text)}`,
      );
    }
    await sleep(100);
  }
}

function lookupId(databasePath, name) {
  const line = fs.readFileSync(databasePath, 'utf8').split('\n').find((entry) => entry.startsWith(`${name}:`));
  if (!line) throw new Error(`startPostfix: ${name} not found in ${databasePath}; is postfix installed?`);
  return Number(line.split(':')[2]);
}

function logSize(logPath) {
  return fs.statSync(logPath, { throwIfNoEntry: false })?.size ?? 0;
}

function lastLines(text, count = LOG_TAIL_LINES) {
  return text.split('\n').slice(-count - 1).join('\n');
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------- raw line client

/**
 * A client for line-based protocols (SMTP, POP3, ManageSieve) on 127.0.0.1 with STARTTLS.
 * Lines are sent and read unchanged, so a test can check every reply. The client keeps no copy
 * of what it writes, because that includes tokens.
 */
export class LineClient {
  #socket;
  #buffer = '';
  #waiting = [];
  #closed = false;
  #error;

  static async connect(port) {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new LineClient();
    client.#attach(socket);
    return client;
  }

  #attach(socket) {
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.setTimeout(CLIENT_TIMEOUT_MS, () => socket.destroy(new Error(`no data from 127.0.0.1:${socket.remotePort} for ${CLIENT_TIMEOUT_MS} ms`)));
    socket.on('data', (chunk) => {
      this.#buffer += chunk;
      this.#wake();
    });
    socket.on('error', (err) => {
      this.#error = err;
      this.#wake();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#wake();
    });
  }

  #wake() {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const resolve of waiting) resolve();
  }

  /** Resolves to the next line without its CRLF. */
  async readLine() {
    for (;;) {
      const end = this.#buffer.indexOf('\n');
      if (end !== -1) {
        const line = this.#buffer.slice(0, end).replace(/\r$/, '');
        this.#buffer = this.#buffer.slice(end + 1);
        return line;
      }
      if (this.#error) throw this.#error;
      if (this.#closed) throw new Error('connection closed before a complete line');
      await new Promise((resolve) => this.#waiting.push(resolve));
    }
  }

  /** Resolves to exactly `count` characters, for ManageSieve literals. */
  async readChars(count) {
    for (;;) {
      if (this.#buffer.length >= count) {
        const text = this.#buffer.slice(0, count);
        this.#buffer = this.#buffer.slice(count);
        return text;
      }
      if (this.#error) throw this.#error;
      if (this.#closed) throw new Error('connection closed before a complete literal');
      await new Promise((resolve) => this.#waiting.push(resolve));
    }
  }

  writeLine(line) {
    if (/[\r\n]/.test(line)) throw new Error('LineClient: a line must not contain CR or LF');
    this.#socket.write(`${line}\r\n`);
  }

  /** Writes text that already has its line ends, e.g. a message in SMTP DATA. */
  writeRaw(text) {
    this.#socket.write(text);
  }

  /**
   * Upgrades the connection to TLS, trusting only `ca` and checking that the certificate
   * names 127.0.0.1. Call it right after the server's go-ahead for STARTTLS.
   */
  async startTls({ ca }) {
    if (this.#buffer !== '') throw new Error('LineClient: data arrived before the TLS handshake');
    const plain = this.#socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    plain.setTimeout(0);
    const secure = tls.connect({
      socket: plain,
      ca,
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity('127.0.0.1', cert),
    });
    await new Promise((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.#attach(secure);
    return { protocol: secure.getProtocol(), authorized: secure.authorized };
  }

  close() {
    this.#socket.destroy();
  }
}

/**
 * Reads one SMTP reply (RFC 5321 section 4.2): lines "250-..." up to "250 ...". Resolves to
 * { code, lines } with the text after the code of each line.
 */
export async function readSmtpReply(client) {
  const lines = [];
  for (;;) {
    const line = await client.readLine();
    const match = /^(\d{3})([ -])(.*)$/.exec(line);
    if (!match) throw new Error(`not an SMTP reply line: ${JSON.stringify(line.slice(0, 200))}`);
    lines.push(match[3]);
    if (match[2] === ' ') return { code: Number(match[1]), lines };
  }
}

/** Sends one SMTP command line and resolves to its reply. */
export async function smtpCommand(client, line) {
  client.writeLine(line);
  return readSmtpReply(client);
}

/**
 * Sends one message through the submission port: STARTTLS (trusting only `ca`), AUTH XOAUTH2
 * with `token` for `user`, then MAIL, RCPT and DATA. Resolves to the queue ID; rejects with the
 * server's reply when a step fails. The token is not part of any error message.
 */
export async function submitMessage({ port, ca, user, token, from, to, subject, body }) {
  const client = await LineClient.connect(port);
  const expect = async (line, code) => {
    const reply = line === undefined ? await readSmtpReply(client) : await smtpCommand(client, line);
    if (reply.code !== code) {
      const command = line?.startsWith('AUTH ') ? 'AUTH XOAUTH2 ...' : line ?? '(greeting)';
      throw new Error(`submitMessage: ${command} got ${reply.code} ${reply.lines.join(' ')}, expected ${code}`);
    }
    return reply;
  };
  try {
    await expect(undefined, 220);
    await expect('EHLO client.example.test', 250);
    await expect('STARTTLS', 220);
    await client.startTls({ ca });
    await expect('EHLO client.example.test', 250);
    const response = Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`).toString('base64');
    await expect(`AUTH XOAUTH2 ${response}`, 235);
    await expect(`MAIL FROM:<${from}>`, 250);
    await expect(`RCPT TO:<${to}>`, 250);
    await expect('DATA', 354);
    client.writeRaw([`Date: ${new Date().toUTCString()}`, `From: <${from}>`, `To: <${to}>`, `Subject: ${subject}`, '', body, '.', ''].join('\r\n'));
    const queued = await expect(undefined, 250);
    await expect('QUIT', 221);
    return /queued as ([0-9A-F]+)/.exec(queued.lines[0])?.[1];
  } finally {
    client.close();
  }
}
