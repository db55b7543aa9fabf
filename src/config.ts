// Settings: read once in script_init from a `key = value` file, because Dovecot 2.3 passes no
// settings to a Lua passdb. Where a key means the same as in Dovecot's own oauth2 driver, it has
// the same name, so an existing dovecot-oauth2.conf.ext mostly carries over.

import * as lfs from "lfs";
import { expandUsernameFormat } from "./identity";
import { parseUrl, ParsedUrl } from "./url";

export const DEFAULT_SETTINGS_PATH = "/etc/dovecot/oauth2-bridge.conf";
export const SETTINGS_PATH_VARIABLE = "OAUTH2_BRIDGE_CONFIG";

export interface Settings {
  readonly introspection_url: ParsedUrl;
  readonly introspection_mode: "auth";
  readonly username_attribute: string;
  readonly username_format: string;
  readonly tls_ca_cert_file?: string;
  readonly tls_allow_invalid_cert: boolean;
  readonly timeout_msecs: number;
  readonly max_response_bytes: number;
  readonly account_source: "postfix-accounts";
  readonly account_file: string;
  readonly client_id?: string;
  readonly client_secret?: string;
}

type Kind = "url" | "string" | "boolean" | "integer" | "path" | "format";

interface KeySpec {
  readonly kind: Kind;
  readonly defaultValue?: string;
  readonly choices?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  readonly secret?: boolean;
  readonly description: string;
}

/** Every accepted key, with its type, default and meaning. The README lists the same table. */
export const KEYS: { readonly [key: string]: KeySpec } = {
  introspection_url: {
    kind: "url",
    description: "URL of the identity provider's OIDC userinfo endpoint",
  },
  introspection_mode: {
    kind: "string",
    defaultValue: "auth",
    choices: ["auth"],
    description: "how the token is sent: auth = GET with an Authorization: Bearer header",
  },
  username_attribute: {
    kind: "string",
    defaultValue: "email",
    description: "claim in the userinfo response that contains the login name",
  },
  username_format: {
    kind: "format",
    defaultValue: "%Lu",
    description: "how the claim is turned into a login name: %u whole value, %n local part, %d domain",
  },
  tls_ca_cert_file: {
    kind: "path",
    description: "PEM file with the CA certificates that sign the identity provider's certificate",
  },
  tls_allow_invalid_cert: {
    kind: "boolean",
    defaultValue: "no",
    description: "skip certificate and host name verification (testing only)",
  },
  timeout_msecs: {
    kind: "integer",
    defaultValue: "5000",
    min: 1,
    max: 600000,
    description: "time limit for one request to the identity provider, in milliseconds",
  },
  max_response_bytes: {
    kind: "integer",
    defaultValue: "65536",
    min: 1024,
    max: 16777216,
    description: "largest response body accepted from the identity provider, in bytes",
  },
  account_source: {
    kind: "string",
    defaultValue: "postfix-accounts",
    choices: ["postfix-accounts"],
    description: "where the list of mailboxes comes from",
  },
  account_file: {
    kind: "path",
    defaultValue: "/tmp/docker-mailserver/postfix-accounts.cf",
    description: "docker-mailserver's account file, one address|hash line per mailbox",
  },
  client_id: {
    kind: "string",
    description: "OAuth2 client id, kept for introspection modes that authenticate the client",
  },
  client_secret: {
    kind: "string",
    secret: true,
    description: "OAuth2 client secret, kept for introspection modes that authenticate the client",
  },
};

/** Keys of Dovecot's oauth2 driver that this version does not implement. */
const DOVECOT_ONLY_KEYS = [
  "tokeninfo_url",
  "grant_url",
  "client_id_attribute",
  "scope",
  "force_introspection",
  "active_attribute",
  "active_value",
  "issuers",
  "openid_configuration_url",
  "local_validation_key_dict",
  "pass_attrs",
  "send_auth_headers",
  "use_grant_password",
  "rawlog_dir",
  "tls_ca_cert_dir",
  "tls_cert_file",
  "tls_key_file",
  "tls_cipher_suite",
  "max_idle_time_msecs",
  "max_parallel_connections",
  "max_pipelined_requests",
  "user_agent",
  "debug",
];

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
  const raw = parseLines(text, origin);

  for (const [key, spec] of pairsOf(KEYS)) {
    if (raw.get(key) === undefined && spec.defaultValue !== undefined) {
      raw.set(key, spec.defaultValue);
    }
  }

  if (!raw.has("introspection_url")) {
    throw new SettingsError(
      `${origin}: introspection_url is missing. Set it to the identity provider's userinfo URL, ` +
        `e.g. introspection_url = https://idp.example.com/application/o/userinfo/`,
    );
  }

  const values: { [key: string]: unknown } = {};
  for (const [key, value] of raw) {
    values[key] = convertValue(key, KEYS[key], value, origin);
  }
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
      throw new SettingsError(
        `${origin} line ${lineNumber}: ${key} is set twice. Keep only one ${key} line`,
      );
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
    const shown = spec.secret === true ? "(hidden)" : `"${value}"`;
    throw new SettingsError(`${origin}: ${key} = ${shown} ${problem}. ${fix}`);
  };

  if (spec.choices !== undefined && !spec.choices.includes(value)) {
    return fail("is not supported", `Use one of: ${spec.choices.join(", ")}`);
  }

  switch (spec.kind) {
    case "url": {
      const [url, problem] = parseUrl(value);
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
    case "format": {
      const [, problem] = expandUsernameFormat(value, "user@example.com");
      return problem === undefined ? value : fail(problem, "Use %u, %n or %d, optionally as %Lu, %Ln or %Ld");
    }
    case "path": {
      const [file, openError] = io.open(value, "r");
      if (file === undefined) {
        return fail(`cannot be read (${openError})`, "Check the path and its permissions for the auth worker");
      }
      file.close();
      // io.open succeeds on a directory on Linux, and only a later read fails.
      const [attributes] = lfs.attributes(value);
      if (attributes === undefined || attributes.mode !== "file") {
        return fail("is not a regular file", "Check the path and its permissions for the auth worker");
      }
      return value;
    }
    case "string":
      return value;
  }
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

function pairsOf<T>(table: { readonly [key: string]: T }): [string, T][] {
  return Object.entries(table);
}
