/** @noSelfInFile */

/** @noResolution */
declare module "lfs" {
  export interface Attributes {
    ino: number;
    dev: number;
    size: number;
    modification: number;
    change: number;
    mode: string;
  }

  /** Returns the file's attributes, or nil, an error message and an error number. */
  export function attributes(this: void, path: string): LuaMultiReturn<[Attributes] | [undefined, string, number]>;
}
