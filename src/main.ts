// Entry module: the hooks that Dovecot's Lua passdb calls. They only wire the real
// dependencies and translate results; the logic lives in the modules they delegate to.

import { createAccountSource } from "./accounts";
import { DEFAULT_SETTINGS_PATH, loadSettings, parseSettings, SETTINGS_PATH_VARIABLE } from "./config";
import { checkFailClosed, runDoveconf, scriptPath, settingsTextFromTable } from "./dovecot24";
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

/**
 * Loads the settings; a mistake raises an error that names the key, which stops Dovecot's auth
 * process. Dovecot 2.3 passes no argument. Dovecot 2.4 passes the lua_settings table, which is
 * used when it holds any setting, else the settings file is read as on 2.3; and on 2.4 the
 * passdb block must be fail-closed.
 */
export function scriptInit(luaSettings?: LuaTable<string, unknown>): number {
  if (luaSettings !== undefined) {
    requireFailClosedConfig();
  }

  const useTable = luaSettings !== undefined && next(luaSettings)[0] !== undefined;
  const [loaded, settingsOrError] = pcall(() =>
    useTable ? parseSettings(settingsTextFromTable(luaSettings), "lua_settings") : loadSettings(settingsPath()),
  );
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
  // The two-generation cache keeps between half and all of its capacity. Doubling the capacity
  // keeps at least the cache_size most recently used tokens, as an LRU cache of that size would.
  const cache = settings.cache_ttl_secs > 0 ? new TokenCache(2 * settings.cache_size) : undefined;
  bridge = { settings, accounts, transport: httpRequest, discovery, cache, digestSeed: randomSeed(), now: () => os.time() };
  return 0;
}

function requireFailClosedConfig(): void {
  const [output, problem] = runDoveconf();
  if (output === undefined) {
    error(`oauth2-bridge: cannot check the passdb configuration: ${problem}. Make doveconf available in PATH`, 0);
  }
  const unsafe = checkFailClosed(output, scriptPath());
  if (unsafe !== undefined) {
    error(`oauth2-bridge: ${unsafe}`, 0);
  }
}

/**
 * Dovecot 2.4's hook after its oauth2 block accepted an XOAUTH2 or OAUTHBEARER token: applies
 * the bridge's own rules to the same token. Never returns NEXT, which Dovecot would count as
 * success.
 */
export function authPassdbLookup(req: AuthRequest): LuaMultiReturn<[PassdbResult, object | string]> {
  const token = req.passdb?.token;
  if (typeof token !== "string" || token === "") {
    const log = requestLogger(req);
    return decision(
      log,
      "INTERNAL_FAILURE",
      "oauth2-bridge got no token in req.passdb.token. Dovecot 2.4 releases after 2.4.1 need " +
        "oauth2 { fields { token = %{oauth2:access_token} } } or similar to export it",
    );
  }
  return authPasswordVerify(req, token);
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
  auth_passdb_lookup: typeof authPassdbLookup;
};
_G.script_init = scriptInit;
_G.script_deinit = scriptDeinit;
_G.auth_password_verify = authPasswordVerify;
_G.auth_passdb_lookup = authPassdbLookup;

// Exposed for the unit specs, which load the bundle with dofile. Dovecot ignores the chunk's value.
export * as accounts from "./account-file";
export * as ldapAccounts from "./ldap-accounts";
export * as nameSet from "./name-set";
export * as dovecot24 from "./dovecot24";
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
