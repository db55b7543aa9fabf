/** Exit codes of the check command, listed in its --help. */
export const EXIT_OK = 0;
/** check: a step failed. test: the login was refused (PASSWORD_MISMATCH, USER_UNKNOWN, USER_DISABLED). */
export const EXIT_REFUSED = 1;
/** A usage error, or settings that would stop Dovecot's auth process at start. */
export const EXIT_USAGE = 2;
/** test: INTERNAL_FAILURE, which Dovecot reports to the client as a temporary failure. */
export const EXIT_TEMPORARY = 3;
