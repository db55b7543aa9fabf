// Starts a private OpenLDAP slapd for integration tests: static slapd.conf, its own schema
// file, an mdb database and a log in a test directory, listening on 127.0.0.1 only.
// The directory looks like docker-mailserver's LDAP setup: accounts carry `mail` and a
// BOOLEAN `mailEnabled`, so the user filter `(&(mail=%s)(mailEnabled=TRUE))` works as there.
// Checked against Debian 12's slapd and ldap-utils 2.5.13.
//
// slapd runs as root in the foreground (-d), so it can read the TLS key wherever the test
// wrote it and the harness owns exactly one process per instance. The packaged slapd service
// and /etc/ldap/slapd.d are never read or touched: everything comes from dir/slapd.conf.

import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { findFreePort } from './ports.mjs';

const SLAPD = '/usr/sbin/slapd';
const SLAPADD = '/usr/sbin/slapadd';
const LDAPSEARCH = '/usr/bin/ldapsearch';
const LDAPADD = '/usr/bin/ldapadd';
const SCHEMA_DIR = '/etc/ldap/schema';
const MODULE_DIR = '/usr/lib/ldap';

export const BASE_DN = 'dc=example,dc=test';
export const PEOPLE_DN = `ou=people,${BASE_DN}`;
export const BIND_DN = `cn=admin,${BASE_DN}`;

// The rootdn, for the harness only. It passes every ACL, so tests bind as BIND_DN instead.
const MANAGER_DN = `cn=manager,${BASE_DN}`;

// The auxiliary class that the schema below defines. Every entry has it.
export const MAIL_ACCOUNT_CLASS = 'bridgeTestMailAccount';

const START_ATTEMPTS = 3;
const READY_TIMEOUT_MS = 15000;
const STOP_GRACE_MS = 5000;
const FREEZE_TIMEOUT_MS = 2000;
const PROBE_TIMEOUT_S = 2;
const LOG_TAIL_LINES = 40;
const CLIENT_OUTPUT_LIMIT = 4 * 1024 * 1024;

// "stats" logs each connection and operation, so the log shows what a client requested.
const DEBUG_LEVEL = 'stats';

// OIDs are under an example enterprise number. mailEnabled plays the role of the PostfixBook
// attribute in docker-mailserver's user filter. The class has a name of its own, so it cannot
// be mistaken for a PostfixBook class.
const MAIL_SCHEMA = `# Test schema for dovecot-oauth2-bridge, written for its integration tests.
# OIDs live under 1.3.6.1.4.1.99999, an example arc that belongs to nobody real.

objectidentifier bridgeTestRoot 1.3.6.1.4.1.99999.1
objectidentifier bridgeTestAttr bridgeTestRoot:1
objectidentifier bridgeTestClass bridgeTestRoot:2

# Whether the account may receive and read mail. BOOLEAN values are TRUE or FALSE.
attributetype ( bridgeTestAttr:1 NAME 'mailEnabled'
  DESC 'Whether this mail account is active'
  EQUALITY booleanMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.7
  SINGLE-VALUE )

# Further addresses that deliver to this account, compared like mail (IA5, case-insensitive).
attributetype ( bridgeTestAttr:2 NAME 'mailAlias'
  DESC 'Additional address of this mail account'
  EQUALITY caseIgnoreIA5Match
  SUBSTR caseIgnoreIA5SubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} )

attributetype ( bridgeTestAttr:3 NAME 'mailHomeDirectory'
  DESC 'Home directory of this mail account'
  EQUALITY caseExactIA5Match
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256}
  SINGLE-VALUE )

# Auxiliary, so it can be added to inetOrgPerson entries. mail comes from core.schema.
objectclass ( bridgeTestClass:1 NAME '${MAIL_ACCOUNT_CLASS}'
  DESC 'Mail account as the bridge tests model it'
  SUP top AUXILIARY
  MUST mail
  MAY ( mailEnabled $ mailAlias $ mailHomeDirectory ) )
`;

// ---------------------------------------------------------------------------------------
// LDIF and DN encoding

// RFC 4514 section 2.4: these characters need a backslash anywhere in an attribute value.
const DN_SPECIAL = new Set(['"', '+', ',', ';', '<', '>', '\\', '=']);

/** Escapes a string for use as an RDN value (RFC 4514), e.g. for uid=<value>. */
export function escapeDnValue(value) {
  let out = '';
  [...value].forEach((ch, index, chars) => {
    const leading = index === 0 && (ch === ' ' || ch === '#');
    const trailing = index === chars.length - 1 && ch === ' ';
    if (ch === '\0') out += '\\00';
    else if (DN_SPECIAL.has(ch) || leading || trailing) out += `\\${ch}`;
    else out += ch;
  });
  return out;
}

// RFC 2849 SAFE-STRING is ASCII without NUL, LF or CR that does not start with a space, colon
// or "<". A trailing space is encoded too, so no tool trims it. Other values go base64 with "::".
function ldifLine(name, value) {
  const text = String(value);
  const safe = /^[\x01-\x09\x0b\x0c\x0e-\x7f]*$/.test(text)
    && !/^[ :<]/.test(text) && !/ $/.test(text);
  return safe ? `${name}: ${text}` : `${name}:: ${Buffer.from(text, 'utf8').toString('base64')}`;
}

function asList(value) {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

/**
 * Turns a test entry into { dn, ldif }. Fields:
 *   mail (required): string or array of strings
 *   uid: RDN value under ou=people (default: the first mail)
 *   mailEnabled: true, false or undefined (attribute left out)
 *   mailAlias: string or array; mailHomeDirectory: string
 *   cn, sn (default: uid), userPassword
 *   attributes: { name: value | [values] } for anything else the schemas allow
 */
export function entryToLdif(entry) {
  const mails = asList(entry.mail);
  if (mails.length === 0) throw new Error(`entry ${JSON.stringify(entry)}: mail is missing`);
  if (entry.mailEnabled !== undefined && typeof entry.mailEnabled !== 'boolean') {
    throw new Error(`invalid mailEnabled ${JSON.stringify(entry.mailEnabled)}: use true, false or leave it out`);
  }
  const uid = entry.uid ?? mails[0];
  const dn = `uid=${escapeDnValue(uid)},${PEOPLE_DN}`;
  const lines = [
    ldifLine('dn', dn),
    'objectClass: inetOrgPerson',
    `objectClass: ${MAIL_ACCOUNT_CLASS}`,
    ldifLine('uid', uid),
    ldifLine('cn', entry.cn ?? uid),
    ldifLine('sn', entry.sn ?? uid),
    ...mails.map((mail) => ldifLine('mail', mail)),
  ];
  if (entry.mailEnabled !== undefined) lines.push(`mailEnabled: ${entry.mailEnabled ? 'TRUE' : 'FALSE'}`);
  for (const alias of asList(entry.mailAlias)) lines.push(ldifLine('mailAlias', alias));
  if (entry.mailHomeDirectory !== undefined) lines.push(ldifLine('mailHomeDirectory', entry.mailHomeDirectory));
  if (entry.userPassword !== undefined) lines.push(ldifLine('userPassword', entry.userPassword));
  for (const [name, values] of Object.entries(entry.attributes ?? {})) {
    for (const value of asList(values)) lines.push(ldifLine(name, value));
  }
  return { dn, ldif: `${lines.join('\n')}\n` };
}

function treeLdif(bindPassword) {
  return [
    `dn: ${BASE_DN}`,
    'objectClass: dcObject',
    'objectClass: organization',
    'dc: example',
    'o: dovecot-oauth2-bridge tests',
    '',
    `dn: ${BIND_DN}`,
    'objectClass: organizationalRole',
    'objectClass: simpleSecurityObject',
    'cn: admin',
    `userPassword: ${bindPassword}`,
    '',
    `dn: ${PEOPLE_DN}`,
    'objectClass: organizationalUnit',
    'ou: people',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------
// Client tools

// ldap-utils read /etc/ldap/ldap.conf and ~/.ldaprc. Pointing them at /dev/null and a home of
// our own keeps the machine's client settings (e.g. TLS_CACERT) out of every result here.
function clientEnv(dir, extra = {}) {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, LDAPCONF: '/dev/null' };
  return { ...env, ...extra };
}

/**
 * Runs a client tool and resolves to { code, signal, stdout, stderr }, never rejecting.
 * code is null when the tool was killed at the timeout or did not start. Then stderr carries
 * Node's error message if the tool wrote nothing there.
 */
function run(file, args, { env, cwd, timeoutMs = 30000 }) {
  return new Promise((resolve) => {
    const options = { env, cwd, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: CLIENT_OUTPUT_LIMIT, encoding: 'utf8' };
    const child = execFile(file, args, options, (err, stdout, stderr) => {
      const exited = !err || typeof err.code === 'number';
      let code = 0;
      if (err) code = exited ? err.code : null;
      const message = exited ? stderr : stderr || err.message;
      resolve({ code, signal: err?.signal ?? null, stdout, stderr: message });
    });
    child.stdin.end();
  });
}

/** Parses `ldapsearch -LLL -o ldif-wrap=no` output into [{ dn, attrs: { name: [values] } }]. */
export function parseLdif(text) {
  const entries = [];
  for (const block of text.split(/\n\s*\n/)) {
    const lines = block.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
    if (lines.length === 0) continue;
    let entry;
    for (const line of lines) {
      const match = /^([^:]+)(::?) ?(.*)$/.exec(line);
      if (!match) throw new Error(`invalid LDIF line: ${line}`);
      const [, name, separator, raw] = match;
      const value = separator === '::' ? Buffer.from(raw, 'base64').toString('utf8') : raw;
      if (name === 'dn') {
        entry = { dn: value, attrs: {} };
        entries.push(entry);
      } else if (entry) {
        (entry.attrs[name] ??= []).push(value);
      }
    }
  }
  return entries;
}

/**
 * Runs ldapsearch and never throws for a non-zero exit. Resolves to
 * { code, entries, stdout, stderr } where entries come from parseLdif.
 *   uri, base, filter, attrs (default: all user attributes), scope (default sub)
 *   bindDn, bindPassword: leave out for an anonymous bind
 *   startTls: true runs `-ZZ` (StartTLS must succeed)
 *   caCert: put into LDAPTLS_CACERT; without it the client trusts no CA at all
 *   dir: HOME and working directory of ldapsearch (default: the current directory)
 *   env: more environment variables
 */
export async function ldapsearch({
  uri, base = BASE_DN, filter = '(objectClass=*)', attrs = [], scope = 'sub',
  bindDn, bindPassword, startTls = false, caCert, dir = process.cwd(), env = {}, timeoutS = 5,
}) {
  const args = ['-x', '-LLL', '-o', 'ldif-wrap=no', '-o', `nettimeout=${timeoutS}`, '-l', String(timeoutS), '-H', uri];
  if (bindDn !== undefined) args.push('-D', bindDn, '-w', bindPassword ?? '');
  if (startTls) args.push('-ZZ');
  args.push('-b', base, '-s', scope, filter, ...attrs);
  const extra = { ...env };
  if (caCert) extra.LDAPTLS_CACERT = caCert;
  const result = await run(LDAPSEARCH, args, { env: clientEnv(dir, extra), cwd: dir, timeoutMs: (timeoutS + 5) * 1000 });
  let entries = [];
  if (result.code === 0 || result.code === 4) entries = parseLdif(result.stdout);
  return { ...result, entries };
}

// ---------------------------------------------------------------------------------------
// Server

function slapdConf({ dir, dataDir, schemaPath, managerPassword, tls }) {
  const tlsLines = tls ? [
    // GnuTLS in Debian's slapd reads these at startup; a bad path makes slapd exit at once.
    `TLSCACertificateFile ${tls.caCert}`,
    `TLSCertificateFile ${tls.serverCert}`,
    `TLSCertificateKeyFile ${tls.serverKey}`,
  ] : [];
  return [
    `include ${SCHEMA_DIR}/core.schema`,
    `include ${SCHEMA_DIR}/cosine.schema`,
    `include ${SCHEMA_DIR}/inetorgperson.schema`,
    `include ${schemaPath}`,
    '',
    `pidfile ${path.join(dir, 'slapd.pid')}`,
    `argsfile ${path.join(dir, 'slapd.args')}`,
    // Debian builds back_mdb as a module.
    `modulepath ${MODULE_DIR}`,
    'moduleload back_mdb',
    ...tlsLines,
    '',
    'database mdb',
    `suffix "${BASE_DN}"`,
    // docker-mailserver's example setup binds as cn=admin. Here cn=admin is an entry that the
    // ACLs below govern, and the separate rootdn lets the harness add entries while slapd runs.
    `rootdn "${MANAGER_DN}"`,
    `rootpw ${managerPassword}`,
    `directory ${dataDir}`,
    'maxsize 16777216',
    'index objectClass eq',
    'index mail,mailAlias eq,sub',
    'index uid eq',
    '',
    // The bind DN and entries bind with their passwords, and only the bind DN can read them.
    'access to attrs=userPassword',
    `  by dn.exact="${BIND_DN}" read`,
    '  by anonymous auth',
    '  by * none',
    // Anonymous clients and other users read nothing, so a bridge that does not bind finds no
    // mailbox. The bind DN reads everything and writes nothing.
    'access to *',
    `  by dn.exact="${BIND_DN}" read`,
    '  by * none',
    '',
  ].join('\n');
}

function logTail(logPath, lines = LOG_TAIL_LINES) {
  try {
    return fs.readFileSync(logPath, 'utf8').split('\n').slice(-lines - 1).join('\n');
  } catch {
    return '(no log)';
  }
}

async function slapadd(confPath, ldifPath) {
  const result = await run(SLAPADD, ['-f', confPath, '-b', BASE_DN, '-l', ldifPath], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  if (result.code !== 0) {
    throw new Error(`slapadd -l ${ldifPath} failed (exit ${result.code}): ${result.stderr.trim()}`);
  }
}

// State "T" in /proc/PID/task/TID/stat means the thread is stopped by a signal.
function allThreadsStopped(pid) {
  const taskDir = `/proc/${pid}/task`;
  return fs.readdirSync(taskDir).every((tid) => {
    try {
      const stat = fs.readFileSync(path.join(taskDir, tid, 'stat'), 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
    } catch {
      return true; // the thread has ended
    }
  });
}

function processGone(child) {
  return child.exitCode !== null || child.signalCode !== null;
}

/**
 * Starts slapd.
 *   dir: working directory (created if missing): slapd.conf, bridge-test.schema, data/,
 *     slapd.log (appended over restarts), LDIF files.
 *   entries: test entries (see entryToLdif), loaded with slapadd under ou=people before start.
 *   tls: { caCert, serverCert, serverKey } file paths: enables StartTLS on ldap:// and also
 *     listens on ldaps://.
 *   bindPassword: default random.
 *
 * Resolves to { uri, ldapsUri, port, ldapsPort, baseDn, bindDn, bindPassword, peopleDn, pid,
 *   dir, running, stop(), start(), freeze(), thaw(), addEntry(entry), search(filter, options),
 *   log() }.
 *   stop(): SIGTERM, then SIGKILL after 5 s; resolves once slapd has exited; idempotent.
 *   start(): starts slapd again on the same ports and data; does nothing while it runs.
 *   freeze() / thaw(): SIGSTOP / SIGCONT slapd. freeze() resolves once every slapd thread
 *     has stopped. While frozen, TCP connects succeed but no LDAP response comes. stop() also
 *     ends a frozen slapd.
 *   addEntry(entry): adds one entry (ldapadd while running, slapadd while stopped); resolves
 *     to its DN.
 *   search(filter, { attrs, anonymous, startTls, caCert, base, uri }): ldapsearch bound as
 *     the bind DN unless anonymous; resolves like ldapsearch() above.
 *   log(): the slapd log text so far.
 * pid and running describe the current process. The caller must call stop(); a test runner
 * that exits without it still kills slapd with SIGKILL.
 */
export async function startSlapd({ dir, entries = [], tls, bindPassword = randomBytes(12).toString('hex') }) {
  if (!dir) throw new Error('startSlapd: dir is missing');
  if (!/^[A-Za-z0-9._~-]+$/.test(bindPassword)) {
    // slapd.conf and the command lines below take it unquoted.
    throw new Error('startSlapd: invalid bindPassword: use only ASCII letters, digits and ._~-');
  }
  const root = path.resolve(dir);
  const dataDir = path.join(root, 'data');
  fs.mkdirSync(dataDir, { recursive: true });
  if (fs.readdirSync(dataDir).length > 0) {
    throw new Error(`startSlapd: ${dataDir} is not empty: use a new dir for each instance`);
  }

  const managerPassword = randomBytes(12).toString('hex');
  const schemaPath = path.join(root, 'bridge-test.schema');
  const confPath = path.join(root, 'slapd.conf');
  const logPath = path.join(root, 'slapd.log');
  fs.writeFileSync(schemaPath, MAIL_SCHEMA);
  fs.writeFileSync(confPath, slapdConf({ dir: root, dataDir, schemaPath, managerPassword, tls }));

  const initialLdif = path.join(root, 'initial.ldif');
  fs.writeFileSync(initialLdif, [treeLdif(bindPassword), ...entries.map((entry) => entryToLdif(entry).ldif)].join('\n'));
  await slapadd(confPath, initialLdif);

  let port;
  let ldapsPort;
  let child;
  let exited = Promise.resolve();
  let stopping;
  let frozen = false;
  let addedCount = 0;

  const uri = () => `ldap://127.0.0.1:${port}`;
  const ldapsUri = () => (tls ? `ldaps://127.0.0.1:${ldapsPort}` : undefined);

  function spawnSlapd() {
    const listen = [`${uri()}/`];
    if (tls) listen.push(`${ldapsUri()}/`);
    const logFd = fs.openSync(logPath, 'a');
    fs.writeSync(logFd, `--- harness: starting slapd on ${listen.join(' ')} at ${new Date().toISOString()}\n`);
    const proc = spawn(SLAPD, ['-f', confPath, '-h', listen.join(' '), '-d', DEBUG_LEVEL], {
      stdio: ['ignore', logFd, logFd],
      cwd: root,
    });
    fs.closeSync(logFd);
    // A test runner that dies mid-test must not leave slapd listening.
    const killOnExit = () => proc.kill('SIGKILL');
    process.once('exit', killOnExit);
    exited = new Promise((resolve) => {
      proc.once('exit', () => {
        process.off('exit', killOnExit);
        resolve();
      });
      proc.once('error', () => {
        process.off('exit', killOnExit);
        resolve();
      });
    });
    child = proc;
    stopping = undefined;
    return proc;
  }

  async function waitReady(proc) {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let spawnError;
    proc.once('error', (err) => { spawnError = err; });
    let last = 'no probe ran';
    while (Date.now() < deadline) {
      if (spawnError) throw new Error(`starting ${SLAPD} failed: ${spawnError.message}`);
      if (processGone(proc)) {
        throw new Error(`slapd exited during startup (code ${proc.exitCode}, signal ${proc.signalCode})`);
      }
      const probe = await ldapsearch({
        uri: uri(), base: BASE_DN, scope: 'base', attrs: ['dn'], bindDn: BIND_DN, bindPassword, dir: root, timeoutS: PROBE_TIMEOUT_S,
      });
      if (probe.code === 0 && probe.entries.length === 1) return;
      last = `ldapsearch exit ${probe.code}: ${probe.stderr.trim()}`;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`timed out after ${READY_TIMEOUT_MS} ms waiting for slapd on ${uri()}: ${last}`);
  }

  async function launch() {
    const proc = spawnSlapd();
    try {
      await waitReady(proc);
    } catch (err) {
      await stop();
      const tail = logTail(logPath);
      const wrapped = new Error(`${err.message}\n--- tail of ${logPath} ---\n${tail}`);
      wrapped.addressInUse = /Address already in use/.test(tail);
      throw wrapped;
    }
  }

  function stop() {
    if (!child) return Promise.resolve();
    const proc = child;
    stopping ??= (async () => {
      if (processGone(proc)) return;
      proc.kill('SIGTERM');
      // A frozen slapd would keep the SIGTERM pending until the grace time runs out.
      if (frozen) proc.kill('SIGCONT');
      frozen = false;
      let timer;
      const timedOut = Symbol('timeout');
      const grace = new Promise((resolve) => { timer = setTimeout(resolve, STOP_GRACE_MS, timedOut); });
      const outcome = await Promise.race([exited, grace]);
      clearTimeout(timer);
      if (outcome === timedOut) {
        proc.kill('SIGKILL');
        await exited;
      }
    })();
    return stopping;
  }

  async function start() {
    if (child && !processGone(child)) return;
    await launch();
  }

  // SIGSTOP keeps the listening socket open: the kernel still completes TCP handshakes and
  // queues requests, but slapd sends no response. A client sees a hung directory server.
  async function freeze() {
    if (!child || processGone(child)) throw new Error('freeze(): slapd is not running');
    child.kill('SIGSTOP');
    frozen = true;
    // kill() returns before every thread has stopped, and a running thread still sends responses.
    const deadline = Date.now() + FREEZE_TIMEOUT_MS;
    while (!allThreadsStopped(child.pid)) {
      if (Date.now() > deadline) throw new Error(`timed out after ${FREEZE_TIMEOUT_MS} ms waiting for slapd ${child.pid} to stop`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  function thaw() {
    if (!child || processGone(child) || !frozen) return;
    child.kill('SIGCONT');
    frozen = false;
  }

  // Another process may take a port between findFreePort() and slapd's bind. If so, pick new ports.
  for (let attempt = 1; ; attempt += 1) {
    port = await findFreePort();
    if (tls) {
      do ldapsPort = await findFreePort(); while (ldapsPort === port);
    }
    try {
      await launch();
      break;
    } catch (err) {
      if (!err.addressInUse || attempt >= START_ATTEMPTS) throw err;
    }
  }

  async function addEntry(entry) {
    const { dn, ldif } = entryToLdif(entry);
    addedCount += 1;
    const ldifPath = path.join(root, `added-${addedCount}.ldif`);
    fs.writeFileSync(ldifPath, ldif);
    if (child && !processGone(child)) {
      const result = await run(LDAPADD, ['-x', '-H', uri(), '-D', MANAGER_DN, '-w', managerPassword, '-f', ldifPath], {
        env: clientEnv(root), cwd: root,
      });
      if (result.code !== 0) throw new Error(`ldapadd ${dn} failed (exit ${result.code}): ${result.stderr.trim()}`);
    } else {
      await slapadd(confPath, ldifPath);
    }
    return dn;
  }

  function search(filter, { attrs, anonymous = false, startTls = false, caCert, base = BASE_DN, uri: target = uri(), env } = {}) {
    return ldapsearch({
      uri: target, base, filter, attrs, startTls, caCert, env, dir: root,
      ...(anonymous ? {} : { bindDn: BIND_DN, bindPassword }),
    });
  }

  return {
    get uri() { return uri(); },
    get ldapsUri() { return ldapsUri(); },
    get port() { return port; },
    get ldapsPort() { return tls ? ldapsPort : undefined; },
    get pid() { return child?.pid; },
    get running() { return Boolean(child) && !processGone(child); },
    baseDn: BASE_DN,
    bindDn: BIND_DN,
    bindPassword,
    peopleDn: PEOPLE_DN,
    dir: root,
    stop,
    start,
    freeze,
    thaw,
    addEntry,
    search,
    log: () => {
      try {
        return fs.readFileSync(logPath, 'utf8');
      } catch {
        return '';
      }
    },
  };
}
