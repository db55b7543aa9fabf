/** @noSelfInFile */

/** A search request for LuaLDAP 1.3's connection:search. */
declare interface LdapSearchRequest {
  base: string;
  scope: "base" | "onelevel" | "subtree";
  filter: string;
  /** Attribute names. LuaLDAP 1.3.0 mishandles a list of two or more, so pass at most one. */
  attrs?: string[];
  attrsonly?: boolean;
  sizelimit?: number;
  /** Seconds to wait for each result. */
  timeout?: number;
}

/** An LDAP connection from LuaLDAP 1.3. */
declare interface LdapConnection {
  /**
   * Starts a search and returns an iterator. Each call returns the next entry's DN and
   * attributes; nil at the end; or nil and a message when the result could not be read (a lost
   * connection, a client timeout). LuaLDAP 1.3 raises for a bad filter or a closed connection,
   * and does not check the server's result code, so a refused or limited search looks like an
   * empty one.
   */
  search(
    this: LdapConnection,
    request: LdapSearchRequest,
  ): (this: void) => LuaMultiReturn<[string, LuaTable<string, unknown>] | [undefined, string?]>;
  close(this: LdapConnection): number;
}

/** @noResolution */
declare module "lualdap" {
  /** Connects and binds. Returns the connection, or nil and an error message. */
  export function open_simple(
    this: void,
    uri: string,
    who?: string,
    password?: string,
    startTls?: boolean,
  ): LuaMultiReturn<[LdapConnection] | [undefined, string]>;
}
