// Private Dovecot 2.3 instances for `make bench`, one per passdb variant. The configuration
// comes from the integration harness (renderDovecotConfig), with the Lua passdb replaced by the
// variant's passdb and the settings in `extraConfig` appended. Every path is inside the
// instance's directory, so the system's Dovecot and /etc/dovecot are not used.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { LOG_PATTERNS, readLogSince, renderDovecotConfig } from '../spec/integration/lib/dovecot.mjs';
import { findFreePort, waitForGreeting } from '../spec/integration/lib/ports.mjs';

const DOVECOT_BINARY = '/usr/sbin/dovecot';
const AUTH_PROCESS_GROUP = 'dovecot';
const START_ATTEMPTS = 3;
const START_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 10000;
const OUTPUT_LIMIT_CHARS = 64 * 1024;
const LOG_TAIL_LINES = 30;

/**
 * Starts `dovecot -F` for one variant in `dir` (created if missing) and resolves once its IMAP
 * port sends a greeting, which imap-login does only after the auth process is ready.
 *
 * `passdb` is `{ driver: 'lua', script }` for a Lua passdb with blocking=yes, or
 * `{ driver: 'oauth2', settings }` for Dovecot's oauth2 driver with these
 * dovecot-oauth2.conf.ext contents. `bridgeSettings` is the bridge's settings file.
 * `onLaunch({ name, pid, stop })` is called for each master process as soon as it is spawned,
 * so that a caller interrupted during the start can still stop it.
 * Throws when Dovecot does not start; the error contains the fatal log line, if any.
 */
export async function startBenchDovecot({ name, dir, passdb, bridgeSettings = '', extraConfig = '', onLaunch = () => {} }) {
  const authGid = lookupGroupId(AUTH_PROCESS_GROUP);
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o755);

  // The auth process runs the script's script_init() as user dovecot and reads the settings.
  const luaScript = path.join(dir, 'passdb.lua');
  if (passdb.driver === 'lua') {
    fs.copyFileSync(passdb.script, luaScript);
    fs.chmodSync(luaScript, 0o644);
  }
  const settingsPath = path.join(dir, 'oauth2-bridge.conf');
  writeAuthReadableFile(settingsPath, bridgeSettings, authGid);
  const passwdPath = path.join(dir, 'passwd');
  writeAuthReadableFile(passwdPath, '', authGid);
  const oauth2SettingsPath = path.join(dir, 'dovecot-oauth2.conf.ext');
  if (passdb.driver === 'oauth2') {
    writeAuthReadableFile(oauth2SettingsPath, passdb.settings, authGid);
  }

  const instanceName = `oauth2-bench-${randomBytes(4).toString('hex')}`;
  const configPath = path.join(dir, 'dovecot.conf');
  const logPath = path.join(dir, 'dovecot.log');

  let lastError;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const imapPort = await findFreePort();
    const baseConfig = renderDovecotConfig({ dir, imapPort, instanceName, luaScript, settingsPath, passwdPath, extraConfig });
    const config = passdb.driver === 'lua' ? baseConfig : replaceLuaPassdb(baseConfig, luaScript, oauth2SettingsPath);
    fs.writeFileSync(configPath, config, { mode: 0o644 });
    // A socket file left by an earlier attempt would defeat the anvil-auth-penalty setting.
    fs.rmSync(path.join(dir, 'run'), { recursive: true, force: true });

    const logOffset = fs.statSync(logPath, { throwIfNoEntry: false })?.size ?? 0;
    const master = launchMaster(configPath);
    onLaunch({ name, pid: master.pid, stop: master.stop });
    const checkFailure = () => {
      if (master.exited) return 'the Dovecot master process exited';
      const fatal = LOG_PATTERNS.anyFatal.exec(readLogSince(logPath, logOffset));
      return fatal ? `Dovecot logged a fatal error: ${fatal[0]}` : undefined;
    };
    try {
      await waitForGreeting(imapPort, { timeoutMs: START_TIMEOUT_MS, checkFailure });
    } catch (err) {
      await master.stop();
      const log = readLogSince(logPath, logOffset);
      lastError = new Error(
        `${name}: Dovecot did not start on 127.0.0.1:${imapPort} (attempt ${attempt} of ${START_ATTEMPTS}): ${err.message}\n` +
          `--- dovecot output ---\n${master.output()}\n--- last lines of ${logPath} ---\n${lastLines(log)}`,
      );
      lastError.fatalLine = LOG_PATTERNS.anyFatal.exec(log)?.[0];
      if (/Address already in use/.test(master.output() + log)) continue;
      throw lastError;
    }

    return {
      name,
      dir,
      pid: master.pid,
      instanceName,
      configPath,
      logPath,
      authSocket: path.join(dir, 'run', 'auth-client'),
      readLog: () => readLogSince(logPath, 0),
      logTail: () => lastLines(readLogSince(logPath, 0)),
      stop: master.stop,
    };
  }
  throw lastError;
}

// renderDovecotConfig always writes the bridge's Lua passdb. The oauth2 variants need
// Dovecot's driver in its place, with the same mechanisms filter.
function replaceLuaPassdb(config, luaScript, oauth2SettingsPath) {
  const luaBlock = `passdb {
  driver = lua
  mechanisms = xoauth2 oauthbearer
  args = file=${luaScript} blocking=yes
}`;
  const oauth2Block = `passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = ${oauth2SettingsPath}
}`;
  if (!config.includes(luaBlock)) {
    throw new Error('renderDovecotConfig no longer writes the expected Lua passdb block; update replaceLuaPassdb in bench/dovecot-instance.mjs');
  }
  return config.replace(luaBlock, oauth2Block);
}

// Spawns the master in the foreground in its own process group, so that the PID and the group
// are ours to signal, with a watchdog that stops it if this Node process dies without cleanup.
function launchMaster(configPath) {
  const child = spawn(DOVECOT_BINARY, ['-F', '-c', configPath], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let captured = '';
  const capture = (chunk) => {
    captured = (captured + chunk.toString('utf8')).slice(-OUTPUT_LIMIT_CHARS);
  };
  child.stdout.on('data', capture);
  child.stderr.on('data', capture);
  const watchdog = startWatchdog(child.pid);

  const state = { exited: false };
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      watchdog?.disarm();
      capture(`${DOVECOT_BINARY} exited with code ${code}, signal ${signal}\n`);
      state.exited = true;
      resolve();
    });
    child.once('error', (err) => {
      watchdog?.disarm();
      capture(`failed to run ${DOVECOT_BINARY}: ${err.message}\n`);
      state.exited = true;
      resolve();
    });
  });
  child.unref();
  child.stdout.unref?.();
  child.stderr.unref?.();

  let stopping;
  const stop = () => {
    stopping ??= (async () => {
      watchdog?.disarm();
      if (!state.exited && child.pid !== undefined) signalProcess(child.pid, 'SIGTERM');
      if (!(await withTimeout(exited, STOP_TIMEOUT_MS))) {
        capture(`master PID ${child.pid} did not exit ${STOP_TIMEOUT_MS} ms after SIGTERM; sending SIGKILL to its process group\n`);
        signalProcess(-child.pid, 'SIGKILL');
        await exited;
      }
      // The master reaps its children before it exits. This check catches one that outlived it.
      if (child.pid !== undefined && !(await waitForGroupExit(child.pid, STOP_TIMEOUT_MS))) {
        signalProcess(-child.pid, 'SIGKILL');
        if (!(await waitForGroupExit(child.pid, STOP_TIMEOUT_MS))) {
          throw new Error(`processes of group ${child.pid} (${configPath}) are still running after SIGKILL`);
        }
      }
    })();
    return stopping;
  };

  return {
    pid: child.pid,
    get exited() {
      return state.exited;
    },
    output: () => captured,
    stop,
  };
}

// A shell that sends SIGTERM to the master once its stdin reaches EOF, which happens when this
// Node process ends without stop(), e.g. after SIGKILL. It runs in its own session, so a Ctrl-C
// aimed at `make` does not end it first.
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
    // Called before a deliberate stop, so the shell never signals a PID reused after the master exited.
    disarm() {
      if (watchdog.exitCode === null && watchdog.signalCode === null) watchdog.kill('SIGKILL');
    },
  };
}

/** Returns true when no process of group `groupId` is left. */
export function processGroupGone(groupId) {
  try {
    process.kill(-groupId, 0);
    return false;
  } catch (err) {
    if (err.code === 'ESRCH') return true;
    throw err;
  }
}

async function waitForGroupExit(groupId, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (processGroupGone(groupId)) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

function signalProcess(pid, signal) {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if (err.code !== 'ESRCH') throw err;
  }
}

async function withTimeout(promise, timeoutMs) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const finished = await Promise.race([promise.then(() => true), timeout]);
  clearTimeout(timer);
  return finished;
}

/**
 * Lists the auth process and the auth-worker processes of the instance whose master has PID
 * `masterPid`: its children (PPID) in its process group, distinguished by their command lines.
 * With verbose_proctitle = no (the default), Dovecot 2.3.19 shows them as
 * "dovecot-INSTANCE/auth" and "dovecot-INSTANCE/auth -w"; with verbose_proctitle = yes a worker
 * shows "auth worker: ...". Each entry has `pid`, `role` ('auth' or 'auth-worker'), `title`
 * and `rssKb` (VmRSS from /proc/PID/status).
 */
export function listAuthProcesses(masterPid) {
  const processes = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProcStat(entry);
    if (stat === undefined || stat.ppid !== masterPid || stat.pgrp !== masterPid) continue;
    let title;
    try {
      title = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0+$/, '').replaceAll('\0', ' ');
    } catch {
      continue;
    }
    const role = /\/auth (?:-w|worker)\b/.test(title) ? 'auth-worker' : /\/auth(?: \[|$)/.test(title) ? 'auth' : undefined;
    if (role === undefined) continue;
    const rssKb = readRssKb(entry);
    if (rssKb !== undefined) processes.push({ pid: Number(entry), role, title, rssKb });
  }
  return processes;
}

/**
 * Returns the CPU time in clock ticks, `{ user, system }`, used so far by the live processes in
 * the process group of the master with PID `masterPid`. The time of processes that already
 * exited is not included.
 */
export function instanceCpuTicks(masterPid) {
  const ticks = { user: 0, system: 0 };
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProcStat(entry);
    if (stat === undefined || stat.pgrp !== masterPid) continue;
    ticks.user += stat.utime;
    ticks.system += stat.stime;
  }
  return ticks;
}

/** Returns the CPU time in clock ticks, `{ user, system }`, used so far by process `pid`, or undefined when it is gone. */
export function processCpuTicks(pid) {
  const stat = readProcStat(pid);
  return stat && { user: stat.utime, system: stat.stime };
}

// /proc/PID/stat: "pid (comm) state ppid pgrp ... utime stime ...", where comm may contain
// spaces and parentheses. See proc(5).
function readProcStat(pid) {
  let text;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(fields[1]), pgrp: Number(fields[2]), utime: Number(fields[11]), stime: Number(fields[12]) };
}

function readRssKb(pid) {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

function writeAuthReadableFile(filePath, contents, gid) {
  fs.writeFileSync(filePath, contents, { mode: 0o640 });
  fs.chmodSync(filePath, 0o640);
  fs.chownSync(filePath, 0, gid);
}

/** Returns the GID of group `name` from /etc/group. */
export function lookupGroupId(name) {
  const line = fs.readFileSync('/etc/group', 'utf8').split('\n').find((entry) => entry.startsWith(`${name}:`));
  if (!line) throw new Error(`group ${name} not found in /etc/group; is dovecot-core installed?`);
  return Number(line.split(':')[2]);
}

function lastLines(text, count = LOG_TAIL_LINES) {
  return text.split('\n').slice(-count - 1).join('\n') || '(empty)';
}
