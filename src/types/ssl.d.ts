/** @noSelfInFile */

/** TLS parameters for ssl.wrap, as luasec takes them. */
declare interface SslParams {
  mode: "client";
  protocol: string;
  options: string[];
  verify: "none" | "peer";
  cafile?: string;
  capath?: string;
}

/** A certificate as luasec's x509 module returns it. */
declare interface X509Certificate {
  /** Returns extensions keyed by OID name, e.g. `subjectAltName` with `dNSName` and `iPAddress` lists. */
  extensions(this: X509Certificate): LuaTable<string, LuaTable<string, string[]>>;
  /** Returns the subject as a list of {name, value} entries. */
  subject(this: X509Certificate): { name?: string; ln?: string; value: string }[];
}

/** A TLS connection returned by ssl.wrap. */
declare interface SslConnection extends TcpSocket {
  sni(this: SslConnection, host: string): boolean;
  dohandshake(this: SslConnection): LuaMultiReturn<[true] | [false | undefined, string]>;
  getpeercertificate(this: SslConnection, index?: number): X509Certificate | undefined;
  /** Tells whether decrypted bytes wait in luasec's buffer. */
  dirty(this: SslConnection): boolean;
}

/** @noResolution */
declare module "ssl" {
  export function wrap(
    this: void,
    socket: TcpSocket,
    params: SslParams,
  ): LuaMultiReturn<[SslConnection] | [undefined, string]>;
}
