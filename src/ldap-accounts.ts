// The account list in LDAP, as docker-mailserver's LDAP provisioner keeps it: an entry per
// mailbox found by a user filter such as (&(mail=%u)(mailEnabled=TRUE)). Each auth worker keeps
// one connection, reuses it across logins, and opens a new one after a failure.
//
// NOTE: LuaLDAP 1.3 has no timeouts of its own. libldap takes them from the environment
// (LDAPTIMEOUT, LDAPNETWORK_TIMEOUT), which Dovecot passes on with import_environment.

import type * as LuaLdap from "lualdap";
import type { AccountLookup, AccountSource } from "./accounts";
import { expandVariables, normalizeName } from "./identity";
import { Settings } from "./settings";
import { Logger } from "./verdict";

/** Loads lua-ldap on first use, so installs that keep accounts in files need not have it. */
function loadLualdap(): typeof LuaLdap {
  // A variable, because TypeScriptToLua tries to bundle a require() of a string literal.
  const moduleName = "lualdap";
  return require(moduleName) as typeof LuaLdap;
}

// libldap's messages when no LDAP server responded: LDAP_SERVER_DOWN, LDAP_TIMEOUT and LuaLDAP's
// result timeout. The server may come back, so at start these are not configuration errors.
const UNREACHABLE_ERRORS = ["Can't contact LDAP server", "Timed out", "result timeout expired"];

/** Tells whether every server in a search error (one "; "-separated part per URI) failed to respond. */
export function noServerAnswered(error: string): boolean {
  for (const [part] of string.gmatch(error, "[^;]+")) {
    if (!UNREACHABLE_ERRORS.some((message) => part.endsWith(message))) {
      return false;
    }
  }
  return true;
}

type SearchResult = { readonly ok: true; readonly dns: string[] } | { readonly ok: false; readonly error: string };

/**
 * Escapes a value for an LDAP search filter (RFC 4515 section 3): `*`, `(`, `)`, `\` and NUL
 * become \2a, \28, \29, \5c and \00, so a login name cannot change the filter's structure.
 */
export function escapeFilterValue(value: string): string {
  return string.gsub(value, "[%*%(%)\\%z]", (character: string) => string.format("\\%02x", string.byte(character)))[0];
}

/** Expands %u, %n and %d (and %Lu, %Ln, %Ld) in a filter template with escaped parts of `name`. */
export function expandFilter(template: string, name: string): LuaMultiReturn<[string] | [undefined, string]> {
  return expandVariables(template, name, escapeFilterValue);
}

export class LdapAccounts implements AccountSource {
  readonly location: string;
  private connection?: LdapConnection;

  constructor(private readonly settings: Settings) {
    this.location = `${settings.ldap_uris.join(" ")} (${settings.ldap_base})`;
  }

  /**
   * Connects and reads the base entry. LuaLDAP cannot tell a search that the server refused from
   * one that matched nothing, so a base that is missing or unreadable with these credentials is
   * caught here, at start, rather than making every user unknown.
   */
  check(): string | undefined {
    const base = this.search(this.settings.ldap_base, "base", "(objectClass=*)");
    if (!base.ok) {
      if (noServerAnswered(base.error)) {
        // Dovecot runs script_init in every new auth worker too, so an outage must not stop it.
        dovecot.i_warning(
          `oauth2-bridge: account_source = ldap: ${base.error}. Token logins fail temporarily until the LDAP server answers`,
        );
        return undefined;
      }
      return base.error;
    }
    if (base.dns.length === 0) {
      return `ldap_base ${this.settings.ldap_base} was not found, or ldap_bind_dn may not read it`;
    }

    // A malformed user filter would otherwise make every login a temporary failure.
    const [filter] = expandFilter(this.settings.ldap_user_filter, "start-up-check@invalid");
    const probe = this.search(this.settings.ldap_base, this.settings.ldap_scope, filter ?? "");
    return probe.ok ? undefined : `ldap_user_filter does not work: ${probe.error}`;
  }

  lookup(name: string, log: Logger): AccountLookup {
    const [filter, problem] = expandFilter(this.settings.ldap_user_filter, normalizeName(name));
    if (filter === undefined) {
      return { status: "unavailable", reason: `ldap_user_filter ${problem}` };
    }

    const found = this.searchWithRetry(this.settings.ldap_base, this.settings.ldap_scope, filter, log);
    if (!found.ok) {
      return { status: "unavailable", reason: `LDAP search failed: ${found.error}` };
    }
    if (found.dns.length === 0) {
      return { status: "missing" };
    }
    if (found.dns.length > 1) {
      return { status: "unavailable", reason: "LDAP search found more than one entry for the login name" };
    }
    log.debug(`LDAP entry found: ${found.dns[0]}`);

    const disabledFilter = this.settings.ldap_disabled_filter;
    if (disabledFilter === undefined) {
      return { status: "found" };
    }
    const disabled = this.searchWithRetry(found.dns[0], "base", disabledFilter, log);
    if (!disabled.ok) {
      return { status: "unavailable", reason: `LDAP search failed: ${disabled.error}` };
    }
    return disabled.dns.length > 0 ? { status: "disabled" } : { status: "found" };
  }

  /**
   * Searches on the kept connection. When that fails, the connection may have been closed by the
   * server since the last login, so the search is tried once more on a new connection.
   */
  private searchWithRetry(base: string, scope: LdapSearchRequest["scope"], filter: string, log: Logger): SearchResult {
    const reused = this.connection !== undefined;
    const first = this.search(base, scope, filter);
    if (first.ok || !reused) {
      return first;
    }
    log.info(`LDAP search failed on the kept connection (${first.error}), reconnecting`);
    return this.search(base, scope, filter);
  }

  private search(base: string, scope: LdapSearchRequest["scope"], filter: string): SearchResult {
    const connected = this.connect();
    if (!connected.ok) {
      return connected;
    }
    const connection = connected.connection;

    const dns: string[] = [];
    let readError: string | undefined = undefined;
    const [completed, searchError] = pcall(() => {
      // "1.1" requests no attributes (RFC 4511 section 4.5.1.8), because only the DN is needed. Two
      // entries are enough to know the name is ambiguous, so the server may stop there.
      const next = connection.search({ base, scope, filter, attrs: ["1.1"], sizelimit: 2 });
      // The iterator is called by hand, because a for loop would end silently on an error.
      while (true) {
        const [dn, message] = next();
        if (dn === undefined) {
          readError = message;
          break;
        }
        dns.push(dn);
      }
    });
    if (!completed || readError !== undefined) {
      this.disconnect();
      return { ok: false, error: completed ? tostring(readError) : tostring(searchError) };
    }
    return { ok: true, dns };
  }

  private connect(): { ok: true; connection: LdapConnection } | { ok: false; error: string } {
    if (this.connection !== undefined) {
      return { ok: true, connection: this.connection };
    }

    const errors: string[] = [];
    for (const uri of this.settings.ldap_uris) {
      const [completed, result] = pcall(() => {
        const [connection, openError] = loadLualdap().open_simple(
          uri,
          this.settings.ldap_bind_dn,
          this.settings.ldap_bind_password,
          this.settings.ldap_starttls,
        );
        return { connection, openError };
      });
      if (completed && result.connection !== undefined) {
        this.connection = result.connection;
        return { ok: true, connection: result.connection };
      }
      errors.push(`${uri}: ${completed ? tostring(result.openError) : tostring(result)}`);
    }
    return { ok: false, error: `cannot connect: ${errors.join("; ")}` };
  }

  private disconnect(): void {
    const connection = this.connection;
    this.connection = undefined;
    if (connection !== undefined) {
      pcall(() => connection.close());
    }
  }
}
