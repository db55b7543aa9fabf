/** @noSelfInFile */

/** @noResolution */
declare module "cjson" {
  /** The value that JSON `null` decodes to. It is a light userdata, so it is truthy in Lua. */
  const jsonNull: unknown;
  export { jsonNull as null };

  /** Decodes JSON text. Raises a Lua error on invalid input. */
  export function decode(this: void, text: string): unknown;
  export function encode(this: void, value: unknown): string;
  export function decode_max_depth(this: void, depth: number): number;
  export function decode_invalid_numbers(this: void, setting: boolean): boolean;

  /** Returns an independent module instance whose options do not affect other users of cjson. */
  function newInstance(this: void): typeof import("cjson");
  export { newInstance as new };
}
