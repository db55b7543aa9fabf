// Identity binding: the token's claim must name the same mailbox as the login name.
//
// Normalisation, applied to both sides: ASCII letters are lowered and nothing else changes.
// Unicode case folding and IDN conversion are not done, so a claim "user@bücher.example" matches
// only a login name (and an account line) written with the same Unicode domain, and not its
// punycode form "user@xn--bcher-kva.example". Byte-exact comparison never makes two different
// addresses equal.

import { claimNames, jsonTypeName, lookupClaim } from "./claims";

/** Lowers ASCII letters only. The explicit [A-Z] class, unlike %u, does not depend on the locale. */
export function normalizeName(name: string): string {
  return string.gsub(name, "[A-Z]", (letter: string) => string.char(string.byte(letter) + 32))[0];
}

/**
 * Expands a Dovecot-style username_format (%u, %n, %d, with an optional L modifier that lowers
 * the value, and %% for a percent sign) for one claim value. Returns the result, or undefined
 * and the problem.
 */
export function expandUsernameFormat(
  format: string,
  value: string,
): LuaMultiReturn<[string] | [undefined, string]> {
  return expandVariables(format, value, (part) => part);
}

/**
 * Expands %u (the whole value), %n (the part before the last @) and %d (the part after it), each
 * optionally as %Lu, %Ln, %Ld to lower it, and %% in `template`. Each part passes through
 * `transform` (for example LDAP filter escaping) after lowering.
 */
export function expandVariables(
  template: string,
  value: string,
  transform: (part: string) => string,
): LuaMultiReturn<[string] | [undefined, string]> {
  const at = findLastAt(value);
  const parts: { [variable: string]: string } = {
    u: value,
    n: at === undefined ? value : string.sub(value, 1, at - 1),
    d: at === undefined ? "" : string.sub(value, at + 1),
  };

  let problem: string | undefined = undefined;
  let sawVariable = false;
  const [expanded] = string.gsub(template, "%%(L?)(.?)", (modifier: string, variable: string) => {
    if (modifier === "" && variable === "%") {
      return "%";
    }
    const part = parts[variable];
    if (part === undefined) {
      problem = `contains the unsupported variable %${modifier}${variable}`;
      return "";
    }
    sawVariable = true;
    return transform(modifier === "L" ? normalizeName(part) : part);
  });

  if (problem !== undefined) {
    return $multi(undefined, problem);
  }
  if (!sawVariable) {
    return $multi(undefined, "contains no %u, %n or %d variable");
  }
  return $multi(expanded);
}

function findLastAt(value: string): number | undefined {
  const [position] = string.find(value, "@[^@]*$");
  return position;
}

export type ClaimResult =
  | { readonly ok: true; readonly name: string }
  | { readonly ok: false; readonly reason: string };

/**
 * Reads the identity claim from a decoded response. Only a non-empty string counts: numbers,
 * booleans and tables are rejected by type, not by Lua truthiness. A missing claim's reason
 * lists the claim names that were present, without their values.
 */
export function readIdentityClaim(claims: LuaTable<string, unknown>, attribute: string): ClaimResult {
  const value = lookupClaim(claims, attribute);
  if (value === undefined) {
    return { ok: false, reason: `claim ${attribute} is missing (claims present: ${claimNames(claims)})` };
  }
  if (typeof value !== "string") {
    return { ok: false, reason: `claim ${attribute} is not a string (${jsonTypeName(value)})` };
  }
  if (value === "") {
    return { ok: false, reason: `claim ${attribute} is empty` };
  }
  return { ok: true, name: value };
}
