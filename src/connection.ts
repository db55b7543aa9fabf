// A TCP or TLS connection to the identity provider with a deadline for each request, where
// luasocket has a timeout per read. For HTTPS it also verifies the certificate chain and the
// host name, which luasec 1.2 checks neither by default.

import * as socket from "socket";
import * as ssl from "ssl";

export interface ConnectionOptions {
  readonly tls: boolean;
  /** Host name or IP address from the URL, which the certificate must name. */
  readonly host: string;
  readonly port: number;
  readonly verifyCertificate: boolean;
  readonly caFile?: string;
}

const SUBJECT_ALT_NAME_OID = "2.5.29.17";
const SYSTEM_CA_DIRECTORY = "/etc/ssl/certs";

/** Opens a connection, TLS included, within `deadline` (seconds, socket.gettime() clock). */
export function openConnection(
  options: ConnectionOptions,
  deadline: number,
): { ok: true; connection: Connection } | { ok: false; error: string } {
  const [tcp, error] = socket.tcp();
  if (tcp === undefined) {
    return { ok: false, error };
  }
  const connection = new Connection(tcp, options);
  connection.deadline = deadline;
  const [connected, connectError] = connection.connect();
  if (connected === undefined) {
    connection.close();
    return { ok: false, error: connectError };
  }
  return { ok: true, connection };
}

export class Connection {
  private sock: TcpSocket;
  /** When the current request must be done, in seconds on the socket.gettime() clock. */
  deadline = 0;
  /** When the connection was last returned to the pool, in seconds. */
  idleSince = 0;

  constructor(
    tcp: TcpSocket,
    readonly options: ConnectionOptions,
  ) {
    this.sock = tcp;
  }

  connect(): LuaMultiReturn<[1] | [undefined, string]> {
    if (!this.applyDeadline()) return $multi(undefined, "timeout");
    const [connected, connectError] = this.sock.connect(this.options.host, this.options.port);
    if (connected === undefined) return $multi(undefined, connectError);
    if (!this.options.tls) return $multi(1);
    return this.startTls();
  }

  send(data: string): LuaMultiReturn<[number] | [undefined, string, number]> {
    if (!this.applyDeadline()) return $multi(undefined, "timeout", 0);
    return this.sock.send(data);
  }

  receive(pattern: string | number): LuaMultiReturn<[string] | [undefined, string, string | undefined]> {
    if (!this.applyDeadline()) return $multi(undefined, "timeout", undefined);
    return this.sock.receive(pattern);
  }

  close(): void {
    this.sock.close();
  }

  /**
   * Tells whether an idle connection can be used again. A connection that the server closed,
   * or that has unexpected bytes waiting, is readable; a healthy idle one is not.
   */
  isReusable(): boolean {
    if (this.sock.dirty()) return false;
    const [readable] = socket.select([this.sock], [], 0);
    return readable === undefined || readable.length === 0;
  }

  private applyDeadline(): boolean {
    const remaining = this.deadline - socket.gettime();
    if (remaining <= 0) return false;
    this.sock.settimeout(remaining);
    return true;
  }

  private startTls(): LuaMultiReturn<[1] | [undefined, string]> {
    const params: SslParams = {
      mode: "client",
      protocol: "any",
      options: ["all", "no_sslv2", "no_sslv3", "no_tlsv1", "no_tlsv1_1"],
      verify: this.options.verifyCertificate ? "peer" : "none",
      cafile: this.options.caFile,
      // luasec loads no CA certificates unless given a file or directory, so use the system store.
      capath: this.options.caFile === undefined ? SYSTEM_CA_DIRECTORY : undefined,
    };
    const [conn, wrapError] = ssl.wrap(this.sock, params);
    if (conn === undefined) return $multi(undefined, `TLS setup failed: ${wrapError}`);
    this.sock = conn;

    if (!isIpAddress(this.options.host)) {
      conn.sni(this.options.host);
    }
    if (!this.applyDeadline()) return $multi(undefined, "timeout");
    const [done, handshakeError] = conn.dohandshake();
    if (done !== true) return $multi(undefined, `TLS handshake failed: ${handshakeError}`);

    if (this.options.verifyCertificate) {
      const certificate = conn.getpeercertificate();
      if (certificate === undefined || !certificateNamesHost(certificate, this.options.host)) {
        return $multi(undefined, `TLS certificate does not name ${this.options.host}`);
      }
    }
    return $multi(1);
  }
}

function isIpAddress(host: string): boolean {
  return string.match(host, "^%d+%.%d+%.%d+%.%d+$")[0] !== undefined || host.includes(":");
}

/**
 * Checks the certificate's subjectAltName against the host (RFC 6125): IP addresses against
 * iPAddress entries, names against dNSName entries, where "*" may stand for the whole leftmost
 * label only. The subject's common name is not used.
 */
export function certificateNamesHost(certificate: X509Certificate, host: string): boolean {
  const altNames = certificate.extensions().get(SUBJECT_ALT_NAME_OID);
  if (altNames === undefined) return false;

  const wanted = host.toLowerCase();
  if (isIpAddress(wanted)) {
    return (altNames.get("iPAddress") ?? []).some((address) => address.toLowerCase() === wanted);
  }
  return (altNames.get("dNSName") ?? []).some((name) => dnsNameMatches(name.toLowerCase(), wanted));
}

function dnsNameMatches(pattern: string, host: string): boolean {
  if (!pattern.startsWith("*.")) {
    return pattern === host;
  }
  const [dot] = string.find(host, ".", 1, true);
  if (dot === undefined || dot === 1) return false;
  const suffix = string.sub(host, dot);
  // A wildcard needs at least two labels after it, so "*.com" never matches.
  return suffix === string.sub(pattern, 2) && string.find(suffix, ".", 2, true)[0] !== undefined;
}
