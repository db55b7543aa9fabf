#!/usr/bin/env node
// `make demo`: shows the bridge accepting and refusing real OAuth2 access tokens.
//
// It starts a local OpenID provider and a private Dovecot 2.3 with the bridge, both on
// 127.0.0.1 in a temporary directory. It logs in over IMAP with real tokens and prints the
// server's replies and Dovecot's log lines. At the end, also after an error or Ctrl-C, it stops
// both by their PIDs. The system's Dovecot and /etc/dovecot are not used.
//
// Exit code: 0 when every step behaved as expected, 1 when one did not, and 128 plus the
// signal number when interrupted (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
//
// The provider, Dovecot and the IMAP clients come from the integration harness in
// spec/integration/lib/; this script only drives them and explains what happens.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { imapOauthbearer, imapXoauth2 } from '../spec/integration/lib/clients.mjs';
import { startDovecot } from '../spec/integration/lib/dovecot.mjs';
import { startIdp } from '../spec/integration/lib/idp.mjs';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const BRIDGE_SCRIPT = path.join(REPO, 'lua-out', 'oauth2-bridge.lua');
const DOVECOT_BINARY = '/usr/sbin/dovecot';
const LOG_WAIT_MS = 5000;

// Passwords are random for each run because only the scripted sign-in at the provider uses them.
const IDP_ACCOUNTS = {
  alice: { email: 'alice@example.test', password: randomSecret() },
  bob: { email: 'bob@example.test', password: randomSecret() },
  carol: { email: 'carol@example.test', password: randomSecret() },
};
const MAILBOXES = ['alice@example.test', 'bob@example.test'];

const TOTAL_STEPS = 12;
const EXIT_SIGNAL_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };

// ---------------------------------------------------------------- output

const startedAt = Date.now();
const secrets = new Set(Object.values(IDP_ACCOUNTS).map((account) => account.password));
let interruptedBy;

// Replaces each token and password in `text` with <secret>, so that none is printed, not even
// inside an error message.
function redact(text) {
  let result = String(text);
  for (const secret of secrets) {
    if (secret) result = result.split(secret).join('<secret>');
  }
  return result;
}

function print(text = '') {
  process.stdout.write(`${redact(text)}\n`);
}

// Prints a line of the main flow. After Ctrl-C, only the cleanup prints.
function say(text = '') {
  if (!interruptedBy) print(text);
}

function detail(text) {
  for (const line of String(text).split('\n')) say(`   ${line}`);
}

let stepNumber = 0;
let currentStep = '';

function step(title) {
  stepNumber += 1;
  currentStep = title;
  say();
  say(`Step ${stepNumber} of ${TOTAL_STEPS}: ${title}`);
}

// Ctrl-C in a terminal reaches the provider and the IMAP clients as well, and their failure
// can reach the main flow before Node runs the signal handler. Waiting a moment lets the
// handler run first, so an interruption is not reported as a failed step.
function settleSignals() {
  return new Promise((resolve) => setTimeout(resolve, 200));
}

function randomSecret() {
  return randomBytes(18).toString('base64url');
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

// ---------------------------------------------------------------- what the demo started

const started = {
  dir: undefined,
  idp: undefined, // the promise returned by startIdp
  dovecot: undefined, // the promise returned by startDovecot
};

function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if (err.code === 'ESRCH') return false;
    throw err;
  }
}

let cleanupPromise;

/** Stops Dovecot and the provider by the PIDs the demo started and removes the temporary directory. */
function cleanup() {
  cleanupPromise ??= (async () => {
    const problems = [];
    if (!started.dir && !started.idp && !started.dovecot) return problems;
    print();
    // After an error or Ctrl-C some steps did not run, so this header has no step number.
    const allStepsRan = stepNumber === TOTAL_STEPS - 1 && !interruptedBy;
    print(`${allStepsRan ? `Step ${TOTAL_STEPS} of ${TOTAL_STEPS}: ` : ''}Stopping what the demo started`);

    // A start still under way is awaited, so that its process is stopped too.
    const dovecot = await started.dovecot?.catch(() => undefined);
    if (dovecot) {
      try {
        await dovecot.stop();
        // Dovecot runs in its own process group, whose ID is the master's PID.
        if (processAlive(-dovecot.pid)) {
          problems.push(`Dovecot processes of group ${dovecot.pid} are still running`);
        } else {
          print(`   Stopped Dovecot (master PID ${dovecot.pid}, with its child processes).`);
        }
      } catch (err) {
        problems.push(`stopping Dovecot (PID ${dovecot.pid}) failed: ${err.message}`);
      }
    }

    const idp = await started.idp?.catch(() => undefined);
    if (idp) {
      try {
        await idp.stop();
        if (processAlive(idp.pid)) {
          problems.push(`the OpenID provider (PID ${idp.pid}) is still running`);
        } else {
          print(`   Stopped the OpenID provider (PID ${idp.pid}).`);
        }
      } catch (err) {
        problems.push(`stopping the OpenID provider (PID ${idp.pid}) failed: ${err.message}`);
      }
    }

    if (started.dir) {
      try {
        fs.rmSync(started.dir, { recursive: true, force: true });
        print(`   Removed ${started.dir}.`);
      } catch (err) {
        problems.push(`removing ${started.dir} failed: ${err.message}`);
      }
    }

    for (const problem of problems) print(`   NOT as expected: ${problem}`);
    return problems;
  })();
  return cleanupPromise;
}

async function onSignal(signal) {
  const exitCode = EXIT_SIGNAL_CODES[signal] ?? 1;
  if (interruptedBy) {
    print(`Received ${signal} again: exiting now. Dovecot and the provider stop when this process ends.`);
    process.exit(exitCode);
  }
  interruptedBy = signal;
  print();
  print(`Interrupted (${signal}) during step ${stepNumber} of ${TOTAL_STEPS} (${currentStep}).`);
  const problems = await cleanup();
  print();
  if (problems.length === 0) {
    print('Demo interrupted. Nothing it started is left running.');
  } else {
    print(`Demo interrupted, and cleaning up went wrong: ${problems.join('; ')}.`);
  }
  process.exit(exitCode);
}

for (const signal of Object.keys(EXIT_SIGNAL_CODES)) {
  process.on(signal, () => {
    onSignal(signal);
  });
}

// ---------------------------------------------------------------- setup steps

/** Error of a step before the checks, after which the demo cannot go on. */
class SetupError extends Error {}

function checkPrerequisites() {
  if (process.getuid?.() !== 0) {
    throw new SetupError('the demo must run as root: it starts its own Dovecot, which switches to the users dovecot and nobody. Run it as root, e.g. `sudo make demo`.');
  }
  if (!fs.existsSync(DOVECOT_BINARY)) {
    throw new SetupError(`${DOVECOT_BINARY} not found. Run \`make demo\`, which installs dovecot-core, dovecot-imapd and dovecot-auth-lua.`);
  }
  const version = execFileSync(DOVECOT_BINARY, ['--version'], { encoding: 'utf8' }).trim();
  if (!version.startsWith('2.3.')) {
    throw new SetupError(`this demo needs Dovecot 2.3 (as on Debian 12); ${DOVECOT_BINARY} is version ${version}.`);
  }
  if (!fs.existsSync(BRIDGE_SCRIPT)) {
    throw new SetupError(`${BRIDGE_SCRIPT} not found. Build it with \`make build\`.`);
  }
  if (!fs.existsSync(path.join(REPO, 'node_modules', 'oidc-provider', 'package.json'))) {
    throw new SetupError('node_modules/oidc-provider is missing. Run `make demo`, which installs the npm packages first.');
  }
  detail(`Running as root; Dovecot ${version}; the bridge script ${path.relative(REPO, BRIDGE_SCRIPT)} is built.`);
}

function writeAccountFile(dir) {
  const accountFile = path.join(dir, 'postfix-accounts.cf');
  // The bridge reads only the addresses. Token logins never use these hashes.
  const lines = [
    '# docker-mailserver account list, written by scripts/demo.mjs.',
    '# The password hashes are placeholders: token logins do not use them.',
    ...MAILBOXES.map((address) => `${address}|{SHA512-CRYPT}$6$demo$placeholder-not-a-real-hash`),
  ];
  fs.writeFileSync(accountFile, `${lines.join('\n')}\n`, { mode: 0o644 });
  fs.chmodSync(accountFile, 0o644);
  return accountFile;
}

function bridgeSettings({ userinfoUrl, accountFile }) {
  return [
    '# Settings of the Dovecot OAuth2 bridge, written by scripts/demo.mjs.',
    `introspection_url = ${userinfoUrl}`,
    'username_attribute = email',
    'account_source = postfix-accounts',
    `account_file = ${accountFile}`,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------- checks

/** Error raised when the server or the log differs from what a check expects. */
class Unexpected extends Error {}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// Log lines this demo waits for, in the format of Dovecot 2.3.19 (see LOG_PATTERNS in
// spec/integration/lib/dovecot.mjs for each one).
const LOG_LINES = {
  loginSucceeded: (user, mech) => new RegExp(`^.* imap-login: Info: Login: user=<${escapeRegExp(user)}>, method=${mech}, .*$`, 'm'),
  loginFailed: (user, mech) => new RegExp(`^.* imap-login: Info: Disconnected: [^(]*\\(auth failed[^)]*\\): user=<${escapeRegExp(user)}>, method=${mech}, .*$`, 'm'),
  bridgeLogLine: (user, message) => new RegExp(`^.* auth-worker\\(\\d+\\): Info: .*: lua\\(${escapeRegExp(user)},[^)]*\\): db-lua: ${escapeRegExp(message)}$`, 'm'),
  workerFinished: (result) => new RegExp(`^.* auth-worker\\(\\d+\\): Debug: conn [^\\n]*: auth-worker<\\d+>: Finished: ${result}$`, 'm'),
};

// Returns the tagged replies to AUTHENTICATE and SELECT, without those to the CAPABILITY
// command that imaplib sends first and to the LOGOUT at the end.
function taggedReplies(response) {
  return response.split('\n')
    .filter((line) => /^[A-Za-z0-9]+ (OK|NO|BAD)\b/.test(line))
    .filter((line) => !/Pre-login capabilities listed|Capability completed|Logout completed/.test(line));
}

async function showLogLine(dovecot, pattern, since, description) {
  try {
    const match = await dovecot.waitForLog(pattern, { since, timeoutMs: LOG_WAIT_MS });
    detail(`log: ${match[0]}`);
  } catch {
    throw new Unexpected(`Dovecot logged no ${description} within ${seconds(LOG_WAIT_MS)}`);
  }
}

function showLogExcerpt(dovecot, since) {
  const lines = dovecot.logSince(since).split('\n').filter(Boolean).slice(-15);
  if (lines.length === 0) return;
  detail('Last lines of the Dovecot log for this check:');
  for (const line of lines) detail(`  ${line}`);
}

async function expectLogin(dovecot, { client, user, token }) {
  const result = await client({ port: dovecot.imapPort, user, token });
  for (const line of taggedReplies(result.response)) detail(`server: ${line}`);
  if (!result.authenticated) throw new Unexpected(`the server rejected the login (${result.error})`);
  if (!result.ok) throw new Unexpected(`logged in, but SELECT INBOX failed (${result.error})`);
}

async function expectLoginRejected(dovecot, { client, user, token }) {
  const result = await client({ port: dovecot.imapPort, user, token });
  for (const line of taggedReplies(result.response)) detail(`server: ${line}`);
  if (result.authenticated) throw new Unexpected('the login was accepted');
  if (!/ NO \[AUTHENTICATIONFAILED\]/.test(result.response)) {
    throw new Unexpected('the server did not reply NO [AUTHENTICATIONFAILED]');
  }
}

function describeChecks({ aliceToken, carolToken, accountFile }) {
  const alice = 'alice@example.test';
  const bob = 'bob@example.test';
  const carol = 'carol@example.test';

  const loginWith = (mech, client) => ({
    title: `alice logs in with ${mech} and her own token, then selects INBOX`,
    expected: `logged in with ${mech}, INBOX selected`,
    async run(dovecot, since) {
      await expectLogin(dovecot, { client, user: alice, token: aliceToken });
      await showLogLine(dovecot, LOG_LINES.bridgeLogLine(alice, 'Token accepted'), since, 'line from the bridge accepting the token');
      await showLogLine(dovecot, LOG_LINES.loginSucceeded(alice, mech), since, `"Login: user=<${alice}>, method=${mech}" line`);
    },
  });

  return [
    loginWith('XOAUTH2', imapXoauth2),
    loginWith('OAUTHBEARER', imapOauthbearer),
    {
      title: "alice's token used to log in as bob (XOAUTH2)",
      expected: 'refused: the token belongs to alice (PASSWORD_MISMATCH)',
      async run(dovecot, since) {
        await expectLoginRejected(dovecot, { client: imapXoauth2, user: bob, token: aliceToken });
        const reason = `Token belongs to ${alice} (claim email), not to the login name`;
        await showLogLine(dovecot, LOG_LINES.bridgeLogLine(bob, reason), since, `line from the bridge saying "${reason}"`);
        await showLogLine(dovecot, LOG_LINES.workerFinished('password_mismatch'), since, 'password_mismatch result');
        await showLogLine(dovecot, LOG_LINES.loginFailed(bob, 'XOAUTH2'), since, `failed login line for ${bob}`);
      },
    },
    {
      title: 'carol logs in with her own valid token (OAUTHBEARER); she has no mailbox',
      expected: 'refused: no mailbox (USER_UNKNOWN)',
      async run(dovecot, since) {
        await expectLoginRejected(dovecot, { client: imapOauthbearer, user: carol, token: carolToken });
        const reason = `No mailbox for the login name in ${accountFile}`;
        await showLogLine(dovecot, LOG_LINES.bridgeLogLine(carol, reason), since, `line from the bridge saying "${reason}"`);
        await showLogLine(dovecot, LOG_LINES.workerFinished('user_unknown'), since, 'user_unknown result');
        await showLogLine(dovecot, LOG_LINES.loginFailed(carol, 'OAUTHBEARER'), since, `failed login line for ${carol}`);
      },
    },
    {
      title: 'the Dovecot log of this run contains neither token',
      expected: 'no token in the log',
      async run(dovecot) {
        const log = dovecot.readLog();
        const found = [['alice', aliceToken], ['carol', carolToken]].filter(([, token]) => log.includes(token));
        if (found.length > 0) {
          throw new Unexpected(`the token of ${found.map(([name]) => name).join(' and ')} appears in ${dovecot.logPath}`);
        }
        const lines = log.split('\n').filter(Boolean).length;
        detail(`Searched all ${lines} lines of ${path.basename(dovecot.logPath)} (auth_debug = yes): no token found.`);
      },
    },
  ];
}

// ---------------------------------------------------------------- main flow

async function runDemo() {
  say('Dovecot OAuth2 bridge demo');
  say('This starts a local OpenID provider and a private Dovecot 2.3 with the bridge, both on');
  say('127.0.0.1 in a temporary directory, logs in over IMAP with real access tokens, and stops');
  say("both at the end. The system's Dovecot and /etc/dovecot are not touched.");

  step('Checking what the demo needs');
  checkPrerequisites();

  step('Creating a temporary directory');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oauth2-bridge-demo-'));
  started.dir = dir;
  detail(dir);
  // Dovecot's auth process runs as user dovecot: it must be able to read the script, wherever
  // this repository is checked out (e.g. under /root), so the demo uses a copy.
  const luaScript = path.join(dir, 'oauth2-bridge.lua');
  fs.copyFileSync(BRIDGE_SCRIPT, luaScript);
  fs.chmodSync(luaScript, 0o644);
  detail(`Copied ${path.relative(REPO, BRIDGE_SCRIPT)} there, readable by Dovecot's auth process (user dovecot).`);

  step("Writing docker-mailserver's account list");
  const accountFile = writeAccountFile(dir);
  detail(`${accountFile} (mode 0644): mailboxes ${MAILBOXES.join(' and ')}.`);

  step('Starting a local OpenID provider (oidc-provider)');
  started.idp = startIdp({ dir: path.join(dir, 'idp'), accounts: IDP_ACCOUNTS });
  const idp = await started.idp;
  detail(`Listening on ${idp.issuer} (PID ${idp.pid}); userinfo URL ${idp.userinfoUrl}`);
  const accountList = Object.entries(IDP_ACCOUNTS).map(([name, account]) => `${name} (${account.email})`);
  detail(`Accounts: ${accountList.join(', ')}.`);
  detail('carol has an account at the provider but no mailbox.');

  step('Starting a private Dovecot 2.3 with the bridge');
  const settings = bridgeSettings({ userinfoUrl: idp.userinfoUrl, accountFile });
  detail('Bridge settings file oauth2-bridge.conf (owner root, group dovecot, mode 0640):');
  for (const line of settings.split('\n').filter((l) => l && !l.startsWith('#'))) detail(`  ${line}`);
  started.dovecot = startDovecot({ dir, luaScript, bridgeSettings: settings });
  const dovecot = await started.dovecot;
  detail(`IMAP on 127.0.0.1:${dovecot.imapPort} (master PID ${dovecot.pid}); log ${dovecot.logPath}`);
  detail('XOAUTH2 and OAUTHBEARER logins go to the bridge (passdb lua, args file=oauth2-bridge.lua).');

  step('Getting access tokens from the provider');
  detail("Running the provider's authorization-code flow (sign-in form, consent, code exchange");
  detail('with PKCE) with scripted HTTP requests, the way a webmail such as Roundcube would.');
  const aliceToken = await idp.getToken('alice');
  secrets.add(aliceToken);
  detail(`Got a token for alice: ${aliceToken.length} characters (tokens are not printed).`);
  const carolToken = await idp.getToken('carol');
  secrets.add(carolToken);
  detail(`Got a token for carol: ${carolToken.length} characters.`);

  const checks = describeChecks({ aliceToken, carolToken, accountFile });
  const outcomes = [];
  for (const [index, check] of checks.entries()) {
    step(`Check ${index + 1} of ${checks.length}: ${check.title}`);
    detail(`Expected: ${check.expected}.`);
    const since = dovecot.logOffset();
    try {
      await check.run(dovecot, since);
      say('   As expected.');
      outcomes.push({ check, ok: true });
    } catch (err) {
      await settleSignals();
      if (interruptedBy) throw err;
      say(`   NOT as expected: ${err instanceof Unexpected ? err.message : `error: ${err.message}`}`);
      showLogExcerpt(dovecot, since);
      outcomes.push({ check, ok: false });
    }
  }
  return outcomes;
}

async function main() {
  let outcomes = [];
  let setupFailure;
  try {
    outcomes = await runDemo();
  } catch (err) {
    await settleSignals();
    if (interruptedBy) return new Promise(() => {}); // onSignal finishes and exits.
    setupFailure = { step: stepNumber, title: currentStep, message: err.message };
    detail(`FAILED: ${err.message.trimEnd()}`);
  }
  if (interruptedBy) return new Promise(() => {});

  const cleanupProblems = await cleanup();
  if (interruptedBy) return new Promise(() => {});

  const passed = outcomes.filter((outcome) => outcome.ok).length;
  const failed = outcomes.filter((outcome) => !outcome.ok);
  say();
  say(`Summary (${seconds(Date.now() - startedAt)}):`);
  if (setupFailure) {
    say(`   The demo stopped at step ${setupFailure.step} of ${TOTAL_STEPS} (${setupFailure.title}) before the checks could run:`);
    say(`   ${setupFailure.message.split('\n')[0]}`);
  } else {
    for (const [index, outcome] of outcomes.entries()) {
      say(`   ${outcome.ok ? 'ok    ' : 'FAILED'}  Check ${index + 1}: ${outcome.check.title}`);
    }
    say(`   ${passed} of ${outcomes.length} checks behaved as expected.`);
  }
  if (cleanupProblems.length > 0) {
    say(`   Cleaning up did not finish: ${cleanupProblems.join('; ')}.`);
  } else if (started.dir) {
    say('   Everything the demo started is stopped and its temporary directory is removed.');
  }

  const success = !setupFailure && failed.length === 0 && cleanupProblems.length === 0;
  if (success) {
    say('The bridge accepted the right tokens and refused the wrong ones.');
    return 0;
  }
  const reasons = [];
  if (setupFailure) reasons.push(`step ${setupFailure.step} (${setupFailure.title}) failed`);
  if (failed.length > 0) {
    const numbers = failed.map((outcome) => outcomes.indexOf(outcome) + 1);
    reasons.push(`${numbers.length === 1 ? 'check' : 'checks'} ${numbers.join(', ')} did not behave as expected`);
  }
  if (cleanupProblems.length > 0) reasons.push('cleaning up did not finish');
  say(`DEMO FAILED: ${reasons.join('; ')}. Exit code 1.`);
  return 1;
}

process.on('unhandledRejection', (err) => {
  print(`Unexpected error: ${err?.stack ?? err}`);
  cleanup().finally(() => process.exit(1));
});

main().then((code) => process.exit(code));
