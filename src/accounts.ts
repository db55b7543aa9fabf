// The account list: is the login name a mailbox on this server? A valid identity provider user
// without a mailbox must not get in, not even to SMTP, where Dovecot does no userdb lookup.

import * as lfs from "lfs";
import { normalizeName } from "./identity";

/** Result of one lookup: found, not found, or the list could not be read. */
export type AccountLookup =
  | { readonly status: "found" }
  | { readonly status: "missing" }
  | { readonly status: "unavailable"; readonly reason: string };

export interface AccountLoadReport {
  readonly accounts: number;
  /** Line numbers that could not be parsed. These lines are skipped. */
  readonly malformedLines: number[];
}

interface Fingerprint {
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly modification: number;
  readonly change: number;
}

/**
 * docker-mailserver's postfix-accounts.cf: one `address|password-hash` line per mailbox, with
 * optional further `|` fields, `#` comments and blank lines. The file is read again only when
 * its inode, size or times change. Aliases live in postfix-virtual.cf and are not accounts.
 */
export class PostfixAccountsFile {
  private names = new LuaTable<string, true>();
  private count = 0;
  private fingerprint?: Fingerprint;
  /** Set when the file changed within the last second, so a same-size rewrite would not show. */
  private racy = true;

  constructor(readonly path: string) {}

  /** Looks up a login name, reloading the file first if it changed. */
  lookup(name: string, onReload?: (report: AccountLoadReport) => void): AccountLookup {
    const reloadProblem = this.refresh(onReload);
    if (reloadProblem !== undefined) {
      return { status: "unavailable", reason: reloadProblem };
    }
    return this.names.has(normalizeName(name)) ? { status: "found" } : { status: "missing" };
  }

  /** Reloads when the file changed. Returns a problem description when it cannot be read. */
  refresh(onReload?: (report: AccountLoadReport) => void): string | undefined {
    const [attributes, statError] = lfs.attributes(this.path);
    if (attributes === undefined) {
      return `cannot read ${this.path}: ${statError}`;
    }
    const current = fingerprintOf(attributes);
    if (!this.racy && this.fingerprint !== undefined && sameFingerprint(this.fingerprint, current)) {
      return undefined;
    }

    const [file, openError] = io.open(this.path, "r");
    if (file === undefined) {
      return `cannot read ${this.path}: ${openError}`;
    }
    const text = file.read("a");
    file.close();
    if (text === undefined) {
      return `cannot read ${this.path}`;
    }

    const previousCount = this.count;
    const changed = this.fingerprint === undefined || !sameFingerprint(this.fingerprint, current);
    const report = this.load(text);
    this.fingerprint = current;
    // Timestamps have one-second resolution: a same-size rewrite in the same second as the
    // change we saw would keep this fingerprint, so check again on the next lookup.
    this.racy = current.modification >= os.time() - 1 || current.change >= os.time() - 1;
    // A re-read of a file that only might have changed is reported only when it did.
    if (changed || report.accounts !== previousCount) {
      onReload?.(report);
    }
    return undefined;
  }

  private load(text: string): AccountLoadReport {
    const names = new LuaTable<string, true>();
    const malformedLines: number[] = [];
    let accounts = 0;
    let lineNumber = 0;

    for (const [line] of string.gmatch(text + "\n", "([^\n]*)\n")) {
      lineNumber += 1;
      const trimmed = string.match(line, "^%s*(.-)%s*$")[0] ?? "";
      if (trimmed === "" || trimmed.startsWith("#")) {
        continue;
      }
      const [address] = string.match(trimmed, "^([^|%s]+@[^|%s]+)|");
      if (address === undefined) {
        malformedLines.push(lineNumber);
        continue;
      }
      names.set(normalizeName(address), true);
      accounts += 1;
    }

    this.names = names;
    this.count = accounts;
    return { accounts, malformedLines };
  }
}

function fingerprintOf(attributes: lfs.Attributes): Fingerprint {
  return {
    dev: attributes.dev,
    ino: attributes.ino,
    size: attributes.size,
    modification: attributes.modification,
    change: attributes.change,
  };
}

function sameFingerprint(a: Fingerprint, b: Fingerprint): boolean {
  return (
    a.dev === b.dev &&
    a.ino === b.ino &&
    a.size === b.size &&
    a.modification === b.modification &&
    a.change === b.change
  );
}
