import * as socketUrl from "socket.url";

/** An identity provider URL, checked once when the settings are loaded. */
export interface ParsedUrl {
  readonly text: string;
  readonly scheme: "http" | "https";
  readonly host: string;
  readonly port: number;
}

/** Parses an absolute http(s) URL. Returns the URL, or undefined and the problem. */
export function parseUrl(text: string): LuaMultiReturn<[ParsedUrl] | [undefined, string]> {
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
  if (parts.userinfo !== undefined) {
    return $multi(undefined, "credentials in the URL are not supported");
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

  return $multi({ text, scheme, host: parts.host.toLowerCase(), port });
}
