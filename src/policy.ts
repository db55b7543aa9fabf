// Token policy checks on the claims the identity provider returned. Each check reads a claim by
// its JSON type, because JSON null, "false" and 0 are all truthy in Lua. A claim that is present
// with a type no identity provider sends gives INTERNAL_FAILURE, because it cannot be trusted
// either way. A claim that is absent where the policy needs it gives PASSWORD_MISMATCH.

import { claimText, jsonTypeName, loggableClaim, readStringList } from "./claims";
import { Settings } from "./settings";
import { Refusal, refuse } from "./verdict";

/**
 * Checks `active` before anything else. With `required` (RFC 7662 responses) the member must be
 * there; when present, only JSON true means the token is usable, so `"active": null` refuses too.
 */
export function checkActive(
  claims: LuaTable<string, unknown>,
  nullClaims: LuaTable<string, true>,
  required = false,
): Refusal | undefined {
  const active = claims.get("active");
  if (nullClaims.has("active") || (active !== undefined && active !== true)) {
    return refuse("PASSWORD_MISMATCH", "Token is not active");
  }
  if (required && active === undefined) {
    return refuse("INTERNAL_FAILURE", "Introspection response has no active member (RFC 7662 section 2.2)");
  }
  return undefined;
}

/** Checks active_attribute = active_value, compared as strings, as Dovecot's oauth2 driver does. */
export function checkActiveAttribute(settings: Settings, claims: LuaTable<string, unknown>): Refusal | undefined {
  const attribute = settings.active_attribute;
  if (attribute === undefined) {
    return undefined;
  }
  const value = claims.get(attribute);
  const text = claimText(value);
  if (text !== settings.active_value) {
    return refuse("PASSWORD_MISMATCH", `Token is not active: claim ${attribute} does not have the active_value`);
  }
  return undefined;
}

/**
 * Reads `exp`: a number or a numeric string (as Google's tokeninfo sends it) of seconds since
 * the epoch. Returns undefined when absent, and false when it is neither, which cannot be trusted.
 */
export function readExpiry(claims: LuaTable<string, unknown>): number | undefined | false {
  const exp = claims.get("exp");
  if (exp === undefined) {
    return undefined;
  }
  let seconds: number | undefined = undefined;
  if (typeof exp === "number") {
    seconds = exp;
  } else if (typeof exp === "string" && string.match(exp, "^%d+%.?%d*$")[0] !== undefined) {
    seconds = tonumber(exp);
  }
  // NaN compares false with everything and 1e400 decodes to infinity, so neither would expire.
  return seconds === undefined || seconds !== seconds || seconds === math.huge ? false : seconds;
}

/** Checks `exp` when present, allowing `skewSeconds` of clock difference. */
export function checkExpiry(claims: LuaTable<string, unknown>, now: number, skewSeconds = 0): Refusal | undefined {
  const seconds = readExpiry(claims);
  if (seconds === undefined) {
    return undefined;
  }
  if (seconds === false) {
    return refuse("INTERNAL_FAILURE", `Claim exp is not a number (${jsonTypeName(claims.get("exp"))})`);
  }
  if (seconds + skewSeconds <= now) {
    return refuse("PASSWORD_MISMATCH", "Token has expired");
  }
  return undefined;
}

/** Checks the required scopes against `scope`, or `scp` when `scope` is absent. */
export function checkScope(settings: Settings, claims: LuaTable<string, unknown>): Refusal | undefined {
  if (settings.scope.length === 0) {
    return undefined;
  }
  const claimName = claims.get("scope") !== undefined ? "scope" : "scp";
  const granted = readStringList(claims.get(claimName));
  if (granted === false) {
    return refuse("INTERNAL_FAILURE", `Claim ${claimName} is neither a string nor an array of strings`);
  }
  if (granted === undefined) {
    return refuse("PASSWORD_MISMATCH", "Token has no scope claim, and scope is required");
  }

  const held = settings.scope.filter((wanted) => granted.includes(wanted));
  const enough = settings.scope_match === "all" ? held.length === settings.scope.length : held.length > 0;
  if (!enough) {
    const needed = settings.scope_match === "all" ? "all of" : "one of";
    return refuse("PASSWORD_MISMATCH", `Token lacks the required scope (${needed}: ${settings.scope.join(" ")})`);
  }
  return undefined;
}

/** Checks the accepted audiences against `aud` (string or array), `azp` and `client_id`. */
export function checkAudience(settings: Settings, claims: LuaTable<string, unknown>): Refusal | undefined {
  if (settings.audience.length === 0) {
    return undefined;
  }
  const audiences = readStringList(claims.get("aud"));
  if (audiences === false) {
    return refuse("INTERNAL_FAILURE", "Claim aud is neither a string nor an array of strings");
  }

  const candidates = [...(audiences ?? [])];
  for (const name of ["azp", "client_id"]) {
    const value = claims.get(name);
    if (typeof value === "string") candidates.push(value);
  }
  if (!candidates.some((candidate) => settings.audience.includes(candidate))) {
    return refuse("PASSWORD_MISMATCH", "Token is not for an accepted audience (aud, azp, client_id)");
  }
  return undefined;
}

/** Checks `iss` against the accepted issuers. */
export function checkIssuer(settings: Settings, claims: LuaTable<string, unknown>): Refusal | undefined {
  if (settings.issuers.length === 0) {
    return undefined;
  }
  const issuer = claims.get("iss");
  if (issuer === undefined) {
    return refuse("PASSWORD_MISMATCH", "Token has no iss claim, and issuers is set");
  }
  if (typeof issuer !== "string") {
    return refuse("INTERNAL_FAILURE", `Claim iss is not a string (${jsonTypeName(issuer)})`);
  }
  if (!settings.issuers.includes(issuer)) {
    return refuse("PASSWORD_MISMATCH", `Token issuer ${loggableClaim(issuer)} is not in issuers`);
  }
  return undefined;
}

/** Requires email_verified to be JSON true, when the settings ask for it. */
export function checkEmailVerified(settings: Settings, claims: LuaTable<string, unknown>): Refusal | undefined {
  // Only JSON true counts. Google's tokeninfo v3 sends the string "true", which is refused, as
  // are every other string and number, so that no truthy value slips through.
  if (!settings.require_email_verified || claims.get("email_verified") === true) {
    return undefined;
  }
  return refuse("PASSWORD_MISMATCH", "Claim email_verified is not true, and require_email_verified = yes");
}

/** Runs every policy check after `active`, in order, and returns the first refusal. */
export function checkPolicy(settings: Settings, claims: LuaTable<string, unknown>, now: number): Refusal | undefined {
  return (
    checkActiveAttribute(settings, claims) ??
    checkExpiry(claims, now, settings.clock_skew_secs) ??
    checkIssuer(settings, claims) ??
    checkAudience(settings, claims) ??
    checkScope(settings, claims) ??
    checkEmailVerified(settings, claims)
  );
}
