// Hostile and odd input through a real Dovecot 2.3: tokens of every length up to the largest SASL
// message Dovecot reads, tokens with bytes no bearer token has, odd login names, and identity
// provider responses with odd claims. A raw IMAP client written here sends exactly the SASL bytes
// each case needs, base64-encoded, which no ordinary client would. The identity provider is the
// switchable one of lib/fault-idp.mjs, which records the exact bytes of each request.
// Run: node --test spec/integration/hostile.test.mjs (as root, because Dovecot drops privileges).

import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { findAllLogLines, LOG_PATTERNS, startDovecot } from './lib/dovecot.mjs';
import { behaviours, jsonResponse, responseBytes, startFaultIdp } from './lib/fault-idp.mjs';

// OAUTH2_BRIDGE_SCRIPT can name another build, such as a scratch build of a fix.
const BRIDGE_SCRIPT = process.env.OAUTH2_BRIDGE_SCRIPT
  ? path.resolve(process.env.OAUTH2_BRIDGE_SCRIPT)
  : fileURLToPath(new URL('../../lua-out/oauth2-bridge.lua', import.meta.url));

const ALICE = 'alice@example.test';
const ISSUER = 'https://idp.example.test';

// Dovecot 2.3.19's login processes read a SASL response line of at most 8192 bytes, its CR
// included (LOGIN_MAX_AUTH_BUF_SIZE in src/login-common/client-common.h). Base64 comes in groups
// of four characters, so the longest accepted response is 8188 characters, 6141 decoded bytes.
const MAX_SASL_BASE64 = 8188;
const MAX_SASL_BYTES = (MAX_SASL_BASE64 / 4) * 3;

const RAW_CLIENT_TIMEOUT_MS = 10_000;
const B64TOKEN_CHARACTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/';

// Everything the log hygiene checks look for.
const sentTokens = [];
const bodyMarkers = [];
const logFiles = [];
const runningServers = [];

let rootDir;

function makeDir(name) {
  const dir = path.join(rootDir, name);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  return dir;
}

/**
 * Returns a random RFC 6750 b64token of exactly `length` bytes that contains `+ / = . _ -` once
 * it is long enough, ending in up to two "=".
 */
function tokenOfLength(length) {
  const fixed = length >= 12 ? 'x+y/z.a_b-c~' : '';
  const padding = length >= 14 ? '==' : '';
  let middle = '';
  for (let index = fixed.length + padding.length; index < length; index++) {
    middle += B64TOKEN_CHARACTERS[randomInt(B64TOKEN_CHARACTERS.length)];
  }
  const token = `${fixed}${middle}${padding}`;
  if (length >= 8) sentTokens.push(token);
  return token;
}

function newMarker() {
  const marker = `BODYMARK${randomBytes(8).toString('hex')}`;
  bodyMarkers.push(marker);
  return marker;
}

// ---------------------------------------------------------------- SASL messages and the raw client

function xoauth2Message(user, token) {
  return Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`, 'latin1');
}

/** RFC 7628 section 3.1, with the host and port fields that Thunderbird and curl send. */
function oauthbearerMessage(user, token, port) {
  const saslName = user.replace(/=/g, '=3D').replace(/,/g, '=2C');
  return Buffer.from(`n,a=${saslName},\x01host=127.0.0.1\x01port=${port}\x01auth=Bearer ${token}\x01\x01`, 'latin1');
}

/** Returns the longest token for which `build(token)` still fits into one SASL response. */
function maxTokenLength(build) {
  return MAX_SASL_BYTES - build('').length;
}

/**
 * Runs `A1 AUTHENTICATE` over a raw IMAP connection to 127.0.0.1 with `message` (a Buffer of
 * any bytes) base64-encoded, as an initial response (SASL-IR) or after the server's empty
 * continuation. An error challenge gets the response that RFC 7628 and XOAUTH2 clients send,
 * and a tagged reply is followed by LOGOUT. Resolves to { lines, tagged, closed }, where `closed` means
 * the server closed the connection before LOGOUT finished.
 */
function rawAuthenticate({ port, mechanism, message, initialResponse = true }) {
  const encoded = message.toString('base64');
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const lines = [];
    let buffered = '';
    let state = 'greeting';
    let settled = false;

    const finish = (closed) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ lines, tagged: lines.find((line) => line.startsWith('A1 ')), closed });
    };
    const timer = setTimeout(() => {
      settled = true;
      socket.destroy();
      reject(new Error(`no IMAP reply within ${RAW_CLIENT_TIMEOUT_MS} ms (state ${state}): ${lines.join(' | ')}`));
    }, RAW_CLIENT_TIMEOUT_MS);

    const handleLine = (line) => {
      lines.push(line);
      if (state === 'greeting') {
        state = initialResponse ? 'authenticating' : 'waiting for continuation';
        socket.write(initialResponse ? `A1 AUTHENTICATE ${mechanism} ${encoded}\r\n` : `A1 AUTHENTICATE ${mechanism}\r\n`);
      } else if (state === 'waiting for continuation' && line.startsWith('+')) {
        state = 'authenticating';
        socket.write(`${encoded}\r\n`);
      } else if (state === 'authenticating' && line.startsWith('+')) {
        // The error challenge: XOAUTH2 clients send an empty response, OAUTHBEARER ones %x01.
        socket.write(mechanism === 'OAUTHBEARER' ? 'AQ==\r\n' : '\r\n');
      } else if (line.startsWith('A1 ')) {
        state = 'logging out';
        socket.write('A2 LOGOUT\r\n');
      } else if (line.startsWith('A2 ')) {
        finish(false);
      }
    };

    socket.setEncoding('latin1');
    socket.on('error', () => {});
    socket.on('close', () => finish(state !== 'logging out'));
    socket.on('data', (chunk) => {
      buffered += chunk;
      for (let end = buffered.indexOf('\r\n'); end !== -1; end = buffered.indexOf('\r\n')) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        handleLine(line);
      }
    });
  });
}

// ---------------------------------------------------------------- servers

function claims(overrides = {}) {
  return { sub: 'alice', email: ALICE, scope: 'openid email', iss: ISSUER, name: newMarker(), ...overrides };
}

async function startBridge(name, idp, { accounts, extraConfig = '' }) {
  const dir = makeDir(name);
  const accountFile = path.join(dir, 'postfix-accounts.cf');
  const lines = accounts.map((account) => `${account}|{SHA512-CRYPT}$6$salt$notarealhash\n`);
  fs.writeFileSync(accountFile, lines.join(''), { mode: 0o644 });

  const settings = [
    `introspection_url = ${idp.url}`,
    `account_file = ${accountFile}`,
    'cache_ttl_secs = 0',
    'timeout_msecs = 3000',
    'scope = email',
    `issuers = ${ISSUER}`,
  ];
  const dovecot = await startDovecot({ dir, luaScript: BRIDGE_SCRIPT, bridgeSettings: `${settings.join('\n')}\n`, extraConfig });
  runningServers.push(dovecot);
  logFiles.push(dovecot.logPath);
  return { dovecot, accountFile };
}

// ---------------------------------------------------------------- outcomes

const LOGIN_PROCESS_DONE = /^.* imap-login: Info: (?:Login|Disconnected): .*$/m;
const AUTH_REPLY = /^.* auth: Debug: client passdb out: (?<reply>OK|FAIL)\t\d+.*$/m;
const TOO_LARGE = /^.* imap-login: Info: Disconnected: Authentication response too large .*$/m;

/**
 * Expected outcomes. Each names the log line that completes a session (`done`) and checks the
 * session: { reply, log, idp } with the raw client's reply, this session's log and the requests
 * the identity provider received.
 */
const outcome = {
  ok: () => ({
    lua: true,
    check(session) {
      assert.match(session.reply.tagged ?? '', /^A1 OK .*Logged in/);
      assert.equal(AUTH_REPLY.exec(session.log)?.groups.reply, 'OK');
      assert.equal(LOG_PATTERNS.workerFinished.exec(session.log)?.groups.result, undefined);
      assert.deepEqual(bridgeMessages(session.log, 'Info'), ['Token accepted']);
    },
  }),
  passwordMismatch: (message) => refusedByBridge('password_mismatch', /^A1 NO \[AUTHENTICATIONFAILED\]/, message),
  userUnknown: (message) => refusedByBridge('user_unknown', /^A1 NO \[AUTHENTICATIONFAILED\]/, message),
  internalFailure: (message) => ({
    lua: true,
    check(session) {
      assert.match(session.reply.tagged ?? '', /^A1 NO \[UNAVAILABLE\] Temporary authentication failure/);
      assert.equal(LOG_PATTERNS.workerFinished.exec(session.log)?.groups.result, 'internal_failure');
      assert.deepEqual(passdbErrors(session.log), [message]);
      assert.deepEqual(bridgeMessages(session.log, 'Info'), []);
    },
  }),
  /** Dovecot refuses before it calls the passdb, and logs `line`. */
  dovecotRefuses: (line) => ({
    lua: false,
    done: line,
    check(session) {
      assert.match(session.reply.tagged ?? '', /^A1 NO \[AUTHENTICATIONFAILED\]/);
      assert.match(session.log, line);
      assert.equal(AUTH_REPLY.exec(session.log)?.groups.reply, 'FAIL');
      assert.equal(LOG_PATTERNS.luaVerifyCalled.exec(session.log)?.[0], undefined);
      assert.equal(session.idp.length, 0);
    },
  }),
  /**
   * The login process drops the connection. With SASL-IR it never contacts the auth process.
   * After a continuation the auth request has started, but without the response.
   */
  tooLarge: ({ initialResponse }) => ({
    lua: false,
    done: TOO_LARGE,
    check(session) {
      assert.equal(session.reply.tagged, undefined);
      assert.equal(session.reply.closed, true);
      assert.match(session.log, TOO_LARGE);
      const authRequest = LOG_PATTERNS.authRequest.exec(session.log)?.[0];
      if (initialResponse) {
        assert.equal(authRequest, undefined);
      } else {
        assert.notEqual(authRequest, undefined);
      }
      assert.equal(AUTH_REPLY.exec(session.log)?.[0], undefined);
      assert.equal(LOG_PATTERNS.luaVerifyCalled.exec(session.log)?.[0], undefined);
      assert.equal(session.idp.length, 0);
    },
  }),
};

function refusedByBridge(result, tagged, message) {
  return {
    lua: true,
    check(session) {
      assert.match(session.reply.tagged ?? '', tagged);
      assert.equal(LOG_PATTERNS.workerFinished.exec(session.log)?.groups.result, result);
      assert.equal(AUTH_REPLY.exec(session.log)?.groups.reply, 'FAIL');
      const info = bridgeMessages(session.log, 'Info');
      if (typeof message === 'string') {
        assert.deepEqual(info, [message]);
      } else {
        assert.equal(info.length, 1, info.join('\n'));
        assert.match(info[0], message);
      }
      assert.deepEqual(passdbErrors(session.log), []);
    },
  };
}

function bridgeMessages(log, level) {
  return findAllLogLines(LOG_PATTERNS.luaScriptLog, log)
    .filter((match) => match.groups.level === level)
    .map((match) => match.groups.message);
}

function passdbErrors(log) {
  return findAllLogLines(LOG_PATTERNS.luaPassdbError, log).map((match) => match.groups.message);
}

/** Sends one SASL message and waits until Dovecot has logged the whole session. */
async function attempt(dovecot, idp, { mechanism = 'XOAUTH2', message, initialResponse = true }, expected) {
  idp.reset();
  const since = dovecot.logOffset();
  const reply = await rawAuthenticate({ port: dovecot.imapPort, mechanism, message, initialResponse });

  await dovecot.waitForLog(expected.done ?? LOGIN_PROCESS_DONE, { since });
  if (expected.lua) {
    await dovecot.waitForLog(LOG_PATTERNS.workerFinished, { since });
  }
  if (expected.done !== TOO_LARGE) {
    await dovecot.waitForLog(AUTH_REPLY, { since });
  }
  await dovecot.waitForLog(LOGIN_PROCESS_DONE, { since });
  return { reply, log: dovecot.logSince(since), idp: [...idp.requests] };
}

function linesContaining(text, needle) {
  const numbers = [];
  for (const [index, line] of text.split('\n').entries()) {
    if (typeof needle === 'string' ? line.includes(needle) : needle.test(line)) numbers.push(index + 1);
  }
  return numbers;
}

function assertLogClean(text, where) {
  for (const [index, token] of sentTokens.entries()) {
    assert.deepEqual(linesContaining(text, token), [], `${where} contains token #${index} on these lines`);
  }
  for (const [index, marker] of bodyMarkers.entries()) {
    assert.deepEqual(linesContaining(text, marker), [], `${where} contains body marker #${index} on these lines`);
  }
  assert.deepEqual(linesContaining(text, /\bBearer +[A-Za-z0-9\-._~+/]{8,}/), [], `${where} contains a Bearer value`);
  assert.deepEqual(linesContaining(text, /\bAuthorization *[:=] *\S+/i), [], `${where} contains an Authorization value`);
}

// ---------------------------------------------------------------- tests

before(() => {
  rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oauth2-bridge-hostile-'));
  fs.chmodSync(rootDir, 0o755);
});

after(async () => {
  await Promise.all(runningServers.map((server) => server.stop()));
  if (process.env.OAUTH2_BRIDGE_KEEP_TMP) {
    console.log(`Kept the temporary directory ${rootDir} because OAUTH2_BRIDGE_KEEP_TMP is set`);
    return;
  }
  fs.rmSync(rootDir, { recursive: true, force: true });
});

const LONG_LOCAL_PART = 'l'.repeat(200);
const IDN_ALICE = 'alice@xn--bcher-kva.example';
const UNICODE_ALICE = 'alice@bücher.example';

describe('with Dovecot defaults', () => {
  let idp;
  let dovecot;
  let accountFile;

  before(async () => {
    idp = await startFaultIdp();
    runningServers.push(idp);
    ({ dovecot, accountFile } = await startBridge('default-dovecot', idp, {
      accounts: [ALICE, 'axb@example.test', IDN_ALICE, `${LONG_LOCAL_PART}@example.test`],
    }));
  });

  describe('token length', () => {
    before(async () => {
      await idp.setBehaviour(behaviours.respond(() => jsonResponse(200, claims())));
    });

    const port = () => dovecot.imapPort;
    const mechanisms = {
      XOAUTH2: (token) => xoauth2Message(ALICE, token),
      OAUTHBEARER: (token) => oauthbearerMessage(ALICE, token, port()),
    };

    const accepted = [
      ['XOAUTH2', '1-byte', () => 1, true],
      ['XOAUTH2', '2-byte', () => 2, true],
      ['XOAUTH2', '64-byte', () => 64, true],
      ['XOAUTH2', '1000-byte', () => 1000, true],
      ['XOAUTH2', '4096-byte', () => 4096, true],
      ['XOAUTH2', 'second longest', (build) => maxTokenLength(build) - 1, true],
      ['XOAUTH2', 'longest', (build) => maxTokenLength(build), true],
      ['XOAUTH2', 'longest', (build) => maxTokenLength(build), false],
      ['OAUTHBEARER', '1-byte', () => 1, true],
      ['OAUTHBEARER', 'longest', (build) => maxTokenLength(build), true],
      ['OAUTHBEARER', 'longest', (build) => maxTokenLength(build), false],
    ];
    for (const [mechanism, label, lengthOf, initialResponse] of accepted) {
      const how = initialResponse ? 'SASL-IR' : 'continuation';
      test(`${mechanism} ${label} token, ${how}`, async () => {
        const build = mechanisms[mechanism];
        const length = lengthOf(build);
        const token = tokenOfLength(length);
        const message = build(token);

        const session = await attempt(dovecot, idp, { mechanism, message, initialResponse }, outcome.ok());

        assert.ok(message.toString('base64').length <= MAX_SASL_BASE64);
        outcome.ok().check(session);
        assert.equal(session.idp.length, 1);
        assert.equal(session.idp[0].headers.authorization.length, 'Bearer '.length + length);
        assert.equal(session.idp[0].headers.authorization, `Bearer ${token}`);
        assertLogClean(session.log, `session log (token of ${length} bytes)`);
      });
    }

    const refused = [
      ['XOAUTH2', 'one byte too long', (build) => maxTokenLength(build) + 1, true],
      ['XOAUTH2', 'one byte too long', (build) => maxTokenLength(build) + 1, false],
      ['XOAUTH2', '8192-byte', () => 8192, true],
      ['XOAUTH2', '20000-byte', () => 20000, true],
      ['OAUTHBEARER', 'one byte too long', (build) => maxTokenLength(build) + 1, true],
    ];
    for (const [mechanism, label, lengthOf, initialResponse] of refused) {
      const how = initialResponse ? 'SASL-IR' : 'continuation';
      test(`${mechanism} ${label} token, ${how}`, async () => {
        const build = mechanisms[mechanism];
        const length = lengthOf(build);
        const message = build(tokenOfLength(length));
        const expected = outcome.tooLarge({ initialResponse });

        const session = await attempt(dovecot, idp, { mechanism, message, initialResponse }, expected);

        assert.ok(message.toString('base64').length > MAX_SASL_BASE64);
        expected.check(session);
        assertLogClean(session.log, `session log (token of ${length} bytes)`);
      });
    }
  });

  describe('token bytes', () => {
    before(async () => {
      await idp.setBehaviour(behaviours.respond(() => jsonResponse(200, claims())));
    });

    // The bridge refuses these itself, without asking the identity provider.
    const refusedByBridgeCases = [
      ['space', 'abc def'],
      ['leading space', ' abcdef'],
      ['DEL', 'abc\x7fdef'],
      ['ESC', 'abc\x1b[0mdef'],
      ['BEL', 'abc\x07def'],
      ['unit separator', 'abc\x1fdef'],
      ['non-ASCII', 'abc\xc3\xa9def'],
      ['quote', 'abc"def'],
      ['comma', 'abc,def'],
      ['inner equals', 'abc=def'],
    ];
    for (const [label, token] of refusedByBridgeCases) {
      for (const mechanism of ['XOAUTH2', 'OAUTHBEARER']) {
        test(`${label} in ${mechanism} token refused`, async () => {
          const message = mechanism === 'XOAUTH2' ? xoauth2Message(ALICE, token) : oauthbearerMessage(ALICE, token, dovecot.imapPort);
          const expected = outcome.passwordMismatch(`Token is not a valid bearer token (${Buffer.byteLength(token, 'latin1')} bytes)`);

          const session = await attempt(dovecot, idp, { mechanism, message }, expected);

          expected.check(session);
          assert.equal(session.idp.length, 0);
        });
      }
    }

    // Dovecot's SASL code refuses these before the passdb (src/auth/mech-oauth2.c,
    // src/auth/auth-request.c in 2.3.19).
    const refusedByDovecotCases = [
      ['CR', 'abc\rdef', /: Info: xoauth2\(\?,[^)]*\): Invalid continued data$/m],
      ['LF', 'abc\ndef', /: Info: xoauth2\(\?,[^)]*\): Invalid continued data$/m],
      ['CRLF', 'abc\r\ndef', /: Info: xoauth2\(\?,[^)]*\): Invalid continued data$/m],
      ['NUL', 'abc\x00def', /: Debug: xoauth2\(\?,[^)]*\): Unexpected NUL in auth data$/m],
      ['leading NUL', '\x00abcdef', /: Debug: xoauth2\(\?,[^)]*\): Unexpected NUL in auth data$/m],
      ['tab', 'abc\tdef', /auth: Info: Attempted login with password having illegal chars$/m],
    ];
    for (const [label, token, line] of refusedByDovecotCases) {
      test(`${label} in token refused by Dovecot`, async () => {
        const expected = outcome.dovecotRefuses(line);

        const session = await attempt(dovecot, idp, { message: xoauth2Message(ALICE, token) }, expected);

        expected.check(session);
      });
    }

    // XOAUTH2 and OAUTHBEARER separate fields with %x01, so the token ends there and Dovecot
    // ignores the rest as an unknown field.
    test('SOH ends the token', async () => {
      await idp.setBehaviour(behaviours.reply(jsonResponse(401, { error: 'invalid_token' })));
      const head = tokenOfLength(24);
      const expected = outcome.passwordMismatch(`Token rejected by the identity provider: HTTP 401 from ${idp.origin}`);

      const session = await attempt(dovecot, idp, { message: xoauth2Message(ALICE, `${head}\x01tail`) }, expected);

      expected.check(session);
      assert.equal(session.idp.length, 1);
      assert.equal(session.idp[0].headers.authorization, `Bearer ${head}`);
    });
  });

  describe('login names', () => {
    const login = async (user, claim, expected) => {
      await idp.setBehaviour(behaviours.respond(() => jsonResponse(200, claims({ email: claim }))));
      const session = await attempt(dovecot, idp, { message: xoauth2Message(user, tokenOfLength(40)) }, expected);
      expected.check(session);
      return session;
    };

    test('mixed case lowered by Dovecot', async () => {
      const session = await login('Alice@Example.TEST', ALICE, outcome.ok());

      assert.equal(LOG_PATTERNS.luaVerifyCalled.exec(session.log)?.groups.user, ALICE);
    });

    // auth_username_chars = a-z A-Z 0-9 . - _ @ by default, checked byte by byte.
    const disallowed = [
      [UNICODE_ALICE, 0xc3],
      ['a%b@example.test', 0x25],
      ['a*b@example.test', 0x2a],
      ['a(b)@example.test', 0x28],
      ['a\\b@example.test', 0x5c],
      ['a b@example.test', 0x20],
      ['a,b@example.test', 0x2c],
    ];
    for (const [user, byte] of disallowed) {
      test(`${user} refused by Dovecot`, async () => {
        const hex = byte.toString(16).padStart(2, '0');
        const line = new RegExp(`: Info: xoauth2\\(\\?,[^)]*\\): Username character disallowed by auth_username_chars: 0x${hex} `, 'm');

        await login(Buffer.from(user, 'utf8').toString('latin1'), ALICE, outcome.dovecotRefuses(line));
      });
    }

    test('IDN in punycode logs in', async () => {
      await login(IDN_ALICE, IDN_ALICE, outcome.ok());
    });

    test('punycode login, Unicode claim', async () => {
      await login(IDN_ALICE, UNICODE_ALICE, outcome.passwordMismatch(`Token belongs to ${UNICODE_ALICE} (claim email), not to the login name`));
    });

    test('200-byte local part logs in', async () => {
      const user = `${LONG_LOCAL_PART}@example.test`;

      await login(user, user, outcome.ok());
    });

    test('4000-byte name is unknown', async () => {
      const user = `${'u'.repeat(4000)}@example.test`;

      await login(user, user, outcome.userUnknown(`No mailbox for the login name in ${accountFile}`));
    });

    test('dot is no wildcard', async () => {
      await login('a.b@example.test', 'a.b@example.test', outcome.userUnknown(`No mailbox for the login name in ${accountFile}`));
    });
  });

  describe('identity provider claims', () => {
    const unusable = (reason) => outcome.internalFailure(`Identity provider response unusable: ${reason}`);
    const json = (value) => JSON.stringify(value);
    // The value of a member of the top-level object, such that the body nests `depth` levels.
    const nested = (depth) => `${'{"a":'.repeat(depth - 2)}[1]${'}'.repeat(depth - 2)}`;
    const base = () => json(claims()).slice(0, -1);

    // Each body is raw JSON text, so that duplicate keys and huge numbers reach the bridge as
    // written. The login name is alice@example.test. The expected outcome is built when the test
    // runs, once the identity provider's origin is known.
    const cases = [
      ['email a number', () => json(claims({ email: 42 })), () => unusable('claim email is not a string (number)')],
      ['email a huge number', () => `${base()},"email":1e400}`, () => unusable('claim email is not a string (number)')],
      ['email an array', () => json(claims({ email: [ALICE] })), () => unusable('claim email is not a string (object or array)')],
      ['email an object', () => json(claims({ email: { value: ALICE } })), () => unusable('claim email is not a string (object or array)')],
      ['email true', () => json(claims({ email: true })), () => unusable('claim email is not a string (boolean)')],
      ['email null', () => json(claims({ email: null })), () => unusable('claim email is missing (claims present: iss, name, scope, sub)')],
      ['email empty', () => json(claims({ email: '' })), () => unusable('claim email is empty')],
      ['email missing', () => json({ ...claims(), email: undefined }), () => unusable('claim email is missing (claims present: iss, name, scope, sub)')],
      ['email only nested', () => json({ ...claims(), email: undefined, ext: { email: ALICE } }), () => unusable('claim email is missing (claims present: ext, iss, name, scope, sub)')],
      ['email in upper case', () => json(claims({ email: ALICE.toUpperCase() })), () => outcome.ok()],
      ['email with a space', () => json(claims({ email: ` ${ALICE}` })), () => outcome.passwordMismatch(`Token belongs to  ${ALICE} (claim email), not to the login name`)],
      ['email of bob', () => json(claims({ email: 'bob@example.test' })), () => outcome.passwordMismatch('Token belongs to bob@example.test (claim email), not to the login name')],
      ['email with NUL', () => json(claims({ email: `${ALICE}\u0000` })), () => outcome.passwordMismatch(/^Token belongs to alice@example\.test/)],
      ['email with LF', () => json(claims({ email: 'bob@example.test\nforged line' })), () => outcome.passwordMismatch(/^Token belongs to bob@example\.test/)],
      ['email of 5000 bytes', () => json(claims({ email: `${'e'.repeat(4988)}@example.test` })), () => outcome.passwordMismatch(/^Token belongs to e{100}/)],
      ['duplicate email, alice last', () => `{"email":"bob@example.test",${base().slice(1)},"email":"${ALICE}"}`, () => outcome.ok()],
      ['duplicate email, alice first', () => `${base()},"email":"bob@example.test"}`, () => outcome.passwordMismatch('Token belongs to bob@example.test (claim email), not to the login name')],
      ['duplicate active, false last', () => `{"active":true,${base().slice(1)},"active":false}`, () => outcome.passwordMismatch('Token is not active')],
      ['active "true"', () => json(claims({ active: 'true' })), () => outcome.passwordMismatch('Token is not active')],
      ['active 1', () => json(claims({ active: 1 })), () => outcome.passwordMismatch('Token is not active')],
      ['active null', () => json(claims({ active: null })), () => outcome.passwordMismatch('Token is not active')],
      ['active an object', () => json(claims({ active: { value: true } })), () => outcome.passwordMismatch('Token is not active')],
      ['active true', () => json(claims({ active: true })), () => outcome.ok()],
      ['exp an object', () => json(claims({ exp: {} })), () => outcome.internalFailure('Claim exp is not a number (object or array)')],
      ['exp 1e400', () => `${base()},"exp":1e400}`, () => outcome.internalFailure('Claim exp is not a number (number)')],
      ['exp -1e400', () => `${base()},"exp":-1e400}`, () => outcome.passwordMismatch('Token has expired')],
      ['exp 30 digits', () => `${base()},"exp":123456789012345678901234567890}`, () => outcome.ok()],
      ['exp a numeric string', () => json(claims({ exp: '99999999999999999999999' })), () => outcome.ok()],
      ['exp in exponent form', () => json(claims({ exp: '1e12' })), () => outcome.internalFailure('Claim exp is not a number (string)')],
      ['scope a number', () => json(claims({ scope: 7 })), () => outcome.internalFailure('Claim scope is neither a string nor an array of strings')],
      ['scope nested arrays', () => json(claims({ scope: [['email']] })), () => outcome.internalFailure('Claim scope is neither a string nor an array of strings')],
      ['scope null', () => json(claims({ scope: null })), () => outcome.passwordMismatch('Token has no scope claim, and scope is required')],
      ['iss a number', () => json(claims({ iss: 1 })), () => outcome.internalFailure('Claim iss is not a string (number)')],
      ['iss null', () => json(claims({ iss: null })), () => outcome.passwordMismatch('Token has no iss claim, and issuers is set')],
      ['32 levels deep', () => `${base()},"deep":${nested(32)}}`, () => outcome.ok()],
      ['33 levels deep', () => `${base()},"deep":${nested(33)}}`, () => outcome.internalFailure(`Userinfo request failed: body is not valid JSON (HTTP 200 from ${idp.origin})`)],
      ['1000 levels deep', () => `${base()},"deep":${nested(1000)}}`, () => outcome.internalFailure(`Userinfo request failed: body is not valid JSON (HTTP 200 from ${idp.origin})`)],
      ['60 KB name claim', () => json(claims({ name: `${newMarker()}${'n'.repeat(60_000)}` })), () => outcome.ok()],
      ['NaN in a claim', () => `${base()},"other":NaN}`, () => outcome.internalFailure(`Userinfo request failed: body is not valid JSON (HTTP 200 from ${idp.origin})`)],
      ['hexadecimal number', () => `${base()},"other":0x10}`, () => outcome.internalFailure(`Userinfo request failed: body is not valid JSON (HTTP 200 from ${idp.origin})`)],
      ['trailing garbage', () => `${json(claims())} {"email":"bob@example.test"}`, () => outcome.internalFailure(`Userinfo request failed: body is not valid JSON (HTTP 200 from ${idp.origin})`)],
    ];

    for (const [name, body, expectation] of cases) {
      test(name, async () => {
        const text = body();
        const expected = expectation();
        await idp.setBehaviour(behaviours.reply(responseBytes(200, { headers: { 'Content-Type': 'application/json' }, body: text })));

        const session = await attempt(dovecot, idp, { message: xoauth2Message(ALICE, tokenOfLength(40)) }, expected);

        expected.check(session);
        assert.equal(session.idp.length, 1);
        assertLogClean(session.log, 'session log');
      });
    }

    // Log messages carry claim values and claim names as the identity provider sent them.
    // Dovecot 2.3 writes the text after a line break as a log line of its own, at level Error and
    // without the request's prefix. It splits a message longer than 4096 bytes (PIPE_BUF) into
    // lines whose later parts lack the "db-lua" prefix. The bridge escapes and shortens claims
    // in its messages, so a claim cannot forge a log line.
    const FORGED = 'imap-login: Info: Login: user=<admin@example.test>, method=XOAUTH2, rip=192.0.2.1';
    const oddClaims = [
      ['email with LF', { email: `bob@example.test\n${FORGED}` }, /^Token belongs to [^\x00-\x1f\x7f]* \(claim email\), not to the login name$/],
      ['email with NUL', { email: `${ALICE}\u0000` }, /^Token belongs to [^\x00-\x1f\x7f]* \(claim email\), not to the login name$/],
      ['email of 5000 bytes', { email: `${'e'.repeat(4988)}@example.test` }, /^Token belongs to [^\x00-\x1f\x7f]* \(claim email\), not to the login name$/],
      ['claim name with LF', { email: undefined, [`name\n${FORGED}`]: 1 }, /^Identity provider response unusable: claim email is missing \(claims present: [^\x00-\x1f\x7f]*\)$/],
    ];
    for (const [name, overrides, whole] of oddClaims) {
      test(`${name} logged whole`, async () => {
        await idp.setBehaviour(behaviours.reply(jsonResponse(200, claims(overrides))));
        const refusal = overrides.email === undefined ? outcome.internalFailure : outcome.passwordMismatch;

        const session = await attempt(dovecot, idp, { message: xoauth2Message(ALICE, tokenOfLength(40)) }, refusal(''));

        const messages = [...bridgeMessages(session.log, 'Info'), ...passdbErrors(session.log)];
        assert.equal(messages.length, 1, messages.join('\n'));
        assert.match(messages[0], whole);
        assert.ok(messages[0].length <= 1024, `message of ${messages[0].length} characters`);
        const forgedLines = session.log.split('\n').filter((line) => line.includes(FORGED) && !/ lua\(alice@example\.test,/.test(line));
        assert.deepEqual(forgedLines, []);
      });
    }
  });
});

describe('with auth_username_chars off', () => {
  const names = [UNICODE_ALICE, 'a%b@example.test', 'a*b@example.test', 'a(b)@example.test', 'a\\b@example.test'];
  let idp;
  let dovecot;
  let accountFile;

  const latin1 = (text) => Buffer.from(text, 'utf8').toString('latin1');
  const login = async (user, claim, expected) => {
    await idp.setBehaviour(behaviours.respond(() => jsonResponse(200, claims({ email: claim }))));
    const session = await attempt(dovecot, idp, { message: xoauth2Message(latin1(user), tokenOfLength(40)) }, expected);
    expected.check(session);
    return session;
  };

  before(async () => {
    idp = await startFaultIdp();
    runningServers.push(idp);
    // Empty values turn off Dovecot's character check and its lowering (auth_username_format = %Lu).
    ({ dovecot, accountFile } = await startBridge('loose-dovecot', idp, {
      accounts: [ALICE, 'axb@example.test', ...names],
      extraConfig: 'auth_username_chars =\nauth_username_format =\n',
    }));
  });

  test('mixed case lowered by the bridge', async () => {
    const session = await login('Alice@Example.TEST', ALICE, outcome.ok());

    assert.equal(LOG_PATTERNS.luaVerifyCalled.exec(session.log)?.groups.user, 'Alice@Example.TEST');
  });

  for (const user of names) {
    test(`${user} logs in`, async () => {
      await login(user, user, outcome.ok());
    });
  }

  test('Unicode case is not folded', async () => {
    const user = 'alice@BÜCHER.example';

    await login(user, UNICODE_ALICE, outcome.passwordMismatch(`Token belongs to ${UNICODE_ALICE} (claim email), not to the login name`));
  });

  test('percent is no pattern', async () => {
    await login('a%wb@example.test', 'a%wb@example.test', outcome.userUnknown(`No mailbox for the login name in ${accountFile}`));
  });
});

describe('log hygiene', () => {
  before(async () => {
    await Promise.all(runningServers.map((server) => server.stop()));
  });

  test('file collected tokens and logs', () => {
    assert.ok(sentTokens.length >= 40, `only ${sentTokens.length} tokens`);
    assert.ok(bodyMarkers.length >= 40, `only ${bodyMarkers.length} body markers`);
    assert.equal(logFiles.length, 2);
  });

  test('logs hold no tokens or bodies', () => {
    for (const file of logFiles) {
      assertLogClean(fs.readFileSync(file, 'utf8'), file);
    }
  });

  test('Dovecot stayed up', () => {
    for (const file of logFiles) {
      const text = fs.readFileSync(file, 'utf8');
      assert.deepEqual(linesContaining(text, /: (Fatal|Panic): /), [], `${file} has fatal lines`);
      assert.deepEqual(linesContaining(text, /died unexpectedly|killed with signal|Worker is buggy/), [], `${file} has crashed processes`);
      assert.deepEqual(linesContaining(text, /lua_pcall\(auth_password_verify/), [], `${file} has a Lua error`);
    }
  });
});
