// Starts the test identity provider (idp-server.mjs) as a child process and drives the
// authorization-code flow against it the way a browser would, to obtain real access tokens.

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const SERVER_SCRIPT = fileURLToPath(new URL('./idp-server.mjs', import.meta.url));
const READY_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;
const MAX_FLOW_STEPS = 12;

// ---------------------------------------------------------------- HTTP client

/**
 * Sends one HTTP(S) request and does not follow redirects.
 * `ca` (PEM string or Buffer), when given, is the only trust anchor for https URLs.
 * Resolves to { status, headers, body } with body as a string.
 */
export function httpRequest(url, { method = 'GET', headers = {}, body, ca, agent } = {}) {
  const target = new URL(url);
  const transport = target.protocol === 'https:' ? https : http;
  const options = { method, headers: { ...headers } };
  if (agent) {
    options.agent = agent;
  } else if (ca && target.protocol === 'https:') {
    options.ca = ca;
  }
  if (body !== undefined) {
    options.headers['Content-Length'] = Buffer.byteLength(body);
  }

  return new Promise((resolve, reject) => {
    const req = transport.request(target, options, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => resolve({
        status: res.statusCode,
        headers: res.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => {
      req.destroy(new Error(`request timed out after 10 s: ${method} ${target.origin}${target.pathname}`));
    });
    req.end(body);
  });
}

// Enough of RFC 6265 for one host: path scoping, Secure, and deletion by expiry.
class CookieJar {
  #cookies = new Map();

  store(setCookieHeaders = []) {
    for (const header of setCookieHeaders) {
      const [pair, ...attributes] = header.split(';').map((part) => part.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const attrs = Object.fromEntries(attributes.map((attr) => {
        const [key, ...rest] = attr.split('=');
        return [key.toLowerCase(), rest.join('=')];
      }));
      const cookiePath = attrs.path || '/';
      const key = `${name}\u0000${cookiePath}`;
      const expired = (attrs.expires && Date.parse(attrs.expires) <= Date.now())
        || (attrs['max-age'] !== undefined && Number(attrs['max-age']) <= 0);
      if (expired) {
        this.#cookies.delete(key);
      } else {
        this.#cookies.set(key, { name, value, path: cookiePath, secure: 'secure' in attrs });
      }
    }
  }

  headerFor(url) {
    const { pathname, protocol } = new URL(url);
    const matching = [...this.#cookies.values()].filter((cookie) => {
      if (cookie.secure && protocol !== 'https:') return false;
      return pathname === cookie.path
        || pathname.startsWith(cookie.path.endsWith('/') ? cookie.path : `${cookie.path}/`);
    });
    return matching.map((cookie) => `${cookie.name}=${cookie.value}`).join('; ');
  }
}

// ---------------------------------------------------------------- authorization-code flow

function base64url(buffer) {
  return buffer.toString('base64url');
}

function authorizationUrl(idp, client, { scope, state, challenge }) {
  const url = new URL(idp.authorizationEndpoint);
  url.search = new URLSearchParams({
    client_id: client.client_id,
    redirect_uri: client.redirect_uris[0],
    response_type: 'code',
    scope,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  return url.href;
}

function isRedirectUri(location, redirectUri) {
  const a = new URL(location);
  const b = new URL(redirectUri);
  return a.origin === b.origin && a.pathname === b.pathname;
}

// The interaction pages are ours (idp-server.mjs), so a regex over their HTML is reliable.
function nextFormSubmission(html, account) {
  const actions = [...html.matchAll(/<form method="post" action="([^"]+)"/g)].map((m) => m[1]);
  const login = actions.find((action) => action.endsWith('/login'));
  if (login) {
    return { action: login, form: { login: account.name, password: account.password } };
  }
  const confirm = actions.find((action) => action.endsWith('/confirm'));
  if (confirm) {
    return { action: confirm, form: {} };
  }
  return undefined;
}

function flowError(step, res) {
  const snippet = res.body.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200);
  return new Error(`authorization flow failed at ${step}: HTTP ${res.status} ${snippet}`);
}

async function browse(idp, jar, url, { method = 'GET', form } = {}) {
  const headers = { Cookie: jar.headerFor(url), Accept: 'text/html' };
  let body;
  if (form) {
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(form).toString();
  }
  const res = await httpRequest(url, { method, headers, body, agent: idp.agent });
  jar.store(res.headers['set-cookie']);
  return res;
}

// Walks redirects and interaction pages until the IdP redirects to the client.
async function obtainCode(idp, client, account, { scope, state, challenge }) {
  const jar = new CookieJar();
  let url = authorizationUrl(idp, client, { scope, state, challenge });
  let res = await browse(idp, jar, url);

  for (let step = 0; step < MAX_FLOW_STEPS; step += 1) {
    if (res.status >= 300 && res.status < 400 && res.headers.location) {
      const location = new URL(res.headers.location, url).href;
      if (isRedirectUri(location, client.redirect_uris[0])) {
        return codeFromRedirect(location, state);
      }
      url = location;
      res = await browse(idp, jar, url);
      continue;
    }

    const submission = res.status === 200 ? nextFormSubmission(res.body, account) : undefined;
    if (!submission) {
      throw flowError(new URL(url).pathname, res);
    }
    if (submission.action === new URL(url).pathname) {
      throw new Error(`login rejected for account ${account.name}`);
    }
    url = new URL(submission.action, url).href;
    res = await browse(idp, jar, url, { method: 'POST', form: submission.form });
  }
  throw new Error(`authorization flow did not finish within ${MAX_FLOW_STEPS} steps`);
}

function codeFromRedirect(location, expectedState) {
  const params = new URL(location).searchParams;
  if (params.get('error')) {
    throw new Error(`authorization denied: ${params.get('error')} ${params.get('error_description') ?? ''}`);
  }
  if (params.get('state') !== expectedState) {
    throw new Error('authorization response state does not match the request');
  }
  const code = params.get('code');
  if (!code) {
    throw new Error('authorization response has neither code nor error');
  }
  return code;
}

// RFC 6749 section 2.3.1: id and secret are form-encoded before Basic encoding.
function basicAuthorization(client) {
  const credentials = `${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`;
  return `Basic ${Buffer.from(credentials).toString('base64')}`;
}

async function redeemCode(idp, client, { code, verifier }) {
  const res = await httpRequest(idp.tokenEndpoint, {
    method: 'POST',
    agent: idp.agent,
    headers: {
      Authorization: basicAuthorization(client),
      'Content-Type': 'application/x-www-form-urlencoded',
      Accept: 'application/json',
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: client.redirect_uris[0],
      code_verifier: verifier,
    }).toString(),
  });

  let payload = {};
  try {
    payload = JSON.parse(res.body);
  } catch {
    // Reported below together with the status.
  }
  if (res.status !== 200 || typeof payload.access_token !== 'string') {
    throw new Error(`token request failed: HTTP ${res.status} ${payload.error ?? ''} ${payload.error_description ?? ''}`);
  }
  return payload.access_token;
}

async function getToken(idp, accountName, { clientId, scope = 'openid email', password } = {}) {
  const account = Object.hasOwn(idp.accounts, accountName) ? idp.accounts[accountName] : undefined;
  if (!account && password === undefined) {
    throw new Error(`account ${accountName} not found in the accounts given to startIdp`);
  }
  const client = clientId ? idp.clients.find((c) => c.client_id === clientId) : idp.clients[0];
  if (!client) {
    throw new Error(`client ${clientId} not found in the clients given to startIdp`);
  }

  const verifier = base64url(crypto.randomBytes(32));
  const challenge = base64url(crypto.createHash('sha256').update(verifier).digest());
  const state = base64url(crypto.randomBytes(16));

  const login = { name: accountName, password: password ?? account.password };
  const code = await obtainCode(idp, client, login, { scope, state, challenge });
  return redeemCode(idp, client, { code, verifier });
}

// ---------------------------------------------------------------- introspection and revocation

function findClient(idp, clientId) {
  const client = [...idp.clients, ...idp.resourceServers].find((c) => c.client_id === clientId);
  if (!client) {
    throw new Error(`client ${clientId} not found in the clients or resource servers given to startIdp`);
  }
  return client;
}

function tokenForm(token) {
  return new URLSearchParams({ token, token_type_hint: 'access_token' }).toString();
}

/** Revokes an access token at the RFC 7009 endpoint, authenticated as the client it was issued to. */
async function revokeToken(idp, token, clientId) {
  const client = findClient(idp, clientId ?? idp.clients[0].client_id);
  const res = await httpRequest(idp.revocationEndpoint, {
    method: 'POST',
    agent: idp.agent,
    headers: { Authorization: basicAuthorization(client), 'Content-Type': 'application/x-www-form-urlencoded' },
    body: tokenForm(token),
  });
  // RFC 7009 section 2.2: 200 whether or not the token was valid.
  if (res.status !== 200) {
    throw new Error(`revocation request failed: HTTP ${res.status}`);
  }
}

/** Asks the RFC 7662 endpoint about a token as `clientId` and resolves to the parsed response. */
async function introspect(idp, token, clientId) {
  const client = findClient(idp, clientId);
  const res = await httpRequest(idp.introspectionEndpoint, {
    method: 'POST',
    agent: idp.agent,
    headers: {
      Authorization: basicAuthorization(client),
      'Content-Type': 'application/x-www-form-urlencoded',
      Accept: 'application/json',
    },
    body: tokenForm(token),
  });
  if (res.status !== 200) {
    throw new Error(`introspection request failed: HTTP ${res.status}`);
  }
  return JSON.parse(res.body);
}

// ---------------------------------------------------------------- process management

// Only what this start wrote: the log is appended to when a test restarts the IdP in one dir.
function logTail(logPath, fromOffset, lines = 30) {
  try {
    const text = fs.readFileSync(logPath).subarray(fromOffset).toString('utf8');
    return text.split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function waitForReady(child, logFd, logPath, logOffset) {
  return new Promise((resolve, reject) => {
    let buffered = '';
    let settled = false;
    const fail = (message) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`${message}\n--- tail of ${logPath} ---\n${logTail(logPath, logOffset)}`));
    };

    const timer = setTimeout(() => fail(`IdP not ready after ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
    child.once('error', (err) => fail(`IdP failed to start: ${err.message}`));
    child.once('exit', (code, signal) => fail(`IdP exited before READY (code ${code}, signal ${signal})`));
    child.stdout.on('data', (chunk) => {
      fs.writeSync(logFd, chunk);
      if (settled) return;
      buffered += chunk.toString('utf8');
      const completeLines = buffered.slice(0, buffered.lastIndexOf('\n') + 1).split('\n');
      const line = completeLines.find((l) => l.startsWith('READY '));
      if (!line) return;
      try {
        const ready = JSON.parse(line.slice('READY '.length));
        settled = true;
        clearTimeout(timer);
        resolve(ready);
      } catch (err) {
        fail(`unreadable READY line: ${err.message}`);
      }
    });
  });
}

function makeStopper(child) {
  let stopping;
  const exited = new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });

  return () => {
    stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timedOut = Symbol('timeout');
      let timer;
      const grace = new Promise((resolve) => { timer = setTimeout(resolve, STOP_GRACE_MS, timedOut); });
      const outcome = await Promise.race([exited, grace]);
      clearTimeout(timer);
      if (outcome === timedOut) {
        child.kill('SIGKILL');
        await exited;
      }
    })();
    return stopping;
  };
}

function defaultClients() {
  return [{
    client_id: 'test-client',
    client_secret: base64url(crypto.randomBytes(24)),
    redirect_uris: ['http://127.0.0.1/callback'],
  }];
}

function spawnServer(configPath, logFd) {
  const child = spawn(process.execPath, [SERVER_SCRIPT, configPath], {
    stdio: ['ignore', 'pipe', logFd],
  });
  // A test runner that dies mid-test must not leave the IdP listening.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  return child;
}

/**
 * Starts the test IdP.
 * dir: working directory (created if missing) for CONFIG.json and idp.log.
 * accounts: { name: { email, password, email_verified?, name? } }.
 * clients: [{ client_id, client_secret, redirect_uris, accessTokenTtlSeconds? }];
 *   default: one client "test-client" with a random secret.
 * resourceServers: [{ client_id, client_secret }]: clients that have no grant type and may
 *   introspect every client's tokens (client_secret_basic or client_secret_post). Other clients
 *   may introspect only their own tokens. Access tokens with the email scope carry email and
 *   email_verified in the introspection response.
 * acceptQueryParamAccessTokens: userinfo also accepts ?access_token= (RFC 6750 section 2.3).
 * https: { key, cert, ca? } file paths; ca (default: cert) is what getToken trusts.
 * accessTokenTtlSeconds: default access-token lifetime (3600).
 *
 * Resolves to { issuer, port, userinfoUrl, introspectionUrl, revocationUrl, pid, getToken,
 *   revokeToken, introspect, stop }:
 * getToken(accountName, { clientId?, scope?, password? }) runs the authorization-code flow
 *   (PKCE S256, login, consent, client_secret_basic) and resolves to the access token;
 *   clientId defaults to the first client, scope to "openid email"; password overrides the
 *   account's one, to test rejected logins.
 * revokeToken(token, clientId?) revokes the token at the RFC 7009 endpoint as clientId (default:
 *   the first client), which must be the client the token was issued to.
 * introspect(token, clientId) resolves to the RFC 7662 response that clientId receives.
 * stop() sends SIGTERM, then SIGKILL after 5 s; safe to call more than once. Call it (e.g. in
 *   after()): the running child keeps the Node process alive, as any server would.
 */
export async function startIdp({
  dir,
  accounts,
  clients = defaultClients(),
  resourceServers = [],
  https: tls,
  accessTokenTtlSeconds = 3600,
  acceptQueryParamAccessTokens = false,
}) {
  fs.mkdirSync(dir, { recursive: true });
  const configPath = path.join(dir, 'CONFIG.json');
  const logPath = path.join(dir, 'idp.log');
  const config = {
    host: '127.0.0.1',
    port: 0,
    accounts,
    clients,
    resourceServers,
    accessTokenTtlSeconds,
    acceptQueryParamAccessTokens,
  };
  if (tls) {
    config.https = { key: tls.key, cert: tls.cert };
  }
  fs.writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });

  const logFd = fs.openSync(logPath, 'a');
  const logOffset = fs.fstatSync(logFd).size;
  fs.writeSync(logFd, `--- test IdP starting at ${new Date().toISOString()} ---\n`);
  const child = spawnServer(configPath, logFd);
  const stop = makeStopper(child);
  // 'close', not 'exit': stdout may still deliver data after the process has exited.
  child.once('close', () => fs.closeSync(logFd));

  let ready;
  try {
    ready = await waitForReady(child, logFd, logPath, logOffset);
  } catch (err) {
    await stop();
    throw err;
  }

  const idp = {
    accounts,
    clients,
    resourceServers,
    authorizationEndpoint: ready.authorization_endpoint,
    tokenEndpoint: ready.token_endpoint,
    introspectionEndpoint: ready.introspection_endpoint,
    revocationEndpoint: ready.revocation_endpoint,
    agent: tls ? new https.Agent({ ca: fs.readFileSync(tls.ca ?? tls.cert) }) : undefined,
  };
  return {
    issuer: ready.issuer,
    port: ready.port,
    userinfoUrl: ready.userinfo_endpoint,
    introspectionUrl: ready.introspection_endpoint,
    revocationUrl: ready.revocation_endpoint,
    pid: child.pid,
    getToken: (accountName, options) => getToken(idp, accountName, options),
    revokeToken: (token, clientId) => revokeToken(idp, token, clientId),
    introspect: (token, clientId) => introspect(idp, token, clientId),
    stop,
  };
}
