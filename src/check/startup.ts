// The start-up checks of script_init, run outside Dovecot: load and validate the settings file,
// then check the account source. The messages are the ones Dovecot would log.

import { AccountFile } from "../account-file";
import { AccountSource, createAccountSource } from "../accounts";
import { DEFAULT_SETTINGS_PATH, loadSettings, SETTINGS_PATH_VARIABLE } from "../config";
import { Settings } from "../settings";

/** The `dovecot` global of Dovecot's Lua API, which only the LDAP start-up check uses. */
declare const _G: { dovecot: unknown };

export type LoadedSettings = { readonly ok: true; readonly settings: Settings } | { readonly ok: false; readonly message: string };

export interface AccountSourceCheck {
  readonly accounts: AccountSource;
  /** The error with which script_init would stop Dovecot's auth process. */
  readonly fatal?: string;
  /** Warnings that script_init would log, such as an LDAP server that cannot be reached. */
  readonly warnings: string[];
  /** For file sources: the number of accounts and the line numbers that were skipped. */
  readonly accountCount?: number;
  readonly malformedLines?: number[];
}

/** Returns the settings path: --config, else $OAUTH2_BRIDGE_CONFIG, else the bridge's default. */
export function settingsPath(configOption: string | undefined, getenv: (name: string) => string | undefined): string {
  if (configOption !== undefined) return configOption;
  const fromEnvironment = getenv(SETTINGS_PATH_VARIABLE);
  return fromEnvironment !== undefined && fromEnvironment !== "" ? fromEnvironment : DEFAULT_SETTINGS_PATH;
}

/** Loads the settings as script_init does. A failure carries the message that Dovecot would log. */
export function loadSettingsLikeDovecot(path: string): LoadedSettings {
  const [loaded, settingsOrError] = pcall(loadSettings, path);
  if (!loaded) {
    return { ok: false, message: `oauth2-bridge: ${errorMessage(settingsOrError)}` };
  }
  return { ok: true, settings: settingsOrError };
}

/** Creates and checks the account source as script_init does, and counts the accounts of a file. */
export function checkAccountSource(settings: Settings): AccountSourceCheck {
  const accounts = createAccountSource(settings);
  let accountCount: number | undefined = undefined;
  let malformedLines: number[] | undefined = undefined;

  const [problem, warnings] = captureDovecotLog(() => {
    if (accounts instanceof AccountFile) {
      // refresh() is what AccountFile.check() runs; the callback reports what it loaded.
      return accounts.refresh((report) => {
        accountCount = report.accounts;
        malformedLines = report.malformedLines;
      });
    }
    return accounts.check();
  });

  const fatal =
    problem === undefined
      ? undefined
      : `oauth2-bridge: account_source = ${settings.account_source}: ${problem}. Check the account settings`;
  return { accounts, fatal, warnings, accountCount, malformedLines };
}

/**
 * Runs `body` with a stand-in for Dovecot's `dovecot` global that records what the bridge logs
 * through it, and puts the previous value back afterwards.
 */
export function captureDovecotLog<T>(body: () => T): LuaMultiReturn<[T, string[]]> {
  const previous = _G.dovecot;
  const lines: string[] = [];
  const record = (message: string): void => {
    lines.push(message);
  };
  _G.dovecot = { i_debug: record, i_info: record, i_warning: record, i_error: record };
  const [completed, result] = pcall(body);
  _G.dovecot = previous;
  if (!completed) {
    error(result, 0);
  }
  return $multi(result as T, lines);
}

export function errorMessage(value: unknown): string {
  if (typeof value === "object" && value !== undefined && (value as { message?: unknown }).message !== undefined) {
    return tostring((value as { message: unknown }).message);
  }
  return tostring(value);
}
