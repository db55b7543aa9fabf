// Real IMAP clients for integration tests, always against 127.0.0.1.
//
// Each client logs in, selects INBOX and resolves to
//   { ok, authenticated, response, error }
// where `ok` means login and SELECT both succeeded, `response` is the server's
// lines joined with "\n", and `error` is the client's own message or null.
// A refused login resolves with ok=false. The promise rejects only when no
// IMAP conversation took place (connection refused, timeout, broken client).
//
// Tokens and passwords travel to the client processes on stdin, never on a
// command line or in a file, and the clients' own traces of what they sent
// are dropped.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PYTHON = 'python3';
const IMAP_CLIENT_SCRIPT = fileURLToPath(new URL('./imap_client.py', import.meta.url));
const CLIENT_TIMEOUT_SECONDS = 15;

// curl exit codes that still mean the server replied: 9 = remote access
// denied (e.g. SELECT failed), 67 = login denied.
const CURL_REFUSED_EXIT_CODES = new Set([9, 67]);

/** Logs in with AUTHENTICATE XOAUTH2 through Python's imaplib, then selects INBOX. */
export function imapXoauth2({ port, user, token }) {
  return runImapClient({ mechanism: 'XOAUTH2', port, user, secret: token });
}

/** Logs in with AUTHENTICATE OAUTHBEARER (RFC 7628) through Python's imaplib, then selects INBOX. */
export function imapOauthbearer({ port, user, token }) {
  return runImapClient({ mechanism: 'OAUTHBEARER', port, user, secret: token });
}

/** Logs in with the IMAP LOGIN command through Python's imaplib, then selects INBOX. */
export function imapPlain({ port, user, password }) {
  return runImapClient({ mechanism: 'LOGIN', port, user, secret: password });
}

/**
 * Logs in with AUTHENTICATE OAUTHBEARER through curl, then selects INBOX and
 * runs SEARCH ALL. Only OAUTHBEARER is offered: curl 7.88 on Debian 12 sends
 * OAUTHBEARER even when asked for XOAUTH2.
 */
export async function curlOauthbearer({ port, user, token }) {
  checkClientOptions({ port, user, secret: token });

  const config = [
    `url = ${curlConfigString(`imap://127.0.0.1:${port}/INBOX?ALL`)}`,
    `user = ${curlConfigString(`${user}:`)}`,
    `oauth2-bearer = ${curlConfigString(token)}`,
    `login-options = ${curlConfigString('AUTH=OAUTHBEARER')}`,
  ].join('\n');

  // -q must come first so that no ~/.curlrc is read. --noproxy keeps proxy
  // variables in the environment from sending the connection anywhere else.
  const args = ['-q', '--config', '-', '--silent', '--show-error', '--verbose', '--noproxy', '*', '--max-time', String(CLIENT_TIMEOUT_SECONDS)];
  const { code, signal, stderr } = await runProcess('curl', args, `${config}\n`, (CLIENT_TIMEOUT_SECONDS + 5) * 1000);

  // With --verbose, curl marks server lines with "< " and its own lines with
  // "> " (including the SASL message that carries the token) and "* ".
  const lines = stderr.split(/\r?\n/);
  const serverLines = lines.filter((line) => line.startsWith('< ')).map((line) => line.slice(2));
  const curlErrors = lines.filter((line) => line.startsWith('curl: '));
  const response = serverLines.join('\n');
  const authenticated = serverLines.some((line) => /^A\d+ OK\b.*Logged in/.test(line));

  if (code === 0) {
    return { ok: true, authenticated, response, error: null };
  }
  if (CURL_REFUSED_EXIT_CODES.has(code) && serverLines.length > 0) {
    return { ok: false, authenticated, response, error: curlErrors.join('\n') || `curl exited with code ${code}` };
  }
  const nonClientLines = lines.filter((line) => !line.startsWith('> ')).join('\n');
  throw new Error(`curl IMAP session to 127.0.0.1:${port} failed (exit code ${code}, signal ${signal}):\n${nonClientLines}`);
}

async function runImapClient({ mechanism, port, user, secret }) {
  checkClientOptions({ port, user, secret });

  const request = JSON.stringify({ mechanism, port, user, secret, timeout: CLIENT_TIMEOUT_SECONDS });
  const { code, signal, stdout, stderr } = await runProcess(PYTHON, [IMAP_CLIENT_SCRIPT], request, (CLIENT_TIMEOUT_SECONDS * 2 + 5) * 1000);

  let result;
  try {
    result = JSON.parse(stdout);
  } catch {
    throw new Error(`${IMAP_CLIENT_SCRIPT} (${mechanism}) exited with code ${code}, signal ${signal}, without JSON output:\n${stdout}${stderr}`);
  }
  if (code !== 0) {
    throw new Error(`${mechanism} IMAP session to 127.0.0.1:${port} failed: ${result.error}`);
  }
  return { ok: result.ok, authenticated: result.authenticated, response: result.response, error: result.error };
}

function checkClientOptions({ port, user, secret }) {
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`IMAP client: port must be an integer from 1 to 65535, got ${JSON.stringify(port)}`);
  }
  if (typeof user !== 'string') {
    throw new Error('IMAP client: user must be a string');
  }
  // The value is not echoed: it may be a real token.
  if (typeof secret !== 'string' || /[\r\n\x01]/.test(secret)) {
    throw new Error('IMAP client: token or password must be a string without CR, LF or \\x01');
  }
}

// Quotes a value for a curl config file, where "\" and '"' are escaped with "\".
function curlConfigString(value) {
  if (/[\r\n]/.test(value)) throw new Error('curl config values must not contain line breaks');
  return `"${value.replace(/[\\"]/g, (character) => `\\${character}`)}"`;
}

// Runs `command` with `input` on stdin and collects its output. The child is
// killed by its PID if it runs longer than `timeoutMs`.
function runProcess(command, args, input, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;

    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);

    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk) => {
      stderr += chunk;
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`failed to run ${command}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new Error(`${command} did not finish within ${timeoutMs} ms and was killed`));
        return;
      }
      resolve({ code, signal, stdout, stderr });
    });

    // A client that exits early closes its stdin. Its exit is reported through 'close', so this write error is ignored.
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}
