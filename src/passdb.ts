// The decision for one login. OK only when all three hold: the identity provider accepted the
// token, the token's identity is the login name, and the login name is a mailbox here.

import { AccountSource } from "./accounts";
import { loggableClaim, lookupClaim } from "./claims";
import { Discovery } from "./discovery";
import { Transport } from "./http";
import { expandUsernameFormat, normalizeName, readIdentityClaim } from "./identity";
import { expandPassAttributes } from "./pass-attrs";
import { checkPolicy, readExpiry } from "./policy";
import { Settings } from "./settings";
import { TokenCache } from "./token-cache";
import { tokenDigest } from "./token-digest";
import { appendToUrl, ParsedUrl } from "./url";
import { queryIntrospection, queryTokenUrl, queryUserinfo, TokenClaims, ValidationResult } from "./validation";
import { Logger, Refusal, refuse } from "./verdict";

export interface Bridge {
  readonly settings: Settings;
  readonly accounts: AccountSource;
  readonly transport: Transport;
  readonly discovery?: Discovery;
  /** The token cache, absent when cache_ttl_secs = 0. */
  readonly cache?: TokenCache;
  /** The worker's random seed for token digests in cache keys. */
  readonly digestSeed: readonly [number, number];
  /** Seconds since the epoch. */
  readonly now: () => number;
}

/** A token accepted for the login name, with the passdb fields and the token's expiry if known. */
type TokenAccepted = { readonly ok: true; readonly fields: LuaTable<string, string>; readonly expires?: number };

export type Verdict = { readonly ok: true; readonly fields: LuaTable<string, string> } | Refusal;

// RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
const B64TOKEN_PATTERN = "^[%w%-%._~%+/]+=*$";

/** Decides one login attempt. Expected denials are returned; only broken invariants raise. */
export function verifyLogin(bridge: Bridge, user: string, token: string, log: Logger): Verdict {
  if (string.match(token, B64TOKEN_PATTERN)[0] === undefined) {
    return refuse("PASSWORD_MISMATCH", `Token is not a valid bearer token (${token.length} bytes)`);
  }

  const accepted = bridge.cache === undefined ? checkToken(bridge, user, token, log) : checkTokenCached(bridge, user, token, log);
  if (!accepted.ok) return accepted;

  const account = checkAccount(bridge.accounts, user, log);
  if (account !== undefined) return account;

  return { ok: true, fields: accepted.fields };
}

/** Checks the token with the identity provider, then its policy and its binding to `user`. */
function checkToken(bridge: Bridge, user: string, token: string, log: Logger): TokenAccepted | Refusal {
  const validated = validateToken(bridge, token, log);
  if (!validated.ok) return validated;
  const claims = validated.claims;

  const policyRefusal = checkPolicy(bridge.settings, claims, bridge.now());
  if (policyRefusal !== undefined) return policyRefusal;

  const binding = checkIdentity(bridge.settings, claims, user, log);
  if (binding !== undefined) return binding;

  const expiry = readExpiry(claims);
  return {
    ok: true,
    fields: expandPassAttributes(bridge.settings.pass_attrs, claims),
    expires: expiry === false ? undefined : expiry,
  };
}

/**
 * checkToken through the cache. The key is the normalised login name and a digest of the token,
 * so an entry serves only the same token for the same user. Acceptances live until the cache TTL
 * or the token's exp, whichever comes first; mismatches only when cache_negative_ttl_secs is
 * set; temporary failures never.
 */
function checkTokenCached(bridge: Bridge, user: string, token: string, log: Logger): TokenAccepted | Refusal {
  const cache = bridge.cache as TokenCache;
  const settings = bridge.settings;
  const key = normalizeName(user) + "\0" + tokenDigest(token, bridge.digestSeed);
  const now = bridge.now();

  const cached = cache.get(key, now);
  if (cached !== undefined) {
    log.debug(`Token cache hit (${cached.ok ? "accepted" : "refused"})`);
    if (cached.ok) return { ok: true, fields: cached.fields ?? new LuaTable() };
    return refuse("PASSWORD_MISMATCH", `${cached.reason} (cached)`);
  }

  const result = checkToken(bridge, user, token, log);
  if (result.ok) {
    const expires = Math.min(now + settings.cache_ttl_secs, result.expires ?? math.huge);
    if (expires > now) {
      cache.set(key, { ok: true, expires, fields: result.fields });
    }
  } else if (result.result === "PASSWORD_MISMATCH" && settings.cache_negative_ttl_secs > 0) {
    cache.set(key, { ok: false, expires: now + settings.cache_negative_ttl_secs, reason: result.reason });
  }
  return result;
}

/**
 * Validates the token with the endpoints the settings name: tokeninfo_url first when set, then the
 * introspection endpoint, unless tokeninfo already returned the identity claim and
 * force_introspection is off. Claims of a later response override those of an earlier one.
 */
export function validateToken(bridge: Bridge, token: string, log: Logger): ValidationResult {
  const settings = bridge.settings;
  let tokeninfo: TokenClaims | undefined = undefined;

  if (settings.tokeninfo_url !== undefined) {
    const result = queryTokenUrl(settings, settings.tokeninfo_url, token, "Tokeninfo", bridge.transport, log);
    if (!result.ok) return result;
    tokeninfo = result;

    const hasIdentity = lookupClaim(result.claims, settings.username_attribute) !== undefined;
    const canIntrospect = settings.introspection_url !== undefined || bridge.discovery !== undefined;
    if ((hasIdentity && !settings.force_introspection) || !canIntrospect) {
      return result;
    }
  }

  const endpoint = introspectionEndpoint(bridge, log);
  if (!endpoint.ok) return endpoint;

  const result = askEndpoint(bridge, endpoint.url, token, log);
  if (!result.ok || tokeninfo === undefined) return result;
  return mergeClaims(tokeninfo, result);
}

function introspectionEndpoint(bridge: Bridge, log: Logger): { ok: true; url: ParsedUrl } | Refusal {
  const settings = bridge.settings;
  if (settings.introspection_url !== undefined) {
    return { ok: true, url: settings.introspection_url };
  }
  if (bridge.discovery === undefined) {
    return refuse("INTERNAL_FAILURE", "No introspection_url or openid_configuration_url is set");
  }

  const endpoints = bridge.discovery.resolve(bridge.transport, bridge.now(), log);
  if (!endpoints.ok) return endpoints;
  const wanted = settings.introspection_mode === "post" ? "introspection_endpoint" : "userinfo_endpoint";
  const url = settings.introspection_mode === "post" ? endpoints.introspection : endpoints.userinfo;
  if (url === undefined) {
    return refuse("INTERNAL_FAILURE", `OpenID discovery document has no ${wanted}`);
  }
  if (settings.introspection_mode === "get") {
    // A discovered userinfo_endpoint has no place for the token, so mode get sends it as the
    // access_token query parameter (RFC 6750 section 2.3).
    const separator = string.find(url.text, "?", 1, true)[0] === undefined ? "?" : "&";
    return { ok: true, url: appendToUrl(url, `${separator}access_token=`) };
  }
  return { ok: true, url };
}

function askEndpoint(bridge: Bridge, url: ParsedUrl, token: string, log: Logger): ValidationResult {
  const settings = bridge.settings;
  switch (settings.introspection_mode) {
    case "auth":
      return queryUserinfo(settings, url, token, bridge.transport, log);
    case "get":
      return queryTokenUrl(settings, url, token, "Userinfo", bridge.transport, log);
    case "post":
      return queryIntrospection(settings, url, token, bridge.transport, log);
  }
}

function mergeClaims(first: TokenClaims, second: TokenClaims): TokenClaims {
  const claims = new LuaTable<string, unknown>();
  const nullClaims = new LuaTable<string, true>();
  for (const source of [first, second]) {
    for (const [name, value] of source.claims) {
      claims.set(name, value);
      nullClaims.delete(name);
    }
    for (const [name] of source.nullClaims) {
      claims.delete(name);
      nullClaims.set(name, true);
    }
  }
  return { ok: true, claims, nullClaims };
}

function checkIdentity(
  settings: Settings,
  claims: LuaTable<string, unknown>,
  user: string,
  log: Logger,
): Refusal | undefined {
  const attribute = settings.username_attribute;
  const claim = readIdentityClaim(claims, attribute);
  if (!claim.ok) {
    return refuse("INTERNAL_FAILURE", `Identity provider response unusable: ${claim.reason}`);
  }

  const [formatted, problem] = expandUsernameFormat(settings.username_format, claim.name);
  if (formatted === undefined) {
    return refuse("INTERNAL_FAILURE", `username_format ${problem}`);
  }
  if (normalizeName(formatted) !== normalizeName(user)) {
    return refuse("PASSWORD_MISMATCH", `Token belongs to ${loggableClaim(formatted)} (claim ${attribute}), not to the login name`);
  }

  log.debug(`Identity claim ${attribute} matches the login name`);
  return undefined;
}

function checkAccount(accounts: AccountSource, user: string, log: Logger): Refusal | undefined {
  const found = accounts.lookup(user, log);
  switch (found.status) {
    case "unavailable":
      return refuse("INTERNAL_FAILURE", `Account list unavailable: ${found.reason}`);
    case "missing":
      return refuse("USER_UNKNOWN", `No mailbox for the login name in ${accounts.location}`);
    case "disabled":
      return refuse("USER_DISABLED", `Mailbox is disabled in ${accounts.location}`);
    case "found":
      log.debug(`Mailbox found in ${accounts.location}`);
      return undefined;
  }
}
