// Token policy checks on the claims the identity provider returned. Each check reads a claim by
// its JSON type, because JSON null, "false" and 0 are all truthy in Lua.

import { Refusal, refuse } from "./verdict";

/**
 * Checks `active` (RFC 7662) before anything else: when the claim is present, only JSON true
 * means the token is usable, so `"active": null` refuses too.
 */
export function checkActive(claims: LuaTable<string, unknown>, nullClaims: LuaTable<string, true>): Refusal | undefined {
  const active = claims.get("active");
  if (nullClaims.has("active") || (active !== undefined && active !== true)) {
    return refuse("PASSWORD_MISMATCH", "Token is not active");
  }
  return undefined;
}

/**
 * Checks `exp` when present: a number or a numeric string (as Google's tokeninfo sends it) of
 * seconds since the epoch. An expiry that is neither cannot be trusted.
 */
export function checkExpiry(claims: LuaTable<string, unknown>, now: number): Refusal | undefined {
  const exp = claims.get("exp");
  if (exp === undefined) {
    return undefined;
  }

  const seconds = typeof exp === "number" ? exp : typeof exp === "string" ? tonumber(exp) : undefined;
  // NaN compares false with everything, so it would never expire.
  if (seconds === undefined || seconds !== seconds) {
    return refuse("INTERNAL_FAILURE", "Claim exp is not a number");
  }
  if (seconds <= now) {
    return refuse("PASSWORD_MISMATCH", "Token has expired");
  }
  return undefined;
}
