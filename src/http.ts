// The HTTP client for identity provider requests. Every request has a deadline, a body size
// limit, and no redirects.

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

export type HttpResponse =
  | {
      readonly ok: true;
      readonly status: number;
      /** Header names in lower case. Absent when the server sent no HTTP status line. */
      readonly headers?: LuaTable<string, string>;
      readonly body: string;
    }
  | { readonly ok: false; readonly error: string };

const USER_AGENT = "dovecot-oauth2-bridge";

/** Sends a GET request. Transport failures are returned, never raised. */
export function httpGet(url: ParsedUrl, headers: Record<string, string>, options: HttpOptions): HttpResponse {
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

  const [done, statusOrError, responseHeaders] = http.request({
    url: url.text,
    method: "GET",
    headers: { ...headers, "user-agent": USER_AGENT },
    sink,
    redirect: false,
    create: connectionFactory({
      tls: url.scheme === "https",
      host: url.host,
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
