// pass_attrs: passdb fields returned with OK, such as `proxy=y host=%{oauth2:mail_host}`.
// %{oauth2:NAME} expands to a claim of the identity provider's response, as in Dovecot's oauth2
// driver; %% is a percent sign.

import { PassAttribute } from "./settings";
import { claimText, lookupClaim } from "./claims";

/** Parses space-separated name=value pairs. Returns them, or undefined and the problem. */
export function parsePassAttributes(value: string): LuaMultiReturn<[PassAttribute[]] | [undefined, string]> {
  const attributes: PassAttribute[] = [];

  for (const [item] of string.gmatch(value, "%S+")) {
    const [name, template] = string.match(item, "^([%w_%-%.]+)=(.*)$");
    if (name === undefined || template === undefined) {
      return $multi(undefined, `contains "${item}", which is not a name=value pair`);
    }
    const problem = checkTemplate(template);
    if (problem !== undefined) {
      return $multi(undefined, `${name}: ${problem}`);
    }
    attributes.push({ name, template });
  }
  return $multi(attributes);
}

function checkTemplate(template: string): string | undefined {
  const withoutVariables = string.gsub(template, "%%{oauth2:[^}]+}", "")[0];
  const withoutPercents = string.gsub(withoutVariables, "%%%%", "")[0];
  if (withoutPercents.includes("%")) {
    return "only %{oauth2:claim} variables and %% are supported";
  }
  return undefined;
}

/**
 * Builds the passdb fields for a successful login. A claim that is missing, or is not a string
 * or a number, expands to an empty string, as in Dovecot.
 */
export function expandPassAttributes(
  attributes: readonly PassAttribute[],
  claims: LuaTable<string, unknown>,
): LuaTable<string, string> {
  const fields = new LuaTable<string, string>();
  for (const attribute of attributes) {
    fields.set(attribute.name, expandTemplate(attribute.template, claims));
  }
  return fields;
}

function expandTemplate(template: string, claims: LuaTable<string, unknown>): string {
  const pieces: string[] = [];
  let position = 1;

  while (position <= template.length) {
    const [percent] = string.find(template, "%", position, true);
    if (percent === undefined) {
      pieces.push(string.sub(template, position));
      break;
    }
    pieces.push(string.sub(template, position, percent - 1));

    if (string.sub(template, percent + 1, percent + 1) === "%") {
      pieces.push("%");
      position = percent + 2;
      continue;
    }
    // parsePassAttributes accepted only %% and %{oauth2:NAME}, so this always matches.
    const [, last, claimName] = string.find(template, "^{oauth2:([^}]+)}", percent + 1);
    const claim = lookupClaim(claims, claimName as string);
    pieces.push(typeof claim === "boolean" ? "" : claimText(claim) ?? "");
    position = (last as number) + 1;
  }
  return pieces.join("");
}
