import * as cjsonModule from "cjson";

// A private instance, so the depth limit set here does not change cjson for other scripts in
// the same auth process.
const cjson = cjsonModule.new();
cjson.decode_max_depth(32);
// JSON has no NaN, Infinity or hexadecimal numbers, but cjson accepts them unless this is off.
cjson.decode_invalid_numbers(false);

export type DecodeResult =
  | {
      readonly ok: true;
      readonly object: LuaTable<string, unknown>;
      /** Top-level members whose value was JSON null; they are absent from `object`. */
      readonly nullMembers: LuaTable<string, true>;
    }
  | { readonly ok: false; readonly problem: string };

/**
 * Decodes a JSON object. JSON null becomes absent (nil) in the returned table, so no caller can
 * mistake cjson.null for a value. Arrays, scalars and invalid JSON are rejected.
 */
export function decodeObject(text: string): DecodeResult {
  // RFC 8259 section 8.1: JSON between systems is UTF-8. lua-cjson does not check it, so a body
  // with broken bytes would otherwise pass as long as the identity claim itself is intact.
  if ((utf8.len(text) as number | undefined) === undefined) {
    return { ok: false, problem: "body is not valid UTF-8" };
  }
  const [decoded, value] = pcall(() => cjson.decode(text));
  if (!decoded) {
    return { ok: false, problem: "body is not valid JSON" };
  }
  if (type(value) !== "table") {
    return { ok: false, problem: "body is not a JSON object" };
  }

  const object = value as LuaTable<AnyNotNil, unknown>;
  // cjson decodes both [] and {} to an empty table. An empty object is useless here anyway.
  if (object.length() > 0 || next(object)[0] === undefined) {
    return { ok: false, problem: "body is not a JSON object" };
  }
  for (const [key] of pairs(object)) {
    if (typeof key !== "string") {
      return { ok: false, problem: "body is not a JSON object" };
    }
  }

  const result = new LuaTable<string, unknown>();
  const nullMembers = new LuaTable<string, true>();
  for (const [key, member] of pairs(object)) {
    if (member === cjson.null || member === cjsonModule.null) {
      nullMembers.set(key as string, true);
    } else {
      result.set(key as string, member);
    }
  }
  return { ok: true, object: result, nullMembers };
}
