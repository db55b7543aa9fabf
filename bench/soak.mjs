#!/usr/bin/env node
// `make soak`: a long run of mixed logins through one private Dovecot 2.3 with the bridge, which
// checks that every login gets the expected reply, that no auth worker crashes or restarts and
// that the workers' memory stays flat.
//
// It starts the identity provider stub (bench/idp-stub.mjs) and one Dovecot with the bridge, all on
// 127.0.0.1 in a temporary directory. Dovecot is set up as the "bridge" instance of `make bench`:
// 30 auth workers, Dovecot's auth cache off and the bridge's token cache on at its defaults. It then
// sends XOAUTH2 logins straight to the auth-client socket (bench/auth-client.mjs), 32 in flight
// over 4 connections, in a fixed pseudo-random mix:
//   about 80% good tokens of users with a mailbox                     -> expected OK
//   about 10% made-up tokens (a new one for each login) for those users -> expected FAIL
//   about 10% good tokens of users the IdP knows but who have no mailbox -> expected FAIL
// Of the SOAK_USERS users, 90% have a mailbox (a line in the bridge's account file) and 10% are
// known to the IdP only.
//
// Before the soak logins, a worker start step sends 32 logins at once while the IdP stub delays
// each response by 300 ms, so that Dovecot starts all 30 auth workers. Their PIDs, found through
// the master's process tree, are the set at the start. The soak logins run in two parts: the first
// SOAK_BASELINE_LOGINS, then a pause to read each worker's VmRSS, then the rest.
//
// Checks (any failure gives exit code 1):
//   - the number of OK, FAIL and temporary-failure replies per kind of login equals the expected
//     numbers exactly: every good login OK, every other one a plain FAIL (no code=temp_fail)
//   - the set of auth-worker PIDs at the end equals the set at the start
//   - the Dovecot log has no line with Fatal, Panic, "killed with signal", a failed lua_pcall or
//     "Worker process died unexpectedly"
// Worker memory is reported, not enforced: VmRSS of each worker after the worker start step, after
// the baseline logins and at the end, the difference between the last two, and the totals.
//
// Settings (environment variables):
//   SOAK_LOGINS            soak logins in total (default 100000; 10000 for a quick run)
//   SOAK_USERS             users in total (default 10000)
//   SOAK_BASELINE_LOGINS   logins before the first memory reading (default 10000, or a tenth of
//                          SOAK_LOGINS when that is less)
//   SOAK_TIME_LIMIT_SECS   no login is sent later than this many seconds after the start (default
//                          900), and logins not sent by then count as missing
//   SOAK_KEEP_DIR=1        keep the temporary directory with the Dovecot log
//
// The table is printed and written to bench/soak-last-run.md. At the end, also after an error or
// Ctrl-C, every process the run started is stopped by PID.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { closeAllAuthClients, percentile, runLoad } from './auth-client.mjs';
import { listAuthProcesses, lookupGroupId, processCpuTicks, processGroupGone, startBenchDovecot } from './dovecot-instance.mjs';
import { forkIdpStub } from './idp-stub-process.mjs';
import { machineFacts, readClockTicks, readLoadAverage } from './machine-facts.mjs';
import { markdownTable, textTable } from './report.mjs';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const BRIDGE_SOURCE = path.join(REPO, 'lua-out', 'oauth2-bridge.lua');
const REPORT_PATH = path.join(REPO, 'bench', 'soak-last-run.md');

const EXIT_SIGNAL_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
const IN_FLIGHT = 32;
const CONNECTIONS = 4;
// The same as `make bench`, which uses Dovecot's auth_worker_max_count default.
const AUTH_WORKERS = 30;
const MAILBOX_SHARE = 0.9;
const GOOD_SHARE = 0.8;
const BAD_TOKEN_SHARE = 0.1;
// Replies may take this long after the sending stopped. A failed XOAUTH2 login alone takes up
// to about 0.5 s in Dovecot 2.3.19 even with auth_failure_delay = 0 (measured: median 0.46 s).
const REPLY_GRACE_MS = 20000;
// The stub's response delay in the worker start step, so that the logins overlap in the workers.
const SPAWN_IDP_DELAY_MS = 300;
const SPAWN_WAIT_MS = 5000;
const PROGRESS_EVERY = 10000;
// The bridge re-reads an account file changed within the last second on every lookup.
const ACCOUNT_FILE_SETTLE_MS = 2500;
// Beyond SOAK_TIME_LIMIT_SECS, the whole run is aborted after this many more seconds.
const HARD_LIMIT_EXTRA_SECS = 120;
const CLOCK_TICKS_PER_SECOND = readClockTicks();
// Log lines that mean a crash or a broken script.
const BAD_LOG_LINE = /Fatal|Panic|killed with signal|lua_pcall\([^)]*\) failed|Worker process died unexpectedly/i;

const KINDS = {
  good: { label: 'good token, mailbox', expected: 'OK' },
  badToken: { label: 'made-up token', expected: 'FAIL' },
  noMailbox: { label: 'IdP user without mailbox', expected: 'FAIL' },
};

// ---------------------------------------------------------------- settings

class SettingsError extends Error {}

function readSettings(env) {
  const logins = readInteger(env, 'SOAK_LOGINS', 100000, 100, 10000000);
  const settings = {
    logins,
    users: readInteger(env, 'SOAK_USERS', 10000, 40, 1000000),
    baselineLogins: readInteger(env, 'SOAK_BASELINE_LOGINS', Math.min(10000, Math.floor(logins / 10)), 1, logins - 1),
    timeLimitSecs: readInteger(env, 'SOAK_TIME_LIMIT_SECS', 900, 10, 86400),
    keepDir: env.SOAK_KEEP_DIR === '1',
  };
  settings.mailboxUsers = Math.round(settings.users * MAILBOX_SHARE);
  settings.idpOnlyUsers = settings.users - settings.mailboxUsers;
  return settings;
}

function readInteger(env, name, defaultValue, min, max) {
  const text = env[name];
  if (text === undefined || text === '') return defaultValue;
  const value = Number(text);
  if (text.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
    throw new SettingsError(`${name}=${text} is invalid: set a whole number from ${min} to ${max}, or unset it for ${defaultValue}`);
  }
  return value;
}

// ---------------------------------------------------------------- processes to stop

const running = { stub: undefined, masters: [] };
let workDir;
let interruptedBy;
let cleanupPromise;

function cleanup({ keepDir }) {
  cleanupPromise ??= (async () => {
    const problems = [];
    closeAllAuthClients();
    for (const master of running.masters) {
      try {
        await master.stop();
        if (!processGroupGone(master.pid)) problems.push(`${master.name}: process group ${master.pid} is still running`);
      } catch (err) {
        problems.push(`${master.name}: stopping Dovecot (PID ${master.pid}) failed: ${err.message}`);
      }
    }
    if (running.stub) {
      try {
        await running.stub.stop();
      } catch (err) {
        problems.push(`stopping the identity provider stub (PID ${running.stub.pid}) failed: ${err.message}`);
      }
    }
    const stopped = [...running.masters.map((master) => `${master.name} ${master.pid}`), running.stub && `idp-stub ${running.stub.pid}`]
      .filter(Boolean)
      .join(', ');
    if (problems.length === 0 && stopped) console.log(`Stopped (PIDs): ${stopped}.`);
    if (workDir) {
      if (keepDir) console.log(`Kept ${workDir} with the Dovecot configuration and log.`);
      else fs.rmSync(workDir, { recursive: true, force: true });
    }
    for (const problem of problems) console.error(`cleanup: ${problem}`);
    return problems;
  })();
  return cleanupPromise;
}

for (const signal of Object.keys(EXIT_SIGNAL_CODES)) {
  process.on(signal, async () => {
    if (interruptedBy) {
      console.error(`Received ${signal} again: exiting now. Dovecot's watchdog and the stub stop when this process ends.`);
      process.exit(EXIT_SIGNAL_CODES[signal]);
    }
    interruptedBy = signal;
    console.error(`\nReceived ${signal}: stopping every process the soak run started.`);
    await cleanup({ keepDir: false });
    process.exit(EXIT_SIGNAL_CODES[signal]);
  });
}

// ---------------------------------------------------------------- identity provider stub

async function startIdpStub() {
  return forkIdpStub((stub) => {
    running.stub = stub;
  });
}

// ---------------------------------------------------------------- users and the login mix

function makeUsers(settings) {
  const user = (index) => ({ user: `user${index}@example.test`, token: `tok-${index}-${randomBytes(12).toString('hex')}` });
  const withMailbox = Array.from({ length: settings.mailboxUsers }, (_, index) => user(index + 1));
  const idpOnly = Array.from({ length: settings.idpOnlyUsers }, (_, index) => user(settings.mailboxUsers + index + 1));
  return { withMailbox, idpOnly };
}

function writeAccountFile(filePath, users) {
  const lines = users.map((entry, index) => `${entry.user}|{SHA512-CRYPT}$6$bench$${String(index).padStart(64, '0')}\n`);
  fs.writeFileSync(filePath, lines.join(''), { mode: 0o640 });
  // The auth process reads it as user dovecot in script_init().
  fs.chownSync(filePath, 0, lookupGroupId('dovecot'));
}

// A fixed pseudo-random sequence (mulberry32), so that every run sends the same mix of kinds and users.
function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

function makeLoginSequence(settings, users) {
  const random = seededRandom(20240607);
  const pick = (list) => list[Math.floor(random() * list.length)];
  const sequence = [];
  for (let index = 0; index < settings.logins; index++) {
    const roll = random();
    if (roll < GOOD_SHARE) {
      const entry = pick(users.withMailbox);
      sequence.push({ kind: 'good', user: entry.user, token: entry.token });
    } else if (roll < GOOD_SHARE + BAD_TOKEN_SHARE) {
      const entry = pick(users.withMailbox);
      sequence.push({ kind: 'badToken', user: entry.user, token: `made-up-${randomBytes(12).toString('hex')}` });
    } else {
      const entry = pick(users.idpOnly);
      sequence.push({ kind: 'noMailbox', user: entry.user, token: entry.token });
    }
  }
  return sequence;
}

// ---------------------------------------------------------------- Dovecot

function dovecotConfig() {
  return `
# Added by bench/soak.mjs, as bench/run.mjs sets up its bridge instance.
auth_verbose = no
auth_debug = no
auth_cache_size = 0
auth_cache_ttl = 1 hour
auth_worker_max_count = ${AUTH_WORKERS}
service auth-worker {
  process_limit = ${AUTH_WORKERS}
}
`;
}

function bridgeSettings({ idpPort, accountFile }) {
  // No cache_* key: the token cache runs with its defaults.
  return `introspection_url = http://127.0.0.1:${idpPort}/userinfo
introspection_mode = auth
username_attribute = email
account_source = postfix-accounts
account_file = ${accountFile}
`;
}

function readWorkers(masterPid) {
  return listAuthProcesses(masterPid)
    .filter((entry) => entry.role === 'auth-worker')
    .map((entry) => ({ pid: entry.pid, rssKb: entry.rssKb, cpu: processCpuTicks(entry.pid) }))
    .sort((a, b) => a.pid - b.pid);
}

function isTemporaryFailure(reply) {
  return /\tcode=temp_fail(?:\t|$)/.test(reply) || /\ttemp(?:\t|$)/.test(reply);
}

// ---------------------------------------------------------------- the run

let nextCpid = 1000;

async function sendLogins(instance, logins, { durationMs, tally, progress }) {
  const cpidBase = nextCpid;
  nextCpid += CONNECTIONS;
  return runLoad({
    socketPath: instance.authSocket,
    cpidBase,
    connections: CONNECTIONS,
    inFlight: IN_FLIGHT,
    logins,
    order: Array.from({ length: logins.length }, (_, index) => index),
    maxRequests: logins.length,
    durationMs,
    graceMs: REPLY_GRACE_MS,
    onReply: (login, ok, reply, latencyMs) => {
      tally(login, ok, reply, latencyMs);
      progress?.();
    },
  });
}

function newTally() {
  const counts = Object.fromEntries(Object.keys(KINDS).map((kind) => [kind, { ok: 0, fail: 0, tempFail: 0, firstUnexpected: undefined, latenciesMs: [] }]));
  const tally = (login, ok, reply, latencyMs) => {
    const entry = counts[login.kind];
    entry.latenciesMs.push(latencyMs);
    if (ok) entry.ok += 1;
    else if (isTemporaryFailure(reply)) entry.tempFail += 1;
    else entry.fail += 1;
    const expectedOk = KINDS[login.kind].expected === 'OK';
    if ((ok !== expectedOk || isTemporaryFailure(reply)) && entry.firstUnexpected === undefined) {
      entry.firstUnexpected = `${login.user}: ${reply}`;
    }
  };
  return { counts, tally };
}

async function main() {
  const startedAt = Date.now();
  const settings = readSettings(process.env);
  if (process.getuid() !== 0) {
    throw new Error('make soak needs root: it starts a private Dovecot instance, which drops privileges to its own users');
  }
  const hardLimit = setTimeout(async () => {
    console.error(`The soak run ran for ${settings.timeLimitSecs + HARD_LIMIT_EXTRA_SECS} s (SOAK_TIME_LIMIT_SECS plus ${HARD_LIMIT_EXTRA_SECS} s) and is aborted.`);
    await cleanup({ keepDir: true });
    process.exit(1);
  }, (settings.timeLimitSecs + HARD_LIMIT_EXTRA_SECS) * 1000);
  hardLimit.unref();

  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oauth2-soak-'));
  fs.chmodSync(workDir, 0o755);
  const bridgeScript = path.join(workDir, 'oauth2-bridge.lua');
  fs.copyFileSync(BRIDGE_SOURCE, bridgeScript);

  const facts = machineFacts(REPO, bridgeScript);
  console.log(
    `Soak run: ${settings.logins} logins, ${IN_FLIGHT} in flight over ${CONNECTIONS} connections, ${settings.users} users ` +
      `(${settings.mailboxUsers} with a mailbox, ${settings.idpOnlyUsers} known to the IdP only), ${AUTH_WORKERS} auth workers.`,
  );
  console.log(`Bridge lua-out/oauth2-bridge.lua, sha256 ${facts.scriptSha256}… (git ${facts.gitRevision}); Dovecot ${facts.dovecotVersion}.`);
  console.log(`Load average at start: ${facts.loadAverageAtStart} on ${facts.nproc} CPUs; other work on the machine slows the run.`);

  const users = makeUsers(settings);
  const accountFile = path.join(workDir, 'postfix-accounts.cf');
  writeAccountFile(accountFile, users.withMailbox);
  const accountFileWrittenAt = Date.now();
  const sequence = makeLoginSequence(settings, users);
  const expected = Object.fromEntries(Object.keys(KINDS).map((kind) => [kind, sequence.filter((login) => login.kind === kind).length]));

  const stub = await startIdpStub();
  const allUsers = [...users.withMailbox, ...users.idpOnly];
  await stub.call({ type: 'configure', delayMs: 0, tokens: Object.fromEntries(allUsers.map((entry) => [entry.token, entry.user])) });
  const idpPort = (await stub.call({ type: 'listen', name: 'soak' })).port;
  console.log(`Identity provider stub: PID ${stub.pid}, http://127.0.0.1:${idpPort}/userinfo`);

  const instance = await startBenchDovecot({
    name: 'soak',
    dir: path.join(workDir, 'soak'),
    onLaunch: (master) => running.masters.push(master),
    passdb: { driver: 'lua', script: bridgeScript },
    bridgeSettings: bridgeSettings({ idpPort, accountFile }),
    extraConfig: dovecotConfig(),
  });
  console.log(`Dovecot with the bridge: master PID ${instance.pid}, ${instance.authSocket}`);

  const settleMs = accountFileWrittenAt + ACCOUNT_FILE_SETTLE_MS - Date.now();
  if (settleMs > 0) await new Promise((resolve) => setTimeout(resolve, settleMs));

  // Worker start step: overlapping logins of distinct users make Dovecot start every worker.
  await stub.call({ type: 'delay', delayMs: SPAWN_IDP_DELAY_MS });
  const spawnLogins = users.withMailbox.slice(0, IN_FLIGHT).map((entry) => ({ kind: 'good', user: entry.user, token: entry.token }));
  const spawnTally = newTally();
  await sendLogins(instance, spawnLogins, { durationMs: 60000, tally: spawnTally.tally });
  await stub.call({ type: 'delay', delayMs: 0 });
  const spawnWaitUntil = Date.now() + SPAWN_WAIT_MS;
  let startWorkers = readWorkers(instance.pid);
  while (startWorkers.length < AUTH_WORKERS && Date.now() < spawnWaitUntil) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    startWorkers = readWorkers(instance.pid);
  }
  const spawnOk = spawnTally.counts.good.ok === spawnLogins.length;
  console.log(
    `Worker start step: ${spawnTally.counts.good.ok} of ${spawnLogins.length} logins OK with the IdP delaying each response by ${SPAWN_IDP_DELAY_MS} ms; ` +
      `${startWorkers.length} auth workers at the start (limit ${AUTH_WORKERS}).`,
  );
  if (interruptedBy) return 1;

  // The soak logins, in two parts with a memory reading between them.
  const { counts, tally } = newTally();
  const soakStartedAt = Date.now();
  const sendUntil = startedAt + settings.timeLimitSecs * 1000;
  let replies = 0;
  let lastProgressAt = soakStartedAt;
  const progress = () => {
    replies += 1;
    if (replies % PROGRESS_EVERY !== 0) return;
    const now = Date.now();
    console.log(`  ${replies} replies received, ${((PROGRESS_EVERY * 1000) / (now - lastProgressAt)).toFixed(0)}/s over the last ${PROGRESS_EVERY}`);
    lastProgressAt = now;
  };
  const baselineLoad = await sendLogins(instance, sequence.slice(0, settings.baselineLogins), { durationMs: Math.max(1, sendUntil - Date.now()), tally, progress });
  const baselineWorkers = readWorkers(instance.pid);
  const baselineAt = Date.now();
  console.log(`Memory baseline after ${baselineLoad.okCount + baselineLoad.failCount} logins: ${baselineWorkers.length} workers, VmRSS total ${sumRss(baselineWorkers)} kB.`);
  if (interruptedBy) return 1;
  const restLoad = await sendLogins(instance, sequence.slice(settings.baselineLogins), { durationMs: Math.max(1, sendUntil - Date.now()), tally, progress });
  const soakSeconds = (Date.now() - soakStartedAt) / 1000;
  const endWorkers = readWorkers(instance.pid);
  if (interruptedBy) return 1;

  // ------------------------------------------------------------ checks
  const replied = baselineLoad.okCount + baselineLoad.failCount + restLoad.okCount + restLoad.failCount;
  const outcomeRows = Object.entries(KINDS).map(([kind, { label, expected: want }]) => {
    const entry = counts[kind];
    const expectedOk = want === 'OK' ? expected[kind] : 0;
    const expectedFail = want === 'FAIL' ? expected[kind] : 0;
    const match = entry.ok === expectedOk && entry.fail === expectedFail && entry.tempFail === 0;
    const sorted = Float64Array.from(entry.latenciesMs).sort();
    return {
      label,
      expected: `${expected[kind]} ${want}`,
      ok: entry.ok,
      fail: entry.fail,
      tempFail: entry.tempFail,
      match,
      firstUnexpected: entry.firstUnexpected,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
    };
  });
  const countsMatch = outcomeRows.every((row) => row.match) && replied === settings.logins;

  const startPids = new Set(startWorkers.map((worker) => worker.pid));
  const endPids = new Set(endWorkers.map((worker) => worker.pid));
  // NOTE: The auth process closes a worker that was idle for 5 minutes (AUTH_WORKER_MAX_IDLE_SECS in
  // Dovecot's src/auth/auth-worker-server.c), and this check reports that as a missing PID although
  // it is no crash. With this mix every worker gets logins well within that time.
  const missingPids = [...startPids].filter((pid) => !endPids.has(pid));
  const newPids = [...endPids].filter((pid) => !startPids.has(pid));
  const workersSame = missingPids.length === 0 && newPids.length === 0 && startPids.size > 0;

  const badLines = instance
    .readLog()
    .split('\n')
    .filter((line) => BAD_LOG_LINE.test(line));
  const logClean = badLines.length === 0;

  const checks = [
    {
      name: 'outcomes',
      ok: countsMatch,
      text: countsMatch
        ? `all ${settings.logins} logins got the expected reply: ${expected.good} OK, ${expected.badToken + expected.noMailbox} FAIL, no temporary failure`
        : `${replied} of ${settings.logins} logins got a reply; see the outcome table for the kinds that differ`,
    },
    {
      name: 'auth workers',
      ok: workersSame,
      text: workersSame
        ? `the same ${startPids.size} auth-worker PIDs at the start and at the end`
        : `${startPids.size} worker PIDs at the start, ${endPids.size} at the end; missing at the end: ${missingPids.join(' ') || 'none'}; new: ${newPids.join(' ') || 'none'}`,
    },
    {
      name: 'Dovecot log',
      ok: logClean,
      text: logClean ? 'no Fatal, Panic, "killed with signal", failed lua_pcall or "Worker process died unexpectedly" line' : `${badLines.length} such line(s), first: ${badLines[0]}`,
    },
    {
      name: 'worker start step',
      ok: spawnOk,
      text: `${spawnTally.counts.good.ok} of ${spawnLogins.length} logins OK`,
    },
  ];
  const passed = checks.every((check) => check.ok);

  // ------------------------------------------------------------ memory
  const baselineByPid = new Map(baselineWorkers.map((worker) => [worker.pid, worker]));
  const endByPid = new Map(endWorkers.map((worker) => [worker.pid, worker]));
  const startByPid = new Map(startWorkers.map((worker) => [worker.pid, worker]));
  const memoryPids = [...new Set([...baselineByPid.keys(), ...endByPid.keys()])].sort((a, b) => a - b);
  const memoryRows = memoryPids.map((pid) => {
    const before = baselineByPid.get(pid);
    const after = endByPid.get(pid);
    const cpuFrom = startByPid.get(pid)?.cpu ?? { user: 0, system: 0 };
    const cpuSeconds = after?.cpu ? (after.cpu.user + after.cpu.system - cpuFrom.user - cpuFrom.system) / CLOCK_TICKS_PER_SECOND : undefined;
    return { label: String(pid), startKb: startByPid.get(pid)?.rssKb, baselineKb: before?.rssKb, endKb: after?.rssKb, cpuSeconds };
  });
  const totalBaseline = sumRss(baselineWorkers);
  const totalEnd = sumRss(endWorkers);
  memoryRows.push({ label: 'total', startKb: sumRss(startWorkers), baselineKb: totalBaseline, endKb: totalEnd });
  const diffs = memoryRows.filter((row) => row.label !== 'total' && row.baselineKb !== undefined && row.endKb !== undefined).map((row) => row.endKb - row.baselineKb);

  const memoryColumns = [
    { title: 'worker PID', value: (row) => row.label, align: 'left' },
    { title: 'VmRSS kB at start', value: (row) => formatCount(row.startKb) },
    { title: `VmRSS kB after ${settings.baselineLogins}`, value: (row) => formatCount(row.baselineKb) },
    { title: 'VmRSS kB at end', value: (row) => formatCount(row.endKb) },
    { title: 'diff kB', value: (row) => formatDiff(row.baselineKb, row.endKb) },
    { title: 'CPU s in soak', value: (row) => (row.cpuSeconds === undefined ? '-' : row.cpuSeconds.toFixed(1)) },
  ];
  const outcomeColumns = [
    { title: 'kind', value: (row) => row.label, align: 'left' },
    { title: 'expected', value: (row) => row.expected },
    { title: 'OK', value: (row) => String(row.ok) },
    { title: 'FAIL', value: (row) => String(row.fail) },
    { title: 'temp FAIL', value: (row) => String(row.tempFail) },
    { title: 'match', value: (row) => (row.match ? 'yes' : 'NO') },
    { title: 'p50 ms', value: (row) => formatMs(row.p50) },
    { title: 'p99 ms', value: (row) => formatMs(row.p99) },
  ];
  const checkColumns = [
    { title: 'check', value: (check) => check.name, align: 'left' },
    { title: 'result', value: (check) => (check.ok ? 'pass' : 'FAIL'), align: 'left' },
    { title: 'detail', value: (check) => check.text, align: 'left' },
  ];

  const rate = replied / soakSeconds;
  const diffRange = diffs.length ? `${Math.min(...diffs)} to ${Math.max(...diffs)} kB per worker` : 'n/a';
  const memoryNote =
    `Worker VmRSS from ${settings.baselineLogins} logins (${((baselineAt - soakStartedAt) / 1000).toFixed(0)} s) to the end: ` +
    `${diffRange}, total ${formatDiff(totalBaseline, totalEnd)} kB (${formatCount(totalBaseline)} -> ${formatCount(totalEnd)} kB). Reported, not enforced.`;
  const summary = `${replied} logins in ${soakSeconds.toFixed(0)} s (${rate.toFixed(0)}/s) after the worker start step; total run time ${((Date.now() - startedAt) / 1000).toFixed(0)} s.`;

  console.log(`\nOutcomes:\n${textTable(outcomeColumns, outcomeRows)}`);
  for (const row of outcomeRows) if (row.firstUnexpected) console.log(`  first unexpected reply (${row.label}): ${row.firstUnexpected}`);
  console.log(`\nAuth worker memory:\n${textTable(memoryColumns, memoryRows)}`);
  console.log(`  ${memoryNote}`);
  console.log(`\nChecks:\n${textTable(checkColumns, checks)}`);
  for (const line of badLines.slice(0, 10)) console.log(`  log: ${line}`);
  console.log(`\n${summary}`);
  console.log(passed ? 'Soak run passed.' : 'Soak run FAILED.');

  facts.loadAverageAtEnd = readLoadAverage();
  writeMarkdownReport({ facts, settings, expected, outcomeColumns, outcomeRows, memoryColumns, memoryRows, memoryNote, checkColumns, checks, badLines, summary, passed });
  console.log(`Wrote ${path.relative(process.cwd(), REPORT_PATH) || REPORT_PATH}.`);
  if (!passed) console.log(`Dovecot log: ${instance.logPath} (kept).`);
  keepDirOnExit = !passed;
  return passed ? 0 : 1;
}

let keepDirOnExit = false;

function sumRss(workers) {
  return workers.length ? workers.reduce((sum, worker) => sum + worker.rssKb, 0) : undefined;
}

function formatCount(value) {
  return value === undefined ? '-' : String(value);
}

function formatMs(value) {
  return Number.isFinite(value) ? value.toFixed(1) : '-';
}

function formatDiff(before, after) {
  if (before === undefined || after === undefined) return '-';
  const diff = after - before;
  return diff > 0 ? `+${diff}` : String(diff);
}

// ---------------------------------------------------------------- environment and report

function commandLine() {
  const variables = Object.entries(process.env)
    .filter(([name]) => name.startsWith('SOAK_'))
    .map(([name, value]) => `${name}=${value}`)
    .sort();
  return [...variables, 'make soak'].join(' ');
}

function writeMarkdownReport({ facts, settings, expected, outcomeColumns, outcomeRows, memoryColumns, memoryRows, memoryNote, checkColumns, checks, badLines, summary, passed }) {
  const lines = [
    '# Soak run: last run',
    '',
    'Written by `make soak` (bench/soak.mjs). Each run overwrites this file.',
    '',
    `- command: \`${commandLine()}\``,
    `- date: ${facts.date}`,
    `- nproc: ${facts.nproc}; CPU: ${facts.cpuModel}; load average at start ${facts.loadAverageAtStart}, at end ${facts.loadAverageAtEnd}`,
    `- Dovecot ${facts.dovecotVersion}; Node ${facts.nodeVersion}`,
    `- lua-out/oauth2-bridge.lua: sha256 ${facts.scriptSha256}… (git ${facts.gitRevision})`,
    `- ${settings.logins} logins, ${IN_FLIGHT} in flight over ${CONNECTIONS} auth-client connections; ${settings.users} users, ` +
      `${settings.mailboxUsers} with a mailbox and ${settings.idpOnlyUsers} known to the IdP only; ${AUTH_WORKERS} auth workers; ` +
      `Dovecot's auth cache off, the bridge's token cache at its defaults`,
    `- mix: ${expected.good} good tokens, ${expected.badToken} made-up tokens, ${expected.noMailbox} logins of IdP users without a mailbox`,
    `- ${summary}`,
    `- result: ${passed ? 'passed' : 'FAILED'}`,
    '',
    'Before the soak logins, a worker start step sends one login for each of 32 users at once while the',
    `IdP stub delays each response by ${SPAWN_IDP_DELAY_MS} ms, so that Dovecot starts its auth workers. Their PIDs, found`,
    'through the master\'s process tree, are the set at the start. A failed XOAUTH2 login takes up to',
    'about 0.5 s in Dovecot 2.3.19 even with auth_failure_delay = 0, which limits the rate of this mix.',
    'Other work on the machine slows the run, so the rates are no benchmark.',
    '',
    '## Checks',
    '',
    markdownTable(checkColumns, checks),
    '',
    ...badLines.slice(0, 10).map((line) => `    ${line}`),
    ...(badLines.length ? [''] : []),
    '## Outcomes',
    '',
    markdownTable(outcomeColumns, outcomeRows),
    '',
    ...outcomeRows.filter((row) => row.firstUnexpected).map((row) => `- first unexpected reply (${row.label}): \`${row.firstUnexpected}\``),
    ...(outcomeRows.some((row) => row.firstUnexpected) ? [''] : []),
    '## Auth worker memory',
    '',
    `VmRSS from /proc/PID/status of each auth worker after the worker start step ("at start"), after the first ${settings.baselineLogins} soak`,
    'logins and at the end; "diff" is the end minus the reading after the first logins. "CPU s in soak" is the worker\'s',
    'user and system CPU time from the start of the soak logins to the end.',
    '',
    markdownTable(memoryColumns, memoryRows),
    '',
    memoryNote,
    '',
  ];
  fs.writeFileSync(REPORT_PATH, lines.join('\n'));
}

// ---------------------------------------------------------------- entry point

let exitCode = 1;
let failed = false;
try {
  exitCode = await main();
} catch (err) {
  failed = true;
  if (!interruptedBy) console.error(`\nmake soak failed: ${err instanceof SettingsError ? err.message : (err.stack ?? err.message)}`);
}
if (!interruptedBy) {
  const problems = await cleanup({ keepDir: failed || keepDirOnExit || readSettingsSafely().keepDir });
  if (problems.length > 0) exitCode = 1;
  process.exit(failed ? 1 : exitCode);
}

function readSettingsSafely() {
  try {
    return readSettings(process.env);
  } catch {
    return { keepDir: false };
  }
}
