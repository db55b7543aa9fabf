#!/usr/bin/env node
// `make bench`: login throughput and latency of the bridge through a real Dovecot 2.3, compared
// with Dovecot's own oauth2 passdb and with a Lua passdb that does no I/O.
//
// It starts an identity provider stub (bench/idp-stub.mjs) and one private Dovecot per
// variant, all on 127.0.0.1 in a temporary directory, sends XOAUTH2 logins straight to each
// Dovecot's auth-client socket (bench/auth-client.mjs) and prints a table per run. At the end,
// also after an error or Ctrl-C, it stops every process it started by PID. The tables are also
// written to bench/last-run.md. It measures lua-out/oauth2-bridge.lua as it is when the run
// starts, without building it.
//
// Settings (environment variables):
//   BENCH_QUICK=1            smoke run of about a minute (shorter measurements)
//   BENCH_IDP_DELAY_MS       identity provider delays in ms, comma-separated (default 0,20)
//   BENCH_IN_FLIGHT          auth requests in flight in total (default 32)
//   BENCH_CONNECTIONS        auth-client connections that carry them (default 4)
//   BENCH_USERS              users, each with its own token and mailbox (default 1000)
//   BENCH_REQUESTS           requests per measurement; unset, each measurement runs for
//                            BENCH_SECONDS instead
//   BENCH_SECONDS            length of a measurement in seconds (default 6, quick 1.5)
//   BENCH_WARMUP_PASSES      passes over all users before each measurement (default 1)
//   BENCH_CACHE_FILL_SECS    in warm runs, the bridge's warm-up goes on with more passes until
//                            a pass needs fewer than 0.05 IdP requests per login, for at most
//                            this many seconds (default 20, quick 5); its cache is per worker
//   BENCH_AUTH_WORKERS       auth worker processes of the Lua variants (default 30, Dovecot's
//                            auth_worker_max_count default)
//   BENCH_TIME_LIMIT_SECS    no new measurement starts after this (default 240, quick 75)
//   BENCH_KEEP_DIR=1         keep the temporary directory with the Dovecot logs
//
// Exit code: 0 when every instance started and passed its check and every measurement ran
// (the targets are reported, not enforced), 1 otherwise, 128 plus the signal number when
// interrupted.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { closeAllAuthClients, connectAuthClient, percentile, runLoad } from './auth-client.mjs';
import { instanceCpuTicks, listAuthProcesses, lookupGroupId, processGroupGone, startBenchDovecot } from './dovecot-instance.mjs';
import { forkIdpStub } from './idp-stub-process.mjs';
import { machineFacts, readClockTicks, readLoadAverage } from './machine-facts.mjs';
import { markdownTable, RESULT_COLUMNS, RSS_COLUMNS, textTable } from './report.mjs';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const BRIDGE_SOURCE = path.join(REPO, 'lua-out', 'oauth2-bridge.lua');
const CEILING_SCRIPT = path.join(REPO, 'bench', 'ceiling.lua');
const REPORT_PATH = path.join(REPO, 'bench', 'last-run.md');
// Every bridge instance loads this copy, taken once at start, so a rebuild of lua-out/ during
// the run changes nothing and the hash in the report names what was measured.
let bridgeScript;

const EXIT_SIGNAL_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
// Replies may take this long after the sending stopped. A failed XOAUTH2 login alone takes up
// to about 0.5 s in Dovecot 2.3.19 even with auth_failure_delay = 0.
const REPLY_GRACE_MS = 20000;
// The bridge's cache counts as filled once a warm-up pass needs fewer IdP requests per login than this.
const CACHE_FILLED_MISS_RATE = 0.05;
// A measurement with BENCH_REQUESTS set stops after this many seconds all the same.
const COUNTED_MEASUREMENT_MAX_SECONDS = 60;
// Beyond BENCH_TIME_LIMIT_SECS, the whole run is aborted after this many more seconds.
const HARD_LIMIT_EXTRA_SECS = 120;
// The bridge re-reads an account file changed within the last second on every lookup.
const ACCOUNT_FILE_SETTLE_MS = 2500;
const CLOCK_TICKS_PER_SECOND = readClockTicks();

// ---------------------------------------------------------------- settings

function readSettings(env) {
  const quick = env.BENCH_QUICK === '1';
  const settings = {
    quick,
    delaysMs: readIntegerList(env, 'BENCH_IDP_DELAY_MS', [0, 20], 0, 10000),
    inFlight: readInteger(env, 'BENCH_IN_FLIGHT', 32, 1, 4096),
    connections: readInteger(env, 'BENCH_CONNECTIONS', 4, 1, 256),
    users: readInteger(env, 'BENCH_USERS', 1000, 3, 1000000),
    requests: env.BENCH_REQUESTS ? readInteger(env, 'BENCH_REQUESTS', undefined, 1, 100000000) : undefined,
    seconds: readNumber(env, 'BENCH_SECONDS', quick ? 1.5 : 6, 0.2, 600),
    warmupPasses: readInteger(env, 'BENCH_WARMUP_PASSES', 1, 0, 1000),
    cacheFillSecs: readNumber(env, 'BENCH_CACHE_FILL_SECS', quick ? 5 : 20, 0, 600),
    authWorkers: readInteger(env, 'BENCH_AUTH_WORKERS', 30, 1, 1000),
    timeLimitSecs: readInteger(env, 'BENCH_TIME_LIMIT_SECS', quick ? 75 : 240, 10, 86400),
    keepDir: env.BENCH_KEEP_DIR === '1',
  };
  settings.connections = Math.min(settings.connections, settings.inFlight);
  return settings;
}

// An invalid BENCH_* variable; its message is printed without a stack trace.
class SettingsError extends Error {}

function readNumber(env, name, defaultValue, min, max) {
  const text = env[name];
  if (text === undefined || (text === '' && defaultValue !== undefined)) return defaultValue;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < min || value > max) {
    const fallback = defaultValue === undefined ? '' : `, or unset it for ${defaultValue}`;
    throw new SettingsError(`${name}=${text} is invalid: set a number from ${min} to ${max}${fallback}`);
  }
  return value;
}

function readInteger(env, name, defaultValue, min, max) {
  const value = readNumber(env, name, defaultValue, min, max);
  if (value !== undefined && !Number.isInteger(value)) {
    throw new SettingsError(`${name}=${env[name]} is invalid: set a whole number from ${min} to ${max}`);
  }
  return value;
}

function readIntegerList(env, name, defaultValue, min, max) {
  const text = env[name];
  if (text === undefined || text.trim() === '') return defaultValue;
  try {
    return text.split(',').map((part) => readInteger({ [name]: part.trim() }, name, undefined, min, max));
  } catch {
    throw new SettingsError(`${name}=${text} is invalid: set whole numbers from ${min} to ${max}, separated by commas`);
  }
}

// ---------------------------------------------------------------- processes to stop

// Every Dovecot master spawned, including failed start attempts, and the stub.
const running = { stub: undefined, masters: [] };
let workDir;
let interruptedBy;
let cleanupPromise;

function cleanup({ keepDir }) {
  cleanupPromise ??= (async () => {
    const problems = [];
    closeAllAuthClients();
    const stops = running.masters.map(async (master) => {
      try {
        await master.stop();
        if (!processGroupGone(master.pid)) problems.push(`${master.name}: process group ${master.pid} is still running`);
      } catch (err) {
        problems.push(`${master.name}: stopping Dovecot (PID ${master.pid}) failed: ${err.message}`);
      }
    });
    await Promise.all(stops);
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
      if (keepDir) console.log(`Kept ${workDir} with the Dovecot configurations and logs.`);
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
      console.error(`Received ${signal} again: exiting now. Dovecot's watchdogs and the stub stop when this process ends.`);
      process.exit(EXIT_SIGNAL_CODES[signal]);
    }
    interruptedBy = signal;
    console.error(`\nReceived ${signal}: stopping every process the benchmark started.`);
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

// ---------------------------------------------------------------- users, tokens, accounts

function makeLogins(count) {
  const logins = [];
  for (let index = 1; index <= count; index++) {
    logins.push({ user: `user${index}@example.test`, token: `tok-${index}-${randomBytes(12).toString('hex')}` });
  }
  return logins;
}

function writeAccountFile(filePath, logins) {
  const lines = logins.map((login, index) => `${login.user}|{SHA512-CRYPT}$6$bench$${String(index).padStart(64, '0')}\n`);
  fs.writeFileSync(filePath, lines.join(''), { mode: 0o640 });
  // The auth process reads it as user dovecot in script_init().
  fs.chownSync(filePath, 0, lookupGroupId('dovecot'));
}

// A fixed shuffle, so that consecutive requests belong to different users in every run.
function shuffledOrder(count) {
  const order = Array.from({ length: count }, (_, index) => index);
  let state = 12345;
  for (let index = count - 1; index > 0; index--) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    const other = state % (index + 1);
    [order[index], order[other]] = [order[other], order[index]];
  }
  return order;
}

// ---------------------------------------------------------------- Dovecot variants

function commonDovecotConfig(settings, { authCache }) {
  return `
# Added by bench/run.mjs. Debug and verbose logging would add log lines to every login.
auth_verbose = no
auth_debug = no
auth_cache_size = ${authCache ? '10M' : '0'}
auth_cache_ttl = 1 hour
auth_worker_max_count = ${settings.authWorkers}
service auth-worker {
  process_limit = ${settings.authWorkers}
}
`;
}

function bridgeSettings({ idpPort, accountFile, extra = '' }) {
  return `introspection_url = http://127.0.0.1:${idpPort}/userinfo
introspection_mode = auth
username_attribute = email
account_source = postfix-accounts
account_file = ${accountFile}
${extra}`;
}

function nativeSettings({ idpPort, maxParallelConnections }) {
  const poolLine = maxParallelConnections === undefined ? '' : `max_parallel_connections = ${maxParallelConnections}\n`;
  return `introspection_mode = auth
introspection_url = http://127.0.0.1:${idpPort}/userinfo
username_attribute = email
${poolLine}`;
}

/**
 * Starts every instance. The bridge is started a second time with cache_ttl_secs = 0 for the
 * cold runs. When that start fails with a fatal error that names cache_ttl_secs (an unknown key
 * in a build without a cache, or a rejected value), the cold runs use the first bridge instance
 * and `coldLabel` names the reason.
 */
async function startInstances(settings, { stub, accountFile }) {
  // `makeOptions(idpPort)` returns the options of startBenchDovecot. Each instance that sends
  // requests to the identity provider gets its own stub listener, named like the instance.
  const start = async (key, makeOptions, { usesIdp = true } = {}) => {
    const idpPort = usesIdp ? (await stub.call({ type: 'listen', name: key })).port : undefined;
    const onLaunch = (master) => running.masters.push(master);
    const instance = await startBenchDovecot({ name: key, dir: path.join(workDir, key), onLaunch, ...makeOptions(idpPort) });
    instance.idpListener = usesIdp ? key : undefined;
    console.log(`  ${key}: PID ${instance.pid}, ${instance.authSocket}${usesIdp ? `, IdP http://127.0.0.1:${idpPort}/userinfo` : ''}`);
    return instance;
  };
  const luaConfig = commonDovecotConfig(settings, { authCache: false });
  const instances = {};

  instances.ceiling = await start('ceiling', () => ({ passdb: { driver: 'lua', script: CEILING_SCRIPT }, extraConfig: luaConfig }), { usesIdp: false });
  instances.ours = await start('ours', (idpPort) => ({
    passdb: { driver: 'lua', script: bridgeScript },
    bridgeSettings: bridgeSettings({ idpPort, accountFile }),
    extraConfig: luaConfig,
  }));

  let cacheNote;
  let coldLabel = 'bridge, cache_ttl_secs = 0';
  try {
    instances.oursCold = await start('ours-cold', (idpPort) => ({
      passdb: { driver: 'lua', script: bridgeScript },
      bridgeSettings: bridgeSettings({ idpPort, accountFile, extra: 'cache_ttl_secs = 0\n' }),
      extraConfig: luaConfig,
    }));
    cacheNote = 'The bridge accepted cache_ttl_secs = 0: the cold runs use a second bridge instance with that setting.';
  } catch (err) {
    if (!/cache_ttl_secs/.test(err.fatalLine ?? '')) throw err;
    instances.oursCold = instances.ours;
    const unknownKey = /unknown setting cache_ttl_secs/.exec(err.fatalLine)?.[0];
    if (unknownKey) {
      coldLabel = 'bridge (no cache in this build)';
      cacheNote = `No cache in this build: the bridge stopped at start with "${unknownKey}", so the cold runs use the bridge instance with default settings.`;
    } else {
      coldLabel = 'bridge (cache_ttl_secs = 0 rejected)';
      cacheNote = `The bridge rejected cache_ttl_secs = 0 at start ("${err.fatalLine.replace(/^.*?Fatal: /, '').slice(0, 300)}"), so the cold runs use the bridge instance with default settings and are not cold.`;
    }
  }

  const nativeConfig = commonDovecotConfig(settings, { authCache: false });
  instances.native10 = await start('native-pool10', (idpPort) => ({
    passdb: { driver: 'oauth2', settings: nativeSettings({ idpPort }) },
    extraConfig: nativeConfig,
  }));
  instances.native32 = await start('native-pool32', (idpPort) => ({
    passdb: { driver: 'oauth2', settings: nativeSettings({ idpPort, maxParallelConnections: 32 }) },
    extraConfig: nativeConfig,
  }));
  instances.nativeCache = await start('native-authcache', (idpPort) => ({
    passdb: { driver: 'oauth2', settings: nativeSettings({ idpPort }) },
    extraConfig: commonDovecotConfig(settings, { authCache: true }),
  }));
  return { instances, cacheNote, coldLabel, cacheSupported: instances.oursCold !== instances.ours };
}

// ---------------------------------------------------------------- checks and measurements

let nextCpid = 1000;

function isTemporaryFailure(reply) {
  return /\tcode=temp_fail(?:\t|$)/.test(reply) || /\ttemp(?:\t|$)/.test(reply);
}

/**
 * Logs in once with a good token, once with an unknown token and once with another user's
 * token, and returns `{ problems, notes }`. The ceiling accepts every token, so it gets only the
 * first login. With `rejectionRequired`, a rejected token must get a plain FAIL, not a
 * temporary failure (code=temp_fail). Without it, a temporary failure is only noted.
 */
async function checkInstance(instance, logins, { acceptsAnyToken, rejectionRequired }) {
  const [first, second] = logins;
  const cases = [{ what: 'a good token', user: first.user, token: first.token, expectOk: true }];
  if (!acceptsAnyToken) {
    cases.push({ what: 'an unknown token', user: first.user, token: `tok-0-${randomBytes(12).toString('hex')}`, expectOk: false });
    cases.push({ what: "another user's token", user: first.user, token: second.token, expectOk: false });
  }
  const client = await connectAuthClient(instance.authSocket, nextCpid++);
  const problems = [];
  const notes = [];
  try {
    for (const check of cases) {
      const { ok, reply } = await client.authenticateXoauth2(check.user, check.token);
      if (ok !== check.expectOk) {
        problems.push(`${check.what} for ${check.user}: expected ${check.expectOk ? 'OK' : 'FAIL'}, got ${reply}`);
      } else if (!ok && isTemporaryFailure(reply)) {
        const message = `${check.what} got a temporary failure (${reply.split('\t').slice(2).join(' ')}), not a rejection`;
        if (rejectionRequired) problems.push(message);
        else notes.push(message);
      }
    }
  } finally {
    client.close();
  }
  return { problems, notes };
}

// Returns the stub's counters for the instance's listener, or undefined for an instance that
// sends no requests to the IdP.
async function idpStats(stub, instance) {
  if (instance.idpListener === undefined) return undefined;
  return (await stub.call({ type: 'stats', name: instance.idpListener })).stats;
}

/**
 * Runs the warm-up passes over all users. With `fillCache`, further passes follow until a pass
 * needs fewer than CACHE_FILLED_MISS_RATE IdP requests per login or BENCH_CACHE_FILL_SECS
 * passed. Returns the number of passes and the IdP requests per login of the last pass.
 */
async function warmUp(settings, instance, stub, base, fillCache) {
  const startedAt = Date.now();
  let passes = 0;
  let missRate;
  for (;;) {
    const before = await idpStats(stub, instance);
    const pass = await runLoad({ ...base, cpidBase: allocateCpids(settings), maxRequests: base.logins.length, durationMs: 120000 });
    const after = await idpStats(stub, instance);
    if (pass.failCount > 0) throw new Error(`${instance.name}: ${pass.failCount} warm-up logins failed, e.g. ${pass.firstFailure}`);
    passes += 1;
    missRate = after ? (after.requests - before.requests) / pass.okCount : undefined;
    if (passes < settings.warmupPasses) continue;
    const filled = missRate === undefined || missRate < CACHE_FILLED_MISS_RATE;
    if (!fillCache || filled || Date.now() - startedAt >= settings.cacheFillSecs * 1000 || interruptedBy) break;
  }
  return { passes, missRate };
}

async function measure(settings, instance, logins, order, stub, { fillCache }) {
  const base = { socketPath: instance.authSocket, connections: settings.connections, inFlight: settings.inFlight, logins, order, graceMs: REPLY_GRACE_MS };
  const warmup = settings.warmupPasses > 0 ? await warmUp(settings, instance, stub, base, fillCache) : { passes: 0 };

  const before = await idpStats(stub, instance);
  const cpuBefore = instanceCpuTicks(instance.pid);
  const counted = settings.requests !== undefined;
  const result = await runLoad({
    ...base,
    cpidBase: allocateCpids(settings),
    maxRequests: counted ? settings.requests : Number.MAX_SAFE_INTEGER,
    durationMs: (counted ? COUNTED_MEASUREMENT_MAX_SECONDS : settings.seconds) * 1000,
  });
  const cpuAfter = instanceCpuTicks(instance.pid);
  const after = await idpStats(stub, instance);

  const sorted = Float64Array.from(result.latenciesMs).sort();
  const workers = listAuthProcesses(instance.pid).filter((entry) => entry.role === 'auth-worker').length;
  return {
    okCount: result.okCount,
    failCount: result.failCount,
    firstFailure: result.firstFailure,
    elapsedMs: result.elapsedMs,
    loginsPerSecond: (result.okCount * 1000) / result.elapsedMs,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    idpRequests: after && after.requests - before.requests,
    idpConnections: after && after.connections - before.connections,
    idpOpenConnections: after?.openConnections,
    cpuMsPerLogin: ticksToMsPerLogin(cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system, result.okCount),
    cpuSystemMsPerLogin: ticksToMsPerLogin(cpuAfter.system - cpuBefore.system, result.okCount),
    workers,
    warmupPasses: warmup.passes,
    warmupMissRate: warmup.missRate,
  };
}

function ticksToMsPerLogin(ticks, logins) {
  return logins > 0 ? (ticks * 1000) / CLOCK_TICKS_PER_SECOND / logins : NaN;
}

function allocateCpids(settings) {
  const base = nextCpid;
  nextCpid += settings.connections;
  return base;
}

function authProcessMemory(label, when, instance) {
  const processes = listAuthProcesses(instance.pid);
  const workers = processes.filter((entry) => entry.role === 'auth-worker').map((entry) => entry.rssKb);
  return {
    label,
    when,
    authRssKb: processes.find((entry) => entry.role === 'auth')?.rssKb,
    workerCount: workers.length,
    workerRssTotalKb: workers.length ? workers.reduce((sum, value) => sum + value, 0) : undefined,
    workerRssMinKb: workers.length ? Math.min(...workers) : undefined,
    workerRssMaxKb: workers.length ? Math.max(...workers) : undefined,
  };
}

// ---------------------------------------------------------------- the runs

/** Lists the runs: warm and cold at each delay. The auth cache variant runs warm only. */
function planRuns(settings, instances, coldLabel) {
  const runs = [];
  for (const delayMs of settings.delaysMs) {
    for (const kind of ['warm', 'cold']) {
      const variants = [
        { key: 'ours', label: kind === 'warm' ? 'bridge' : coldLabel, instance: kind === 'warm' ? instances.ours : instances.oursCold },
        { key: 'native10', label: 'native oauth2, pool 10', instance: instances.native10 },
        { key: 'native32', label: 'native oauth2, pool 32', instance: instances.native32 },
      ];
      if (kind === 'warm') variants.push({ key: 'nativeCache', label: 'native oauth2, pool 10, auth cache', instance: instances.nativeCache });
      variants.push({ key: 'ceiling', label: 'Lua ceiling (no I/O)', instance: instances.ceiling });
      runs.push({ kind, delayMs, title: `${kind}, IdP delay ${delayMs} ms, ${settings.inFlight} in flight`, variants });
    }
  }
  return runs;
}

async function executeRun(run, context) {
  const { settings, stub, logins, order, deadline } = context;
  await stub.call({ type: 'delay', delayMs: run.delayMs });
  const rows = [];
  for (const variant of run.variants) {
    if (interruptedBy) return rows;
    if (Date.now() > deadline) {
      rows.push({ key: variant.key, label: `${variant.label} (skipped: BENCH_TIME_LIMIT_SECS reached)`, skipped: true });
      continue;
    }
    process.stdout.write(`  ${variant.label} ... `);
    let row;
    try {
      const fillCache = run.kind === 'warm' && variant.key === 'ours';
      row = { key: variant.key, label: variant.label, ...(await measure(settings, variant.instance, logins, order, stub, { fillCache })) };
    } catch (err) {
      if (interruptedBy) throw err;
      // One broken variant leaves the others measurable; the run is reported as incomplete.
      console.log(`failed: ${err.message}`);
      console.log(`    last lines of ${variant.instance.logPath}:\n${variant.instance.logTail().replace(/^/gm, '      ')}`);
      rows.push({ key: variant.key, label: `${variant.label} (failed: ${err.message.split('\n')[0]})`, skipped: true });
      continue;
    }
    const warmupMisses = row.warmupMissRate === undefined ? '' : `, last pass ${row.warmupMissRate.toFixed(3)} IdP requests per login`;
    console.log(`${row.loginsPerSecond.toFixed(0)} logins/s (warm-up: ${row.warmupPasses} pass(es)${warmupMisses})`);
    if (row.failCount > 0) console.log(`    ${row.failCount} logins failed, e.g. ${row.firstFailure}`);
    // The oauth2 driver runs in the auth process, so only the Lua variants use auth workers.
    if (variant.key !== 'ours' && variant.key !== 'ceiling') row.workers = undefined;
    rows.push(row);
  }
  const rate = (key) => rows.find((row) => row.key === key && !row.skipped)?.loginsPerSecond;
  for (const row of rows) {
    if (row.skipped) continue;
    row.ratioToNative = row.loginsPerSecond / rate('native10');
    row.ratioToCeiling = row.loginsPerSecond / rate('ceiling');
  }
  return rows;
}

// Compares the measured ratios with the targets. The result does not change the exit code.
function evaluateTargets(results) {
  const ratio = (kind, delayMs, key, referenceKey) => {
    const rows = results.find((result) => result.run.kind === kind && result.run.delayMs === delayMs)?.rows ?? [];
    const row = rows.find((entry) => entry.key === key && !entry.skipped);
    const reference = rows.find((entry) => entry.key === referenceKey && !entry.skipped);
    return row && reference ? row.loginsPerSecond / reference.loginsPerSecond : undefined;
  };
  const targets = [];
  for (const result of results.filter((entry) => entry.run.kind === 'warm')) {
    const delayMs = result.run.delayMs;
    targets.push({ text: `warm, ${delayMs} ms: bridge ≥ 0.9× ceiling`, value: ratio('warm', delayMs, 'ours', 'ceiling'), goal: 0.9 });
  }
  targets.push({ text: 'cold, 0 ms: bridge ≥ 0.6× native pool 10', value: ratio('cold', 0, 'ours', 'native10'), goal: 0.6 });
  targets.push({ text: 'cold, 20 ms: bridge ≥ 2.5× native pool 10', value: ratio('cold', 20, 'ours', 'native10'), goal: 2.5 });
  targets.push({ text: 'cold, 20 ms: bridge ≥ 0.9× native pool 32', value: ratio('cold', 20, 'ours', 'native32'), goal: 0.9 });
  return targets.map((target) => {
    if (target.value === undefined) return `${target.text}: not measured`;
    return `${target.text}: ${target.value.toFixed(2)}× (${target.value >= target.goal ? 'met' : 'not met'})`;
  });
}

// Observations that follow from the numbers: cache use, connection reuse, worker count.
function describeObservations(results, settings) {
  const notes = [];
  const rowsOf = (key) => results.flatMap((result) => result.rows.filter((row) => row.key === key && !row.skipped).map((row) => ({ run: result.run, row })));
  const perLogin = ({ row }) => row.idpRequests / row.okCount;
  const describeRange = (values, digits) => {
    const finite = values.filter(Number.isFinite);
    if (finite.length === 0) return 'n/a';
    const low = Math.min(...finite).toFixed(digits);
    const high = Math.max(...finite).toFixed(digits);
    return low === high ? low : `${low} to ${high}`;
  };

  // Requests per new connection over all measurements of a variant tell whether it reuses connections.
  const describeReuse = (entries) => {
    const requests = entries.reduce((sum, { row }) => sum + row.idpRequests, 0);
    const connections = entries.reduce((sum, { row }) => sum + row.idpConnections, 0);
    if (requests === 0) return 'no IdP requests';
    if (connections === 0) return `all ${requests} IdP requests went over connections opened before the measurements, so it reuses connections`;
    const ratio = requests / connections;
    return ratio < 1.5 ? `${ratio.toFixed(2)} IdP requests per new connection, so about one TCP connection per request` : `${ratio.toFixed(1)} IdP requests per new connection, so it reuses connections`;
  };

  for (const kind of ['warm', 'cold']) {
    const entries = rowsOf('ours').filter((entry) => entry.run.kind === kind);
    if (entries.length === 0) continue;
    const warmup =
      kind === 'warm'
        ? ` Its warm-up took ${describeRange(entries.map((entry) => entry.row.warmupPasses), 0)} passes, and the last pass needed ${describeRange(entries.map((entry) => entry.row.warmupMissRate), 3)} IdP requests per login.`
        : '';
    notes.push(`Bridge, ${kind}: ${describeRange(entries.map(perLogin), 3)} IdP requests per login; ${describeReuse(entries)}.${warmup}`);
  }
  for (const [key, label] of [['native10', 'Native oauth2, pool 10'], ['native32', 'Native oauth2, pool 32']]) {
    const entries = rowsOf(key);
    if (entries.length === 0) continue;
    const open = describeRange(entries.map((entry) => entry.row.idpOpenConnections), 0);
    notes.push(`${label}: ${describeRange(entries.map(perLogin), 3)} IdP requests per login; ${describeReuse(entries)}; ${open} connections open after each measurement.`);
  }

  const cached = rowsOf('nativeCache');
  if (cached.length) {
    const ratios = cached.map(perLogin);
    const verdict = Math.max(...ratios) < 0.05 ? 'it served the logins from Dovecot\'s auth cache' : Math.min(...ratios) > 0.95 ? 'it did not use Dovecot\'s auth cache' : 'the auth cache served part of the logins';
    notes.push(
      `Native oauth2 with auth_cache_size = 10M: ${describeRange(ratios, 3)} IdP requests per login, so ${verdict}. ` +
        'Dovecot 2.3.19.1\'s oauth2 passdb sets the cache key %u%w (user and token), so a cached token stays valid for auth_cache_ttl.',
    );
  }

  const cpuOf = (key, field) => describeRange(rowsOf(key).map((entry) => entry.row[field]), 3);
  notes.push(
    `Dovecot CPU time per login (all processes of the instance): bridge ${cpuOf('ours', 'cpuMsPerLogin')} ms, of which system time ${cpuOf('ours', 'cpuSystemMsPerLogin')} ms; ` +
      `native pool 10 ${cpuOf('native10', 'cpuMsPerLogin')} ms; Lua ceiling ${cpuOf('ceiling', 'cpuMsPerLogin')} ms.`,
  );

  const workerCounts = [...rowsOf('ours'), ...rowsOf('ceiling')].map((entry) => entry.row.workers);
  if (workerCounts.length) notes.push(`Auth worker processes after each Lua measurement: ${describeRange(workerCounts, 0)} (auth_worker_max_count and service auth-worker process_limit = ${settings.authWorkers}).`);
  return notes;
}

// ---------------------------------------------------------------- environment facts

function commandLine() {
  const variables = Object.entries(process.env)
    .filter(([name]) => name.startsWith('BENCH_'))
    .map(([name, value]) => `${name}=${value}`)
    .sort();
  return [...variables, 'make bench'].join(' ');
}

function writeMarkdownReport({ facts, settings, cacheNote, results, memoryRows, targets, notes, checkNotes }) {
  const lines = [
    '# Benchmark: last run',
    '',
    `Written by \`make bench\` (bench/run.mjs). Each run overwrites this file.`,
    '',
    `- command: \`${commandLine()}\``,
    `- date: ${facts.date}`,
    `- nproc: ${facts.nproc}; CPU: ${facts.cpuModel}; load average at start ${facts.loadAverageAtStart}, at end ${facts.loadAverageAtEnd}`,
    `- Dovecot ${facts.dovecotVersion}; Node ${facts.nodeVersion}`,
    `- lua-out/oauth2-bridge.lua: sha256 ${facts.scriptSha256}… (git ${facts.gitRevision})`,
    `- ${describeSettings(settings)}`,
    `- ${cacheNote}`,
    '',
    'Logins are XOAUTH2 AUTH requests sent straight to each Dovecot\'s auth-client socket over',
    `${settings.connections} connections. "× native" is relative to Dovecot's oauth2 passdb with its default pool of 10`,
    'connections, "× ceiling" to a Lua passdb that accepts every login without I/O. IdP requests and',
    'new connections are counted by the stub during the measurement only, not the warm-up; "IdP open',
    'conns" is the number of connections open at its end. "Dovecot CPU ms/login" is the user and',
    'system CPU time of all processes of that Dovecot instance during the measurement, per login.',
    '"workers" is the number of auth-worker processes of a Lua variant after its measurement. The load',
    'generator, the stub and all Dovecot instances share the machine\'s CPUs. Dovecot 2.3.19.1 runs a',
    'full Lua garbage collection after every call of a Lua passdb (src/auth/db-lua.c), so the CPU',
    'time of a Lua variant per login grows with its live Lua heap.',
    '',
    'Each auth worker has its own token cache, so a login is served from the cache only when the',
    'worker that receives it has seen the token before. In warm runs the bridge therefore gets more',
    `warm-up passes, until a pass needs fewer than ${CACHE_FILLED_MISS_RATE} IdP requests per login or BENCH_CACHE_FILL_SECS passed.`,
    '',
  ];
  for (const { run, rows } of results) {
    lines.push(`## ${run.title}`, '', markdownTable(RESULT_COLUMNS, rows), '');
  }
  lines.push('## Auth process memory', '', 'VmRSS from /proc of the auth process and the auth workers of each Lua instance, found through the master\'s PID and process group.', '');
  lines.push(markdownTable(RSS_COLUMNS, memoryRows), '');
  lines.push('## Targets (reported, not enforced)', '', ...targets.map((line) => `- ${line}`), '');
  lines.push('## Observations', '', ...[...checkNotes, ...notes].map((line) => `- ${line}`), '');
  fs.writeFileSync(REPORT_PATH, lines.join('\n'));
}

function describeSettings(settings) {
  const length = settings.requests !== undefined ? `${settings.requests} requests per measurement` : `${settings.seconds} s per measurement`;
  return (
    `${settings.quick ? 'quick run; ' : ''}${settings.users} users, ${settings.inFlight} requests in flight over ${settings.connections} connections, ` +
    `${length}, ${settings.warmupPasses} warm-up pass(es) over all users (the bridge in warm runs: more, for up to ${settings.cacheFillSecs} s), ` +
    `${settings.authWorkers} auth workers, IdP delays ${settings.delaysMs.join(' and ')} ms`
  );
}

// ---------------------------------------------------------------- main

async function main() {
  const startedAt = Date.now();
  const settings = readSettings(process.env);
  if (process.getuid() !== 0) {
    throw new Error('make bench needs root: it starts private Dovecot instances, which drop privileges to their own users');
  }
  const deadline = startedAt + settings.timeLimitSecs * 1000;
  const hardLimit = setTimeout(async () => {
    console.error(
      `The benchmark ran for ${settings.timeLimitSecs + HARD_LIMIT_EXTRA_SECS} s (BENCH_TIME_LIMIT_SECS plus ${HARD_LIMIT_EXTRA_SECS} s) and is aborted. ` +
        'Raise BENCH_TIME_LIMIT_SECS or lower BENCH_SECONDS.',
    );
    await cleanup({ keepDir: true });
    process.exit(1);
  }, (settings.timeLimitSecs + HARD_LIMIT_EXTRA_SECS) * 1000);
  hardLimit.unref();

  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oauth2-bench-'));
  fs.chmodSync(workDir, 0o755);
  bridgeScript = path.join(workDir, 'oauth2-bridge.lua');
  fs.copyFileSync(BRIDGE_SOURCE, bridgeScript);

  const facts = machineFacts(REPO, bridgeScript);
  console.log(`Load benchmark: ${describeSettings(settings)}.`);
  console.log(`Measuring lua-out/oauth2-bridge.lua, sha256 ${facts.scriptSha256}… (git ${facts.gitRevision}); Dovecot ${facts.dovecotVersion}.`);
  console.log(`Load average at start: ${facts.loadAverageAtStart} on ${facts.nproc} CPUs; other work on the machine lowers the rates.`);

  const logins = makeLogins(settings.users);
  const accountFile = path.join(workDir, 'postfix-accounts.cf');
  writeAccountFile(accountFile, logins);
  const accountFileWrittenAt = Date.now();

  const stub = await startIdpStub();
  await stub.call({ type: 'configure', delayMs: 0, tokens: Object.fromEntries(logins.map((login) => [login.token, login.user])) });
  console.log(`Identity provider stub: PID ${stub.pid}`);

  console.log('Starting Dovecot instances:');
  const { instances, cacheNote, coldLabel, cacheSupported } = await startInstances(settings, { stub, accountFile });
  console.log(`  ${cacheNote}`);

  console.log('Checking each instance with a good token, an unknown token and another user\'s token:');
  const checkNotes = [
    'Correctness check before measuring: every variant accepted a good token, and every variant except the ceiling failed an unknown token and another user\'s token. The ceiling accepts every token, so its failure checks were skipped.',
  ];
  const checked = [
    { label: 'bridge', instance: instances.ours, rejectionRequired: true },
    ...(cacheSupported ? [{ label: 'bridge, cache_ttl_secs = 0', instance: instances.oursCold, rejectionRequired: true }] : []),
    { label: 'native oauth2, pool 10', instance: instances.native10, native: true },
    { label: 'native oauth2, pool 32', instance: instances.native32, native: true },
    { label: 'native oauth2, auth cache', instance: instances.nativeCache, native: true },
    { label: 'Lua ceiling', instance: instances.ceiling, acceptsAnyToken: true },
  ];
  let checkFailed = false;
  let nativeTemporaryFailure = false;
  for (const { label, instance, acceptsAnyToken = false, rejectionRequired = false, native = false } of checked) {
    const { problems, notes } = await checkInstance(instance, logins, { acceptsAnyToken, rejectionRequired });
    const summary = acceptsAnyToken ? 'good token accepted (failure checks skipped: it accepts every token)' : 'good token accepted, unknown and other user\'s tokens failed';
    console.log(`  ${label}: ${problems.length === 0 ? summary : 'FAILED'}`);
    for (const line of [...problems, ...notes]) console.log(`    ${line}`);
    for (const note of notes) checkNotes.push(`${label}: ${note}.`);
    if (native && notes.length > 0) nativeTemporaryFailure = true;
    if (problems.length > 0) {
      checkFailed = true;
      console.log(`    last lines of ${instance.logPath}:\n${instance.logTail().replace(/^/gm, '      ')}`);
    }
  }
  if (checkFailed) throw new Error('an instance failed its correctness check; no measurement was run');
  if (nativeTemporaryFailure) {
    checkNotes.push('Dovecot 2.3.19\'s oauth2 driver does not treat an HTTP 401 from the userinfo endpoint (introspection_mode = auth) as an invalid token: it reads the error body, finds no username_attribute and returns an internal failure ("Introspection failed: No username returned").');
  }

  const luaInstances = [['bridge', instances.ours], ...(cacheSupported ? [['bridge, cache_ttl_secs = 0', instances.oursCold]] : []), ['Lua ceiling', instances.ceiling]];
  const memoryRows = luaInstances.map(([label, instance]) => authProcessMemory(label, 'before the runs', instance));

  const settleMs = accountFileWrittenAt + ACCOUNT_FILE_SETTLE_MS - Date.now();
  if (settleMs > 0) await new Promise((resolve) => setTimeout(resolve, settleMs));

  const order = shuffledOrder(logins.length);
  const results = [];
  let incomplete = false;
  for (const run of planRuns(settings, instances, coldLabel)) {
    if (interruptedBy) break;
    console.log(`\nRun: ${run.title}`);
    const rows = await executeRun(run, { settings, stub, logins, order, deadline });
    if (rows.some((row) => row.skipped || row.failCount > 0)) incomplete = true;
    results.push({ run, rows });
    console.log(`\n${textTable(RESULT_COLUMNS, rows)}`);
  }
  if (interruptedBy) return 1;

  for (const [label, instance] of luaInstances) memoryRows.push(authProcessMemory(label, 'after the runs', instance));
  console.log(`\nAuth process memory (VmRSS):\n${textTable(RSS_COLUMNS, memoryRows)}`);

  const targets = evaluateTargets(results);
  console.log(`\nTargets (reported, not enforced):\n${targets.map((line) => `  ${line}`).join('\n')}`);
  const notes = describeObservations(results, settings);
  console.log(`\nObservations:\n${[cacheNote, ...notes].map((line) => `  ${line}`).join('\n')}`);

  facts.loadAverageAtEnd = readLoadAverage();
  writeMarkdownReport({ facts, settings, cacheNote, results, memoryRows, targets, notes, checkNotes });
  console.log(`\nWrote ${path.relative(process.cwd(), REPORT_PATH) || REPORT_PATH}. Total time ${((Date.now() - startedAt) / 1000).toFixed(0)} s.`);
  return incomplete ? 1 : 0;
}

let exitCode = 1;
let failed = false;
try {
  exitCode = await main();
} catch (err) {
  failed = true;
  if (!interruptedBy) console.error(`\nmake bench failed: ${err instanceof SettingsError ? err.message : (err.stack ?? err.message)}`);
}
if (!interruptedBy) {
  const problems = await cleanup({ keepDir: failed || readSettingsSafely().keepDir });
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
