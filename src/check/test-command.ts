// `test --user NAME`: decides one login as Dovecot's auth worker would (passdb.verifyLogin with
// the real identity provider and account source, token cache off) and explains the outcome: the
// result, its reason, the claims the identity provider returned and the bridge's log lines.

import * as cjson from "cjson";
import { claimNames, lookupClaim } from "../claims";
import { discoveryTarget, Discovery } from "../discovery";
import { HttpRequest, HttpResponse, Transport } from "../http";
import { expandUsernameFormat, readIdentityClaim } from "../identity";
import { decodeObject } from "../json";
import { Bridge, Verdict, verifyLogin } from "../passdb";
import { readExpiry } from "../policy";
import { Settings } from "../settings";
import { randomSeed } from "../token-digest";
import { Logger, ResultName } from "../verdict";
import { CheckEnvironment } from "./environment";
import { EXIT_OK, EXIT_REFUSED, EXIT_TEMPORARY, EXIT_USAGE } from "./exit-codes";
import { Report } from "./report";
import { checkAccountSource, errorMessage, loadSettingsLikeDovecot } from "./startup";

/** A response of the identity provider that carried claims, labelled by the endpoint that sent it. */
interface ClaimSource {
  readonly endpoint: string;
  readonly where: string;
  readonly claims: LuaTable<string, unknown>;
  readonly nullClaims: LuaTable<string, true>;
}

/** Decides one login for `user` with `token` and reports it. Returns the exit code. */
export function runTest(path: string, user: string, token: string, environment: CheckEnvironment, report: Report): number {
  report.addSecret(token);
  const loaded = loadSettingsLikeDovecot(path);
  if (!loaded.ok) {
    report.failed("settings", `${loaded.message}. Dovecot's auth process would not start`);
    return EXIT_USAGE;
  }
  const settings = loaded.settings;
  report.addSecret(settings.client_secret);
  report.addSecret(settings.ldap_bind_password);

  const accounts = checkAccountSource(settings);
  if (accounts.fatal !== undefined) {
    report.failed("accounts", `${accounts.fatal}. Dovecot's auth process would not start`);
    return EXIT_USAGE;
  }
  for (const warning of accounts.warnings) {
    report.line(`warning: ${warning}`);
  }

  const sources: ClaimSource[] = [];
  const bridge: Bridge = {
    settings,
    accounts: accounts.accounts,
    transport: recordingTransport(settings, environment.transport, sources),
    discovery:
      settings.openid_configuration_url === undefined ? undefined : new Discovery(settings, settings.openid_configuration_url),
    cache: undefined,
    digestSeed: randomSeed(),
    now: () => environment.now(),
  };
  const logLines: string[] = [];
  const [completed, verdictOrError] = pcall(verifyLogin, bridge, user, token, recordingLogger(logLines));
  environment.closeConnections();
  const verdict: Verdict = completed
    ? verdictOrError
    : { ok: false, result: "INTERNAL_FAILURE", reason: `oauth2-bridge internal error: ${errorMessage(verdictOrError)}` };

  const result: ResultName = verdict.ok ? "OK" : verdict.result;
  report.line(`user:     ${user}`);
  report.line(`result:   ${result}`);
  report.line(`reason:   ${verdict.ok ? acceptedReason(verdict.fields) : verdict.reason}`);
  reportClaims(settings, sources, environment.now(), report);
  if (logLines.length > 0) {
    report.line("log:");
    for (const line of logLines) {
      report.line(`  ${line}`);
    }
  }

  switch (result) {
    case "OK":
      return EXIT_OK;
    case "INTERNAL_FAILURE":
      return EXIT_TEMPORARY;
    default:
      return EXIT_REFUSED;
  }
}

function acceptedReason(fields: LuaTable<string, string>): string {
  const pairs: string[] = [];
  for (const [name, value] of fields) {
    pairs.push(`${name}=${value}`);
  }
  pairs.sort();
  return pairs.length === 0 ? "Token accepted" : `Token accepted, passdb fields: ${pairs.join(" ")}`;
}

/**
 * Wraps the transport to keep the JSON objects that token endpoints returned with HTTP 200. The
 * discovery document is left out, and no URL is kept, because a URL may carry the token.
 */
function recordingTransport(settings: Settings, transport: Transport, sources: ClaimSource[]): Transport {
  const discoveryUrl =
    settings.openid_configuration_url === undefined ? undefined : discoveryTarget(settings.openid_configuration_url).url.text;

  return (request: HttpRequest): HttpResponse => {
    const response = transport(request);
    if (!response.ok || response.status !== 200 || request.url.text === discoveryUrl) {
      return response;
    }
    const decoded = decodeObject(response.body);
    if (decoded.ok) {
      sources.push({
        endpoint: endpointName(settings, request),
        where: `${request.url.host}:${request.url.port}`,
        claims: decoded.object,
        nullClaims: decoded.nullMembers,
      });
    }
    return response;
  };
}

function endpointName(settings: Settings, request: HttpRequest): string {
  if (request.method === "POST") return "introspection";
  const tokeninfo = settings.tokeninfo_url?.text;
  if (tokeninfo !== undefined && string.sub(request.url.text, 1, tokeninfo.length) === tokeninfo) return "tokeninfo";
  return "userinfo";
}

function recordingLogger(lines: string[]): Logger {
  return {
    debug: (message) => lines.push(`debug: ${message}`),
    info: (message) => lines.push(`info: ${message}`),
    warning: (message) => lines.push(`warning: ${message}`),
    error: (message) => lines.push(`error: ${message}`),
  };
}

/**
 * Reports the claim names of each response, the identity claim's value and the login name it gives,
 * and the values of the claims that the token policy settings check. Other values are not shown.
 */
function reportClaims(settings: Settings, sources: ClaimSource[], now: number, report: Report): void {
  if (sources.length === 0) {
    report.line("claims:   none, because no token endpoint returned a JSON object with HTTP 200");
    return;
  }
  for (const source of sources) {
    report.line(`claims:   ${source.endpoint} from ${source.where}: ${claimNames(source.claims, 50)}`);
  }

  // Later responses override earlier ones, as the bridge merges tokeninfo and introspection.
  const merged = new LuaTable<string, unknown>();
  for (const source of sources) {
    for (const [name, value] of source.claims) merged.set(name, value);
    for (const [name] of source.nullClaims) merged.delete(name);
  }

  const attribute = settings.username_attribute;
  const identity = readIdentityClaim(merged, attribute);
  if (!identity.ok) {
    report.line(`identity: ${identity.reason}`);
  } else {
    const [formatted, problem] = expandUsernameFormat(settings.username_format, identity.name);
    const loginName = formatted ?? `none (username_format ${problem})`;
    report.line(`identity: ${attribute} = ${cjson.encode(identity.name)}, login name ${loginName}`);
  }

  for (const name of policyClaims(settings)) {
    report.line(`policy:   ${name} = ${describeClaim(lookupClaim(merged, name))}`);
  }
  const expiry = lookupClaim(merged, "exp");
  const seconds = readExpiry(merged);
  if (typeof seconds === "number") {
    const left = math.floor(seconds - now);
    report.line(`expiry:   exp = ${describeClaim(expiry)}, ${left >= 0 ? `${left} s from now` : `${-left} s ago`}`);
  }
}

/** Names the claims that the configured token policy reads. */
function policyClaims(settings: Settings): string[] {
  const names: string[] = [];
  if (settings.active_attribute !== undefined) names.push(settings.active_attribute);
  if (settings.issuers.length > 0) names.push("iss");
  if (settings.audience.length > 0) names.push("aud", "azp", "client_id");
  if (settings.scope.length > 0) names.push("scope", "scp");
  if (settings.require_email_verified) names.push("email_verified");
  return names;
}

function describeClaim(value: unknown): string {
  if (value === undefined) return "(absent)";
  const [encoded, text] = pcall(() => cjson.encode(value));
  return encoded ? text : "(not representable as JSON)";
}
