// Token validation against the identity provider's OIDC userinfo endpoint
// (introspection_mode = auth): GET with the token in an Authorization: Bearer header.

import { Settings } from "./config";
import { HttpOptions, HttpResponse } from "./http";
import { decodeObject } from "./json";
import { ParsedUrl } from "./url";
import { Logger, Refusal, refuse } from "./verdict";

export type HttpGet = (url: ParsedUrl, headers: Record<string, string>, options: HttpOptions) => HttpResponse;

export type UserinfoResult =
  | { readonly ok: true; readonly claims: LuaTable<string, unknown>; readonly nullClaims: LuaTable<string, true> }
  | Refusal;

/** Asks the userinfo endpoint about the token. Never logs the token or the response body. */
export function fetchUserinfo(settings: Settings, token: string, httpGet: HttpGet, log: Logger): UserinfoResult {
  const url = settings.introspection_url;
  const where = `${url.host}:${url.port}`;
  log.debug(`Userinfo request: GET ${url.scheme}://${where}`);

  const response = httpGet(
    url,
    { authorization: `Bearer ${token}`, accept: "application/json" },
    {
      timeoutMsecs: settings.timeout_msecs,
      maxResponseBytes: settings.max_response_bytes,
      caFile: settings.tls_ca_cert_file,
      allowInvalidCertificate: settings.tls_allow_invalid_cert,
    },
  );

  if (!response.ok) {
    return refuse("INTERNAL_FAILURE", `Userinfo request failed: ${response.error} (${where})`);
  }
  log.debug(`Userinfo response: HTTP ${response.status}, ${response.body.length} bytes`);

  const status = response.status;
  if (status === 401 || status === 403) {
    return refuse("PASSWORD_MISMATCH", `Token rejected by the identity provider: HTTP ${status} from ${where}`);
  }
  if (status >= 300 && status < 400) {
    return refuse("INTERNAL_FAILURE", `Userinfo request failed: HTTP ${status} redirect from ${where} not followed`);
  }
  if (status !== 200) {
    return refuse("INTERNAL_FAILURE", `Userinfo request failed: HTTP ${status} from ${where}`);
  }

  const decoded = decodeObject(response.body);
  if (!decoded.ok) {
    return refuse("INTERNAL_FAILURE", `Userinfo request failed: ${decoded.problem} (HTTP 200 from ${where})`);
  }
  return { ok: true, claims: decoded.object, nullClaims: decoded.nullMembers };
}
