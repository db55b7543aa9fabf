// The settings schema: every key with its type, default and meaning. Where a key means the same
// as in Dovecot's oauth2 driver, it has the same name, so an existing dovecot-oauth2.conf.ext
// mostly carries over.

import { ParsedUrl } from "./url";

export type IntrospectionMode = "auth" | "get" | "post";
export type ClientAuthMethod = "client_secret_basic" | "client_secret_post";

/** A `pass_attrs` entry: a passdb field and its template with %{oauth2:claim} variables. */
export interface PassAttribute {
  readonly name: string;
  readonly template: string;
}

export interface Settings {
  readonly introspection_url?: ParsedUrl;
  readonly introspection_mode: IntrospectionMode;
  readonly tokeninfo_url?: ParsedUrl;
  readonly force_introspection: boolean;
  readonly openid_configuration_url?: ParsedUrl;
  readonly discovery_refresh_secs: number;
  readonly client_id?: string;
  readonly client_secret?: string;
  readonly client_auth_method: ClientAuthMethod;
  readonly username_attribute: string;
  readonly username_format: string;
  readonly active_attribute?: string;
  readonly active_value?: string;
  readonly scope: readonly string[];
  readonly scope_match: "any" | "all";
  readonly audience: readonly string[];
  readonly issuers: readonly string[];
  readonly require_email_verified: boolean;
  readonly clock_skew_secs: number;
  readonly pass_attrs: readonly PassAttribute[];
  readonly cache_ttl_secs: number;
  readonly cache_negative_ttl_secs: number;
  readonly cache_size: number;
  readonly tls_ca_cert_file?: string;
  readonly tls_allow_invalid_cert: boolean;
  readonly timeout_msecs: number;
  readonly max_idle_time_msecs: number;
  readonly max_response_bytes: number;
  readonly account_source: "postfix-accounts" | "passwd-file" | "ldap";
  readonly account_file: string;
  readonly ldap_uris: readonly string[];
  readonly ldap_base: string;
  readonly ldap_bind_dn?: string;
  readonly ldap_bind_password?: string;
  readonly ldap_bind_password_file?: string;
  readonly ldap_user_filter: string;
  readonly ldap_disabled_filter?: string;
  readonly ldap_scope: "base" | "onelevel" | "subtree";
  readonly ldap_starttls: boolean;
}

export type Kind = "url" | "string" | "list" | "boolean" | "integer" | "path" | "format" | "attributes";

export interface KeySpec {
  readonly kind: Kind;
  readonly defaultValue?: string;
  readonly choices?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  readonly secret?: boolean;
  /** The key has the same name and meaning in Dovecot's oauth2 driver. */
  readonly dovecot?: boolean;
  readonly description: string;
}

/** Every accepted key. The README's settings reference lists the same table. */
export const KEYS: { readonly [key: string]: KeySpec } = {
  introspection_url: {
    kind: "url",
    dovecot: true,
    description: "userinfo URL (modes auth and get) or RFC 7662 introspection URL (mode post)",
  },
  introspection_mode: {
    kind: "string",
    defaultValue: "auth",
    choices: ["auth", "get", "post"],
    dovecot: true,
    description: "auth: GET with a Bearer header; get: GET with the token appended; post: RFC 7662",
  },
  tokeninfo_url: {
    kind: "url",
    dovecot: true,
    description: "URL to which the token is appended for a first check, as Google's tokeninfo",
  },
  force_introspection: {
    kind: "boolean",
    defaultValue: "no",
    dovecot: true,
    description: "also ask introspection_url when tokeninfo_url already returned the login name",
  },
  openid_configuration_url: {
    kind: "url",
    description: "OIDC discovery document or issuer URL that provides the endpoints",
  },
  discovery_refresh_secs: {
    kind: "integer",
    defaultValue: "3600",
    min: 60,
    max: 604800,
    description: "how often each auth worker fetches the discovery document again, in seconds",
  },
  client_id: {
    kind: "string",
    dovecot: true,
    description: "OAuth2 client id for introspection (mode post)",
  },
  client_secret: {
    kind: "string",
    secret: true,
    dovecot: true,
    description: "OAuth2 client secret for introspection (mode post)",
  },
  client_auth_method: {
    kind: "string",
    defaultValue: "client_secret_basic",
    choices: ["client_secret_basic", "client_secret_post"],
    description: "how the client authenticates to the introspection endpoint (RFC 6749 section 2.3.1)",
  },
  username_attribute: {
    kind: "string",
    defaultValue: "email",
    dovecot: true,
    description: "claim that contains the login name; a dotted path such as ext.email reaches nested claims",
  },
  username_format: {
    kind: "format",
    defaultValue: "%Lu",
    dovecot: true,
    description: "how the claim becomes a login name: %u whole value, %n local part, %d domain",
  },
  active_attribute: {
    kind: "string",
    dovecot: true,
    description: "claim that must equal active_value for the token to be accepted",
  },
  active_value: {
    kind: "string",
    dovecot: true,
    description: "value that active_attribute must have",
  },
  scope: {
    kind: "list",
    dovecot: true,
    description: "space-separated scopes; the token must have one of them (scope_match = any) or all",
  },
  scope_match: {
    kind: "string",
    defaultValue: "any",
    choices: ["any", "all"],
    description: "whether the token needs any one or all of the scopes in scope",
  },
  audience: {
    kind: "list",
    description: "space-separated accepted audiences, matched against aud, azp and client_id",
  },
  issuers: {
    kind: "list",
    dovecot: true,
    description: "space-separated accepted iss values",
  },
  require_email_verified: {
    kind: "boolean",
    defaultValue: "no",
    description: "accept only tokens whose email_verified claim is JSON true",
  },
  clock_skew_secs: {
    kind: "integer",
    defaultValue: "30",
    min: 0,
    max: 3600,
    description: "seconds that exp may lie in the past before the token counts as expired",
  },
  pass_attrs: {
    kind: "attributes",
    dovecot: true,
    description: "passdb fields returned on success, e.g. proxy=y host=%{oauth2:mail_host}",
  },
  cache_ttl_secs: {
    kind: "integer",
    defaultValue: "60",
    min: 0,
    max: 86400,
    description: "how long an accepted token is reused without asking the identity provider; 0 turns the cache off",
  },
  cache_negative_ttl_secs: {
    kind: "integer",
    defaultValue: "0",
    min: 0,
    max: 300,
    description: "how long a rejected token stays rejected without asking again; 0 caches no rejections",
  },
  cache_size: {
    kind: "integer",
    defaultValue: "1000",
    min: 2,
    max: 1000000,
    description: "recently used tokens each auth worker keeps; up to twice as many are in memory",
  },
  tls_ca_cert_file: {
    kind: "path",
    dovecot: true,
    description: "PEM file with the CA certificates that sign the identity provider's certificate",
  },
  tls_allow_invalid_cert: {
    kind: "boolean",
    defaultValue: "no",
    dovecot: true,
    description: "skip certificate and host name verification (testing only)",
  },
  timeout_msecs: {
    kind: "integer",
    defaultValue: "5000",
    min: 1,
    max: 600000,
    dovecot: true,
    description: "time limit for one request to the identity provider, in milliseconds",
  },
  max_idle_time_msecs: {
    kind: "integer",
    defaultValue: "30000",
    min: 0,
    max: 3600000,
    dovecot: true,
    description: "how long an idle connection to the identity provider is kept for reuse, in milliseconds; 0 closes it",
  },
  max_response_bytes: {
    kind: "integer",
    defaultValue: "65536",
    min: 1024,
    max: 16777216,
    description: "largest response body accepted from the identity provider, in bytes",
  },
  account_source: {
    kind: "string",
    defaultValue: "postfix-accounts",
    choices: ["postfix-accounts", "passwd-file", "ldap"],
    description: "where the list of mailboxes comes from",
  },
  account_file: {
    kind: "string",
    defaultValue: "/tmp/docker-mailserver/postfix-accounts.cf",
    description: "account file for the postfix-accounts and passwd-file sources",
  },
  ldap_uris: {
    kind: "list",
    description: "space-separated LDAP server URIs (ldap:// or ldaps://), tried in order",
  },
  ldap_base: {
    kind: "string",
    description: "search base for the user filter",
  },
  ldap_bind_dn: {
    kind: "string",
    description: "DN to bind as; anonymous when unset",
  },
  ldap_bind_password: {
    kind: "string",
    secret: true,
    description: "password of ldap_bind_dn",
  },
  ldap_bind_password_file: {
    kind: "path",
    description: "file whose first line is the password of ldap_bind_dn",
  },
  ldap_user_filter: {
    kind: "string",
    defaultValue: "(&(mail=%u)(mailEnabled=TRUE))",
    description: "filter that finds the mailbox's entry; %u, %n and %d are escaped per RFC 4515",
  },
  ldap_disabled_filter: {
    kind: "string",
    description: "filter that marks a found entry as disabled, e.g. (mailEnabled=FALSE)",
  },
  ldap_scope: {
    kind: "string",
    defaultValue: "subtree",
    choices: ["base", "onelevel", "subtree"],
    description: "search scope below ldap_base",
  },
  ldap_starttls: {
    kind: "boolean",
    defaultValue: "no",
    description: "upgrade ldap:// connections with StartTLS and require it to succeed",
  },
};

/** Keys of Dovecot's oauth2 driver that this version does not implement. */
export const DOVECOT_ONLY_KEYS = [
  "grant_url",
  "client_id_attribute",
  "local_validation_key_dict",
  "send_auth_headers",
  "use_grant_password",
  "rawlog_dir",
  "tls_ca_cert_dir",
  "tls_cert_file",
  "tls_key_file",
  "tls_cipher_suite",
  "max_parallel_connections",
  "max_pipelined_requests",
  "user_agent",
  "debug",
];
