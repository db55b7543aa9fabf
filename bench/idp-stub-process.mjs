// Starts bench/idp-stub.mjs as a child process and talks to it over IPC. Shared by
// bench/run.mjs and bench/soak.mjs.

import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const STUB_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'idp-stub.mjs');
const STUB_START_TIMEOUT_MS = 10000;
const STUB_STOP_TIMEOUT_MS = 5000;

/**
 * Forks the stub in its own process group, so that a Ctrl-C aimed at `make` reaches only the
 * benchmark, which then stops the stub after the Dovecot instances. `register(stub)` is called
 * before the stub is ready, so the caller can stop it even when the start fails. Resolves to
 * `{ pid, call(message), stop() }`.
 */
export async function forkIdpStub(register) {

  const child = fork(STUB_SCRIPT, [], { detached: true, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const pending = new Map();
  let nextId = 1;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.once('exit', (code, signal) => {
    for (const request of pending.values()) request.reject(new Error(`the stub exited with code ${code}, signal ${signal}`));
    pending.clear();
  });
  // A failed send() to a stub that is gone is also reported here. The exit handler above has
  // rejected the pending call already.
  child.on('error', () => {});

  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the stub did not start within ${STUB_START_TIMEOUT_MS} ms`)), STUB_START_TIMEOUT_MS);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the stub exited with code ${code}, signal ${signal}`));
    });
    child.on('message', (message) => {
      if (message.type === 'ready') {
        clearTimeout(timer);
        resolve();
        return;
      }
      const request = pending.get(message.id);
      if (request === undefined) return;
      pending.delete(message.id);
      if (message.ok) request.resolve(message);
      else request.reject(new Error(`stub: ${message.error}`));
    });
  });

  const stub = {
    pid: child.pid,
    call(message) {
      if (!child.connected) return Promise.reject(new Error(`the stub (PID ${child.pid}) is not running`));
      return new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        child.send({ ...message, id });
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      let timer;
      const timeout = new Promise((resolve) => {
        timer = setTimeout(() => resolve(false), STUB_STOP_TIMEOUT_MS);
      });
      const done = await Promise.race([exited.then(() => true), timeout]);
      clearTimeout(timer);
      if (!done) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
  register(stub);
  await ready;
  return stub;
}
