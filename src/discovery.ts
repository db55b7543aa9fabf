// OpenID Connect discovery: the endpoints come from the provider's
// /.well-known/openid-configuration document. Each auth worker fetches it on its first login
// and again every discovery_refresh_secs. While it has never been fetched, logins fail
// temporarily; once fetched, a failed refresh keeps the last good document.

import { HttpRequest, Transport } from "./http";
import { decodeObject } from "./json";
import { Settings } from "./settings";
import { parseUrl, ParsedUrl } from "./url";
import { httpOptions } from "./validation";
import { Logger, Refusal, refuse } from "./verdict";

const WELL_KNOWN_PATH = "/.well-known/openid-configuration";
/** Seconds between attempts after a failed fetch, so a down provider is not asked on every login. */
const RETRY_SECONDS = 10;

export interface Endpoints {
  readonly ok: true;
  readonly userinfo?: ParsedUrl;
  readonly introspection?: ParsedUrl;
}

/** The discovery document's URL, and the issuer it must name when the setting was an issuer URL. */
export function discoveryTarget(configured: ParsedUrl): { url: ParsedUrl; expectedIssuer?: string } {
  if (configured.text.endsWith(WELL_KNOWN_PATH)) {
    return { url: configured };
  }
  const issuer = string.gsub(configured.text, "/+$", "")[0];
  const [url] = parseUrl(issuer + WELL_KNOWN_PATH);
  return { url: url ?? configured, expectedIssuer: issuer };
}

export class Discovery {
  private endpoints?: Endpoints;
  private nextFetchAt = 0;
  private lastError?: string;

  constructor(
    private readonly settings: Settings,
    private readonly configured: ParsedUrl,
  ) {}

  /** Returns the endpoints, fetching the document when it is missing or due for a refresh. */
  resolve(transport: Transport, now: number, log: Logger): Endpoints | Refusal {
    if (now < this.nextFetchAt) {
      return this.endpoints ?? refuse("INTERNAL_FAILURE", `OpenID discovery failed: ${this.lastError}`);
    }

    const fetched = this.fetch(transport, log);
    if (fetched.ok) {
      this.endpoints = fetched;
      this.nextFetchAt = now + this.settings.discovery_refresh_secs;
      return fetched;
    }

    this.lastError = fetched.reason;
    this.nextFetchAt = now + RETRY_SECONDS;
    if (this.endpoints !== undefined) {
      log.warning(`OpenID discovery refresh failed, using the previous document: ${fetched.reason}`);
      return this.endpoints;
    }
    return refuse("INTERNAL_FAILURE", `OpenID discovery failed: ${fetched.reason}`);
  }

  private fetch(transport: Transport, log: Logger): Endpoints | Refusal {
    const target = discoveryTarget(this.configured);
    const where = `${target.url.host}:${target.url.port}`;
    log.debug(`OpenID discovery request: GET ${target.url.scheme}://${where}`);

    const request: HttpRequest = {
      method: "GET",
      url: target.url,
      headers: { accept: "application/json" },
      options: httpOptions(this.settings),
    };
    const response = transport(request);
    if (!response.ok) {
      return refuse("INTERNAL_FAILURE", `${response.error} (${where})`);
    }
    if (response.status !== 200) {
      return refuse("INTERNAL_FAILURE", `HTTP ${response.status} from ${where}`);
    }
    const decoded = decodeObject(response.body);
    if (!decoded.ok) {
      return refuse("INTERNAL_FAILURE", `${decoded.problem} (${where})`);
    }
    return this.readDocument(decoded.object, target.expectedIssuer, where);
  }

  private readDocument(document: LuaTable<string, unknown>, expectedIssuer: string | undefined, where: string): Endpoints | Refusal {
    const issuer = document.get("issuer");
    // OpenID Connect Discovery 1.0 section 4.3: the issuer must be the URL the document came from.
    if (expectedIssuer !== undefined && (typeof issuer !== "string" || string.gsub(issuer, "/+$", "")[0] !== expectedIssuer)) {
      return refuse("INTERNAL_FAILURE", `the document from ${where} names another issuer`);
    }

    const endpoints: { ok: true; userinfo?: ParsedUrl; introspection?: ParsedUrl } = { ok: true };
    for (const [member, field] of [
      ["userinfo_endpoint", "userinfo"],
      ["introspection_endpoint", "introspection"],
    ] as const) {
      const value = document.get(member);
      if (value === undefined) continue;
      if (typeof value !== "string") {
        return refuse("INTERNAL_FAILURE", `${member} in the document from ${where} is not a string`);
      }
      const [url, problem] = parseUrl(value);
      if (url === undefined) {
        return refuse("INTERNAL_FAILURE", `${member} in the document from ${where} is invalid: ${problem}`);
      }
      if (this.configured.scheme === "https" && url.scheme !== "https") {
        return refuse("INTERNAL_FAILURE", `${member} in the document from ${where} is not https`);
      }
      endpoints[field] = url;
    }
    return endpoints;
  }
}
