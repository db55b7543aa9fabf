/** @noSelfInFile */

// The parts of Dovecot's Lua API (auth-lua, 2.3 and 2.4) that the bridge uses.

/** Passdb result codes, as numbers defined by Dovecot's auth process. */
declare type PassdbResult = number & { readonly __passdbResult: never };

declare namespace dovecot {
  namespace auth {
    const PASSDB_RESULT_OK: PassdbResult;
    const PASSDB_RESULT_INTERNAL_FAILURE: PassdbResult;
    const PASSDB_RESULT_SCHEME_NOT_AVAILABLE: PassdbResult;
    const PASSDB_RESULT_USER_UNKNOWN: PassdbResult;
    const PASSDB_RESULT_USER_DISABLED: PassdbResult;
    const PASSDB_RESULT_PASS_EXPIRED: PassdbResult;
    const PASSDB_RESULT_NEXT: PassdbResult;
    const PASSDB_RESULT_PASSWORD_MISMATCH: PassdbResult;
  }

  function i_debug(message: string): void;
  function i_info(message: string): void;
  function i_warning(message: string): void;
  function i_error(message: string): void;
}

/** The auth request that Dovecot passes to the passdb hooks. */
declare interface AuthRequest {
  readonly user: string;
  /** Dovecot 2.3's name of the protocol; 2.4 calls it `protocol`. */
  readonly service?: string;
  readonly protocol?: string;
  /** Dovecot 2.4's passdb data; 2.4.1 puts the validated OAuth2 token here. */
  readonly passdb?: { readonly token?: string };
  readonly mechanism?: string;
  readonly remote_ip?: string;
  readonly local_ip?: string;
  readonly session?: string;
  readonly secured?: boolean;

  log_debug(this: AuthRequest, message: string): void;
  log_info(this: AuthRequest, message: string): void;
  log_warning(this: AuthRequest, message: string): void;
  log_error(this: AuthRequest, message: string): void;
}
