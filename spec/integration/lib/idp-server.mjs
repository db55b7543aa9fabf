// Test OpenID Connect provider for the integration tests and the demo.
// Usage: node spec/integration/lib/idp-server.mjs CONFIG.json
// Prints one "READY {...}" line to stdout once it listens; everything else goes to stderr.

import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';

// oidc-provider prints its notices with console.info. Sending them to stderr leaves stdout
// for the READY line alone.
console.info = (...args) => console.error(...args);

const { default: Provider, errors } = await import('oidc-provider');

const LISTEN_HOST = '127.0.0.1';
const MAX_FORM_BYTES = 16 * 1024;

function loadConfig(path) {
  const config = JSON.parse(readFileSync(path, 'utf8'));
  if (config.host !== undefined && config.host !== LISTEN_HOST) {
    throw new Error(`invalid host ${config.host}: the test IdP listens on ${LISTEN_HOST} only`);
  }
  if (!config.accounts || typeof config.accounts !== 'object') {
    throw new Error('invalid config: accounts is missing or not an object of name -> { email, password }');
  }
  if (!Array.isArray(config.clients) || config.clients.length === 0) {
    throw new Error('invalid config: clients is missing or empty');
  }
  if (config.resourceServers !== undefined && !Array.isArray(config.resourceServers)) {
    throw new Error('invalid config: resourceServers is not an array of { client_id, client_secret }');
  }
  return {
    port: config.port ?? 0,
    https: config.https,
    accounts: config.accounts,
    clients: config.clients,
    resourceServers: config.resourceServers ?? [],
    accessTokenTtlSeconds: config.accessTokenTtlSeconds ?? 3600,
    acceptQueryParamAccessTokens: config.acceptQueryParamAccessTokens === true,
  };
}

function findAccountIn(accounts) {
  return async (_ctx, sub) => {
    const account = Object.hasOwn(accounts, sub) ? accounts[sub] : undefined;
    if (!account) {
      return undefined;
    }
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: account.email,
          email_verified: account.email_verified ?? true,
          name: account.name ?? sub,
          preferred_username: sub,
        };
      },
    };
  };
}

// A resource server (the mail server) only calls the introspection endpoint, so it may use no
// grant or response type and needs no redirect URI. oidc-provider 9.13 accepts a secret in the
// form body (client_secret_post) from a client registered with client_secret_basic, too.
function resourceServerMetadata({ client_id: clientId, client_secret: clientSecret }) {
  return {
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: [],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  };
}

// A client may introspect its own tokens, and a resource server may introspect any token.
// Every other client gets {"active": false}, as RFC 7662 section 2.2 allows.
function introspectionAllowedPolicy(resourceServers) {
  const allowed = new Set(resourceServers.map((server) => server.client_id));
  return (_ctx, client, token) => client.clientId === token.clientId || allowed.has(client.clientId);
}

// RFC 7009 section 2.1: only the client that the token was issued to may revoke it.
function revocationAllowedPolicy(_ctx, client, token) {
  return client.clientId === token.clientId;
}

// oidc-provider's introspection response carries sub, client_id, scope, iss, exp and iat but
// no user claims. Claims returned here are stored with each opaque access token and added to
// that response, so a resource server can read the mail address as it can from Keycloak.
function introspectionClaims(accounts) {
  return (_ctx, token) => {
    if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
    const account = Object.hasOwn(accounts, token.accountId) ? accounts[token.accountId] : undefined;
    const scopes = String(token.scope ?? '').split(' ');
    if (!account || !scopes.includes('email')) return undefined;
    return { email: account.email, email_verified: account.email_verified ?? true };
  };
}

// accessTokenTtlSeconds is a setting of this server, not client metadata, so it stays out of
// what oidc-provider validates.
function toClientMetadata({ accessTokenTtlSeconds, ...metadata }) {
  return metadata;
}

function accessTokenTtl(config) {
  const perClient = new Map();
  for (const client of config.clients) {
    if (client.accessTokenTtlSeconds !== undefined) {
      perClient.set(client.client_id, client.accessTokenTtlSeconds);
    }
  }
  return (_ctx, _token, client) => perClient.get(client?.clientId) ?? config.accessTokenTtlSeconds;
}

// Fresh keys each run: tokens are opaque and nothing outlives the process.
function ephemeralSigningKeys() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { keys: [{ ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256' }] };
}

async function rejectOutboundFetch(url) {
  throw new Error(`outbound request to ${url} rejected: the test IdP makes no network calls`);
}

function renderError(ctx, out) {
  ctx.type = 'html';
  ctx.body = page('Error', `<p>${escapeHtml(out.error)}: ${escapeHtml(out.error_description ?? '')}</p>`);
}

function providerConfiguration(config) {
  const fixedTtl = (seconds) => () => seconds;
  return {
    clients: [...config.clients.map(toClientMetadata), ...config.resourceServers.map(resourceServerMetadata)],
    findAccount: findAccountIn(config.accounts),
    scopes: ['openid', 'email', 'profile'],
    claims: {
      acr: null,
      auth_time: null,
      iss: null,
      sid: null,
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    features: {
      devInteractions: { enabled: false },
      introspection: { enabled: true, allowedPolicy: introspectionAllowedPolicy(config.resourceServers) },
      revocation: { enabled: true, allowedPolicy: revocationAllowedPolicy },
    },
    extraTokenClaims: introspectionClaims(config.accounts),
    // RFC 6750 section 2.3 (token in the access_token query parameter), off by default.
    acceptQueryParamAccessTokens: config.acceptQueryParamAccessTokens,
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    jwks: ephemeralSigningKeys(),
    ttl: {
      AccessToken: accessTokenTtl(config),
      AuthorizationCode: fixedTtl(60),
      IdToken: fixedTtl(3600),
      Interaction: fixedTtl(600),
      Session: fixedTtl(3600),
      Grant: fixedTtl(3600),
      RefreshToken: fixedTtl(3600),
    },
    // The default tolerance of 15 s also applies to opaque token expiry, so a 1 s token would
    // live 16 s. Client and server share one clock here, so no tolerance is needed.
    clockTolerance: 0,
    clientBasedCORS: () => false,
    renderError,
    fetch: rejectOutboundFetch,
  };
}

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// No external stylesheets or fonts: a demo browser must not reach beyond 127.0.0.1 either.
function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body><h1>${escapeHtml(title)}</h1>
${body}
</body></html>
`;
}

function loginPage(uid, message) {
  const notice = message ? `<p class="error">${escapeHtml(message)}</p>` : '';
  return page('Sign in', `${notice}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label>User <input name="login" autocomplete="username" autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>`);
}

function consentPage(uid, details) {
  const scope = details.params.scope ?? '';
  return page('Authorize', `<p>Client <b>${escapeHtml(details.params.client_id)}</b> asks for: ${escapeHtml(scope)}</p>
<form method="post" action="/interaction/${escapeHtml(uid)}/confirm">
<button type="submit">Allow</button>
</form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort">
<button type="submit">Deny</button>
</form>`);
}

function sendHtml(res, status, html) {
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
  });
  res.end(html);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) {
      throw new errors.InvalidRequest('form body too large');
    }
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// timingSafeEqual needs inputs of equal length, so both passwords are hashed first.
function passwordMatches(account, submittedPassword) {
  if (!account || typeof account.password !== 'string') {
    return false;
  }
  const digest = (value) => crypto.createHash('sha256').update(value).digest();
  return crypto.timingSafeEqual(digest(account.password), digest(submittedPassword ?? ''));
}

async function submitLogin(provider, accounts, req, res, uid) {
  const form = await readForm(req);
  const name = form.get('login') ?? '';
  const account = Object.hasOwn(accounts, name) ? accounts[name] : undefined;
  if (!passwordMatches(account, form.get('password'))) {
    console.error(`login rejected for interaction ${uid}`);
    sendHtml(res, 200, loginPage(uid, 'Unknown user or wrong password.'));
    return;
  }

  await provider.interactionFinished(req, res, { login: { accountId: name } }, {
    mergeWithLastSubmission: false,
  });
}

async function submitConsent(provider, details, req, res) {
  const { grantId, session, params, prompt } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });

  if (prompt.details.missingOIDCScope) {
    grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  }
  if (prompt.details.missingOIDCClaims) {
    grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  }
  for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }

  const result = { consent: { grantId: await grant.save() } };
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

async function abortInteraction(provider, req, res) {
  await provider.interactionFinished(req, res, {
    error: 'access_denied',
    error_description: 'End-User aborted interaction',
  }, { mergeWithLastSubmission: false });
}

function showInteraction(res, details) {
  if (details.prompt.name === 'login') {
    sendHtml(res, 200, loginPage(details.uid));
  } else if (details.prompt.name === 'consent') {
    sendHtml(res, 200, consentPage(details.uid, details));
  } else {
    console.error(`interaction ${details.uid}: unsupported prompt ${details.prompt.name}`);
    sendHtml(res, 501, page('Error', `<p>unsupported prompt ${escapeHtml(details.prompt.name)}</p>`));
  }
}

async function handleInteraction(provider, accounts, req, res, { uid, action }) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    throw new errors.SessionNotFound('interaction cookie does not match the URL');
  }

  const expectedMethod = action ? 'POST' : 'GET';
  if (req.method !== expectedMethod) {
    console.error(`interaction ${uid}: method ${req.method} not allowed, expected ${expectedMethod}`);
    res.writeHead(405, { Allow: expectedMethod }).end();
    return;
  }

  if (!action) {
    showInteraction(res, details);
  } else if (action === 'login' && details.prompt.name === 'login') {
    await submitLogin(provider, accounts, req, res, uid);
  } else if (action === 'confirm' && details.prompt.name === 'consent') {
    await submitConsent(provider, details, req, res);
  } else if (action === 'abort') {
    await abortInteraction(provider, req, res);
  } else {
    throw new errors.InvalidRequest(`cannot ${action} during the ${details.prompt.name} prompt`);
  }
}

function sendInteractionError(res, uid, err) {
  const status = err instanceof errors.OIDCProviderError ? err.statusCode : 500;
  console.error(`interaction ${uid} failed: ${err.message}`);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const detail = status === 500 ? 'internal error' : err.error_description ?? err.message;
  sendHtml(res, status, page('Error', `<p>${escapeHtml(detail)}</p>`));
}

const INTERACTION_PATH = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?$/;

function requestHandler(provider, accounts) {
  const providerCallback = provider.callback();
  return (req, res) => {
    const { pathname } = new URL(req.url, 'http://placeholder');
    const match = INTERACTION_PATH.exec(pathname);
    if (!match) {
      providerCallback(req, res);
      return;
    }
    handleInteraction(provider, accounts, req, res, { uid: match[1], action: match[2] })
      .catch((err) => sendInteractionError(res, match[1], err));
  };
}

// oidc-provider validates a static client only when it is first used. Checking them all here
// makes a mistake in the test config fail the start instead of a later request.
async function checkClients(provider, clients) {
  for (const { client_id: clientId } of clients) {
    try {
      await provider.Client.find(clientId);
    } catch (err) {
      throw new Error(`invalid client ${clientId}: ${err.error_description ?? err.message}`);
    }
  }
}

function createServer(tls) {
  if (!tls) {
    return http.createServer();
  }
  return https.createServer({ key: readFileSync(tls.key), cert: readFileSync(tls.cert) });
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, LISTEN_HOST, () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

function stopOnSignals(server) {
  const stop = (signal) => {
    console.error(`received ${signal}, shutting down`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
    // A stuck handler must not keep the harness waiting.
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

async function main() {
  const configPath = process.argv[2];
  if (!configPath) {
    throw new Error('usage: node idp-server.mjs CONFIG.json');
  }
  const config = loadConfig(configPath);
  const server = createServer(config.https);
  stopOnSignals(server);

  // The issuer carries the port, so the provider can only be built once the OS has picked it.
  const port = await listen(server, config.port);
  const issuer = `${config.https ? 'https' : 'http'}://${LISTEN_HOST}:${port}`;
  const provider = new Provider(issuer, providerConfiguration(config));
  provider.on('server_error', (_ctx, err) => console.error(`server_error: ${err.stack}`));
  await checkClients(provider, [...config.clients, ...config.resourceServers]);
  server.on('request', requestHandler(provider, config.accounts));

  const ready = {
    issuer,
    port,
    userinfo_endpoint: provider.urlFor('userinfo'),
    token_endpoint: provider.urlFor('token'),
    authorization_endpoint: provider.urlFor('authorization'),
    introspection_endpoint: provider.urlFor('introspection'),
    revocation_endpoint: provider.urlFor('revocation'),
  };
  process.stdout.write(`READY ${JSON.stringify(ready)}\n`);
}

main().catch((err) => {
  console.error(`idp-server: ${err.stack ?? err.message}`);
  process.exit(1);
});
