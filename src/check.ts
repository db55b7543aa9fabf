// Entry module of lua-out/oauth2-check.lua, the admin's check command:
//   lua5.4 /usr/local/share/dovecot-oauth2-bridge/oauth2-check.lua [--config PATH] COMMAND
// It is built from the same modules as the Dovecot script. It runs the command only when Lua
// was started with this file, so the unit specs can load it with dofile and call run() with fakes.

import { run } from "./check/cli";
import { processEnvironment } from "./check/environment";

/** The command-line arguments that the standalone Lua interpreter sets: arg[0] is the script. */
declare const arg: LuaTable<number, string> | undefined;

/** Tells whether this chunk is the script that the Lua interpreter was started with. */
function startedAsScript(): boolean {
  if (arg === undefined) return false;
  const script = arg.get(0);
  const source = debug.getinfo(1, "S")?.source;
  return script !== undefined && source === `@${script}`;
}

if (startedAsScript()) {
  const args: string[] = [];
  const table = arg as LuaTable<number, string>;
  for (let index = 1; table.get(index) !== undefined; index++) {
    args.push(table.get(index));
  }
  os.exit(run(args, processEnvironment()));
}

export { run, parseArguments, readToken, EXIT_CODES, USAGE } from "./check/cli";
export { MADE_UP_TOKEN } from "./check/check-command";
export { replacePlain } from "./check/report";
export * as config from "./config";
export * as settings from "./settings";
