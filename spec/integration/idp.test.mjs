// Proves the test IdP harness: real tokens from the authorization-code flow are accepted by
// the userinfo endpoint, made-up and expired ones are not, over HTTP and over HTTPS.
// Run: node --test spec/integration/idp.test.mjs

import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { makeCerts } from './lib/certs.mjs';
import { httpRequest, startIdp } from './lib/idp.mjs';

const ACCOUNTS = {
  alice: { email: 'alice@example.test', password: 'alice-pass' },
};

const CLIENTS = [
  { client_id: 'roundcube', client_secret: 'roundcube-test-secret', redirect_uris: ['http://127.0.0.1/callback'] },
  {
    client_id: 'short-lived',
    client_secret: 'short-lived-test-secret',
    redirect_uris: ['http://127.0.0.1/callback'],
    accessTokenTtlSeconds: 1,
  },
];

function userinfo(idp, token, { ca } = {}) {
  return httpRequest(idp.userinfoUrl, { headers: { Authorization: `Bearer ${token}` }, ca });
}

function assertProcessGone(pid) {
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
}

async function stopAndCheck(idp) {
  await idp.stop();
  await idp.stop();
  assertProcessGone(idp.pid);
}

describe('test IdP over HTTP', () => {
  let dir;
  let idp;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idp-http-'));
    idp = await startIdp({ dir, accounts: ACCOUNTS, clients: CLIENTS });
  });

  after(async () => {
    if (idp) await stopAndCheck(idp);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('issuer is on 127.0.0.1', () => {
    assert.equal(idp.issuer, `http://127.0.0.1:${idp.port}`);
    assert.equal(idp.userinfoUrl, `${idp.issuer}/me`);
  });

  test('code-flow token returns email claim', async () => {
    const token = await idp.getToken('alice');
    const res = await userinfo(idp, token);
    assert.equal(res.status, 200);
    const claims = JSON.parse(res.body);
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.email, 'alice@example.test');
    assert.equal(claims.email_verified, true);
  });

  test('made-up token gets 401', async () => {
    const res = await userinfo(idp, 'made-up-token-that-was-never-issued');
    assert.equal(res.status, 401);
    assert.match(res.headers['www-authenticate'], /invalid_token/);
  });

  test('wrong password gets no token', async () => {
    await assert.rejects(() => idp.getToken('alice', { password: 'wrong-pass' }), /login rejected/);
    await assert.rejects(() => idp.getToken('nobody', { password: 'any' }), /login rejected/);
  });

  test('short-lived token expires after 1 s', async () => {
    const token = await idp.getToken('alice', { clientId: 'short-lived' });
    assert.equal((await userinfo(idp, token)).status, 200);

    await sleep(2100);
    const res = await userinfo(idp, token);
    assert.equal(res.status, 401);
  });
});

describe('test IdP over HTTPS', () => {
  let dir;
  let certs;
  let idp;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idp-https-'));
    certs = makeCerts(path.join(dir, 'certs'));
    idp = await startIdp({
      dir,
      accounts: ACCOUNTS,
      clients: CLIENTS,
      https: { key: certs.serverKey, cert: certs.serverCert, ca: certs.caCert },
    });
  });

  after(async () => {
    if (idp) await stopAndCheck(idp);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('issuer uses https', () => {
    assert.equal(idp.issuer, `https://127.0.0.1:${idp.port}`);
  });

  test('server certificate matches both names', () => {
    const server = new crypto.X509Certificate(fs.readFileSync(certs.serverCert));
    const ca = new crypto.X509Certificate(fs.readFileSync(certs.caCert));
    assert.equal(server.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(server.checkHost('localhost'), 'localhost');
    assert.ok(server.verify(ca.publicKey));
    assert.ok(Date.parse(server.validTo) > Date.now() + 24 * 3600 * 1000);
  });

  test('token works with test CA trusted', async () => {
    const token = await idp.getToken('alice', { scope: 'openid email profile' });
    const res = await userinfo(idp, token, { ca: fs.readFileSync(certs.caCert) });
    assert.equal(res.status, 200);
    const claims = JSON.parse(res.body);
    assert.equal(claims.email, 'alice@example.test');
    assert.equal(claims.preferred_username, 'alice');
  });

  test('client without test CA rejects connection', async () => {
    await assert.rejects(() => userinfo(idp, 'irrelevant'), { code: /CERT|SIGNED|VERIFY/ });
  });

  test('client trusting another CA rejects connection', async () => {
    const wrongCa = fs.readFileSync(certs.untrustedCert);
    await assert.rejects(() => userinfo(idp, 'irrelevant', { ca: wrongCa }), { code: /CERT|SIGNED|VERIFY/ });
  });
});
