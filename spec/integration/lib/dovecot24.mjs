// Starts a private Dovecot 2.4 instance for integration tests. Dovecot 2.4.1
// comes from a Debian 13 "trixie" root file system (scripts/build-trixie-root.sh)
// and runs under chroot(8) in the host's network namespace, so it listens on the
// host's 127.0.0.1 and reaches the test IdP there. Each instance gets its own
// directory inside the root (/run/test-XXXXXX) for its config, base_dir,
// state_dir, log, Lua script and passwd-file; stop() removes that directory.
// Config syntax and log formats below were checked against Debian's 2.4.1.

import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findAllLogLines, readLogSince, waitForLogLine, waitForLogLines } from './dovecot.mjs';
import { findFreePort, waitForGreeting } from './ports.mjs';

export { findAllLogLines };

export const DEFAULT_TRIXIE_ROOT = '/var/cache/dovecot-oauth2-bridge/trixie-root';
export const BUILD_ROOT_SCRIPT = fileURLToPath(new URL('../../../scripts/build-trixie-root.sh', import.meta.url));

// Paths inside the root.
const DOVECOT_BINARY = '/usr/sbin/dovecot';
const DOVECONF_BINARY = '/usr/bin/doveconf';
const INSTANCE_PARENT = '/run';

// IMAP sessions run as this user because Dovecot refuses to run mail processes as root.
const MAIL_USER = 'nobody';
const MAIL_GROUP = 'nogroup';
// The auth process (default_internal_user) reads the passwd-file as this group.
const AUTH_PROCESS_GROUP = 'dovecot';

/** Lines of the Lua passdb block used when the caller gives no `passdbConfig`. */
export const DEFAULT_LUA_PASSDB_CONFIG = 'mechanisms_filter = xoauth2 oauthbearer';

const START_ATTEMPTS = 3;
const START_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 10000;
const BUILD_TIMEOUT_MS = 15 * 60 * 1000;
const LOG_TAIL_LINES = 40;
const OUTPUT_LIMIT_CHARS = 64 * 1024;

/**
 * Regular expressions for lines that Dovecot 2.4.1 writes with auth_verbose=yes
 * and auth_debug=yes, each anchored to one line (flag `m`), so `RegExp.exec` on a
 * log excerpt returns the first such line with named groups. They differ from
 * the 2.3 patterns in dovecot.mjs: the Lua passdb runs in auth-worker processes
 * whose per-request prefix is `auth-worker(USER,IP)<PID><SESSION>: request [N]:`,
 * and imap-login writes "Logged in" and "Login aborted".
 */
export const LOG_PATTERNS_24 = {
  // imap-login: Info: Logged in: user=<alice@example.test>, method=XOAUTH2, rip=127.0.0.1, lip=127.0.0.1, mpid=1155, secured, session=<...>
  loginSucceeded: /^.* imap-login: Info: Logged in: user=<(?<user>[^>]*)>, method=(?<mech>[A-Z0-9_-]+), .*$/m,

  // imap-login: Info: Login aborted: Logged out (auth failed, 1 attempts in 0 secs) (auth_failed): user=<...>, method=XOAUTH2, ...
  // Other reasons and codes: (user disabled, ...) (user_disabled), (password expired, ...) (password_expired).
  // The text before the parenthesis depends on how the client left, e.g. "Connection closed".
  loginFailed: /^.* imap-login: Info: Login aborted: [^(\n]*\((?<reason>[^,)\n]+), [^)\n]*\) \((?<code>[a-z_]+)\): user=<(?<user>[^>]*)>, method=(?<mech>[A-Z0-9_-]+), .*$/m,

  // auth-worker(USER,IP)<PID><SESSION>: request [N]: Debug: lua: Calling auth_passdb_lookup   (or auth_password_verify)
  luaHookCalled: /^.* auth-worker\((?<user>[^,)]*),[^)]*\)<\d+><[^>]*>: request \[\d+\]: Debug: lua: Calling (?<hook>auth_[a-z_]+)$/m,

  // Lines written by the script with req:log_debug/log_info/log_warning/log_error, and the
  // Error line for PASSDB_RESULT_INTERNAL_FAILURE, whose message is the script's reason or
  //   lua_pcall(auth_passdb_lookup, 1, 2) failed: FILE:LINE: <error>   (a raised Lua error)
  //   db-lua: auth_passdb_lookup(req) invalid return value (expected nil or table, got string)
  luaRequestLog: /^.* auth-worker\((?<user>[^,)]*),[^)]*\)<\d+><[^>]*>: request \[\d+\]: (?<level>Debug|Info|Warning|Error): lua: db-lua: (?<message>.*)$/m,

  // Lines written with dovecot.i_debug/i_info/i_warning/i_error, in script_init() or in a hook.
  // They carry no user or session: auth: Info: MESSAGE, auth-worker(PID): Info: MESSAGE
  luaProcessLog: /^.* (?<process>auth|auth-worker)(?:\(\d+\))?: (?<level>Debug|Info|Warning|Error): (?<message>.*)$/m,

  // The built-in oauth2 validation rejected the token before any passdb lookup:
  // auth(USER,IP,sasl:xoauth2)<SESSION>: Info: xoauth2: oauth2 failed: Introspection failed: Username 'a' did not match 'b'
  // (Error instead of Info when Dovecot counts it as an internal failure, e.g. "invalid token provided").
  oauth2Failed: /^.* auth\((?<user>[^,)]*),[^)]*\)<[^>]*>: (?<level>Info|Error): (?<mech>xoauth2|oauthbearer): oauth2 failed: (?<message>.*)$/m,

  // auth: Error: auth-worker: Aborted PASSL request for USER: Worker process died unexpectedly: Connection closed
  workerDied: /^.* auth: Error: auth-worker: Aborted PASSL request for (?<user>\S+): Worker process died unexpectedly.*$/m,

  // auth: Fatal: passdb-lua: script_init() failed: lua_pcall(script_init, 1, 0) failed: FILE:LINE: <error>
  luaInitFailed: /^.* auth: Fatal: passdb-lua: script_init\(\) failed: (?<message>.*)$/m,

  anyFatal: /^.*: Fatal: .*$/m,
};

/**
 * Builds the trixie root, or finds it cached, with scripts/build-trixie-root.sh.
 * Resolves to { root, seconds, output } or rejects with the script's output.
 */
export function prepareTrixieRoot({ root = DEFAULT_TRIXIE_ROOT } = {}) {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    execFile(BUILD_ROOT_SCRIPT, [root], { timeout: BUILD_TIMEOUT_MS, maxBuffer: OUTPUT_LIMIT_CHARS }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`.trim();
      if (err) {
        reject(new Error(`${BUILD_ROOT_SCRIPT} ${root} failed (${err.code ?? err.signal}): ${output}`));
        return;
      }
      resolve({ root, seconds: (Date.now() - started) / 1000, output });
    });
  });
}

/**
 * Turns the bridge's settings file format (one `key = value` a line, `#`
 * comments, optionally double-quoted values) into the lines of a Dovecot
 * `lua_settings { }` block, each value double-quoted for Dovecot's config parser.
 */
export function renderLuaSettings(bridgeSettings) {
  const lines = [];
  for (const [index, rawLine] of bridgeSettings.split(/\r?\n/).entries()) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([^\s=]+)\s*=\s*(.*)$/.exec(line);
    if (!match) {
      throw new Error(`renderLuaSettings: line ${index + 1} is not "key = value": ${JSON.stringify(rawLine)}`);
    }
    const [, key, rawValue] = match;
    // Dovecot's config parser ends a key at white space, '=' or '{', and '}' closes the block.
    if (/[{}"\\]/.test(key)) {
      throw new Error(`renderLuaSettings: key ${JSON.stringify(key)} on line ${index + 1} cannot be written as a Dovecot setting name`);
    }
    const value = /^".*"$/.test(rawValue) ? rawValue.slice(1, -1) : rawValue;
    lines.push(`${key} = ${quoteConfigValue(value)}`);
  }
  return lines;
}

/** Quotes a value for dovecot.conf, where `"` and `\` are escaped with `\`. */
export function quoteConfigValue(value) {
  if (/[\r\n]/.test(value)) throw new Error('Dovecot config values cannot contain line breaks');
  return `"${value.replace(/[\\"]/g, (character) => `\\${character}`)}"`;
}

function indent(text, prefix) {
  return text.split('\n').filter((line) => line.trim() !== '').map((line) => `${prefix}${line.trim()}`).join('\n');
}

/**
 * Renders dovecot.conf for one instance. `instanceDir` is the path inside the
 * root, and every file that Dovecot reads or writes is below it. So the instance
 * never reads the root's /etc/dovecot or writes to its /run/dovecot or
 * /var/lib/dovecot. With `passdbConfig` null there is no Lua passdb, and with
 * `oauth2` undefined there is no oauth2 block.
 */
export function renderDovecot24Config({
  instanceDir, imapPort, instanceName, luaScriptPath, luaSettingsLines = [], passdbConfig = DEFAULT_LUA_PASSDB_CONFIG,
  oauth2, mechanisms, passwdPath, extraConfig = '',
}) {
  const oauth2Block = oauth2 === undefined ? '' : `oauth2 {
${Object.entries(oauth2).map(([key, value]) => `  ${key} = ${quoteConfigValue(String(value))}`).join('\n')}
}
`;

  const settingsBlock = luaSettingsLines.length === 0 ? '' : `  lua_settings {
${luaSettingsLines.map((line) => `    ${line}`).join('\n')}
  }
`;
  const luaPassdb = passdbConfig === null ? '' : `passdb lua {
  lua_file = ${luaScriptPath}
${settingsBlock}${indent(passdbConfig, '  ')}
}
`;

  const passwdPassdb = passwdPath === undefined ? '' : `passdb passwd-file {
  passwd_file_path = ${passwdPath}
  default_password_scheme = PLAIN
  mechanisms_filter = plain login
}
`;

  return `# Written by spec/integration/lib/dovecot24.mjs for one test run.
dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
base_dir = ${instanceDir}/run
state_dir = ${instanceDir}/state
instance_name = ${instanceName}
log_path = ${instanceDir}/dovecot.log

protocols = imap
listen = 127.0.0.1
ssl = no
# XOAUTH2 and OAUTHBEARER are plaintext mechanisms for Dovecot, so without TLS
# they are offered and accepted only when cleartext authentication is allowed.
auth_allow_cleartext = yes

auth_mechanisms = ${mechanisms}
auth_verbose = yes
auth_debug = yes
# Tests assert that tokens never reach the log, so keep the defaults explicit.
auth_verbose_passwords = no
auth_debug_passwords = no
# Without a cache every login reaches the passdb, which the tests count on.
auth_cache_size = 0
auth_failure_delay = 0
auth_internal_failure_delay = 0

${oauth2Block}
${luaPassdb}
${passwdPassdb}
userdb static {
  fields {
    uid = ${MAIL_USER}
    gid = ${MAIL_GROUP}
    home = ${instanceDir}/mail/%{user}
  }
}
mail_driver = maildir
mail_path = ~/Maildir
namespace inbox {
  inbox = yes
}

service imap-login {
  inet_listener imap {
    port = ${imapPort}
  }
  inet_listener imaps {
    port = 0
  }
}

# With no anvil-auth-penalty socket the auth process turns its per-IP penalty
# off; otherwise each failed login from 127.0.0.1 delays the next one.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
${extraConfig}
`;
}

/**
 * Starts Dovecot 2.4 from `root` on a free port of 127.0.0.1 and resolves once
 * the IMAP port sends its greeting.
 *
 * root: a root built by scripts/build-trixie-root.sh (default DEFAULT_TRIXIE_ROOT).
 * luaScript: host path of the Lua passdb script; a copy goes into the instance directory.
 * bridgeSettings: settings in the bridge's `key = value` file format, passed to
 *   script_init() through `lua_settings { }`.
 * passdbConfig: lines for the `passdb lua { }` block after lua_file and
 *   lua_settings (default DEFAULT_LUA_PASSDB_CONFIG); null leaves the Lua passdb out.
 * oauth2: { key: value } for the top-level `oauth2 { }` block, e.g.
 *   { introspection_mode: 'auth', introspection_url, username_attribute: 'email' }.
 * mechanisms: auth_mechanisms (default: plain login, plus xoauth2 oauthbearer when oauth2 is set).
 * passwdUsers: { name: password }; when not empty, a passwd-file passdb for PLAIN and LOGIN.
 * extraConfig: appended to dovecot.conf.
 * dir: optional host directory; stop() copies dovecot.log there as dovecot24.log.
 * keepInstanceDir: leave the instance directory in the root after stop(), for debugging.
 */
export async function startDovecot24({
  root = DEFAULT_TRIXIE_ROOT, luaScript, bridgeSettings = '', passdbConfig = DEFAULT_LUA_PASSDB_CONFIG, oauth2,
  mechanisms, passwdUsers = {}, extraConfig = '', dir, keepInstanceDir = false,
}) {
  checkStartOptions({ root, luaScript, passdbConfig, dir });
  const luaSettingsLines = renderLuaSettings(bridgeSettings);
  const authMechanisms = mechanisms ?? (oauth2 === undefined ? 'plain login' : 'plain login xoauth2 oauthbearer');

  const authGid = lookupId(path.join(root, 'etc/group'), AUTH_PROCESS_GROUP);
  const mailUid = lookupId(path.join(root, 'etc/passwd'), MAIL_USER);
  const mailGid = lookupId(path.join(root, 'etc/group'), MAIL_GROUP);

  const hostInstanceDir = fs.mkdtempSync(path.join(root, INSTANCE_PARENT, 'test-'));
  const instanceDir = path.join(INSTANCE_PARENT, path.basename(hostInstanceDir));
  const inRoot = (name) => ({ host: path.join(hostInstanceDir, name), chroot: path.join(instanceDir, name) });
  fs.chmodSync(hostInstanceDir, 0o755);

  const removeInstanceDir = () => {
    if (!keepInstanceDir) fs.rmSync(hostInstanceDir, { recursive: true, force: true });
  };

  try {
    const script = inRoot('passdb.lua');
    if (luaScript !== undefined) {
      fs.copyFileSync(luaScript, script.host);
      fs.chmodSync(script.host, 0o644);
    }

    let passwd;
    if (Object.keys(passwdUsers).length > 0) {
      passwd = inRoot('passwd');
      const lines = Object.entries(passwdUsers).map(([name, password]) => `${name}:{PLAIN}${password}\n`);
      fs.writeFileSync(passwd.host, lines.join(''), { mode: 0o640 });
      fs.chownSync(passwd.host, 0, authGid);
    }

    const mailDir = inRoot('mail');
    fs.mkdirSync(mailDir.host);
    fs.chownSync(mailDir.host, mailUid, mailGid);

    const instanceName = `oauth2-test24-${randomBytes(4).toString('hex')}`;
    const config = inRoot('dovecot.conf');
    const log = inRoot('dovecot.log');

    let lastError;
    for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
      const imapPort = await findFreePort();
      fs.writeFileSync(config.host, renderDovecot24Config({
        instanceDir, imapPort, instanceName, luaScriptPath: script.chroot, luaSettingsLines, passdbConfig,
        oauth2, mechanisms: authMechanisms, passwdPath: passwd?.chroot, extraConfig,
      }), { mode: 0o644 });
      // A socket left by an earlier attempt would defeat the anvil-auth-penalty setting.
      fs.rmSync(inRoot('run').host, { recursive: true, force: true });

      const attemptLogOffset = logSize(log.host);
      const instance = launch({ root, configPath: config.chroot });
      const checkFailure = () => {
        if (instance.exited) return 'the Dovecot master process exited';
        const fatal = LOG_PATTERNS_24.anyFatal.exec(readLogSince(log.host, attemptLogOffset));
        return fatal ? `Dovecot logged a fatal error: ${fatal[0]}` : undefined;
      };
      try {
        await waitForGreeting(imapPort, { timeoutMs: START_TIMEOUT_MS, checkFailure });
      } catch (err) {
        await instance.terminate();
        const output = instance.output();
        const logText = readLogSince(log.host, attemptLogOffset);
        lastError = new Error(
          `Dovecot 2.4 did not start on 127.0.0.1:${imapPort} (attempt ${attempt} of ${START_ATTEMPTS}): ${err.message}\n` +
          `--- dovecot stdout/stderr ---\n${output}\n--- last lines of ${log.host} ---\n${lastLines(logText) || '(empty or missing)'}`,
        );
        lastError.log = logText;
        lastError.output = output;
        if (/Address already in use/.test(output) || /Address already in use/.test(logText)) continue;
        throw lastError;
      }

      return makeInstance({
        root, dir, hostInstanceDir, instanceDir, instanceName, imapPort, instance, config, log, removeInstanceDir,
      });
    }
    throw lastError;
  } catch (err) {
    if (err.log !== undefined && dir !== undefined) {
      fs.writeFileSync(path.join(dir, 'dovecot24.log'), err.log);
    }
    removeInstanceDir();
    throw err;
  }
}

function makeInstance({ root, dir, hostInstanceDir, instanceDir, instanceName, imapPort, instance, config, log, removeInstanceDir }) {
  // After stop() the instance directory is gone, so the log is read from this copy.
  let savedLog;
  const currentLog = () => savedLog ?? readLogSince(log.host, 0);
  const savedLogPath = dir === undefined ? undefined : path.join(dir, 'dovecot24.log');

  let stopping;
  const stop = () => {
    stopping ??= (async () => {
      await instance.terminate();
      savedLog = readLogSince(log.host, 0);
      if (savedLogPath !== undefined) fs.writeFileSync(savedLogPath, savedLog);
      removeInstanceDir();
    })();
    return stopping;
  };

  return {
    root,
    hostInstanceDir,
    instanceDir,
    instanceName,
    imapPort,
    pid: instance.pid,
    configPath: config.host,
    chrootConfigPath: config.chroot,
    logPath: log.host,
    savedLogPath,
    readLog: () => currentLog(),
    logOffset: () => Buffer.byteLength(currentLog()),
    logSince: (offset) => Buffer.from(currentLog()).subarray(offset).toString('utf8'),
    waitForLog: (pattern, options) => waitForLogLine(log.host, pattern, options),
    waitForLogLines: (pattern, count, options) => waitForLogLines(log.host, pattern, count, options),
    output: instance.output,
    // Runs doveconf inside the root on this instance's config, e.g. doveconf(['-h', 'auth_mechanisms']).
    doveconf: (args) => execFileSync('chroot', [root, DOVECONF_BINARY, '-c', config.chroot, ...args], { encoding: 'utf8' }),
    listProcesses: () => listInstance24Processes({ root, instanceName, pid: instance.pid }),
    stop,
  };
}

function checkStartOptions({ root, luaScript, passdbConfig, dir }) {
  if (typeof root !== 'string' || !path.isAbsolute(root)) {
    throw new Error(`startDovecot24: root must be an absolute path, got ${JSON.stringify(root)}`);
  }
  if (!fs.statSync(path.join(root, DOVECOT_BINARY), { throwIfNoEntry: false })?.isFile()) {
    throw new Error(`startDovecot24: ${root}${DOVECOT_BINARY} not found; build the root with ${BUILD_ROOT_SCRIPT} ${root}`);
  }
  if (passdbConfig !== null) {
    if (typeof luaScript !== 'string' || !path.isAbsolute(luaScript)) {
      throw new Error(`startDovecot24: luaScript must be an absolute path, got ${JSON.stringify(luaScript)}`);
    }
    if (!fs.statSync(luaScript, { throwIfNoEntry: false })?.isFile()) {
      throw new Error(`startDovecot24: Lua script not found: ${luaScript}`);
    }
    if (typeof passdbConfig !== 'string') {
      throw new Error('startDovecot24: passdbConfig must be a string of settings lines, or null');
    }
  }
  if (dir !== undefined && !fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`startDovecot24: dir must be an existing directory, got ${JSON.stringify(dir)}`);
  }
}

// chroot(8) calls chroot(2) and then execs dovecot, so the spawned PID is the
// Dovecot master itself. It runs in its own process group, which contains all
// of Dovecot's children.
function launch({ root, configPath }) {
  const child = spawn('chroot', [root, DOVECOT_BINARY, '-F', '-c', configPath], {
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
      capture(`chroot ${root} ${DOVECOT_BINARY} exited with code ${code}, signal ${signal}\n`);
      state.exited = true;
      resolve();
    });
    child.once('error', (err) => {
      capture(`failed to run chroot: ${err.message}\n`);
      state.exited = true;
      resolve();
    });
  });

  child.unref();
  child.stdout.unref?.();
  child.stderr.unref?.();

  let stopping;
  const terminate = () => {
    stopping ??= (async () => {
      watchdog?.disarm();
      if (!state.exited && child.pid !== undefined) {
        signalPid(child.pid, 'SIGTERM');
      }
      if (!(await raceTimeout(exitPromise, STOP_TIMEOUT_MS))) {
        capture(`master PID ${child.pid} did not exit ${STOP_TIMEOUT_MS} ms after SIGTERM; sending SIGKILL to its process group\n`);
        signalPid(-child.pid, 'SIGKILL');
        await exitPromise;
      }
      // The master reaps its children before it exits; this catches one that outlived it.
      if (!(await waitForGroupExit(child.pid, STOP_TIMEOUT_MS))) signalPid(-child.pid, 'SIGKILL');
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

// Sends SIGTERM to the master once this Node process ends without stop(), as
// dovecot.mjs does for Dovecot 2.3.
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
    disarm() {
      if (watchdog.exitCode === null && watchdog.signalCode === null) watchdog.kill('SIGKILL');
    },
  };
}

function signalPid(pid, signal) {
  try {
    process.kill(pid, signal);
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

function lookupId(databasePath, name) {
  const line = fs.readFileSync(databasePath, 'utf8').split('\n').find((entry) => entry.startsWith(`${name}:`));
  if (!line) throw new Error(`startDovecot24: ${name} not found in ${databasePath}; is dovecot-core installed in the root?`);
  return Number(line.split(':')[2]);
}

function logSize(logPath) {
  return fs.statSync(logPath, { throwIfNoEntry: false })?.size ?? 0;
}

function lastLines(text, count = LOG_TAIL_LINES) {
  return text.split('\n').slice(-count - 1).join('\n');
}

/**
 * Lists PIDs of live processes in `root` that belong to one instance: the master
 * (by PID) and every process whose title names the instance
 * ("dovecot-INSTANCE/SERVICE"). After stop() this returns [].
 */
export function listInstance24Processes({ root, instanceName, pid }) {
  const pids = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let commandLine;
    let processRoot;
    try {
      commandLine = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      processRoot = fs.readlinkSync(`/proc/${entry}/root`);
    } catch {
      continue;
    }
    if (processRoot !== root) continue;
    if (Number(entry) === pid || commandLine.includes(`dovecot-${instanceName}/`)) {
      pids.push(Number(entry));
    }
  }
  return pids;
}
