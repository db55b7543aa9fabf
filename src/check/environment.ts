// The check command's dependencies on the process: output streams, standard input, environment
// variables, the HTTP transport and the clock. The entry module passes the real ones, and the
// unit specs pass fakes.

import { closeIdleConnections, httpRequest, Transport } from "../http";

/** @noSelf */
export interface CheckEnvironment {
  /** Writes to standard output. */
  readonly write: (text: string) => void;
  /** Writes to standard error. */
  readonly writeError: (text: string) => void;
  /** Reads all of standard input; undefined when it cannot be read. */
  readonly readStandardInput: () => string | undefined;
  /** Tells whether standard input is a terminal, so that the command prompts for the token. */
  readonly standardInputIsTerminal: () => boolean;
  readonly getenv: (name: string) => string | undefined;
  /** The HTTP transport, with the same TLS checks, timeouts and limits as in Dovecot. */
  readonly transport: Transport;
  /** Closes the connections that the transport keeps open. */
  readonly closeConnections: () => void;
  /** Seconds since the epoch. */
  readonly now: () => number;
}

/** Returns the real environment of `lua5.4 oauth2-check.lua`. */
export function processEnvironment(): CheckEnvironment {
  return {
    write: (text) => {
      io.stdout.write(text);
    },
    writeError: (text) => {
      io.stderr.write(text);
    },
    readStandardInput: () => io.stdin.read("a"),
    // `test -t 0` runs in a shell that inherits this process's standard input.
    standardInputIsTerminal: () => os.execute("test -t 0")[0] === true,
    getenv: (name) => os.getenv(name),
    transport: httpRequest,
    closeConnections: closeIdleConnections,
    now: () => os.time(),
  };
}
