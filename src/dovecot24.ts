// Dovecot 2.4 support. There, Dovecot's own oauth2 block validates XOAUTH2 and OAUTHBEARER
// tokens and then calls only auth_passdb_lookup(req) of the Lua passdb, with the token in
// req.passdb.token (Dovecot 2.4.1). That lookup fails open: unless the passdb block sets
// result_failure = return-fail and result_internalfail = return-fail, a refusal, an internal
// failure or a crashed worker still logs the user in. The script cannot read its own passdb
// settings through the Lua API, so at start it reads them with doveconf, as the same user and
// with the same CONFIG_FILE environment as the auth process, and refuses to start without them.

const REQUIRED_RESULT = "return-fail";
const TOKEN_MECHANISMS = ["xoauth2", "oauthbearer"];

/** Turns the lua_settings table that Dovecot 2.4 passes to script_init into settings file text. */
export function settingsTextFromTable(luaSettings: LuaTable<string, unknown>): string {
  const lines: string[] = [];
  for (const [key, value] of luaSettings) {
    const text = tostring(value);
    if (string.find(text, "[\r\n]")[0] !== undefined) {
      error(`lua_settings ${key} contains a line break, which no setting accepts`, 0);
    }
    lines.push(`${key} = "${text}"`);
  }
  lines.sort();
  return lines.join("\n") + "\n";
}

export interface PassdbBlock {
  readonly name: string;
  readonly settings: LuaTable<string, string>;
}

/** Reads the top-level settings and the passdb blocks from `doveconf -n` output. */
export function parseDoveconf(text: string): { global: LuaTable<string, string>; passdbs: PassdbBlock[] } {
  const global = new LuaTable<string, string>();
  const passdbs: PassdbBlock[] = [];
  let depth = 0;
  let current: PassdbBlock | undefined = undefined;

  for (const [line] of string.gmatch(text + "\n", "([^\n]*)\n")) {
    const trimmed = string.match(line, "^%s*(.-)%s*$")[0] ?? "";
    if (string.match(trimmed, "{$")[0] !== undefined) {
      const [name] = string.match(trimmed, "^passdb%s+(%S+)%s*{$");
      if (depth === 0 && name !== undefined) {
        current = { name, settings: new LuaTable() };
        passdbs.push(current);
      }
      depth += 1;
      continue;
    }
    if (trimmed === "}") {
      depth -= 1;
      if (depth === 0) current = undefined;
      continue;
    }
    const [key, value] = string.match(trimmed, "^([%w_]+)%s*=%s*(.-)$");
    if (key === undefined || value === undefined) continue;
    if (depth === 0) {
      global.set(key, value);
    } else if (depth === 1 && current !== undefined) {
      current.settings.set(key, value);
    }
  }
  return { global, passdbs };
}

/**
 * Checks that the passdb block running `scriptPath` cannot fail open. Returns the problem and
 * its fix, or undefined when the configuration is fail-closed.
 */
export function checkFailClosed(doveconfOutput: string, scriptPath: string): string | undefined {
  const { global, passdbs } = parseDoveconf(doveconfOutput);
  const own = passdbs.find((block) => block.settings.get("lua_file") === scriptPath);
  if (own === undefined) {
    return `no passdb block with lua_file = ${scriptPath} was found in doveconf -n`;
  }

  const problems: string[] = [];
  for (const result of ["result_failure", "result_internalfail"]) {
    const value = own.settings.get(result) ?? global.get(`passdb_${result}`) ?? "continue";
    if (value !== REQUIRED_RESULT) {
      problems.push(`${result} = ${value}`);
    }
  }
  const filter = string.lower(own.settings.get("mechanisms_filter") ?? "");
  for (const mechanism of TOKEN_MECHANISMS) {
    if (string.find(` ${filter} `, ` ${mechanism} `, 1, true)[0] === undefined) {
      problems.push(`mechanisms_filter lacks ${mechanism}`);
    }
  }
  if (problems.length === 0) {
    return undefined;
  }
  return (
    `passdb ${own.name} would let token logins through without the bridge's checks (${problems.join(", ")}). ` +
    `Set result_failure = return-fail, result_internalfail = return-fail and ` +
    `mechanisms_filter = xoauth2 oauthbearer in that passdb block`
  );
}

/** Runs `doveconf -n`. Returns its output, or undefined and the problem. */
export function runDoveconf(): LuaMultiReturn<[string] | [undefined, string]> {
  for (const command of ["doveconf -n 2>&1", "/usr/bin/doveconf -n 2>&1"]) {
    const [handle] = io.popen(command, "r");
    if (handle === undefined) continue;
    const output = handle.read("a") ?? "";
    // For a popen handle, close returns true when the command exited with status 0.
    const succeeded = (handle.close as unknown as (this: LuaFile) => boolean | undefined).call(handle);
    if (succeeded === true) {
      return $multi(output);
    }
  }
  return $multi(undefined, "doveconf -n could not be run");
}

/** Returns the path of this script, as Dovecot's lua_file names it. */
export function scriptPath(): string {
  const source = debug.getinfo(1, "S")?.source ?? "";
  return string.sub(source, 1, 1) === "@" ? string.sub(source, 2) : source;
}
