// End-to-end test of the whole story in a browser. Debian's Roundcube 1.6, configured as
// docker-mailserver's guide configures it for Authentik, signs alice in at a real OpenID provider
// (oidc-provider, its login form and consent page). Alice then reads mail through the test
// Dovecot (IMAP with XOAUTH2, checked by the bridge) and sends mail through Postfix (submission
// with XOAUTH2, checked by the bridge through Dovecot's auth socket, delivery over LMTP).
// Headless Chromium from Debian, driven by playwright-core, is the user. Everything listens on
// 127.0.0.1.
// Screenshots of the inbox, the opened message and the sent message are written to
// spec/integration/artifacts/.
// Run: node --test spec/integration/roundcube.test.mjs (as root: Dovecot and Postfix drop privileges).

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
import { findFreePort } from './lib/ports.mjs';
import { POSTFIX_LOG_PATTERNS, startMailDovecot, startPostfix, submitMessage } from './lib/postfix.mjs';
import { openBrowser, roundcubeRedirectUri, startRoundcube } from './lib/roundcube.mjs';

const BRIDGE_SCRIPT = fileURLToPath(new URL('../../lua-out/oauth2-bridge.lua', import.meta.url));
const ARTIFACTS_DIR = fileURLToPath(new URL('./artifacts/', import.meta.url));

const DOMAIN = 'example.test';
const ALICE = `alice@${DOMAIN}`;
const BOB = `bob@${DOMAIN}`;
const PROVIDER_NAME = 'Test IdP';

const ACCOUNTS = {
  alice: { email: ALICE, password: `alice-${randomBytes(8).toString('hex')}` },
  bob: { email: BOB, password: `bob-${randomBytes(8).toString('hex')}` },
};

const INBOX_SUBJECT = `Lunch on Friday ${randomBytes(3).toString('hex')}`;
const INBOX_BODY = 'Hi Alice, shall we have lunch on Friday? Bob';
const SENT_SUBJECT = `Re: lunch ${randomBytes(3).toString('hex')}`;
const SENT_BODY = 'Friday at noon suits me. Alice';

const UI_TIMEOUT_MS = 20000;

const sentTokens = [];
const secrets = Object.values(ACCOUNTS).map((account) => account.password);
const runningServers = [];

let rootDir;
let certs;
let idp;
let dovecot;
let postfix;
let roundcube;
let browser;

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

function bridgeMessages(log, level) {
  return findAllLogLines(LOG_PATTERNS.luaScriptLog, log)
    .filter((match) => match.groups.level === level)
    .map((match) => match.groups.message);
}

async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, name);
  await page.screenshot({ path: file });
  return file;
}

/** Waits until Roundcube's page script has loaded and no request of its own is running. */
function waitUntilIdle(page) {
  return page.waitForFunction(() => window.rcmail !== undefined && window.rcmail.busy === false);
}

/** Returns the text of an element's own text nodes: a subject heading without its hidden label and link. */
function ownText(locator) {
  return locator.evaluate((element) => [...element.childNodes]
    .filter((node) => node.nodeType === Node.TEXT_NODE)
    .map((node) => node.textContent)
    .join('')
    .trim());
}

function bobMailboxFiles() {
  const newDir = path.join(dovecot.dir, 'mail', BOB, 'Maildir', 'new');
  if (!fs.existsSync(newDir)) return [];
  return fs.readdirSync(newDir).map((name) => fs.readFileSync(path.join(newDir, name), 'utf8'));
}

before(async () => {
  rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oauth2-bridge-roundcube-'));
  fs.chmodSync(rootDir, 0o755);

  certs = makeCerts(makeDir('certs'));
  // Dovecot's auth process, Postfix's smtpd and PHP (www-data) read these.
  fs.chmodSync(certs.caCert, 0o644);
  fs.chmodSync(certs.serverCert, 0o644);

  // The IdP must know Roundcube's redirect URI, so Roundcube's port is chosen first.
  const roundcubePort = await findFreePort();
  const roundcubeSecret = newSecret('roundcube');
  const idpDir = makeDir('idp');
  idp = await startIdp({
    dir: idpDir,
    accounts: ACCOUNTS,
    clients: [
      // For the message that bob sends before the test, through the harness's scripted flow.
      { client_id: 'mail-client', client_secret: newSecret('mail-client'), redirect_uris: ['http://127.0.0.1/callback'] },
      // Roundcube sends its secret in the token request's form body.
      {
        client_id: 'roundcube',
        client_secret: roundcubeSecret,
        redirect_uris: [roundcubeRedirectUri(roundcubePort)],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
  });
  runningServers.push(idp);

  const dovecotDir = makeDir('dovecot');
  const accountFile = path.join(dovecotDir, 'postfix-accounts.cf');
  fs.writeFileSync(accountFile, `${ALICE}|{SHA512-CRYPT}$6$salt$notarealhash\n${BOB}|{SHA512-CRYPT}$6$salt$notarealhash\n`, { mode: 0o644 });
  dovecot = await startMailDovecot({
    dir: dovecotDir,
    tlsCert: certs.serverCert,
    tlsKey: certs.serverKey,
    luaScript: BRIDGE_SCRIPT,
    bridgeSettings: `introspection_url = ${idp.userinfoUrl}\naccount_file = ${accountFile}\ntimeout_msecs = 3000\n`,
  });
  runningServers.push(dovecot);

  postfix = await startPostfix({
    dir: makeDir('postfix'),
    domain: DOMAIN,
    mailboxes: [ALICE, BOB],
    lmtpPort: dovecot.lmtpPort,
    saslPath: dovecot.authSocketPath,
    tlsCert: certs.serverCert,
    tlsKey: certs.serverKey,
  });
  runningServers.push(postfix);

  // The message alice finds in her inbox: bob sends it with his own token.
  const bobToken = await idp.getToken('bob', { clientId: 'mail-client' });
  sentTokens.push(bobToken);
  const since = postfix.logOffset();
  await submitMessage({
    port: postfix.submissionPort,
    ca: fs.readFileSync(certs.caCert),
    user: BOB,
    token: bobToken,
    from: BOB,
    to: ALICE,
    subject: INBOX_SUBJECT,
    body: INBOX_BODY,
  });
  await postfix.waitForLog(POSTFIX_LOG_PATTERNS.delivered, { since });

  roundcube = await startRoundcube({
    dir: makeDir('roundcube'),
    port: roundcubePort,
    imapPort: dovecot.imapPort,
    smtpPort: postfix.submissionPort,
    caCert: certs.caCert,
    oauth: {
      providerName: PROVIDER_NAME,
      clientId: 'roundcube',
      clientSecret: roundcubeSecret,
      authUri: `${idp.issuer}/auth`,
      tokenUri: `${idp.issuer}/token`,
      identityUri: idp.userinfoUrl,
    },
  });
  runningServers.push(roundcube);

  browser = await openBrowser({ profileDir: path.join(rootDir, 'chromium-profile') });
  runningServers.push(browser);
  browser.page.setDefaultTimeout(UI_TIMEOUT_MS);
});

after(async () => {
  for (const server of [...runningServers].reverse()) {
    await (server.close ?? server.stop)();
  }
  if (process.env.OAUTH2_BRIDGE_KEEP_TMP) {
    console.log(`Kept the temporary directory ${rootDir} because OAUTH2_BRIDGE_KEEP_TMP is set`);
    return;
  }
  fs.rmSync(rootDir, { recursive: true, force: true });
});

// The tests share one browser page and run in order: each starts where the one before ended.
describe('Roundcube with OAuth', () => {
  test('OAuth login lands in the inbox', async () => {
    const { page } = browser;
    const dovecotSince = dovecot.logOffset();

    await page.goto(roundcube.url);
    const oauthButton = page.locator('#rcmloginoauth');
    assert.equal((await oauthButton.textContent()).trim(), `Login with ${PROVIDER_NAME}`);
    await oauthButton.click();

    // The provider's login form (idp-server.mjs), then its consent page.
    await page.waitForURL((url) => url.origin === idp.issuer && url.pathname.startsWith('/interaction/'));
    await page.locator('input[name="login"]').fill('alice');
    await page.locator('input[name="password"]').fill(ACCOUNTS.alice.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const consent = page.getByRole('button', { name: 'Allow' });
    await consent.waitFor();
    assert.match(await page.locator('body').textContent(), /Client roundcube asks for: email openid profile/);
    await consent.click();

    await page.waitForURL((url) => url.origin === new URL(roundcube.url).origin && url.searchParams.get('_task') === 'mail');
    const row = page.locator('#messagelist tr', { hasText: INBOX_SUBJECT });
    await row.waitFor();
    const file = await screenshot(page, 'roundcube-inbox.png');

    assert.equal((await page.locator('.header-title.username').textContent()).trim(), ALICE);
    assert.ok(fs.statSync(file).size > 0);
    const login = await dovecot.waitForLog(LOG_PATTERNS.loginSucceeded, { since: dovecotSince });
    assert.equal(login.groups.user, ALICE);
    assert.equal(login.groups.mech, 'XOAUTH2');
    assert.match(login[0], /, TLS, /);
    const log = dovecot.logSince(dovecotSince);
    assert.equal(LOG_PATTERNS.luaVerifyCalled.exec(log)?.groups.user, ALICE);
    assert.ok(bridgeMessages(log, 'Info').includes('Token accepted'));
    assert.match(roundcube.readLog('userlogins.log'), new RegExp(`Successful login for ${ALICE} \\(ID: \\d+\\) from 127\\.0\\.0\\.1`));
  });

  test('message from bob opens', async () => {
    const { page } = browser;

    await waitUntilIdle(page);
    await page.locator('#messagelist tr', { hasText: INBOX_SUBJECT }).click();
    const preview = page.frameLocator('#messagecontframe');
    await preview.locator('#messagebody', { hasText: INBOX_BODY }).waitFor();
    await screenshot(page, 'roundcube-message.png');

    assert.equal(await ownText(preview.locator('h2.subject')), INBOX_SUBJECT);
    assert.equal(await preview.locator('td.header.from a.rcmContactAddress').getAttribute('title'), BOB);
    assert.equal(await preview.locator('td.header.to a.rcmContactAddress').getAttribute('title'), ALICE);
  });

  test('message to bob is sent', async () => {
    const { page } = browser;
    const postfixSince = postfix.logOffset();
    const dovecotSince = dovecot.logOffset();

    await page.locator('#taskmenu a.compose').click();
    await page.waitForURL((url) => url.searchParams.get('_action') === 'compose');
    const to = page.locator('#compose_to input.ui-autocomplete-input, #compose_to input[type="text"]').first();
    await to.fill(BOB);
    await to.press('Enter');
    await page.locator('#compose-subject').fill(SENT_SUBJECT);
    await page.locator('#composebody').fill(SENT_BODY);
    await page.locator('#compose-content button.send, .formbuttons button.send').first().click();
    await page.locator('#messagestack', { hasText: 'Message sent successfully' }).waitFor();
    // Roundcube then leaves the compose screen for the message list on its own.
    await page.waitForURL((url) => url.searchParams.get('_action') !== 'compose');
    await waitUntilIdle(page);

    const client = await postfix.waitForLog(POSTFIX_LOG_PATTERNS.saslClient, { since: postfixSince });
    assert.equal(client.groups.mech, 'XOAUTH2');
    assert.equal(client.groups.user, ALICE);
    const delivered = await postfix.waitForLog(POSTFIX_LOG_PATTERNS.delivered, { since: postfixSince });
    assert.equal(delivered.groups.queueId, client.groups.queueId);
    assert.equal(delivered.groups.to, BOB);
    assert.match(roundcube.readLog('sendmail.log'), new RegExp(`User ${ALICE} .* for ${BOB}; 250: 2\\.0\\.0 Ok: queued as ${client.groups.queueId}$`, 'm'));
    // Postfix asked Dovecot's auth socket; the bridge checked alice's token for SMTP.
    const authRequest = findAllLogLines(LOG_PATTERNS.authRequest, dovecot.logSince(dovecotSince))
      .find((match) => /\tservice=smtp\t/.test(match[0]));
    assert.equal(authRequest?.groups.mech, 'XOAUTH2');
    assert.equal(bobMailboxFiles().filter((text) => text.includes(`Subject: ${SENT_SUBJECT}`)).length, 1);
  });

  test('sent message shows in Sent', async () => {
    const { page } = browser;

    await page.locator('#mailboxlist a[rel="Sent"]').click();
    await page.waitForFunction(() => window.rcmail?.env.mailbox === 'Sent');
    await waitUntilIdle(page);
    await page.locator('#messagelist tr', { hasText: SENT_SUBJECT }).click();
    const preview = page.frameLocator('#messagecontframe');
    await preview.locator('#messagebody', { hasText: SENT_BODY }).waitFor();
    await screenshot(page, 'roundcube-sent.png');

    assert.equal(await ownText(preview.locator('h2.subject')), SENT_SUBJECT);
    assert.equal(await preview.locator('td.header.from a.rcmContactAddress').getAttribute('title'), ALICE);
    assert.equal(await preview.locator('td.header.to a.rcmContactAddress').getAttribute('title'), BOB);
  });

  test('browser stayed on 127.0.0.1', () => {
    assert.deepEqual(browser.blockedRequests, []);
  });

  test('Roundcube logged no errors', () => {
    assert.equal(roundcube.readLog('errors.log'), '');
    assert.equal(roundcube.readLog('php-errors.log'), '');
  });
});

// Runs last, when every token has been sent and every server has written its log.
describe('log hygiene', () => {
  const BEARER_VALUE = /\bBearer +[A-Za-z0-9\-._~+/]{8,}/;
  const AUTHORIZATION_VALUE = /\bAuthorization *[:=] *\S+/i;

  function linesContaining(text, needle) {
    const numbers = [];
    for (const [index, line] of text.split('\n').entries()) {
      const found = typeof needle === 'string' ? line.includes(needle) : needle.test(line);
      if (found) numbers.push(index + 1);
    }
    return numbers;
  }

  function logFiles() {
    return [dovecot.logPath, postfix.logPath, path.join(rootDir, 'idp', 'idp.log'), ...roundcube.logFiles()];
  }

  // Roundcube's token for alice never passes through the test; the bridge's and Postfix's logs
  // are checked for any Bearer value instead. PHP's access log contains the authorization code,
  // which is single-use and already redeemed, and no token.
  test('logs hold no tokens or secrets', () => {
    assert.ok(logFiles().length >= 5);
    for (const file of logFiles()) {
      const text = fs.readFileSync(file, 'utf8');
      for (const [index, token] of sentTokens.entries()) {
        assert.deepEqual(linesContaining(text, token), [], `${file} contains token #${index} on these lines`);
      }
      for (const [index, secret] of secrets.entries()) {
        assert.deepEqual(linesContaining(text, secret), [], `${file} contains secret #${index} on these lines`);
      }
      assert.deepEqual(linesContaining(text, BEARER_VALUE), [], `${file} contains a Bearer value on these lines`);
      assert.deepEqual(linesContaining(text, AUTHORIZATION_VALUE), [], `${file} contains an Authorization value on these lines`);
    }
  });
});
