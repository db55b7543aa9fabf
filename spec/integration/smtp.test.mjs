// End-to-end tests of the bridge behind Postfix: SMTP submission with SASL XOAUTH2 and
// OAUTHBEARER through Dovecot's auth socket, delivery to Dovecot over LMTP, and POP3 and
// ManageSieve logins with a token. Tokens come from a real OpenID provider (oidc-provider,
// authorization-code flow). Dovecot, Postfix and the provider listen on 127.0.0.1 and keep their
// files in one temporary directory.
// Run: node --test spec/integration/smtp.test.mjs (as root: Dovecot and Postfix drop privileges).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { makeCerts } from './lib/certs.mjs';
import { findAllLogLines, LOG_PATTERNS } from './lib/dovecot.mjs';
import { startIdp } from './lib/idp.mjs';
import {
  LineClient, POSTFIX_LOG_PATTERNS, readSmtpReply, smtpCommand, startMailDovecot, startPostfix,
} from './lib/postfix.mjs';

const BRIDGE_SCRIPT = fileURLToPath(new URL('../../lua-out/oauth2-bridge.lua', import.meta.url));

const DOMAIN = 'example.test';
const ALICE = `alice@${DOMAIN}`;
const BOB = `bob@${DOMAIN}`;
const CAROL = `carol@${DOMAIN}`;

// Passwords for the IdP's login form. Only the IdP's config file contains them.
const ACCOUNTS = {
  alice: { email: ALICE, password: `alice-${randomBytes(8).toString('hex')}` },
  bob: { email: BOB, password: `bob-${randomBytes(8).toString('hex')}` },
  carol: { email: CAROL, password: `carol-${randomBytes(8).toString('hex')}` },
};

// carol is a user of the identity provider with no mailbox here.
const MAILBOXES = [ALICE, BOB];

// A JWT-sized token: an AUTH line with it as initial response would be longer than Postfix's
// line_length_limit of 2048, so a client sends it after the 334 continuation (RFC 4954 section 4).
const LONG_TOKEN_LENGTH = 4000;
const SMTP_LINE_LENGTH_LIMIT = 2048;

const sentTokens = [];
const secrets = Object.values(ACCOUNTS).map((account) => account.password);
const logFiles = [];
const runningServers = [];

let rootDir;
let certs;
let idp;
let dovecot;
let postfix;
let accountFile;
// Subject of the message that alice sends bob, which the POP3 test reads.
let deliveredSubject;

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

async function obtainToken(accountName) {
  const token = await idp.getToken(accountName);
  sentTokens.push(token);
  return token;
}

/** Encodes the XOAUTH2 client response (Google's format): user, then the token as a Bearer credential. */
function xoauth2Response(user, token) {
  return Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`).toString('base64');
}

/** Encodes the OAUTHBEARER client response (RFC 7628 section 3.1), with the GS2 header naming `user`. */
function oauthbearerResponse(user, token, port) {
  return Buffer.from(`n,a=${user},\x01host=127.0.0.1\x01port=${port}\x01auth=Bearer ${token}\x01\x01`).toString('base64');
}

function clientResponse(mechanism, user, token, port) {
  return mechanism === 'OAUTHBEARER' ? oauthbearerResponse(user, token, port) : xoauth2Response(user, token);
}

// After a failed token login the server sends an error challenge. The client responds with an
// empty response (XOAUTH2) or a single 0x01 (RFC 7628 section 3.2.3) and then gets the failure.
function errorChallengeAnswer(mechanism) {
  return mechanism === 'OAUTHBEARER' ? Buffer.from('\x01').toString('base64') : '';
}

// The error challenge of each mechanism: Google's XOAUTH2 status is an HTTP code, the RFC 7628
// one an error name.
const ERROR_CHALLENGE = {
  XOAUTH2: /^\{"status":"401",/,
  OAUTHBEARER: /^\{"status":"invalid_token"/,
};

function decodeChallenge(text) {
  return Buffer.from(text, 'base64').toString('utf8');
}

// ---------------------------------------------------------------- SMTP

/** Connects to the submission port, sends EHLO, upgrades with STARTTLS and sends EHLO again. */
async function openSubmission() {
  const client = await LineClient.connect(postfix.submissionPort);
  const greeting = await readSmtpReply(client);
  assert.equal(greeting.code, 220, greeting.lines.join('\n'));
  const plainEhlo = await smtpCommand(client, 'EHLO client.example.test');
  assert.equal(plainEhlo.code, 250);
  const startTls = await smtpCommand(client, 'STARTTLS');
  assert.equal(startTls.code, 220, startTls.lines.join('\n'));
  const tlsInfo = await client.startTls({ ca: fs.readFileSync(certs.caCert) });
  const ehlo = await smtpCommand(client, 'EHLO client.example.test');
  assert.equal(ehlo.code, 250);
  return { client, plainEhlo, ehlo, tlsInfo };
}

/**
 * Runs SMTP AUTH in a new TLS session. With `initialResponse` false the client sends
 * `AUTH MECH` alone and its response after the empty 334 challenge. Resolves to
 * { client, reply, challenge, log } where challenge is the decoded error challenge, if any, and
 * log is Dovecot's log of this login.
 */
async function smtpAuth({ mechanism, user, token, initialResponse = true }) {
  const since = dovecot.logOffset();
  const { client } = await openSubmission();
  const response = clientResponse(mechanism, user, token, postfix.submissionPort);

  let reply;
  if (initialResponse) {
    reply = await smtpCommand(client, `AUTH ${mechanism} ${response}`);
  } else {
    const go = await smtpCommand(client, `AUTH ${mechanism}`);
    assert.equal(go.code, 334, go.lines.join('\n'));
    assert.equal(go.lines[0], '', 'the first challenge of a token mechanism is empty');
    reply = await smtpCommand(client, response);
  }

  let challenge;
  if (reply.code === 334) {
    challenge = decodeChallenge(reply.lines[0]);
    reply = await smtpCommand(client, errorChallengeAnswer(mechanism));
  }

  await dovecot.waitForLog(LOG_PATTERNS.authReply, { since });
  await dovecot.waitForLog(LOG_PATTERNS.workerFinished, { since });
  return { client, reply, challenge, log: dovecot.logSince(since) };
}

async function quit(client) {
  try {
    await smtpCommand(client, 'QUIT');
  } finally {
    client.close();
  }
}

/** Sends one message in an authenticated SMTP session and resolves to the queue ID. */
async function sendMessage(client, { from, to, subject, body }) {
  assert.equal((await smtpCommand(client, `MAIL FROM:<${from}>`)).code, 250);
  const rcpt = await smtpCommand(client, `RCPT TO:<${to}>`);
  assert.equal(rcpt.code, 250, rcpt.lines.join('\n'));
  assert.equal((await smtpCommand(client, 'DATA')).code, 354);
  const message = [
    `From: <${from}>`,
    `To: <${to}>`,
    `Subject: ${subject}`,
    `Message-ID: <${randomBytes(8).toString('hex')}@client.example.test>`,
    '',
    body,
    '.',
    '',
  ].join('\r\n');
  client.writeRaw(message);
  const queued = await readSmtpReply(client);
  assert.equal(queued.code, 250, queued.lines.join('\n'));
  const queueId = /queued as ([0-9A-F]+)/.exec(queued.lines[0])?.[1];
  assert.ok(queueId, queued.lines[0]);
  return queueId;
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

/** Asserts the auth process's view of an SMTP token login: the mechanism, service and user. */
function assertSmtpAuthRequest(log, { mechanism, user }) {
  const request = LOG_PATTERNS.authRequest.exec(log);
  assert.equal(request?.groups.mech, mechanism);
  assert.match(request[0], /\tservice=smtp\t/);
  assert.match(request[0], /\tsecured(?:\t|$)/);
  assert.equal(LOG_PATTERNS.luaVerifyCalled.exec(log)?.groups.user, user);
}

function assertSmtpAccepted(session, { mechanism, user }) {
  assert.equal(session.reply.code, 235, session.reply.lines.join('\n'));
  assert.equal(session.challenge, undefined);
  assertSmtpAuthRequest(session.log, { mechanism, user });
  assert.equal(LOG_PATTERNS.authReply.exec(session.log)?.groups.reply, 'OK');
  assert.equal(workerResult(session.log), undefined, 'the auth worker finishes without a result name after OK');
  assert.ok(bridgeMessages(session.log, 'Info').includes('Token accepted'));
}

function assertSmtpRefused(session, { mechanism, user, result }) {
  assert.equal(session.reply.code, 535, session.reply.lines.join('\n'));
  assert.match(session.challenge, ERROR_CHALLENGE[mechanism]);
  assertSmtpAuthRequest(session.log, { mechanism, user });
  assert.equal(LOG_PATTERNS.authReply.exec(session.log)?.groups.reply, 'FAIL');
  assert.equal(workerResult(session.log), result);
  assert.ok(!bridgeMessages(session.log, 'Info').includes('Token accepted'));
}

// ---------------------------------------------------------------- POP3 and ManageSieve

async function openPop3() {
  const client = await LineClient.connect(dovecot.pop3Port);
  assert.match(await client.readLine(), /^\+OK /);
  client.writeLine('STLS');
  assert.match(await client.readLine(), /^\+OK /);
  await client.startTls({ ca: fs.readFileSync(certs.caCert) });
  return client;
}

/** Runs POP3 AUTH (RFC 5034) with an initial response and resolves to { client, reply, challenge, since }. */
async function pop3Auth({ mechanism, user, token }) {
  const since = dovecot.logOffset();
  const client = await openPop3();
  client.writeLine(`AUTH ${mechanism} ${clientResponse(mechanism, user, token, dovecot.pop3Port)}`);
  let reply = await client.readLine();
  let challenge;
  if (reply.startsWith('+ ')) {
    challenge = decodeChallenge(reply.slice(2));
    client.writeLine(errorChallengeAnswer(mechanism));
    reply = await client.readLine();
  }
  await dovecot.waitForLog(LOG_PATTERNS.authReply, { since });
  return { client, reply, challenge, since };
}

/** Reads a POP3 multi-line reply (RFC 1939 section 3) and returns its text without the status line. */
async function readPop3Multiline(client) {
  const status = await client.readLine();
  assert.match(status, /^\+OK/);
  const lines = [];
  for (;;) {
    const line = await client.readLine();
    if (line === '.') return lines.join('\n');
    lines.push(line.startsWith('..') ? line.slice(1) : line);
  }
}

/** Reads ManageSieve lines up to the first OK, NO or BYE line, which it returns with the others. */
async function readSieveResponse(client) {
  const lines = [];
  for (;;) {
    let line = await client.readLine();
    // A literal {N} (or {N+}) at the end of a line is followed by N characters.
    const literal = /\{(\d+)\+?\}$/.exec(line);
    if (literal) line += `\n${await client.readChars(Number(literal[1]))}${await client.readLine()}`;
    lines.push(line);
    if (/^(OK|NO|BYE)\b/.test(line)) return { status: line.split(' ')[0], line, lines };
  }
}

async function openManageSieve() {
  const client = await LineClient.connect(dovecot.sievePort);
  const greeting = await readSieveResponse(client);
  assert.equal(greeting.status, 'OK', greeting.lines.join('\n'));
  client.writeLine('STARTTLS');
  assert.equal((await readSieveResponse(client)).status, 'OK');
  await client.startTls({ ca: fs.readFileSync(certs.caCert) });
  // RFC 5804 section 2.2: the server sends its capabilities again after the TLS handshake.
  const capabilities = await readSieveResponse(client);
  assert.equal(capabilities.status, 'OK', capabilities.lines.join('\n'));
  return { client, capabilities };
}

/** Runs ManageSieve AUTHENTICATE (RFC 5804 section 2.1) and resolves to { client, capabilities, response, challenge, since }. */
async function sieveAuth({ mechanism, user, token }) {
  const since = dovecot.logOffset();
  const { client, capabilities } = await openManageSieve();
  client.writeLine(`AUTHENTICATE "${mechanism}" "${clientResponse(mechanism, user, token, dovecot.sievePort)}"`);
  let response;
  let challenge;
  for (;;) {
    const line = await client.readLine();
    if (/^(OK|NO|BYE)\b/.test(line)) {
      response = { status: line.split(' ')[0], line };
      break;
    }
    // A challenge is a quoted string or a literal holding base64 text.
    const literal = /^\{(\d+)\+?\}$/.exec(line);
    const text = literal ? await client.readChars(Number(literal[1])) : /^"(.*)"$/.exec(line)?.[1];
    if (literal) await client.readLine();
    challenge = decodeChallenge(text ?? '');
    client.writeLine(`"${errorChallengeAnswer(mechanism)}"`);
  }
  await dovecot.waitForLog(LOG_PATTERNS.authReply, { since });
  return { client, capabilities, response, challenge, since };
}

// Login lines of pop3-login and managesieve-login, in the format of imap-login's.
function loginPattern(service) {
  return new RegExp(`^.* ${service}-login: Info: Login: user=<(?<user>[^>]*)>, method=(?<mech>[A-Z0-9_-]+), .*$`, 'm');
}

function loginFailedPattern(service) {
  return new RegExp(`^.* ${service}-login: Info: Disconnected: [^(\\n]*\\((?<reason>auth failed)[^)\\n]*\\): user=<(?<user>[^>]*)>, method=(?<mech>[A-Z0-9_-]+), .*$`, 'm');
}

// ---------------------------------------------------------------- servers

before(async () => {
  rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oauth2-bridge-smtp-'));
  // Dovecot's auth process (user dovecot) and Postfix's daemons (user postfix) read files here.
  fs.chmodSync(rootDir, 0o755);

  certs = makeCerts(makeDir('certs'));
  fs.chmodSync(certs.caCert, 0o644);
  fs.chmodSync(certs.serverCert, 0o644);

  const idpDir = makeDir('idp');
  idp = await startIdp({
    dir: idpDir,
    accounts: ACCOUNTS,
    clients: [{ client_id: 'mail-client', client_secret: newSecret('mail-client'), redirect_uris: ['http://127.0.0.1/callback'] }],
  });
  runningServers.push(idp);
  logFiles.push(path.join(idpDir, 'idp.log'));

  const dovecotDir = makeDir('dovecot');
  accountFile = path.join(dovecotDir, 'postfix-accounts.cf');
  const accountLines = MAILBOXES.map((address) => `${address}|{SHA512-CRYPT}$6$salt$notarealhash\n`);
  fs.writeFileSync(accountFile, `# Written by smtp.test.mjs\n${accountLines.join('')}`, { mode: 0o644 });
  dovecot = await startMailDovecot({
    dir: dovecotDir,
    tlsCert: certs.serverCert,
    tlsKey: certs.serverKey,
    luaScript: BRIDGE_SCRIPT,
    bridgeSettings: [
      `introspection_url = ${idp.userinfoUrl}`,
      `account_file = ${accountFile}`,
      'timeout_msecs = 3000',
      '',
    ].join('\n'),
  });
  runningServers.push(dovecot);
  logFiles.push(dovecot.logPath);

  postfix = await startPostfix({
    dir: makeDir('postfix'),
    domain: DOMAIN,
    mailboxes: MAILBOXES,
    lmtpPort: dovecot.lmtpPort,
    saslPath: dovecot.authSocketPath,
    tlsCert: certs.serverCert,
    tlsKey: certs.serverKey,
  });
  runningServers.push(postfix);
  logFiles.push(postfix.logPath);
});

after(async () => {
  // Postfix first, because it keeps connections to Dovecot's auth socket open.
  for (const server of [...runningServers].reverse()) await server?.stop();
  if (process.env.OAUTH2_BRIDGE_KEEP_TMP) {
    console.log(`Kept the temporary directory ${rootDir} because OAUTH2_BRIDGE_KEEP_TMP is set`);
    return;
  }
  fs.rmSync(rootDir, { recursive: true, force: true });
});

describe('SMTP submission', () => {
  let aliceToken;

  before(async () => {
    aliceToken = await obtainToken('alice');
  });

  test('AUTH offered only after STARTTLS', async () => {
    const { client, plainEhlo, ehlo, tlsInfo } = await openSubmission();
    await quit(client);

    assert.equal(plainEhlo.lines.find((line) => line.startsWith('AUTH')), undefined);
    assert.ok(plainEhlo.lines.includes('STARTTLS'));
    assert.equal(tlsInfo.authorized, true);
    const mechanisms = ehlo.lines.find((line) => line.startsWith('AUTH '))?.split(' ').slice(1);
    assert.ok(mechanisms?.includes('XOAUTH2'), ehlo.lines.join('\n'));
    assert.ok(mechanisms?.includes('OAUTHBEARER'), ehlo.lines.join('\n'));
  });

  test('XOAUTH2 accepted', async () => {
    const session = await smtpAuth({ mechanism: 'XOAUTH2', user: ALICE, token: aliceToken });
    await quit(session.client);

    assertSmtpAccepted(session, { mechanism: 'XOAUTH2', user: ALICE });
  });

  test('OAUTHBEARER accepted', async () => {
    const session = await smtpAuth({ mechanism: 'OAUTHBEARER', user: ALICE, token: aliceToken });
    await quit(session.client);

    assertSmtpAccepted(session, { mechanism: 'OAUTHBEARER', user: ALICE });
  });

  test('token after 334 accepted', async () => {
    const session = await smtpAuth({ mechanism: 'XOAUTH2', user: ALICE, token: aliceToken, initialResponse: false });
    await quit(session.client);

    assertSmtpAccepted(session, { mechanism: 'XOAUTH2', user: ALICE });
  });

  test('long token after 334 arrives whole', async () => {
    // The closing quote is not allowed in a bearer token, so the bridge refuses the token
    // without asking the IdP and logs its length: the length shows that nothing was cut off.
    const longToken = `${randomBytes(LONG_TOKEN_LENGTH).toString('base64url').slice(0, LONG_TOKEN_LENGTH - 1)}"`;
    sentTokens.push(longToken);
    const authLine = `AUTH XOAUTH2 ${xoauth2Response(ALICE, longToken)}`;

    const session = await smtpAuth({ mechanism: 'XOAUTH2', user: ALICE, token: longToken, initialResponse: false });
    await quit(session.client);

    assert.ok(authLine.length > SMTP_LINE_LENGTH_LIMIT, `the AUTH line would be ${authLine.length} characters`);
    assertSmtpRefused(session, { mechanism: 'XOAUTH2', user: ALICE, result: 'password_mismatch' });
    assert.deepEqual(bridgeMessages(session.log, 'Info'), [`Token is not a valid bearer token (${LONG_TOKEN_LENGTH} bytes)`]);
  });

  test('carol without mailbox refused', async () => {
    const carolToken = await obtainToken('carol');
    const since = postfix.logOffset();

    const session = await smtpAuth({ mechanism: 'XOAUTH2', user: CAROL, token: carolToken });
    await quit(session.client);

    assertSmtpRefused(session, { mechanism: 'XOAUTH2', user: CAROL, result: 'user_unknown' });
    const info = bridgeMessages(session.log, 'Info');
    assert.ok(info.includes(`No mailbox for the login name in ${accountFile}`), info.join('\n'));
    assert.ok(bridgeMessages(session.log, 'Debug').includes('Identity claim email matches the login name'));
    // SMTP AUTH makes only a passdb lookup, so no userdb lookup could have rejected carol.
    assert.doesNotMatch(session.log, /userdb lookup|userdb out:/);
    const failed = await postfix.waitForLog(POSTFIX_LOG_PATTERNS.saslFailed, { since });
    assert.equal(failed.groups.mech, 'XOAUTH2');
    assert.equal(failed.groups.user, CAROL);
  });

  test('token of alice refused for bob', async () => {
    const since = postfix.logOffset();

    const session = await smtpAuth({ mechanism: 'OAUTHBEARER', user: BOB, token: aliceToken });
    await quit(session.client);

    assertSmtpRefused(session, { mechanism: 'OAUTHBEARER', user: BOB, result: 'password_mismatch' });
    assert.deepEqual(bridgeMessages(session.log, 'Info'), [`Token belongs to ${ALICE} (claim email), not to the login name`]);
    const failed = await postfix.waitForLog(POSTFIX_LOG_PATTERNS.saslFailed, { since });
    assert.equal(failed.groups.mech, 'OAUTHBEARER');
    assert.equal(failed.groups.user, BOB);
  });

  test('mail from alice reaches bob by LMTP', async () => {
    const subject = `Hello Bob ${randomBytes(6).toString('hex')}`;
    deliveredSubject = subject;
    const since = postfix.logOffset();
    const dovecotSince = dovecot.logOffset();

    const session = await smtpAuth({ mechanism: 'XOAUTH2', user: ALICE, token: aliceToken });
    assert.equal(session.reply.code, 235, session.reply.lines.join('\n'));
    const queueId = await sendMessage(session.client, { from: ALICE, to: BOB, subject, body: 'Sent with a token.' });
    await quit(session.client);

    const client = await postfix.waitForLog(POSTFIX_LOG_PATTERNS.saslClient, { since });
    assert.equal(client.groups.queueId, queueId);
    assert.equal(client.groups.mech, 'XOAUTH2');
    assert.equal(client.groups.user, ALICE);
    const delivered = await postfix.waitForLog(POSTFIX_LOG_PATTERNS.delivered, { since });
    assert.equal(delivered.groups.queueId, queueId);
    assert.equal(delivered.groups.to, BOB);
    assert.equal(delivered.groups.relay, `127.0.0.1[127.0.0.1]:${dovecot.lmtpPort}`);
    await dovecot.waitForLog(new RegExp(`^.* lmtp\\(${BOB}\\)<\\d+><[^>]+>: Info: msgid=<[^>]+>: saved mail to INBOX$`, 'm'), { since: dovecotSince });

    const newDir = path.join(dovecot.dir, 'mail', BOB, 'Maildir', 'new');
    const messages = fs.readdirSync(newDir).map((name) => fs.readFileSync(path.join(newDir, name), 'utf8'));
    assert.equal(messages.filter((text) => text.includes(`Subject: ${subject}`)).length, 1);
  });
});

describe('POP3 and ManageSieve', () => {
  let aliceToken;
  let bobToken;

  before(async () => {
    aliceToken = await obtainToken('alice');
    bobToken = await obtainToken('bob');
  });

  // Runs after 'mail from alice reaches bob by LMTP', which gives bob his only message.
  test('POP3 XOAUTH2 reads bob mail', async () => {
    const session = await pop3Auth({ mechanism: 'XOAUTH2', user: BOB, token: bobToken });
    session.client.writeLine('STAT');
    const stat = await session.client.readLine();
    session.client.writeLine('RETR 1');
    const message = await readPop3Multiline(session.client);
    session.client.writeLine('QUIT');
    await session.client.readLine();
    session.client.close();

    assert.match(session.reply, /^\+OK Logged in/);
    assert.match(stat, /^\+OK 1 \d+$/);
    assert.ok(message.includes(`Subject: ${deliveredSubject}`), message);
    const login = await dovecot.waitForLog(loginPattern('pop3'), { since: session.since });
    assert.equal(login.groups.user, BOB);
    assert.equal(login.groups.mech, 'XOAUTH2');
    assert.ok(bridgeMessages(dovecot.logSince(session.since), 'Info').includes('Token accepted'));
  });

  test('POP3 OAUTHBEARER refuses carol', async () => {
    const carolToken = await obtainToken('carol');

    const session = await pop3Auth({ mechanism: 'OAUTHBEARER', user: CAROL, token: carolToken });
    session.client.close();

    assert.match(session.reply, /^-ERR \[AUTH\] Authentication failed/);
    assert.match(session.challenge, ERROR_CHALLENGE.OAUTHBEARER);
    const failed = await dovecot.waitForLog(loginFailedPattern('pop3'), { since: session.since });
    assert.equal(failed.groups.user, CAROL);
    assert.equal(failed.groups.mech, 'OAUTHBEARER');
    const info = bridgeMessages(dovecot.logSince(session.since), 'Info');
    assert.ok(info.includes(`No mailbox for the login name in ${accountFile}`), info.join('\n'));
  });

  test('ManageSieve XOAUTH2 logs in', async () => {
    const session = await sieveAuth({ mechanism: 'XOAUTH2', user: ALICE, token: aliceToken });
    session.client.writeLine('LISTSCRIPTS');
    const scripts = await readSieveResponse(session.client);
    session.client.writeLine('LOGOUT');
    await readSieveResponse(session.client);
    session.client.close();

    assert.match(session.capabilities.lines.join('\n'), /^"SASL" ".*\bXOAUTH2\b.*"$/m);
    assert.equal(session.response.status, 'OK', session.response.line);
    assert.equal(scripts.status, 'OK', scripts.lines.join('\n'));
    const login = await dovecot.waitForLog(loginPattern('managesieve'), { since: session.since });
    assert.equal(login.groups.user, ALICE);
    assert.equal(login.groups.mech, 'XOAUTH2');
  });

  test('ManageSieve refuses alice token for bob', async () => {
    const session = await sieveAuth({ mechanism: 'OAUTHBEARER', user: BOB, token: aliceToken });
    session.client.close();

    assert.equal(session.response.status, 'NO', session.response.line);
    assert.match(session.challenge, ERROR_CHALLENGE.OAUTHBEARER);
    await dovecot.waitForLog(LOG_PATTERNS.workerFinished, { since: session.since });
    const log = dovecot.logSince(session.since);
    assert.deepEqual(bridgeMessages(log, 'Info'), [`Token belongs to ${ALICE} (claim email), not to the login name`]);
  });
});

// Runs last, when every token has been sent and every server has written its log.
describe('log hygiene', () => {
  const BEARER_VALUE = /\bBearer +[A-Za-z0-9\-._~+/]{8,}/;
  const AUTHORIZATION_VALUE = /\bAuthorization *[:=] *\S+/i;

  // True for a line with a base64 run that decodes to a SASL token response.
  function holdsEncodedCredential(line) {
    return [...line.matchAll(/[A-Za-z0-9+/]{24,}={0,2}/g)].some(([run]) => {
      const decoded = Buffer.from(run, 'base64').toString('latin1');
      return decoded.includes('auth=Bearer') || sentTokens.some((token) => decoded.includes(token));
    });
  }

  function linesContaining(text, needle) {
    const numbers = [];
    for (const [index, line] of text.split('\n').entries()) {
      let found;
      if (typeof needle === 'string') found = line.includes(needle);
      else if (typeof needle === 'function') found = needle(line);
      else found = needle.test(line);
      if (found) numbers.push(index + 1);
    }
    return numbers;
  }

  test('suite collected tokens and logs', () => {
    assert.ok(sentTokens.length >= 5, `only ${sentTokens.length} tokens collected`);
    assert.equal(logFiles.length, 3);
    for (const file of logFiles) {
      assert.ok(fs.statSync(file).size > 0, `${file} is empty`);
    }
  });

  // The messages name the file, the token or secret by index and the line numbers, never the
  // matching text, so a failure does not copy a token into the test output. The base64 form
  // of each token counts too: SMTP and SASL carry it encoded.
  test('logs hold no tokens or secrets', () => {
    for (const file of logFiles) {
      const text = fs.readFileSync(file, 'utf8');
      for (const [index, token] of sentTokens.entries()) {
        assert.deepEqual(linesContaining(text, token), [], `${file} contains token #${index} on these lines`);
      }
      assert.deepEqual(linesContaining(text, holdsEncodedCredential), [], `${file} contains a base64 SASL response on these lines`);
      for (const [index, secret] of secrets.entries()) {
        assert.deepEqual(linesContaining(text, secret), [], `${file} contains secret #${index} on these lines`);
      }
      assert.deepEqual(linesContaining(text, BEARER_VALUE), [], `${file} contains a Bearer value on these lines`);
      assert.deepEqual(linesContaining(text, AUTHORIZATION_VALUE), [], `${file} contains an Authorization value on these lines`);
    }
  });
});
