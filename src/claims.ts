// Reading claims from a decoded identity provider response, by name and by JSON type.

/**
 * Returns the claim `name`. A name with dots that is not itself a key is read as a path into
 * nested objects, so `ext.email` reaches Dex's {"ext": {"email": ...}}, while a claim whose name
 * contains dots, such as "https://example.com/email", is still found as it is.
 */
export function lookupClaim(claims: LuaTable<string, unknown>, name: string): unknown {
  const direct = claims.get(name);
  if (direct !== undefined || !name.includes(".")) {
    return direct;
  }

  let current: unknown = claims;
  for (const [part] of string.gmatch(name, "[^.]+")) {
    if (type(current) !== "table") {
      return undefined;
    }
    current = (current as LuaTable<string, unknown>).get(part);
  }
  // Nested JSON null decodes to cjson.null (userdata); like a top-level null, it is no claim.
  return type(current) === "userdata" ? undefined : current;
}

/** Lists the top-level claim names, sorted, for log lines that must not show values. */
export function claimNames(claims: LuaTable<string, unknown>, limit = 20): string {
  const names: string[] = [];
  for (const [name] of pairs(claims)) {
    names.push(loggableClaim(tostring(name)));
  }
  names.sort();
  const shown = names.slice(0, limit).join(", ");
  if (names.length > limit) {
    return `${shown}, ...`;
  }
  return shown === "" ? "(none)" : shown;
}

/**
 * Returns a string, number or boolean claim as its JSON text, or undefined for other types.
 * lua-cjson 2.1 decodes every number as a float, so 1000 is formatted without ".0".
 */
export function claimText(value: unknown): string | undefined {
  if (typeof value === "number") {
    const integer = math.tointeger(value);
    return integer !== undefined ? tostring(integer) : tostring(value);
  }
  if (typeof value === "string" || typeof value === "boolean") {
    return tostring(value);
  }
  return undefined;
}

/** Names a decoded JSON value's type for log messages, without showing the value. */
export function jsonTypeName(value: unknown): string {
  const luaType = type(value);
  if (luaType === "userdata") return "null";
  if (luaType === "table") return "object or array";
  return luaType;
}

/**
 * Reads a claim that may be a space-separated string or an array of strings, as `scope` and
 * `aud` are sent. Returns the words, undefined when the claim is absent, or false when it has
 * another type.
 */
export function readStringList(value: unknown): string[] | undefined | false {
  if (value === undefined) {
    return undefined;
  }
  if (typeof value === "string") {
    const words: string[] = [];
    for (const [word] of string.gmatch(value, "%S+")) {
      words.push(word);
    }
    return words;
  }
  if (type(value) !== "table") {
    return false;
  }

  const table = value as LuaTable<AnyNotNil, unknown>;
  const words: string[] = [];
  let count = 0;
  for (const [key, item] of pairs(table)) {
    count += 1;
    if (typeof key !== "number" || typeof item !== "string") {
      return false;
    }
  }
  for (let index = 1; index <= count; index++) {
    const item = table.get(index);
    if (typeof item !== "string") return false;
    words.push(item);
  }
  return words;
}

const LOGGED_CLAIM_BYTES = 256;

/**
 * Returns a claim value or name for a log message: control characters and backslashes as \xNN,
 * cut after 256 bytes. Dovecot 2.3 writes the text after a line break as a log line of its own,
 * so a raw value could forge a log line.
 */
export function loggableClaim(value: string): string {
  const [escaped] = string.gsub(value, "[%c\\]", (character: string) => string.format("\\x%02x", string.byte(character)));
  return escaped.length > LOGGED_CLAIM_BYTES ? `${string.sub(escaped, 1, LOGGED_CLAIM_BYTES)}...` : escaped;
}
