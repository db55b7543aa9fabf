// The account list: is the login name a mailbox on this server? A valid identity provider user
// without a mailbox must not get in, not even to SMTP, where Dovecot does no userdb lookup.

import { PasswdFile, PostfixAccountsFile } from "./account-file";
import { LdapAccounts } from "./ldap-accounts";
import { Settings } from "./settings";
import { Logger } from "./verdict";

/** Result of one lookup. "unavailable" means the source could not give a trustworthy answer. */
export type AccountLookup =
  | { readonly status: "found" }
  | { readonly status: "missing" }
  | { readonly status: "disabled" }
  | { readonly status: "unavailable"; readonly reason: string };

export interface AccountSource {
  /** The source's location for log lines: a file path, or LDAP URIs and the base. */
  readonly location: string;
  /** Looks up a login name, already normalised by the caller or not. */
  lookup(name: string, log: Logger): AccountLookup;
  /** Checks at start that the source can be used. Returns a problem description, or undefined. */
  check(): string | undefined;
}

/** Builds the account source that the settings name. */
export function createAccountSource(settings: Settings): AccountSource {
  switch (settings.account_source) {
    case "postfix-accounts":
      return new PostfixAccountsFile(settings.account_file);
    case "passwd-file":
      return new PasswdFile(settings.account_file);
    case "ldap":
      return new LdapAccounts(settings);
  }
}
