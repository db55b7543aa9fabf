/** Names of Dovecot passdb results, mapped to dovecot.auth.PASSDB_RESULT_* by the entry module. */
export type ResultName = "OK" | "PASSWORD_MISMATCH" | "USER_UNKNOWN" | "USER_DISABLED" | "INTERNAL_FAILURE";

/** A refusal: the passdb result and the reason that goes to Dovecot's log. */
export interface Refusal {
  readonly ok: false;
  readonly result: Exclude<ResultName, "OK">;
  readonly reason: string;
}

export function refuse(result: Refusal["result"], reason: string): Refusal {
  return { ok: false, result, reason };
}

/** The log methods of a Dovecot auth request. Dovecot adds user, IP and session itself. */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warning(message: string): void;
  error(message: string): void;
}
