// The HTTP/1.1 client for identity provider requests. Every request has a deadline, a body size
// limit, and no redirects. Each auth worker keeps one idle connection per origin (keep-alive),
// so a TLS session is set up once. The server may close a kept connection while it is idle, so
// a GET that fails there before any response byte arrived is sent once more on a new connection.

import * as socket from "socket";
import { Connection, openConnection } from "./connection";
import { ParsedUrl } from "./url";

export interface HttpOptions {
  readonly timeoutMsecs: number;
  readonly maxResponseBytes: number;
  readonly caFile?: string;
  readonly allowInvalidCertificate: boolean;
  /** How long an idle connection is kept for the next request, in milliseconds; 0 keeps none. */
  readonly maxIdleMsecs?: number;
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
      /** Header names in lower case. */
      readonly headers?: LuaTable<string, string>;
      readonly body: string;
    }
  | { readonly ok: false; readonly error: string };

/** Sends one request and returns its response. Transport failures are returned as { ok: false }. */
export type Transport = (request: HttpRequest) => HttpResponse;

type Exchange =
  | { readonly ok: true; readonly response: HttpResponse & { ok: true }; readonly keepAlive: boolean }
  | { readonly ok: false; readonly error: string; readonly beforeResponse: boolean };

const USER_AGENT = "dovecot-oauth2-bridge";
const MAX_HEADER_LINES = 100;
const MAX_LINE_BYTES = 8192;

/** Idle connections by origin, one each. */
const idle = new LuaTable<string, Connection>();

/** Sends a request over a kept or a new connection. */
export function httpRequest(request: HttpRequest): HttpResponse {
  const url = request.url;
  const origin = `${url.scheme}://${url.host}:${url.port}`;
  const deadline = socket.gettime() + request.options.timeoutMsecs / 1000;

  let connection = takeIdle(origin, request.options);
  const reused = connection !== undefined;
  if (connection === undefined) {
    const opened = open(request, deadline);
    if (!opened.ok) return opened;
    connection = opened.connection;
  }

  connection.deadline = deadline;
  let result = exchange(connection, request);
  if (!result.ok && result.beforeResponse && reused && request.method === "GET") {
    connection.close();
    const opened = open(request, deadline);
    if (!opened.ok) return opened;
    connection = opened.connection;
    connection.deadline = deadline;
    result = exchange(connection, request);
  }

  if (!result.ok) {
    connection.close();
    return { ok: false, error: result.error };
  }
  if (result.keepAlive && (request.options.maxIdleMsecs ?? 0) > 0) {
    putIdle(origin, connection);
  } else {
    connection.close();
  }
  return result.response;
}

function open(request: HttpRequest, deadline: number): { ok: true; connection: Connection } | { ok: false; error: string } {
  const url = request.url;
  return openConnection(
    {
      tls: url.scheme === "https",
      host: url.host,
      port: url.port,
      verifyCertificate: !request.options.allowInvalidCertificate,
      caFile: request.options.caFile,
    },
    deadline,
  );
}

function takeIdle(origin: string, options: HttpOptions): Connection | undefined {
  const connection = idle.get(origin);
  if (connection === undefined) return undefined;
  idle.delete(origin);

  const idleSeconds = socket.gettime() - connection.idleSince;
  if (idleSeconds * 1000 > (options.maxIdleMsecs ?? 0) || !connection.isReusable()) {
    connection.close();
    return undefined;
  }
  return connection;
}

function putIdle(origin: string, connection: Connection): void {
  idle.get(origin)?.close();
  connection.idleSince = socket.gettime();
  idle.set(origin, connection);
}

/** Closes every kept connection, as at script_deinit. */
export function closeIdleConnections(): void {
  for (const [origin, connection] of idle) {
    connection.close();
    idle.delete(origin);
  }
}

function exchange(connection: Connection, request: HttpRequest): Exchange {
  const [sent, sendError] = connection.send(requestText(request));
  if (sent === undefined) {
    return { ok: false, error: sendError, beforeResponse: true };
  }

  const [statusLine, statusError, partial] = connection.receive("*l");
  if (statusLine === undefined) {
    // Only a close before any byte of the reply may be the server's idle close.
    const beforeResponse = statusError === "closed" && (partial === undefined || partial === "");
    return { ok: false, error: statusError, beforeResponse };
  }
  const [version, statusText] = string.match(statusLine, "^HTTP/(1%.[01]) (%d%d%d)");
  if (version === undefined || statusText === undefined) {
    return { ok: false, error: "the reply is not HTTP/1.x", beforeResponse: false };
  }

  const headers = receiveHeaders(connection);
  if (!headers.ok) return { ok: false, error: headers.error, beforeResponse: false };

  const status = tonumber(statusText) as number;
  const body = receiveBody(connection, request, status, headers.headers);
  if (!body.ok) return { ok: false, error: body.error, beforeResponse: false };

  const connectionHeader = (headers.headers.get("connection") ?? "").toLowerCase();
  const keepAlive =
    body.delimited && (version === "1.1" ? !connectionHeader.includes("close") : connectionHeader.includes("keep-alive"));
  return { ok: true, response: { ok: true, status, headers: headers.headers, body: body.body }, keepAlive };
}

function requestText(request: HttpRequest): string {
  const url = request.url;
  const defaultPort = url.scheme === "https" ? 443 : 80;
  const host = url.host.includes(":") ? `[${url.host}]` : url.host;
  const lines = [
    `${request.method} ${url.target} HTTP/1.1`,
    `host: ${url.port === defaultPort ? host : `${host}:${url.port}`}`,
    `user-agent: ${USER_AGENT}`,
  ];
  for (const [name, value] of Object.entries(request.headers)) {
    lines.push(`${name}: ${value}`);
  }
  if (request.body !== undefined) {
    lines.push(`content-length: ${request.body.length}`);
  }
  return lines.join("\r\n") + "\r\n\r\n" + (request.body ?? "");
}

function receiveHeaders(
  connection: Connection,
): { ok: true; headers: LuaTable<string, string> } | { ok: false; error: string } {
  const headers = new LuaTable<string, string>();
  for (let count = 0; count <= MAX_HEADER_LINES; count++) {
    const [line, error] = connection.receive("*l");
    if (line === undefined) return { ok: false, error };
    if (line === "") return { ok: true, headers };
    if (line.length > MAX_LINE_BYTES) return { ok: false, error: "response header line too long" };

    const [name, value] = string.match(line, "^([^:%s]+):%s*(.-)%s*$");
    if (name === undefined || value === undefined) return { ok: false, error: "invalid response header" };
    const key = name.toLowerCase();
    const previous = headers.get(key);
    headers.set(key, previous === undefined ? value : `${previous}, ${value}`);
  }
  return { ok: false, error: "too many response headers" };
}

type Body = { ok: true; body: string; delimited: boolean } | { ok: false; error: string };

function receiveBody(connection: Connection, request: HttpRequest, status: number, headers: LuaTable<string, string>): Body {
  const limit = request.options.maxResponseBytes;
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return { ok: true, body: "", delimited: true };
  }

  if ((headers.get("transfer-encoding") ?? "").toLowerCase().includes("chunked")) {
    return receiveChunked(connection, limit);
  }

  const lengthText = headers.get("content-length");
  if (lengthText !== undefined) {
    const length = string.match(lengthText, "^%d+$")[0] !== undefined ? math.tointeger(tonumber(lengthText) ?? 0.5) : undefined;
    if (length === undefined) return { ok: false, error: "invalid content-length" };
    if (length > limit) return { ok: false, error: `response body larger than ${limit} bytes` };
    if (length === 0) return { ok: true, body: "", delimited: true };
    const [body, error] = connection.receive(length);
    return body === undefined ? { ok: false, error } : { ok: true, body, delimited: true };
  }

  // No length: the body ends when the server closes the connection.
  const chunks: string[] = [];
  let received = 0;
  while (true) {
    const [chunk, error, partial] = connection.receive(8192);
    const data = chunk ?? partial ?? "";
    received += data.length;
    if (received > limit) return { ok: false, error: `response body larger than ${limit} bytes` };
    chunks.push(data);
    if (chunk === undefined) {
      return error === "closed" ? { ok: true, body: chunks.join(""), delimited: false } : { ok: false, error };
    }
  }
}

function receiveChunked(connection: Connection, limit: number): Body {
  const chunks: string[] = [];
  let received = 0;
  while (true) {
    const [sizeLine, error] = connection.receive("*l");
    if (sizeLine === undefined) return { ok: false, error };
    const [sizeText] = string.match(sizeLine, "^(%x+)");
    if (sizeText === undefined) return { ok: false, error: "invalid chunk size" };
    const size = tonumber(sizeText, 16) as number;

    if (size === 0) {
      // Trailer fields, if any, end with an empty line.
      while (true) {
        const [trailer, trailerError] = connection.receive("*l");
        if (trailer === undefined) return { ok: false, error: trailerError };
        if (trailer === "") return { ok: true, body: chunks.join(""), delimited: true };
      }
    }

    received += size;
    if (received > limit) return { ok: false, error: `response body larger than ${limit} bytes` };
    const [chunk, chunkError] = connection.receive(size);
    if (chunk === undefined) return { ok: false, error: chunkError };
    chunks.push(chunk);
    const [, crlfError] = connection.receive("*l");
    if (crlfError !== undefined) return { ok: false, error: crlfError };
  }
}
