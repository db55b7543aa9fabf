// The decision for one login. OK only when all three hold: the identity provider accepted the
// token, the token's identity is the login name, and the login name is a mailbox here.

import { AccountLookup, AccountLoadReport } from "./accounts";
import { Settings } from "./config";
import { expandUsernameFormat, normalizeName, readIdentityClaim } from "./identity";
import { checkActive, checkExpiry } from "./policy";
import { fetchUserinfo, HttpGet } from "./userinfo";
import { Logger, Refusal, refuse } from "./verdict";

export interface AccountSource {
  lookup(name: string, onReload?: (report: AccountLoadReport) => void): AccountLookup;
  readonly path: string;
}

export interface Bridge {
  readonly settings: Settings;
  readonly accounts: AccountSource;
  readonly httpGet: HttpGet;
  /** Seconds since the epoch. */
  readonly now: () => number;
}

export type Verdict = { readonly ok: true } | Refusal;

// RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
const B64TOKEN_PATTERN = "^[%w%-%._~%+/]+=*$";

/** Decides one login attempt. Expected denials are returned; only broken invariants raise. */
export function verifyLogin(bridge: Bridge, user: string, token: string, log: Logger): Verdict {
  if (string.match(token, B64TOKEN_PATTERN)[0] === undefined) {
    return refuse("PASSWORD_MISMATCH", `Token is not a valid bearer token (${token.length} bytes)`);
  }

  const userinfo = fetchUserinfo(bridge.settings, token, bridge.httpGet, log);
  if (!userinfo.ok) return userinfo;
  const claims = userinfo.claims;

  const policyRefusal = checkActive(claims, userinfo.nullClaims) ?? checkExpiry(claims, bridge.now());
  if (policyRefusal !== undefined) return policyRefusal;

  const binding = checkIdentity(bridge.settings, claims, user, log);
  if (binding !== undefined) return binding;

  return checkAccount(bridge.accounts, user, log);
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
    return refuse("INTERNAL_FAILURE", `Userinfo response unusable: ${claim.reason}`);
  }

  const [formatted, problem] = expandUsernameFormat(settings.username_format, claim.name);
  if (formatted === undefined) {
    return refuse("INTERNAL_FAILURE", `username_format ${problem}`);
  }
  if (normalizeName(formatted) !== normalizeName(user)) {
    return refuse("PASSWORD_MISMATCH", `Token belongs to ${formatted} (claim ${attribute}), not to the login name`);
  }

  log.debug(`Identity claim ${attribute} matches the login name`);
  return undefined;
}

function checkAccount(accounts: AccountSource, user: string, log: Logger): Verdict {
  const found = accounts.lookup(user, (report) => {
    log.info(`Account list loaded from ${accounts.path}: ${report.accounts} accounts`);
    if (report.malformedLines.length > 0) {
      const lines = report.malformedLines.slice(0, 10).join(", ");
      log.warning(`Account list ${accounts.path}: skipped malformed lines ${lines}`);
    }
  });

  if (found.status === "unavailable") {
    return refuse("INTERNAL_FAILURE", `Account list unavailable: ${found.reason}`);
  }
  if (found.status === "missing") {
    return refuse("USER_UNKNOWN", `No mailbox for the login name in ${accounts.path}`);
  }
  log.debug(`Mailbox found in ${accounts.path}`);
  return { ok: true };
}
