// Command line of the check command: options, --help, reading the token, and dispatch.

import { runCheck } from "./check-command";
import { CheckEnvironment } from "./environment";
import { EXIT_OK, EXIT_REFUSED, EXIT_TEMPORARY, EXIT_USAGE } from "./exit-codes";
import { Report } from "./report";
import { settingsPath } from "./startup";
import { runTest } from "./test-command";

export const USAGE = `Usage: oauth2-check.lua [--config PATH] COMMAND [OPTIONS]
       (run as lua5.4 /usr/local/share/dovecot-oauth2-bridge/oauth2-check.lua,
       or through the oauth2-bridge-check wrapper that make install puts in PREFIX/bin)

Checks the settings of the Dovecot OAuth2 bridge and tries a token login the way
Dovecot's auth process would, with the same code, TLS checks and timeouts.

Commands:
  check                 Validate the settings file as Dovecot does at start, check
                        the account source (file: readable, number of accounts;
                        LDAP: bind, ldap_base, ldap_user_filter), fetch the OpenID
                        discovery document when configured, and send each identity
                        provider endpoint a made-up token, which it must reject.
  test --user NAME      Decide one login for NAME with a real token, against the
                        identity provider and the account source, with the token
                        cache off. Prints the result (OK, PASSWORD_MISMATCH,
                        USER_UNKNOWN, USER_DISABLED or INTERNAL_FAILURE), its
                        reason, the claim names the identity provider returned,
                        the identity claim's value and the bridge's log lines.

Options:
  --config PATH         Settings file. Default: $OAUTH2_BRIDGE_CONFIG when set,
                        else /etc/dovecot/oauth2-bridge.conf.
  --user NAME           Login name for test, as a mail client sends it.
  --token-file FILE     File that contains the access token, for test. Without
                        this option, or with FILE -, the token is read from
                        standard input. A leading "Bearer " is removed.
  -h, --help            Show this help.

The token is never taken from the command line, where other users can see it in
the process list, and it is never printed. Run the command as a user that can
read the settings file; Dovecot reads it as the dovecot user.

Exit codes:
  ${EXIT_OK}  check: every step OK. test: the login is accepted (OK).
  ${EXIT_REFUSED}  check: a step FAILED. test: the login is refused (PASSWORD_MISMATCH,
     USER_UNKNOWN or USER_DISABLED).
  ${EXIT_USAGE}  Usage error, unreadable token, or settings with which Dovecot's auth
     process would not start.
  ${EXIT_TEMPORARY}  test: INTERNAL_FAILURE, a temporary failure (identity provider or
     account source unavailable, unusable answer).

Examples:
  oauth2-bridge-check check
  oauth2-bridge-check --config /srv/oauth2-bridge.conf check
  oauth2-bridge-check test --user alice@example.com --token-file /root/token
  printf '%s' "$TOKEN" | oauth2-bridge-check test --user alice@example.com
`;

export interface Options {
  readonly command?: string;
  readonly config?: string;
  readonly user?: string;
  readonly tokenFile?: string;
  readonly help: boolean;
}

type Parsed = { readonly ok: true; readonly options: Options } | { readonly ok: false; readonly error: string };

const VALUE_OPTIONS: { readonly [option: string]: "config" | "user" | "tokenFile" } = {
  "--config": "config",
  "--user": "user",
  "--token-file": "tokenFile",
};

/** Option names that would put a secret on the command line. */
const REFUSED_OPTIONS = ["--token", "--access-token", "--password", "--client-secret"];

/** Parses the arguments: options may come before or after the command, as --name VALUE or --name=VALUE. */
export function parseArguments(args: readonly string[]): Parsed {
  const values: { command?: string; config?: string; user?: string; tokenFile?: string } = {};
  let help = false;

  for (let index = 0; index < args.length; index++) {
    const argument = args[index];
    if (argument === "-h" || argument === "--help") {
      help = true;
      continue;
    }

    const [name, inline] = string.match(argument, "^(%-%-[%w%-]+)=(.*)$");
    const option = name ?? argument;
    if (REFUSED_OPTIONS.includes(option)) {
      return {
        ok: false,
        error:
          `${option} is not supported: a secret on the command line is visible to other users in the process list. ` +
          "Pass the token with --token-file FILE or on standard input",
      };
    }

    const field = VALUE_OPTIONS[option];
    if (field !== undefined) {
      let value = inline;
      if (value === undefined) {
        index += 1;
        value = args[index];
      }
      if (value === undefined || value === "") {
        return { ok: false, error: `${option} needs a value` };
      }
      if (values[field] !== undefined) {
        return { ok: false, error: `${option} is given twice` };
      }
      values[field] = value;
      continue;
    }

    if (argument.startsWith("-") && argument !== "-") {
      return { ok: false, error: `unknown option ${argument}` };
    }
    if (values.command !== undefined) {
      return { ok: false, error: `unexpected argument "${argument}" after the command ${values.command}` };
    }
    values.command = argument;
  }
  return { ok: true, options: { ...values, help } };
}

/** Runs the command line and returns the exit code. */
export function run(args: readonly string[], environment: CheckEnvironment): number {
  const parsed = parseArguments(args);
  if (!parsed.ok) {
    return usageError(environment, parsed.error);
  }
  const options = parsed.options;
  if (options.help) {
    environment.write(USAGE);
    return EXIT_OK;
  }

  const report = new Report(environment.write);
  const path = settingsPath(options.config, environment.getenv);
  switch (options.command) {
    case undefined:
      return usageError(environment, "no command given. Use check or test");
    case "check":
      if (options.user !== undefined || options.tokenFile !== undefined) {
        return usageError(environment, "--user and --token-file belong to the test command");
      }
      return runCheck(path, environment, report);
    case "test": {
      if (options.user === undefined) {
        return usageError(environment, "test needs --user NAME, the login name to test");
      }
      const token = readToken(options.tokenFile, environment);
      if (!token.ok) {
        environment.writeError(`oauth2-check: ${token.error}\n`);
        return EXIT_USAGE;
      }
      return runTest(path, options.user, token.token, environment, report);
    }
    default:
      return usageError(environment, `unknown command ${options.command}. Use check or test`);
  }
}

function usageError(environment: CheckEnvironment, message: string): number {
  environment.writeError(`oauth2-check: ${message}. Run with --help for the commands and options.\n`);
  return EXIT_USAGE;
}

type TokenRead = { readonly ok: true; readonly token: string } | { readonly ok: false; readonly error: string };

/** Reads the token from a file or standard input, without whitespace around it or a "Bearer " prefix. */
export function readToken(tokenFile: string | undefined, environment: CheckEnvironment): TokenRead {
  let text: string | undefined;
  let origin: string;
  if (tokenFile === undefined || tokenFile === "-") {
    origin = "standard input";
    if (environment.standardInputIsTerminal()) {
      environment.writeError("Paste the access token, then press Enter and Ctrl-D:\n");
    }
    text = environment.readStandardInput();
  } else {
    origin = tokenFile;
    const [file, openError] = io.open(tokenFile, "r");
    if (file === undefined) {
      return { ok: false, error: `cannot read the token file: ${openError}` };
    }
    text = file.read("a");
    file.close();
  }

  const trimmed = string.match(text ?? "", "^%s*(.-)%s*$")[0] ?? "";
  const token = string.gsub(trimmed, "^[Bb][Ee][Aa][Rr][Ee][Rr]%s+", "")[0];
  if (token === "") {
    return { ok: false, error: `no token in ${origin}` };
  }
  if (string.find(token, "%s")[0] !== undefined) {
    return { ok: false, error: `${origin} contains more than one word. It must contain only the access token` };
  }
  return { ok: true, token };
}

/** Exit codes, exported for the unit specs. */
export const EXIT_CODES = { ok: EXIT_OK, refused: EXIT_REFUSED, usage: EXIT_USAGE, temporary: EXIT_TEMPORARY };
