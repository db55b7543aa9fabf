// Token validation requests to the identity provider, one function per kind of endpoint:
//   userinfo (introspection_mode = auth): GET with Authorization: Bearer <token>
//   token URL (introspection_mode = get, and tokeninfo_url): GET with the token appended
//   introspection (introspection_mode = post): RFC 7662 POST with client authentication
// None of them logs the token, the client secret or the response body.

import * as mime from "mime";
import { checkActive } from "./policy";
import { HttpOptions, HttpRequest, Transport } from "./http";
import { decodeObject } from "./json";
import { Settings } from "./settings";
import { appendToUrl, formEncode, ParsedUrl } from "./url";
import { Logger, Refusal, refuse } from "./verdict";

export interface TokenClaims {
  readonly ok: true;
  readonly claims: LuaTable<string, unknown>;
  /** Top-level members that were JSON null, so a check can tell null from absent. */
  readonly nullClaims: LuaTable<string, true>;
}

export type ValidationResult = TokenClaims | Refusal;

type Stage = "Userinfo" | "Tokeninfo" | "Introspection";

/** Asks a userinfo endpoint, with the token as a Bearer credential (RFC 6750 section 2.1). */
export function queryUserinfo(
  settings: Settings,
  url: ParsedUrl,
  token: string,
  transport: Transport,
  log: Logger,
): ValidationResult {
  const request: HttpRequest = {
    method: "GET",
    url,
    headers: { authorization: `Bearer ${token}`, accept: "application/json" },
    options: httpOptions(settings),
  };
  // A Bearer request is refused with 401 for a bad token and 403 for missing scope (RFC 6750 3.1).
  return send("Userinfo", request, [401, 403], transport, log, false);
}

/**
 * Queries an endpoint that takes the token in its URL. Google's tokeninfo returns 400 for an
 * invalid token, so 400 counts as a rejected token here too.
 */
export function queryTokenUrl(
  settings: Settings,
  url: ParsedUrl,
  token: string,
  stage: "Userinfo" | "Tokeninfo",
  transport: Transport,
  log: Logger,
): ValidationResult {
  const request: HttpRequest = {
    method: "GET",
    url: appendToUrl(url, formEncode(token)),
    headers: { accept: "application/json" },
    options: httpOptions(settings),
  };
  return send(stage, request, [400, 401, 403], transport, log, false);
}

/**
 * Asks an RFC 7662 introspection endpoint. A 401 or 403 here means the endpoint rejected our
 * client credentials, not the token, so it is an INTERNAL_FAILURE.
 */
export function queryIntrospection(
  settings: Settings,
  url: ParsedUrl,
  token: string,
  transport: Transport,
  log: Logger,
): ValidationResult {
  const clientId = settings.client_id ?? "";
  const clientSecret = settings.client_secret ?? "";
  const form = [`token=${formEncode(token)}`, "token_type_hint=access_token"];
  const headers: Record<string, string> = {
    accept: "application/json",
    "content-type": "application/x-www-form-urlencoded",
  };

  if (settings.client_auth_method === "client_secret_post") {
    form.push(`client_id=${formEncode(clientId)}`, `client_secret=${formEncode(clientSecret)}`);
  } else {
    // RFC 6749 section 2.3.1: both parts are form-encoded before they are joined and encoded.
    const [encoded] = mime.b64(`${formEncode(clientId)}:${formEncode(clientSecret)}`);
    headers.authorization = `Basic ${encoded ?? ""}`;
  }

  const request: HttpRequest = { method: "POST", url, headers, body: form.join("&"), options: httpOptions(settings) };
  return send("Introspection", request, [], transport, log, true);
}

function send(
  stage: Stage,
  request: HttpRequest,
  tokenRejectedStatuses: number[],
  transport: Transport,
  log: Logger,
  activeRequired: boolean,
): ValidationResult {
  const url = request.url;
  const where = `${url.host}:${url.port}`;
  log.debug(`${stage} request: ${request.method} ${url.scheme}://${where}`);

  const response = transport(request);
  if (!response.ok) {
    return refuse("INTERNAL_FAILURE", `${stage} request failed: ${response.error} (${where})`);
  }
  log.debug(`${stage} response: HTTP ${response.status}, ${response.body.length} bytes`);

  const status = response.status;
  if (tokenRejectedStatuses.includes(status)) {
    return refuse("PASSWORD_MISMATCH", `Token rejected by the identity provider: HTTP ${status} from ${where}`);
  }
  if (stage === "Introspection" && (status === 401 || status === 403)) {
    return refuse(
      "INTERNAL_FAILURE",
      `Introspection request failed: HTTP ${status} from ${where}. Check client_id and client_secret`,
    );
  }
  if (status >= 300 && status < 400) {
    return refuse("INTERNAL_FAILURE", `${stage} request failed: HTTP ${status} redirect from ${where} not followed`);
  }
  if (status !== 200) {
    return refuse("INTERNAL_FAILURE", `${stage} request failed: HTTP ${status} from ${where}`);
  }

  const decoded = decodeObject(response.body);
  if (!decoded.ok) {
    return refuse("INTERNAL_FAILURE", `${stage} request failed: ${decoded.problem} (HTTP 200 from ${where})`);
  }
  const inactive = checkActive(decoded.object, decoded.nullMembers, activeRequired);
  if (inactive !== undefined) {
    return inactive;
  }
  return { ok: true, claims: decoded.object, nullClaims: decoded.nullMembers };
}

export function httpOptions(settings: Settings): HttpOptions {
  return {
    timeoutMsecs: settings.timeout_msecs,
    maxResponseBytes: settings.max_response_bytes,
    caFile: settings.tls_ca_cert_file,
    allowInvalidCertificate: settings.tls_allow_invalid_cert,
    maxIdleMsecs: settings.max_idle_time_msecs,
  };
}
