/** @noSelfInFile */

/** A luasocket TCP client object, or an object that behaves like one. */
declare interface TcpSocket {
  connect(this: TcpSocket, host: string, port: number): LuaMultiReturn<[1] | [undefined, string]>;
  settimeout(this: TcpSocket, seconds: number, mode?: string): LuaMultiReturn<[1] | [undefined, string]>;
  send(this: TcpSocket, data: string, i?: number, j?: number): LuaMultiReturn<[number] | [undefined, string, number]>;
  receive(
    this: TcpSocket,
    pattern?: string | number,
    prefix?: string,
  ): LuaMultiReturn<[string] | [undefined, string, string | undefined]>;
  close(this: TcpSocket): void;
  setoption(this: TcpSocket, option: string, value: unknown): LuaMultiReturn<[1] | [undefined, string]>;
  getfd(this: TcpSocket): number;
  dirty(this: TcpSocket): boolean;
}

/** @noResolution */
declare module "socket" {
  export function tcp(this: void): LuaMultiReturn<[TcpSocket] | [undefined, string]>;
  export function gettime(this: void): number;
  /** Waits until sockets are readable or writable; a timeout of 0 only polls. */
  export function select(
    this: void,
    receive: TcpSocket[],
    send: TcpSocket[],
    timeout?: number,
  ): LuaMultiReturn<[TcpSocket[] | undefined, TcpSocket[] | undefined, string | undefined]>;
}

/** A request table for socket.http.request (the generic form). */
declare interface HttpRequestTable {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  source?: LtnSource;
  sink?: LtnSink;
  redirect?: boolean;
  create?: (this: void) => LuaMultiReturn<[TcpSocket] | [undefined, string]>;
}

/** An ltn12 source: returns the next chunk, or nil at the end of the data. */
declare type LtnSource = (this: void) => LuaMultiReturn<[string | undefined] | [undefined, string]>;

/** An ltn12 sink: called with a chunk, and with nil at the end of the data. */
declare type LtnSink = (this: void, chunk: string | undefined, error?: string) => LuaMultiReturn<[1] | [undefined, string]>;

/** @noResolution */
declare module "socket.http" {
  /** Timeout of each socket operation, in seconds. */
  export let TIMEOUT: number;
  export let USERAGENT: string;

  /**
   * Sends a request. Returns 1, the status code, the response headers (lower-case names) and
   * the status line; or nil and an error message. A reply that has no HTTP status line is
   * returned as status 200 without headers.
   */
  export function request(
    this: void,
    request: HttpRequestTable,
  ): LuaMultiReturn<[1, number, LuaTable<string, string> | undefined, string | undefined] | [undefined, string]>;
}

/** @noResolution */
declare module "socket.url" {
  export interface UrlParts {
    scheme?: string;
    authority?: string;
    userinfo?: string;
    user?: string;
    password?: string;
    host?: string;
    port?: string;
    path?: string;
    params?: string;
    query?: string;
    fragment?: string;
  }

  export function parse(this: void, url: string, defaults?: UrlParts): UrlParts;
  export function escape(this: void, text: string): string;
  export function unescape(this: void, text: string): string;
  export function build(this: void, parts: UrlParts): string;
}

/** @noResolution */
declare module "ltn12" {
  export namespace source {
    function string(this: void, text: string): LtnSource;
  }
}

/** @noResolution */
declare module "mime" {
  /** Returns the Base64 encoding of `data` (the first value of luasocket's mime.b64). */
  export function b64(this: void, data: string): LuaMultiReturn<[string, string | undefined]>;
}
