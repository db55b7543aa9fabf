// `check`: validates the settings as script_init does, checks the account source, resolves OIDC
// discovery and sends each configured identity provider endpoint one request with a made-up
// token, over the same HTTP client (TLS verification, timeouts) as the bridge itself.

import { Discovery, discoveryTarget } from "../discovery";
import { Settings } from "../settings";
import { appendToUrl, ParsedUrl } from "../url";
import { queryIntrospection, queryTokenUrl, queryUserinfo, ValidationResult } from "../validation";
import { Logger } from "../verdict";
import { CheckEnvironment } from "./environment";
import { EXIT_OK, EXIT_REFUSED, EXIT_USAGE } from "./exit-codes";
import { Report } from "./report";
import { checkAccountSource, loadSettingsLikeDovecot } from "./startup";

/** A syntactically valid bearer token (RFC 6750) that no identity provider has issued. */
export const MADE_UP_TOKEN = "oauth2-bridge-check.not-a-real-token";

const QUIET_LOG: Logger = { debug: () => {}, info: () => {}, warning: () => {}, error: () => {} };

/** Runs every check, reports each step and returns the exit code. */
export function runCheck(path: string, environment: CheckEnvironment, report: Report): number {
  const loaded = loadSettingsLikeDovecot(path);
  if (!loaded.ok) {
    report.failed("settings", `${loaded.message}. Dovecot's auth process would not start`);
    return EXIT_USAGE;
  }
  const settings = loaded.settings;
  report.addSecret(settings.client_secret);
  report.addSecret(settings.ldap_bind_password);
  report.ok("settings", `${path} is valid`);

  const startFails = !checkAccounts(settings, report);
  checkEndpoints(settings, environment, report);
  environment.closeConnections();

  if (report.failures === 0) {
    report.line(`All ${report.steps} checks passed.`);
    return EXIT_OK;
  }
  report.line(`${report.failures} of ${report.steps} checks FAILED.`);
  return startFails ? EXIT_USAGE : EXIT_REFUSED;
}

/** Checks the account source. Returns false when script_init would stop Dovecot's auth process. */
function checkAccounts(settings: Settings, report: Report): boolean {
  const step = `accounts (${settings.account_source})`;
  const checked = checkAccountSource(settings);
  if (checked.fatal !== undefined) {
    report.failed(step, `${checked.fatal}. Dovecot's auth process would not start`);
    return false;
  }
  if (checked.warnings.length > 0) {
    report.failed(step, checked.warnings.join("; "));
    return true;
  }

  const location = checked.accounts.location;
  if (checked.accountCount === undefined) {
    const binding = settings.ldap_bind_dn === undefined ? "anonymously" : `as ${settings.ldap_bind_dn}`;
    report.ok(step, `${location}: bound ${binding}, ldap_base found, ldap_user_filter accepted`);
    return true;
  }
  if (checked.accountCount === 0) {
    report.failed(step, `${location} lists no mailbox, so every token login would get USER_UNKNOWN`);
    return true;
  }
  const malformed = checked.malformedLines ?? [];
  const skipped = malformed.length === 0 ? "" : ` (skipped malformed lines ${malformed.slice(0, 10).join(", ")})`;
  const noun = checked.accountCount === 1 ? "account" : "accounts";
  report.ok(step, `${location}: ${checked.accountCount} ${noun}${skipped}`);
  return true;
}

function checkEndpoints(settings: Settings, environment: CheckEnvironment, report: Report): void {
  if (settings.tokeninfo_url !== undefined) {
    const probe = queryTokenUrl(settings, settings.tokeninfo_url, MADE_UP_TOKEN, "Tokeninfo", environment.transport, QUIET_LOG);
    reportProbe(report, "tokeninfo_url", settings.tokeninfo_url, probe);
  }

  const endpoint = introspectionEndpoint(settings, environment, report);
  if (endpoint === undefined) return;

  const step = endpoint.step;
  switch (settings.introspection_mode) {
    case "auth":
      reportProbe(report, step, endpoint.url, queryUserinfo(settings, endpoint.url, MADE_UP_TOKEN, environment.transport, QUIET_LOG));
      break;
    case "get":
      reportProbe(
        report,
        step,
        endpoint.url,
        queryTokenUrl(settings, endpoint.url, MADE_UP_TOKEN, "Userinfo", environment.transport, QUIET_LOG),
      );
      break;
    case "post":
      reportProbe(
        report,
        step,
        endpoint.url,
        queryIntrospection(settings, endpoint.url, MADE_UP_TOKEN, environment.transport, QUIET_LOG),
      );
      break;
  }
}

/**
 * Finds the endpoint that the bridge sends the token to after tokeninfo: introspection_url, or
 * the one that discovery supplies. Reports the discovery step. Returns undefined when there is
 * no endpoint to probe.
 */
function introspectionEndpoint(
  settings: Settings,
  environment: CheckEnvironment,
  report: Report,
): { step: string; url: ParsedUrl } | undefined {
  const configured = settings.openid_configuration_url;
  if (settings.introspection_url !== undefined) {
    if (configured !== undefined) {
      report.ok("discovery", "openid_configuration_url is not used, because introspection_url is set");
    }
    return { step: "introspection_url", url: settings.introspection_url };
  }
  if (configured === undefined) {
    return undefined;
  }

  const documentUrl = discoveryTarget(configured).url.text;
  const discovery = new Discovery(settings, configured);
  const endpoints = discovery.resolve(environment.transport, environment.now(), QUIET_LOG);
  if (!endpoints.ok) {
    report.failed("discovery", endpoints.reason);
    return undefined;
  }

  const member = settings.introspection_mode === "post" ? "introspection_endpoint" : "userinfo_endpoint";
  const url = settings.introspection_mode === "post" ? endpoints.introspection : endpoints.userinfo;
  if (url === undefined) {
    report.failed("discovery", `${documentUrl} has no ${member}, which introspection_mode = ${settings.introspection_mode} needs`);
    return undefined;
  }
  report.ok("discovery", `${documentUrl}: ${member} is ${url.text}`);

  if (settings.introspection_mode === "get") {
    // As the bridge does: the discovered URL gets the token as the access_token parameter.
    const separator = string.find(url.text, "?", 1, true)[0] === undefined ? "?" : "&";
    return { step: member, url: appendToUrl(url, `${separator}access_token=`) };
  }
  return { step: member, url };
}

/**
 * Reports the outcome of sending a made-up token. A rejection proves that the endpoint is
 * reachable over a verified connection and checks tokens. From an introspection endpoint, it
 * also proves that the client credentials were accepted.
 */
function reportProbe(report: Report, step: string, url: ParsedUrl, result: ValidationResult): void {
  const where = url.text;
  if (result.ok) {
    report.failed(step, `${where} accepted a made-up token. Check that the URL is the identity provider's token endpoint`);
    return;
  }
  if (result.result === "PASSWORD_MISMATCH") {
    const outcome =
      result.reason === "Token is not active"
        ? "client credentials accepted, and a made-up token is reported inactive"
        : `a made-up token is rejected (${result.reason})`;
    report.ok(step, `${where} answers: ${outcome}`);
    return;
  }
  report.failed(step, result.reason);
}
