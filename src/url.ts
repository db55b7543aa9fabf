import * as socketUrl from "socket.url";

/** An identity provider URL, checked once when the settings are loaded. */
export interface ParsedUrl {
  /** The URL without credentials, as it is requested. */
  readonly text: string;
  readonly scheme: "http" | "https";
  readonly host: string;
  readonly port: number;
  /** The request target: path and query, at least "/". */
  readonly target: string;
  /** Percent-decoded user and password from the URL, where the caller allowed them. */
  readonly credentials?: { readonly user: string; readonly password: string };
}

export interface ParseOptions {
  readonly allowCredentials?: boolean;
}

/** Parses an absolute http(s) URL. Returns the URL, or undefined and the problem. */
export function parseUrl(text: string, options: ParseOptions = {}): LuaMultiReturn<[ParsedUrl] | [undefined, string]> {
  if (string.find(text, "[%s%c]")[0] !== undefined) {
    return $multi(undefined, "it contains spaces or control characters");
  }

  const parts = socketUrl.parse(text);
  const scheme = parts.scheme?.toLowerCase();
  if (scheme !== "http" && scheme !== "https") {
    return $multi(undefined, "the scheme must be http or https");
  }
  if (parts.host === undefined || parts.host === "") {
    return $multi(undefined, "the host is missing");
  }
  // A colon is only valid inside a bracketed IPv6 address, such as https://[::1]:8443/.
  if (parts.host.includes(":") && string.find(text, `[${parts.host}]`, 1, true)[0] === undefined) {
    return $multi(undefined, "the host is not a valid name or address");
  }
  if (parts.fragment !== undefined) {
    return $multi(undefined, "a #fragment is not allowed");
  }

  let port = scheme === "https" ? 443 : 80;
  if (parts.port !== undefined && parts.port !== "") {
    const parsed = string.match(parts.port, "^%d+$")[0] !== undefined ? math.tointeger(tonumber(parts.port) ?? 0.5) : undefined;
    if (parsed === undefined || parsed < 1 || parsed > 65535) {
      return $multi(undefined, "the port is not a number from 1 to 65535");
    }
    port = parsed;
  }

  const target = (parts.path === undefined || parts.path === "" ? "/" : parts.path) +
    (parts.params === undefined ? "" : ";" + parts.params) +
    (parts.query === undefined ? "" : "?" + parts.query);
  if (parts.userinfo === undefined) {
    return $multi({ text, scheme, host: parts.host.toLowerCase(), port, target });
  }
  if (options.allowCredentials !== true) {
    return $multi(undefined, "credentials in the URL are not supported");
  }
  if (parts.user === undefined || parts.password === undefined) {
    return $multi(undefined, "the credentials in the URL need a user and a password, as in https://id:secret@host/");
  }
  const withoutCredentials = socketUrl.build({
    scheme: parts.scheme,
    host: parts.host,
    port: parts.port,
    path: parts.path,
    params: parts.params,
    query: parts.query,
  });
  return $multi({
    text: withoutCredentials,
    scheme,
    host: parts.host.toLowerCase(),
    port,
    target,
    credentials: { user: socketUrl.unescape(parts.user), password: socketUrl.unescape(parts.password) },
  });
}

/** Returns the URL with `suffix` appended, as for a token added to a tokeninfo URL. */
export function appendToUrl(url: ParsedUrl, suffix: string): ParsedUrl {
  return { text: url.text + suffix, scheme: url.scheme, host: url.host, port: url.port, target: url.target + suffix };
}

/**
 * Encodes a value for application/x-www-form-urlencoded (HTML's URL-encoded form serializer):
 * letters, digits and `*-._` stay, a space becomes `+`, every other byte becomes %XX.
 */
export function formEncode(value: string): string {
  const [encoded] = string.gsub(value, "[^%w%*%-%._ ]", (character: string) =>
    string.format("%%%02X", string.byte(character)),
  );
  return string.gsub(encoded, " ", "+")[0];
}
