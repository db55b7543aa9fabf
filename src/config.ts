// Settings: read once in script_init from a `key = value` file, because Dovecot 2.3 passes no
// settings to a Lua passdb. The keys themselves are defined in settings.ts.

import * as lfs from "lfs";
import { expandUsernameFormat } from "./identity";
import { parsePassAttributes } from "./pass-attrs";
import { DOVECOT_ONLY_KEYS, KEYS, KeySpec, Settings } from "./settings";
import { parseUrl } from "./url";

export { KEYS } from "./settings";
export type { Settings } from "./settings";

export const DEFAULT_SETTINGS_PATH = "/etc/dovecot/oauth2-bridge.conf";
export const SETTINGS_PATH_VARIABLE = "OAUTH2_BRIDGE_CONFIG";

/** A configuration mistake. The message names the key and the fix. */
export class SettingsError extends Error {}

/** Reads, parses and validates the settings file. Raises SettingsError on any mistake. */
export function loadSettings(path: string): Settings {
  const [file, openError] = io.open(path, "r");
  if (file === undefined) {
    throw new SettingsError(
      `cannot read the settings file: ${openError}. Create it, or point the ` +
        `${SETTINGS_PATH_VARIABLE} environment variable at it (import_environment in dovecot.conf)`,
    );
  }
  const text = file.read("a") ?? "";
  file.close();
  return parseSettings(text, path);
}

/** Parses and validates settings text. `origin` names the file in error messages. */
export function parseSettings(text: string, origin: string): Settings {
  const explicit = parseLines(text, origin);
  const raw = new Map(explicit);

  if (!raw.has("introspection_url") && !raw.has("tokeninfo_url") && !raw.has("openid_configuration_url")) {
    throw new SettingsError(
      `${origin}: introspection_url is missing. Set it to the identity provider's userinfo URL, ` +
        `e.g. introspection_url = https://idp.example.com/application/o/userinfo/, ` +
        `or set tokeninfo_url or openid_configuration_url`,
    );
  }

  for (const [key, spec] of Object.entries(KEYS)) {
    if (!raw.has(key) && spec.defaultValue !== undefined) {
      raw.set(key, spec.defaultValue);
    }
  }

  const values: { [key: string]: unknown } = {};
  for (const [key, spec] of Object.entries(KEYS)) {
    if (spec.kind === "list" || spec.kind === "attributes") {
      values[key] = [];
    }
  }
  for (const [key, value] of raw) {
    values[key] = convertValue(key, KEYS[key], value, origin);
  }
  moveUrlCredentials(values, origin);
  checkAccountSource(values, explicit, origin);
  checkCrossFieldRules(values as unknown as Settings, origin);
  return values as unknown as Settings;
}

/** Splits the text into key/value pairs, rejecting syntax errors, unknown keys and repeats. */
function parseLines(text: string, origin: string): Map<string, string> {
  const raw = new Map<string, string>();
  let lineNumber = 0;

  for (const [line] of string.gmatch(text + "\n", "([^\n]*)\n")) {
    lineNumber += 1;
    const trimmed = trim(line);
    if (trimmed === "" || trimmed.startsWith("#")) {
      continue;
    }

    const [key, rawValue] = string.match(trimmed, "^([%w_]+)%s*=%s*(.-)$");
    if (key === undefined || rawValue === undefined) {
      throw new SettingsError(
        `${origin} line ${lineNumber}: expected "key = value". Fix the line or comment it out with #`,
      );
    }
    checkKnownKey(key, origin, lineNumber);
    if (raw.has(key)) {
      throw new SettingsError(`${origin} line ${lineNumber}: ${key} is set twice. Keep only one ${key} line`);
    }

    const value = unquote(rawValue);
    if (value !== "") {
      raw.set(key, value);
    }
  }
  return raw;
}

function checkKnownKey(key: string, origin: string, lineNumber: number): void {
  if (KEYS[key] !== undefined) {
    return;
  }
  if (DOVECOT_ONLY_KEYS.includes(key)) {
    throw new SettingsError(
      `${origin} line ${lineNumber}: ${key} is a setting of Dovecot's oauth2 driver that this ` +
        `version of the bridge does not support. Remove the line`,
    );
  }
  const known = Object.keys(KEYS).sort().join(", ");
  throw new SettingsError(
    `${origin} line ${lineNumber}: unknown setting ${key}. Check the spelling. Known settings: ${known}`,
  );
}

function convertValue(key: string, spec: KeySpec, value: string, origin: string): unknown {
  const fail = (problem: string, fix: string): never => {
    // A URL may carry a client secret as https://id:secret@host/, so its credentials are hidden too.
    const visible = spec.kind === "url" ? string.gsub(value, "//.*@", "//(credentials hidden)@")[0] : value;
    const shown = spec.secret === true ? "(hidden)" : `"${visible}"`;
    throw new SettingsError(`${origin}: ${key} = ${shown} ${problem}. ${fix}`);
  };

  if (spec.choices !== undefined && !spec.choices.includes(value)) {
    return fail("is not supported", `Use one of: ${spec.choices.join(", ")}`);
  }

  switch (spec.kind) {
    case "url": {
      const [url, problem] = parseUrl(value, { allowCredentials: key === "introspection_url" });
      return url ?? fail(`is not a valid URL (${problem})`, "Use an absolute http:// or https:// URL");
    }
    case "boolean": {
      const lowered = value.toLowerCase();
      if (lowered === "yes" || lowered === "true") return true;
      if (lowered === "no" || lowered === "false") return false;
      return fail("is not a boolean", "Use yes or no");
    }
    case "integer": {
      const parsed = string.match(value, "^%d+$")[0] !== undefined ? math.tointeger(tonumber(value) ?? 0.5) : undefined;
      if (parsed === undefined) {
        return fail("is not a whole number", `Use a number from ${spec.min} to ${spec.max}`);
      }
      if (parsed < (spec.min ?? 0) || parsed > (spec.max ?? math.maxinteger)) {
        return fail("is out of range", `Use a number from ${spec.min} to ${spec.max}`);
      }
      return parsed;
    }
    case "list":
      return splitWords(value);
    case "format": {
      const [, problem] = expandUsernameFormat(value, "user@example.com");
      return problem === undefined ? value : fail(problem, "Use %u, %n or %d, optionally as %Lu, %Ln or %Ld");
    }
    case "attributes": {
      const [attributes, problem] = parsePassAttributes(value);
      return attributes ?? fail(problem, "Use space-separated name=value pairs, with %{oauth2:claim} variables");
    }
    case "path":
      return checkReadableFile(value, fail);
    case "string":
      return value;
  }
}

function checkReadableFile(path: string, fail: (problem: string, fix: string) => never): string {
  const [file, openError] = io.open(path, "r");
  if (file === undefined) {
    return fail(`cannot be read (${openError})`, "Check the path and its permissions for the auth worker");
  }
  file.close();
  // io.open succeeds on a directory on Linux, and only a later read fails.
  const [attributes] = lfs.attributes(path);
  if (attributes === undefined || attributes.mode !== "file") {
    return fail("is not a regular file", "Check the path and its permissions for the auth worker");
  }
  return path;
}

/**
 * Takes client credentials written into introspection_url (https://id:secret@host/...), as
 * Dovecot's oauth2 driver accepts them, into client_id and client_secret.
 */
function moveUrlCredentials(values: { [key: string]: unknown }, origin: string): void {
  const url = values.introspection_url as Settings["introspection_url"];
  if (url?.credentials === undefined) {
    return;
  }
  if (values.introspection_mode !== "post") {
    throw new SettingsError(
      `${origin}: introspection_url contains client credentials, which are only sent with ` +
        `introspection_mode = post. Remove them from the URL, or set introspection_mode = post`,
    );
  }
  if (values.client_id !== undefined || values.client_secret !== undefined) {
    throw new SettingsError(
      `${origin}: introspection_url contains client credentials and client_id or client_secret is ` +
        `set too. Remove the credentials from the URL`,
    );
  }
  values.client_id = url.credentials.user;
  values.client_secret = url.credentials.password;
}

/** Checks the settings of the chosen account source, and reads the LDAP password file. */
function checkAccountSource(values: { [key: string]: unknown }, explicit: Map<string, string>, origin: string): void {
  const source = values.account_source as Settings["account_source"];
  const fail = (message: string): never => {
    throw new SettingsError(`${origin}: ${message}`);
  };

  if (source !== "ldap") {
    for (const key of explicit.keys()) {
      if (key.startsWith("ldap_")) {
        fail(`${key} is set, but account_source = ${source}. Set account_source = ldap, or remove ${key}`);
      }
    }
    if (source === "passwd-file" && !explicit.has("account_file")) {
      fail("account_source = passwd-file needs account_file, the path of the passwd-file");
    }
    checkReadableFile(values.account_file as string, (problem, fix) =>
      fail(`account_file = "${values.account_file}" ${problem}. ${fix}`),
    );
    return;
  }

  if ((values.ldap_uris as string[]).length === 0) {
    fail("account_source = ldap needs ldap_uris, e.g. ldap_uris = ldap://ldap.example.com");
  }
  for (const uri of values.ldap_uris as string[]) {
    if (string.match(uri, "^ldaps?://[^%s]+$")[0] === undefined) {
      fail(`ldap_uris contains "${uri}", which is not an ldap:// or ldaps:// URI`);
    }
  }
  if (values.ldap_base === undefined) {
    fail("account_source = ldap needs ldap_base, e.g. ldap_base = ou=people,dc=example,dc=com");
  }
  if (values.ldap_bind_password !== undefined && values.ldap_bind_password_file !== undefined) {
    fail("ldap_bind_password and ldap_bind_password_file are both set. Keep one of them");
  }
  if (values.ldap_bind_password_file !== undefined) {
    const password = readFirstLine(values.ldap_bind_password_file as string);
    if (password === "") {
      fail(`ldap_bind_password_file ${values.ldap_bind_password_file} is empty. Put the password on its first line`);
    }
    values.ldap_bind_password = password;
  }
  if (values.ldap_bind_password !== undefined && values.ldap_bind_dn === undefined) {
    fail("a bind password is set but ldap_bind_dn is not. Set ldap_bind_dn, or remove the password");
  }
  for (const key of ["ldap_user_filter", "ldap_disabled_filter"]) {
    const filter = values[key] as string | undefined;
    if (filter !== undefined && !(filter.startsWith("(") && filter.endsWith(")"))) {
      fail(`${key} = "${filter}" is not an LDAP filter. Wrap it in parentheses, e.g. (mail=%u)`);
    }
  }
  const disabledFilter = values.ldap_disabled_filter as string | undefined;
  if (disabledFilter !== undefined && disabledFilter.includes("%")) {
    fail(
      `ldap_disabled_filter = "${disabledFilter}" contains %, but it is matched against the found ` +
        "entry itself and takes no variables. Remove them, e.g. (mailEnabled=FALSE)",
    );
  }
  const [, problem] = expandUsernameFormat(values.ldap_user_filter as string, "user@example.com");
  if (problem !== undefined) {
    fail(`ldap_user_filter ${problem}. Use %u for the login name, or %n and %d for its parts`);
  }
}

/** Returns the file's first line without its line ending, CRLF included. */
function readFirstLine(path: string): string {
  const [file] = io.open(path, "r");
  const line = file?.read("l");
  file?.close();
  return string.gsub(line ?? "", "\r$", "")[0];
}

function checkCrossFieldRules(settings: Settings, origin: string): void {
  const fail = (message: string): never => {
    throw new SettingsError(`${origin}: ${message}`);
  };
  const hasIntrospectionEndpoint =
    settings.introspection_url !== undefined || settings.openid_configuration_url !== undefined;

  if (settings.introspection_mode === "post") {
    if (!hasIntrospectionEndpoint) {
      fail("introspection_mode = post needs introspection_url or openid_configuration_url");
    }
    if (settings.client_id === undefined || settings.client_secret === undefined) {
      fail(
        "introspection_mode = post needs client_id and client_secret, because the introspection " +
          "endpoint authenticates the client (RFC 7662 section 2.1)",
      );
    }
  }
  if (settings.force_introspection && (settings.tokeninfo_url === undefined || !hasIntrospectionEndpoint)) {
    fail("force_introspection = yes needs tokeninfo_url and introspection_url (or openid_configuration_url)");
  }
  if ((settings.active_attribute === undefined) !== (settings.active_value === undefined)) {
    fail("active_attribute and active_value must be set together. Set both, or remove both");
  }
}

function splitWords(value: string): string[] {
  const words: string[] = [];
  for (const [word] of string.gmatch(value, "%S+")) {
    words.push(word);
  }
  return words;
}

function trim(text: string): string {
  return string.match(text, "^%s*(.-)%s*$")[0] ?? "";
}

function unquote(value: string): string {
  const [inner] = string.match(value, '^"(.*)"$');
  if (inner !== undefined) return inner;
  const [single] = string.match(value, "^'(.*)'$");
  return single ?? value;
}
