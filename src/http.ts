// The HTTP client for identity provider requests. Every request has a deadline, a body size
// limit, and no redirects.

import * as ltn12 from "ltn12";
import * as socket from "socket";
import * as http from "socket.http";
import { connectionFactory } from "./connection";
import { ParsedUrl } from "./url";

export interface HttpOptions {
  readonly timeoutMsecs: number;
  readonly maxResponseBytes: number;
  readonly caFile?: string;
  readonly allowInvalidCertificate: boolean;
}

export interface HttpRequest {
  readonly method: "GET" | "POST";
  readonly url: ParsedUrl;
  /** Header names in lower case. */
  readonly headers: Record<string, string>;
  readonly body?: string;
  readonly options: HttpOptions;
}

export type HttpResponse =
  | {
      readonly ok: true;
      readonly status: number;
      /** Header names in lower case. Absent when the server sent no HTTP status line. */
      readonly headers?: LuaTable<string, string>;
      readonly body: string;
    }
  | { readonly ok: false; readonly error: string };

/** Sends one request and returns its response. Transport failures are returned, never raised. */
export type Transport = (request: HttpRequest) => HttpResponse;

const USER_AGENT = "dovecot-oauth2-bridge";

/** Sends a request over luasocket and luasec. */
export function httpRequest(request: HttpRequest): HttpResponse {
  const options = request.options;
  const chunks: string[] = [];
  let received = 0;
  let tooLarge = false;

  const sink: LtnSink = (chunk) => {
    if (chunk === undefined) return $multi(1);
    received += chunk.length;
    if (received > options.maxResponseBytes) {
      tooLarge = true;
      return $multi(undefined, "response too large");
    }
    chunks.push(chunk);
    return $multi(1);
  };

  const headers: Record<string, string> = { ...request.headers, "user-agent": USER_AGENT };
  if (request.body !== undefined) {
    headers["content-length"] = tostring(request.body.length);
  }

  const [done, statusOrError, responseHeaders] = http.request({
    url: request.url.text,
    method: request.method,
    headers,
    source: request.body === undefined ? undefined : ltn12.source.string(request.body),
    sink,
    redirect: false,
    create: connectionFactory({
      tls: request.url.scheme === "https",
      host: request.url.host,
      deadline: socket.gettime() + options.timeoutMsecs / 1000,
      verifyCertificate: !options.allowInvalidCertificate,
      caFile: options.caFile,
    }),
  });

  if (tooLarge) {
    return { ok: false, error: `response body larger than ${options.maxResponseBytes} bytes` };
  }
  if (done === undefined) {
    return { ok: false, error: tostring(statusOrError) };
  }
  return { ok: true, status: statusOrError as number, headers: responseHeaders, body: chunks.join("") };
}
