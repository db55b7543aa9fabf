// A socket for luasocket's HTTP client with one deadline for the whole request, where luasocket
// has a timeout per read. For HTTPS it also verifies the certificate chain and the host name,
// which luasec 1.2 checks neither by default.

import * as socket from "socket";
import * as ssl from "ssl";

export interface ConnectionOptions {
  readonly tls: boolean;
  /** Host name or IP address from the URL, which the certificate must name. */
  readonly host: string;
  readonly deadline: number;
  readonly verifyCertificate: boolean;
  readonly caFile?: string;
}

const SUBJECT_ALT_NAME_OID = "2.5.29.17";
const SYSTEM_CA_DIRECTORY = "/etc/ssl/certs";

/** Returns a `create` function for socket.http.request that builds such a socket. */
export function connectionFactory(
  options: ConnectionOptions,
): (this: void) => LuaMultiReturn<[TcpSocket] | [undefined, string]> {
  return () => {
    const [tcp, error] = socket.tcp();
    if (tcp === undefined) {
      return $multi(undefined, error);
    }
    return $multi(new DeadlineSocket(tcp, options) as unknown as TcpSocket);
  };
}

class DeadlineSocket {
  private sock: TcpSocket;

  constructor(
    tcp: TcpSocket,
    private readonly options: ConnectionOptions,
  ) {
    this.sock = tcp;
  }

  connect(host: string, port: number): LuaMultiReturn<[1] | [undefined, string]> {
    if (!this.applyDeadline()) return $multi(undefined, "timeout");
    const [connected, connectError] = this.sock.connect(host, port);
    if (connected === undefined) return $multi(undefined, connectError);
    if (!this.options.tls) return $multi(1);
    return this.startTls();
  }

  /** Ignores luasocket's own per-operation timeout, because the deadline decides. */
  settimeout(): LuaMultiReturn<[1]> {
    return $multi(1);
  }

  send(data: string, i?: number, j?: number): LuaMultiReturn<[number] | [undefined, string, number]> {
    if (!this.applyDeadline()) return $multi(undefined, "timeout", 0);
    return this.sock.send(data, i, j);
  }

  receive(pattern?: string | number, prefix?: string): LuaMultiReturn<[string] | [undefined, string, string | undefined]> {
    if (!this.applyDeadline()) return $multi(undefined, "timeout", undefined);
    return this.sock.receive(pattern, prefix);
  }

  close(): void {
    this.sock.close();
  }

  getfd(): number {
    return this.sock.getfd();
  }

  dirty(): boolean {
    return this.sock.dirty();
  }

  setoption(option: string, value: unknown): LuaMultiReturn<[1] | [undefined, string]> {
    return this.sock.setoption(option, value);
  }

  private applyDeadline(): boolean {
    const remaining = this.options.deadline - socket.gettime();
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
