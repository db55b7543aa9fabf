// Account lists kept in files: docker-mailserver's postfix-accounts.cf and Dovecot's passwd-file.
// A file is read again only when its inode, size or times change, so a lookup costs one stat()
// and one table access.

import * as lfs from "lfs";
import type { AccountLookup, AccountSource } from "./accounts";
import { normalizeName } from "./identity";
import { NameSet } from "./name-set";
import { Logger } from "./verdict";

/** Returns the account name of one non-comment line, or undefined when the line is malformed. */
export type LineParser = (line: string) => string | undefined;

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
 * A file with one account per line, `#` comments and blank lines. A file caught half-written
 * never yields a wrong name: a line is an account only when its field separator follows the
 * name, so a cut-off last line is skipped as malformed.
 */
export class AccountFile implements AccountSource {
  private names = new NameSet([]);
  private fingerprint?: Fingerprint;
  /** Set when the file changed within the last second, so a same-size rewrite would not show. */
  private racy = true;

  readonly location: string;

  constructor(
    readonly path: string,
    private readonly parseLine: LineParser,
  ) {
    this.location = path;
  }

  /** Looks up a login name, reloading the file first if it changed. */
  lookup(name: string, log: Logger): AccountLookup {
    const reloadProblem = this.refresh((report) => {
      log.info(`Account list loaded from ${this.path}: ${report.accounts} accounts`);
      if (report.malformedLines.length > 0) {
        const lines = report.malformedLines.slice(0, 10).join(", ");
        log.warning(`Account list ${this.path}: skipped malformed lines ${lines}`);
      }
    });
    if (reloadProblem !== undefined) {
      return { status: "unavailable", reason: reloadProblem };
    }
    return this.names.has(normalizeName(name)) ? { status: "found" } : { status: "missing" };
  }

  check(): string | undefined {
    return this.refresh();
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

    const previousCount = this.names.size;
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
    const names: string[] = [];
    const malformedLines: number[] = [];
    let lineNumber = 0;

    for (const [line] of string.gmatch(text + "\n", "([^\n]*)\n")) {
      lineNumber += 1;
      const trimmed = string.match(line, "^%s*(.-)%s*$")[0] ?? "";
      if (trimmed === "" || trimmed.startsWith("#")) {
        continue;
      }
      const name = this.parseLine(trimmed);
      if (name === undefined) {
        malformedLines.push(lineNumber);
        continue;
      }
      names.push(normalizeName(name));
    }

    this.names = new NameSet(names);
    return { accounts: this.names.size, malformedLines };
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

/**
 * docker-mailserver's postfix-accounts.cf: one `address|password-hash` line per mailbox, with
 * optional further `|` fields. Aliases live in postfix-virtual.cf and are not accounts.
 */
export class PostfixAccountsFile extends AccountFile {
  constructor(path: string) {
    super(path, (line) => string.match(line, "^([^|%s]+@[^|%s]+)|")[0]);
  }
}

/**
 * Dovecot's passwd-file format: the user name before the first `:`. Do not use
 * docker-mailserver's generated /etc/dovecot/userdb here: with quotas enabled it also lists
 * aliases, each pointing at another person's mailbox.
 */
export class PasswdFile extends AccountFile {
  constructor(path: string) {
    super(path, (line) => string.match(line, "^([^:%s]+):")[0]);
  }
}
