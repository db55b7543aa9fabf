"""Log in to an IMAP server with imaplib and select INBOX, for integration tests.

Reads one JSON object from stdin, so the secret never appears on a command line:
  {"port": 10143, "user": "alice@example.test", "secret": "...",
   "mechanism": "XOAUTH2" | "OAUTHBEARER" | "LOGIN", "timeout": 15}
The host is always 127.0.0.1.

Writes one JSON object to stdout and exits 0 once the server has replied:
  {"ok": bool, "authenticated": bool, "response": "server lines", "error": str|null}
"ok" means the login and SELECT INBOX both succeeded. A connection that fails
or drops before any server reply exits 2 with {"error": "..."} instead.
"""

import imaplib
import json
import sys

HOST = "127.0.0.1"


class RecordingIMAP4(imaplib.IMAP4):
    """IMAP4 client that keeps every line the server sends."""

    def __init__(self, port, timeout):
        self.server_lines = []
        super().__init__(HOST, port, timeout=timeout)

    def _get_line(self):
        line = super()._get_line()
        self.server_lines.append(line.decode("utf-8", "replace"))
        return line


def escape_sasl_name(name):
    # RFC 5801 saslname: "," and "=" are the only characters that need escaping.
    return name.replace("=", "=3D").replace(",", "=2C")


def sasl_authenticator(mechanism, user, token, port):
    if mechanism == "XOAUTH2":
        initial = f"user={user}\x01auth=Bearer {token}\x01\x01"
        # After a failure the server sends a JSON error challenge, and the
        # client ends the exchange with an empty response.
        after_error = b""
    else:
        initial = (
            f"n,a={escape_sasl_name(user)},\x01host={HOST}\x01port={port}"
            f"\x01auth=Bearer {token}\x01\x01"
        )
        # RFC 7628 section 3.2.3: the client responds to the error challenge with a single %x01.
        after_error = b"\x01"

    responses = [initial.encode("utf-8")]

    def respond(_challenge):
        return responses.pop() if responses else after_error

    return respond


def run(request):
    mechanism = request["mechanism"]
    port = int(request["port"])
    user = request["user"]
    secret = request["secret"]
    timeout = float(request.get("timeout", 15))

    try:
        client = RecordingIMAP4(port, timeout)
    except (OSError, imaplib.IMAP4.error) as err:
        return 2, {"error": f"connecting to {HOST}:{port} failed: {err}"}

    result = {"ok": False, "authenticated": False, "error": None}
    try:
        if mechanism == "LOGIN":
            client.login(user, secret)
        else:
            client.authenticate(mechanism, sasl_authenticator(mechanism, user, secret, port))
        result["authenticated"] = True

        status, _ = client.select("INBOX")
        result["ok"] = status == "OK"
        if not result["ok"]:
            result["error"] = f"SELECT INBOX returned {status}"
    except (OSError, imaplib.IMAP4.error) as err:
        # imaplib raises IMAP4.error for a NO or BAD reply, and IMAP4.abort when
        # the server sends BYE or closes the connection. Either one is a refused
        # login or a failed SELECT, which the caller sees as ok=false.
        result["error"] = f"{type(err).__name__}: {err}"
    finally:
        try:
            client.logout()
        except (OSError, imaplib.IMAP4.error):
            pass

    result["response"] = "\n".join(client.server_lines)
    if not client.server_lines:
        return 2, {"error": f"no reply from {HOST}:{port}: {result['error']}"}
    return 0, result


def main():
    request = json.load(sys.stdin)
    if request.get("mechanism") not in ("XOAUTH2", "OAUTHBEARER", "LOGIN"):
        print(json.dumps({"error": f"unsupported mechanism: {request.get('mechanism')!r}"}))
        return 2
    status, result = run(request)
    print(json.dumps(result))
    return status


if __name__ == "__main__":
    sys.exit(main())
