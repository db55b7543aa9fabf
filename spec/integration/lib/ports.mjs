import net from 'node:net';

const GREETING_ATTEMPT_TIMEOUT_MS = 2000;

/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago.
 *
 * The port is released before it is returned, so another process can take it
 * before the caller binds it. Callers that start a server on it should retry
 * with a new port when the bind fails with "Address already in use".
 */
export function findFreePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Resolves once a TCP connection to 127.0.0.1:port succeeds and the server
 * sends a first line starting with `greetingPrefix`, or rejects after
 * `timeoutMs`. `checkFailure()` is called before each attempt and returns a
 * reason to stop waiting (e.g. the server process exited), or undefined.
 */
export async function waitForGreeting(port, { greetingPrefix = '* OK', timeoutMs = 10000, checkFailure = () => undefined } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError = 'no connection attempt made';

  while (Date.now() < deadline) {
    const failure = checkFailure();
    if (failure) {
      throw new Error(`gave up waiting for a greeting on 127.0.0.1:${port}: ${failure}`);
    }
    try {
      // A short read timeout per attempt lets checkFailure() run again soon,
      // e.g. when another server has the port and never sends a greeting.
      await readFirstLine(port, Math.min(GREETING_ATTEMPT_TIMEOUT_MS, Math.max(200, deadline - Date.now())), greetingPrefix);
      return;
    } catch (err) {
      lastError = err.message;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for a greeting on 127.0.0.1:${port}: ${lastError}`);
}

function readFirstLine(port, timeoutMs, greetingPrefix) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let buffered = '';
    const timer = setTimeout(() => finish(new Error('no greeting line received')), timeoutMs);

    function finish(err) {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve();
    }

    socket.setEncoding('utf8');
    socket.on('error', (err) => finish(err));
    socket.on('close', () => finish(new Error('connection closed before a greeting line')));
    socket.on('data', (chunk) => {
      buffered += chunk;
      const end = buffered.indexOf('\n');
      if (end === -1) return;
      const line = buffered.slice(0, end).trimEnd();
      if (line.startsWith(greetingPrefix)) finish();
      else finish(new Error(`unexpected greeting: ${line}`));
    });
  });
}
