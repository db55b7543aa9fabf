// Starts a private Dovecot 2.3 instance for integration tests: its own config,
// base_dir, state_dir and log in a test directory, IMAP on 127.0.0.1 only.
// Log formats and process behaviour below were checked against Debian 12's
// Dovecot 2.3.19.1.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { findFreePort, waitForGreeting } from './ports.mjs';

const DOVECOT_BINARY = '/usr/sbin/dovecot';

// IMAP sessions run as this user because Dovecot refuses to run mail processes as root.
const MAIL_USER = 'nobody';
const MAIL_GROUP = 'nogroup';

// The auth process runs as this user (default_internal_user) and reads the
// passwd-file itself. It also loads the Lua script and runs its script_init(),
// while the auth-worker processes that call auth_password_verify() run as root.
const AUTH_PROCESS_GROUP = 'dovecot';

const START_ATTEMPTS = 3;
const START_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 10000;
const LOG_TAIL_LINES = 40;
const OUTPUT_LIMIT_CHARS = 64 * 1024;

/**
 * Regular expressions for the lines Dovecot 2.3.19 writes with auth_verbose=yes
 * and auth_debug=yes. Each one is anchored to a single line (flag `m`), so
 * `RegExp.exec` on a log excerpt returns the first such line with named groups.
 */
export const LOG_PATTERNS = {
  // auth: Debug: client in: AUTH<TAB>1<TAB>XOAUTH2<TAB>service=imap<TAB>secured<TAB>session=...
  authRequest: /^.* auth: Debug: client in: AUTH\t\d+\t(?<mech>[A-Z0-9_-]+)\t.*$/m,

  // imap-login: Info: Login: user=<alice@example.test>, method=XOAUTH2, rip=127.0.0.1, ...
  loginSucceeded: /^.* imap-login: Info: Login: user=<(?<user>[^>]*)>, method=(?<mech>[A-Z0-9_-]+), .*$/m,

  // imap-login: Info: Disconnected: Aborted login by logging out (auth failed, 1 attempts in 0 secs): user=<...>, method=XOAUTH2, ...
  // The reason is "auth service reported temporary failure" after an internal failure.
  // The text before the parenthesis depends on how the client left, e.g. "Connection closed".
  loginFailed: /^.* imap-login: Info: Disconnected: [^(]*\((?<reason>auth failed|auth service reported temporary failure)[^)]*\): user=<(?<user>[^>]*)>, method=(?<mech>[A-Z0-9_-]+), .*$/m,

  // auth-worker(PID): Debug: conn unix:auth-worker (...): auth-worker<N>: lua(USER,IP,<SESSION>): Calling auth_password_verify
  luaVerifyCalled: /^.* auth-worker\(\d+\): Debug: .*: lua\((?<user>[^,]*),[^)]*\): Calling auth_password_verify$/m,

  // auth-worker(PID): Debug: conn ...: auth-worker<N>: Finished             (passdb returned OK)
  // auth-worker(PID): Debug: conn ...: auth-worker<N>: Finished: password_mismatch
  // Other results are "user_unknown" and "internal_failure". After OK the group is undefined.
  workerFinished: /^.* auth-worker\(\d+\): Debug: conn [^\n]*: auth-worker<\d+>: Finished(?:: (?<result>[a-z_]+))?$/m,

  // Info line for PASSDB_RESULT_PASSWORD_MISMATCH, from the Lua passdb (in auth-worker)
  // or from passwd-file (in auth): ...: lua(USER,IP,<SESSION>): Password mismatch
  passwordMismatch: /^.*: (?<passdb>lua|passwd-file)\((?<user>[^,]*),[^)]*\): Password mismatch$/m,

  // passwd-file only. The Lua passdb logs nothing above Debug for PASSDB_RESULT_USER_UNKNOWN.
  passwdFileUnknownUser: /^.* auth: Info: passwd-file\((?<user>[^,]*),[^)]*\): unknown user$/m,

  // Error line for PASSDB_RESULT_INTERNAL_FAILURE with the script's message, or for a Lua error:
  //   ...: lua(USER,IP,<SESSION>): passdb-lua: <message returned by the script>
  //   ...: lua(USER,IP,<SESSION>): passdb-lua: lua_pcall(auth_password_verify, 2, 2) failed: FILE:LINE: <error>
  luaPassdbError: /^.* auth-worker\(\d+\): Error: .*: lua\((?<user>[^,]*),[^)]*\): passdb-lua: (?<message>.*)$/m,

  // Lines written by the script with req:log_debug/log_info/log_warning/log_error.
  luaScriptLog: /^.* auth-worker\(\d+\): (?<level>Debug|Info|Warning|Error): .*: lua\((?<user>[^,]*),[^)]*\): db-lua: (?<message>.*)$/m,

  // auth: Debug: client passdb out: OK<TAB>1<TAB>user=alice@example.test
  // auth: Debug: client passdb out: FAIL<TAB>1<TAB>user=bob@example.test<TAB>code=temp_fail
  authReply: /^.* auth: Debug: client passdb out: (?<reply>OK|FAIL)\t\d+\tuser=(?<user>[^\t\n]*)(?:\t(?<fields>.*))?$/m,

  // Written for each passdb that a mechanism skips because of its `mechanisms` filter.
  // The prefix is the SASL mechanism in lower case (plain, xoauth2), not the passdb driver,
  // so the line does not say which passdb was skipped.
  passdbSkipped: /^.* auth: Debug: (?<mech>[a-z0-9_-]+)\((?<user>[^,]*),[^)]*\): skipping passdb: mechanism filtered$/m,

  // Written when script_init() returns non-zero or raises an error. Clients then get
  // "* BYE Auth process broken" in place of a greeting.
  //   auth: Fatal: passdb-lua: initialization failed: Script init failed
  //   auth: Fatal: passdb-lua: initialization failed: lua_pcall(script_init, 0, 1) failed: <error>
  luaInitFailed: /^.* auth: Fatal: passdb-lua: initialization failed: (?<message>.*)$/m,

  anyFatal: /^.*: Fatal: .*$/m,
};

/**
 * Returns every match of `pattern` in `text`, each with its named groups.
 */
export function findAllLogLines(pattern, text) {
  const flags = pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`;
  return [...text.matchAll(new RegExp(pattern.source, flags))];
}

/**
 * Renders dovecot.conf for one test instance. Every path is inside `dir`, so
 * the instance never reads /etc/dovecot or writes to /run/dovecot or /var/lib/dovecot.
 */
export function renderDovecotConfig({ dir, imapPort, instanceName, luaScript, settingsPath, passwdPath, extraConfig = '', userdbArgs = '' }) {
  return `# Written by spec/integration/lib/dovecot.mjs for one test run.
base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = ${instanceName}
log_path = ${dir}/dovecot.log

protocols = imap
listen = 127.0.0.1
ssl = no
# XOAUTH2 and OAUTHBEARER are flagged as plaintext mechanisms, so without TLS
# Dovecot only offers and accepts them when plaintext authentication is allowed.
disable_plaintext_auth = no

auth_mechanisms = plain login xoauth2 oauthbearer
auth_verbose = yes
auth_debug = yes
# Tests assert that tokens never reach the log, so keep the defaults explicit.
auth_verbose_passwords = no
auth_debug_passwords = no
# Without a cache every login reaches the passdb, which the tests count on.
auth_cache_size = 0
# Even at 0 a failed login still takes about 0.5 s in 2.3.19 (measured).
auth_failure_delay = 0

# The master clears the environment of its children. This passes the settings
# path to the auth and auth-worker processes that run the Lua passdb.
import_environment = $import_environment OAUTH2_BRIDGE_CONFIG=${settingsPath}

passdb {
  driver = lua
  mechanisms = xoauth2 oauthbearer
  args = file=${luaScript} blocking=yes
}
passdb {
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u ${passwdPath}
}
userdb {
  driver = static
  args = uid=${MAIL_USER} gid=${MAIL_GROUP} home=${dir}/mail/%u${userdbArgs ? ` ${userdbArgs}` : ''}
}
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${imapPort}
  }
  inet_listener imaps {
    port = 0
  }
}

# With no anvil-auth-penalty socket the auth process turns its per-IP penalty
# off. Otherwise each failed login from 127.0.0.1 delays the next one by 2 s,
# doubling up to 15 s. This relies on a fresh base_dir: a leftover socket file
# makes the auth process stall about 5 s and log "Connection refused".
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
${extraConfig}
`;
}

/**
 * Writes dovecot.conf, the bridge settings file and a passwd-file into `dir`,
 * starts `dovecot -F` on a free port of 127.0.0.1 and resolves once the IMAP
 * port sends its greeting.
 *
 * `dir` must exist. It is made world-traversable (0755) because the auth
 * process and the IMAP sessions run as unprivileged users. `extraConfig` is
 * appended to dovecot.conf: a setting there overrides the one above, while a
 * passdb or userdb section there is added after the ones above.
 * The bridge settings file is owner root, group dovecot, mode `settingsMode`
 * (default 0640), so the auth process can read it as well as the auth-worker.
 * `userdbArgs` is appended to the args of the static userdb, e.g. `allow_all_users=yes`, which
 * LMTP delivery needs: without it the static userdb checks that a recipient exists with a
 * passdb lookup, and every passdb here is limited to login mechanisms.
 */
export async function startDovecot({ dir, luaScript, bridgeSettings, passwdUsers = {}, extraConfig = '', userdbArgs = '', settingsMode = 0o640 }) {
  checkStartOptions({ dir, luaScript, bridgeSettings, passwdUsers });

  const authGid = lookupId('/etc/group', AUTH_PROCESS_GROUP);
  const mailUid = lookupId('/etc/passwd', MAIL_USER);
  const mailGid = lookupId('/etc/group', MAIL_GROUP);

  fs.chmodSync(dir, 0o755);

  // Dovecot's auth process loads the script as user dovecot, which cannot read a checkout
  // under a private home directory such as /root, so it gets a copy in the temp dir.
  const scriptCopy = path.join(dir, 'oauth2-bridge.lua');
  if (path.resolve(luaScript) !== scriptCopy) {
    fs.copyFileSync(luaScript, scriptCopy);
  }
  fs.chmodSync(scriptCopy, 0o644);

  const settingsPath = path.join(dir, 'oauth2-bridge.conf');
  writePrivateFile(settingsPath, bridgeSettings, settingsMode, authGid);

  const passwdPath = path.join(dir, 'passwd');
  const passwdLines = Object.entries(passwdUsers).map(([name, password]) => `${name}:{PLAIN}${password}\n`);
  writePrivateFile(passwdPath, passwdLines.join(''), 0o640, authGid);

  const mailDir = path.join(dir, 'mail');
  fs.mkdirSync(mailDir, { recursive: true });
  fs.chownSync(mailDir, mailUid, mailGid);

  // Dovecot titles the child processes "dovecot-INSTANCE/SERVICE", which distinguishes them from other instances.
  const instanceName = `oauth2-test-${randomBytes(4).toString('hex')}`;
  const configPath = path.join(dir, 'dovecot.conf');
  const logPath = path.join(dir, 'dovecot.log');

  let lastError;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const imapPort = await findFreePort();
    const config = renderDovecotConfig({ dir, imapPort, instanceName, luaScript: scriptCopy, settingsPath, passwdPath, extraConfig, userdbArgs });
    fs.writeFileSync(configPath, config, { mode: 0o644 });

    // A socket file left by an earlier start in this directory would defeat
    // the anvil-auth-penalty setting above.
    fs.rmSync(path.join(dir, 'run'), { recursive: true, force: true });

    const attemptLogOffset = logSize(logPath);
    const instance = launch({ configPath });
    // imap-login sends its greeting only once the auth process is ready, so a
    // Lua script_init() that fails shows up here as a fatal auth error.
    const checkFailure = () => {
      if (instance.exited) return 'the Dovecot master process exited';
      const fatal = LOG_PATTERNS.anyFatal.exec(readLogSince(logPath, attemptLogOffset));
      return fatal ? `Dovecot logged a fatal error: ${fatal[0]}` : undefined;
    };
    try {
      await waitForGreeting(imapPort, { timeoutMs: START_TIMEOUT_MS, checkFailure });
    } catch (err) {
      await instance.terminate();
      const output = instance.output();
      lastError = new Error(
        `Dovecot did not start on 127.0.0.1:${imapPort} (attempt ${attempt} of ${START_ATTEMPTS}): ${err.message}\n` +
        `--- dovecot stdout/stderr ---\n${output}\n--- last lines of ${logPath} ---\n${tailOfFile(logPath)}`,
      );
      // If another process took the port between findFreePort() and bind(), a new port fixes that.
      const portTaken = /Address already in use/.test(output) || /Address already in use/.test(readLogSince(logPath, attemptLogOffset));
      if (portTaken) continue;
      throw lastError;
    }

    return {
      dir,
      imapPort,
      pid: instance.pid,
      instanceName,
      configPath,
      settingsPath,
      passwdPath,
      logPath,
      readLog: () => readLogSince(logPath, 0),
      logOffset: () => logSize(logPath),
      logSince: (offset) => readLogSince(logPath, offset),
      waitForLog: (pattern, options) => waitForLogLine(logPath, pattern, options),
      waitForLogLines: (pattern, count, options) => waitForLogLines(logPath, pattern, count, options),
      output: instance.output,
      stop: instance.terminate,
    };
  }
  throw lastError;
}

function checkStartOptions({ dir, luaScript, bridgeSettings, passwdUsers }) {
  if (typeof dir !== 'string' || !path.isAbsolute(dir) || !fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`startDovecot: dir must be an existing absolute directory, got ${JSON.stringify(dir)}`);
  }
  if (typeof luaScript !== 'string' || !path.isAbsolute(luaScript)) {
    throw new Error(`startDovecot: luaScript must be an absolute path, got ${JSON.stringify(luaScript)}`);
  }
  if (!fs.statSync(luaScript, { throwIfNoEntry: false })?.isFile()) {
    throw new Error(`startDovecot: Lua script not found: ${luaScript}`);
  }
  // Dovecot splits passdb args on spaces and has no quoting for them.
  if (/\s/.test(luaScript) || /\s/.test(dir)) {
    throw new Error('startDovecot: dir and luaScript must not contain whitespace');
  }
  if (typeof bridgeSettings !== 'string') {
    throw new Error('startDovecot: bridgeSettings must be the settings file contents as a string');
  }
  for (const [name, password] of Object.entries(passwdUsers)) {
    if (/[:\s]/.test(name) || /[\r\n]/.test(String(password))) {
      throw new Error(`startDovecot: invalid passwd-file entry for user ${JSON.stringify(name)}`);
    }
  }
}

// Spawns the master in the foreground and in its own process group, so the PID
// and the group are ours to signal.
function launch({ configPath }) {
  const child = spawn(DOVECOT_BINARY, ['-F', '-c', configPath], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  let captured = '';
  const capture = (chunk) => {
    captured = (captured + chunk.toString('utf8')).slice(-OUTPUT_LIMIT_CHARS);
  };
  child.stdout.on('data', capture);
  child.stderr.on('data', capture);

  const watchdog = startWatchdog(child.pid);

  const state = { exited: false };
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      watchdog?.disarm();
      capture(`${DOVECOT_BINARY} exited with code ${code}, signal ${signal}\n`);
      state.exited = true;
      resolve();
    });
    child.once('error', (err) => {
      capture(`failed to run ${DOVECOT_BINARY}: ${err.message}\n`);
      state.exited = true;
      resolve();
    });
  });

  // Neither the child nor its pipes keep the test runner alive.
  child.unref();
  child.stdout.unref?.();
  child.stderr.unref?.();

  let stopping;
  const terminate = () => {
    stopping ??= (async () => {
      watchdog?.disarm();
      if (!state.exited && child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGTERM');
        } catch (err) {
          if (err.code !== 'ESRCH') throw err;
        }
      }
      const exitedInTime = await raceTimeout(exitPromise, STOP_TIMEOUT_MS);
      if (!exitedInTime) {
        capture(`master PID ${child.pid} did not exit ${STOP_TIMEOUT_MS} ms after SIGTERM; sending SIGKILL to its process group\n`);
        signalGroup(child.pid, 'SIGKILL');
        await exitPromise;
      }
      // The master normally reaps its children before exiting; this only
      // catches a child that outlived it.
      const groupGone = await waitForGroupExit(child.pid, STOP_TIMEOUT_MS);
      if (!groupGone) signalGroup(child.pid, 'SIGKILL');
    })();
    return stopping;
  };

  return {
    pid: child.pid,
    get exited() {
      return state.exited;
    },
    output: () => captured,
    terminate,
  };
}

// Starts a shell that sends SIGTERM to the master once its stdin reaches EOF,
// which happens when this Node process ends without stop(): a test that never
// calls stop(), an uncaught error in node:test, or SIGKILL. The shell runs in
// its own session so a Ctrl-C aimed at the test runner does not end it first.
function startWatchdog(masterPid) {
  if (masterPid === undefined) return undefined;
  const watchdog = spawn('/bin/sh', ['-c', 'read -r line; kill -TERM "$0" 2>/dev/null', String(masterPid)], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  watchdog.on('error', () => {});
  watchdog.stdin.on('error', () => {});
  watchdog.unref();
  watchdog.stdin.unref?.();
  return {
    // Called before a deliberate stop, so the shell never signals a PID that
    // the system may have reused after the master exited.
    disarm() {
      if (watchdog.exitCode === null && watchdog.signalCode === null) watchdog.kill('SIGKILL');
    },
  };
}

function signalGroup(pid, signal) {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if (err.code !== 'ESRCH') throw err;
  }
}

async function waitForGroupExit(pid, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      process.kill(-pid, 0);
    } catch (err) {
      if (err.code === 'ESRCH') return true;
      throw err;
    }
    await sleep(50);
  }
  return false;
}

async function raceTimeout(promise, timeoutMs) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const result = await Promise.race([promise.then(() => true), timeout]);
  clearTimeout(timer);
  return result;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function writePrivateFile(filePath, contents, mode, gid) {
  fs.writeFileSync(filePath, contents, { mode });
  // writeFileSync applies `mode` only when it creates the file.
  fs.chmodSync(filePath, mode);
  fs.chownSync(filePath, 0, gid);
}

function lookupId(databasePath, name) {
  const line = fs.readFileSync(databasePath, 'utf8').split('\n').find((entry) => entry.startsWith(`${name}:`));
  if (!line) throw new Error(`startDovecot: ${name} not found in ${databasePath}; is dovecot-core installed?`);
  return Number(line.split(':')[2]);
}

function logSize(logPath) {
  return fs.statSync(logPath, { throwIfNoEntry: false })?.size ?? 0;
}

/**
 * Returns the log text from byte `offset` on, or '' if the log does not exist yet.
 */
export function readLogSince(logPath, offset = 0) {
  let buffer;
  try {
    buffer = fs.readFileSync(logPath);
  } catch (err) {
    if (err.code === 'ENOENT') return '';
    throw err;
  }
  return buffer.subarray(offset).toString('utf8');
}

/**
 * Polls the log until `pattern` matches the text written after byte `since`,
 * and returns the first match. Dovecot's log process writes asynchronously, so
 * a line can appear a few milliseconds after the client has its reply.
 */
export async function waitForLogLine(logPath, pattern, { since = 0, timeoutMs = 5000 } = {}) {
  const [first] = await waitForLogLines(logPath, pattern, 1, { since, timeoutMs });
  return first;
}

/**
 * Polls the log until `pattern` matches at least `count` lines written after
 * byte `since`, and returns all matches.
 */
export async function waitForLogLines(logPath, pattern, count, { since = 0, timeoutMs = 5000 } = {}) {
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
    await sleep(50);
  }
}

function tailOfFile(filePath) {
  return lastLines(readLogSince(filePath, 0)) || '(empty or missing)';
}

function lastLines(text, count = LOG_TAIL_LINES) {
  return text.split('\n').slice(-count - 1).join('\n');
}

/**
 * Lists PIDs of live processes that belong to a started instance: the master,
 * whose command line names `configPath`, and its children, which Dovecot titles
 * "dovecot-INSTANCE/SERVICE". After stop() this returns [].
 */
export function listInstanceProcesses({ instanceName, configPath }) {
  const pids = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let commandLine;
    try {
      commandLine = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (commandLine.includes(`dovecot-${instanceName}/`) || commandLine.includes(configPath)) {
      pids.push(Number(entry));
    }
  }
  return pids;
}
