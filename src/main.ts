// Entry module: the hooks that Dovecot's Lua passdb calls. They only wire the real
// dependencies and translate results; the logic lives in the modules they delegate to.

import { createAccountSource } from "./accounts";
import { DEFAULT_SETTINGS_PATH, loadSettings, SETTINGS_PATH_VARIABLE } from "./config";
import { Discovery } from "./discovery";
import { TokenCache } from "./token-cache";
import { randomSeed } from "./token-digest";
import { closeIdleConnections, httpRequest } from "./http";
import { Bridge, verifyLogin } from "./passdb";
import { Logger, ResultName } from "./verdict";

let bridge: Bridge | undefined = undefined;

/** Path of the settings file: $OAUTH2_BRIDGE_CONFIG, or the default. */
export function settingsPath(): string {
  const fromEnvironment = os.getenv(SETTINGS_PATH_VARIABLE);
  return fromEnvironment !== undefined && fromEnvironment !== "" ? fromEnvironment : DEFAULT_SETTINGS_PATH;
}

/** Loads the settings; a mistake raises an error that names the key, which stops Dovecot's auth process. */
export function scriptInit(): number {
  const path = settingsPath();
  const [loaded, settingsOrError] = pcall(loadSettings, path);
  if (!loaded) {
    error(`oauth2-bridge: ${formatError(settingsOrError)}`, 0);
  }

  const settings = settingsOrError;
  const accounts = createAccountSource(settings);
  const problem = accounts.check();
  if (problem !== undefined) {
    error(`oauth2-bridge: account_source = ${settings.account_source}: ${problem}. Check the account settings`, 0);
  }

  const discovery =
    settings.openid_configuration_url === undefined ? undefined : new Discovery(settings, settings.openid_configuration_url);
  const cache = settings.cache_ttl_secs > 0 ? new TokenCache(settings.cache_size) : undefined;
  bridge = { settings, accounts, transport: httpRequest, discovery, cache, digestSeed: randomSeed(), now: () => os.time() };
  return 0;
}

export function scriptDeinit(): void {
  bridge = undefined;
  closeIdleConnections();
}

/** Verifies one XOAUTH2 or OAUTHBEARER token. Any stray error becomes INTERNAL_FAILURE, never OK. */
export function authPasswordVerify(req: AuthRequest, token: string): LuaMultiReturn<[PassdbResult, object | string]> {
  const log = requestLogger(req);
  const current = bridge;
  if (current === undefined) {
    return decision(log, "INTERNAL_FAILURE", "oauth2-bridge is not initialised: script_init did not run");
  }

  const [completed, verdictOrError] = pcall(verifyLogin, current, req.user, token, log);
  if (!completed) {
    return decision(log, "INTERNAL_FAILURE", `oauth2-bridge internal error: ${formatError(verdictOrError)}`);
  }
  const verdict = verdictOrError;
  if (verdict.ok) {
    log.info("Token accepted");
    // Dovecot 2.4 rejects a string here, Dovecot 2.3 a nil: a table works on both.
    return $multi(dovecot.auth.PASSDB_RESULT_OK, verdict.fields);
  }
  return decision(log, verdict.result, verdict.reason);
}

/**
 * Logs a refusal once and returns it in the form that works on Dovecot 2.3 and 2.4. Dovecot
 * logs the reason of an INTERNAL_FAILURE itself (as "passdb-lua: <reason>"), but for a
 * mismatch or an unknown user it logs only the result, so the bridge logs the reason.
 */
function decision(
  log: Logger,
  result: Exclude<ResultName, "OK">,
  reason: string,
): LuaMultiReturn<[PassdbResult, object | string]> {
  if (result !== "INTERNAL_FAILURE") {
    log.info(reason);
  }
  return $multi(resultCode(result), reason);
}

function resultCode(result: ResultName): PassdbResult {
  switch (result) {
    case "OK":
      return dovecot.auth.PASSDB_RESULT_OK;
    case "PASSWORD_MISMATCH":
      return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH;
    case "USER_UNKNOWN":
      return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN;
    case "USER_DISABLED":
      return dovecot.auth.PASSDB_RESULT_USER_DISABLED;
    case "INTERNAL_FAILURE":
      return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE;
  }
}

function requestLogger(req: AuthRequest): Logger {
  return {
    debug: (message) => req.log_debug(message),
    info: (message) => req.log_info(message),
    warning: (message) => req.log_warning(message),
    error: (message) => req.log_error(message),
  };
}

function formatError(value: unknown): string {
  if (typeof value === "object" && value !== undefined && (value as { message?: unknown }).message !== undefined) {
    return tostring((value as { message: unknown }).message);
  }
  return tostring(value);
}

declare const _G: {
  script_init: typeof scriptInit;
  script_deinit: typeof scriptDeinit;
  auth_password_verify: typeof authPasswordVerify;
};
_G.script_init = scriptInit;
_G.script_deinit = scriptDeinit;
_G.auth_password_verify = authPasswordVerify;

// Exposed for the unit specs, which load the bundle with dofile. Dovecot ignores the chunk's value.
export * as accounts from "./account-file";
export * as ldapAccounts from "./ldap-accounts";
export * as nameSet from "./name-set";
export * as config from "./config";
export * as identity from "./identity";
export * as json from "./json";
export * as passdb from "./passdb";
export * as policy from "./policy";
export * as claims from "./claims";
export * as discovery from "./discovery";
export * as passAttributes from "./pass-attrs";
export * as validation from "./validation";
export * as http from "./http";
export * as connection from "./connection";
export * as url from "./url";
export * as tokenDigest from "./token-digest";
export * as tokenCache from "./token-cache";
