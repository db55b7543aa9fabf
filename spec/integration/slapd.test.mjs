// Self-test of the slapd harness, and a record of how Debian 12's lualdap 1.3.0 behaves
// against it, since the bridge's LDAP lookup is built on that library.
// Run: node --test spec/integration/slapd.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { startSlapd, ldapsearch, BASE_DN, BIND_DN, PEOPLE_DN } from './lib/slapd.mjs';
import { makeCerts } from './lib/certs.mjs';
import { findFreePort } from './lib/ports.mjs';

const LUA = '/usr/bin/lua5.4';
const LUA_TIMEOUT_MS = 20000;

const ENTRIES = [
  { uid: 'alice', mail: 'alice@example.test', mailEnabled: true },
  { uid: 'star', mail: 'star*user@example.test', mailEnabled: true },
  // The unescaped filter (mail=star*user@example.test) also matches this one.
  { uid: 'stargazer', mail: 'stargazer-user@example.test', mailEnabled: true },
  { uid: 'paren', mail: 'paren(x)@example.test', mailEnabled: true },
  { uid: 'backslash', mail: 'back\\slash@example.test', mailEnabled: true },
  { uid: 'disabled', mail: 'disabled@example.test', mailEnabled: false },
  { uid: 'multi', mail: ['multi-a@example.test', 'multi-b@example.test'], mailEnabled: true },
];

const USER_FILTER = (escapedMail) => `(&(mail=${escapedMail})(mailEnabled=TRUE))`;

let tempDir;
let certs;
let slapd;
const slapdPids = new Set();

function rememberPid() {
  if (slapd?.pid) slapdPids.add(slapd.pid);
}

before(async () => {
  tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oauth2-bridge-slapd-'));
  certs = makeCerts(path.join(tempDir, 'certs'));
  slapd = await startSlapd({
    dir: path.join(tempDir, 'slapd'),
    entries: ENTRIES,
    tls: { caCert: certs.caCert, serverCert: certs.serverCert, serverKey: certs.serverKey },
  });
  rememberPid();
});

after(async () => {
  await slapd?.stop();
  if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true });
});

function dns(result) {
  return result.entries.map((entry) => entry.dn).sort();
}

const dnOf = (uid) => `uid=${uid},${PEOPLE_DN}`;

// ---------------------------------------------------------------------------------------
// The directory, seen through ldapsearch

test('user filter finds alice', async () => {
  const result = await slapd.search(USER_FILTER('alice@example.test'), { attrs: ['mail', 'mailEnabled'] });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(result.entries, [{ dn: dnOf('alice'), attrs: { mail: ['alice@example.test'], mailEnabled: ['TRUE'] } }]);
});

test('mail match ignores case', async () => {
  const result = await slapd.search(USER_FILTER('ALICE@Example.TEST'), { attrs: ['mail'] });
  assert.deepEqual(dns(result), [dnOf('alice')]);
});

test('user filter skips disabled entry', async () => {
  const byMail = await slapd.search('(mail=disabled@example.test)', { attrs: ['mailEnabled'] });
  assert.deepEqual(byMail.entries, [{ dn: dnOf('disabled'), attrs: { mailEnabled: ['FALSE'] } }]);
  const byFilter = await slapd.search(USER_FILTER('disabled@example.test'));
  assert.equal(byFilter.code, 0, byFilter.stderr);
  assert.deepEqual(byFilter.entries, []);
});

test('escaped star matches one entry', async () => {
  const escaped = await slapd.search('(mail=star\\2auser@example.test)', { attrs: ['mail'] });
  assert.equal(escaped.code, 0, escaped.stderr);
  assert.deepEqual(escaped.entries, [{ dn: dnOf('star'), attrs: { mail: ['star*user@example.test'] } }]);

  // Unescaped, the same text is a substring filter: "star", anything, "user@example.test".
  const unescaped = await slapd.search('(mail=star*user@example.test)', { attrs: ['mail'] });
  assert.equal(unescaped.code, 0, unescaped.stderr);
  assert.deepEqual(dns(unescaped), [dnOf('star'), dnOf('stargazer')]);
});

test('escaped parentheses and backslash match', async () => {
  const paren = await slapd.search(USER_FILTER('paren\\28x\\29@example.test'), { attrs: ['mail'] });
  assert.deepEqual(paren.entries, [{ dn: dnOf('paren'), attrs: { mail: ['paren(x)@example.test'] } }]);

  const backslash = await slapd.search(USER_FILTER('back\\5cslash@example.test'), { attrs: ['mail'] });
  assert.deepEqual(backslash.entries, [{ dn: dnOf('backslash'), attrs: { mail: ['back\\slash@example.test'] } }]);

  const rawParen = await slapd.search(USER_FILTER('paren(x)@example.test'));
  assert.notEqual(rawParen.code, 0);
  assert.match(rawParen.stderr, /Bad search filter/);
});

test('anonymous search returns nothing', async () => {
  for (const base of [BASE_DN, PEOPLE_DN]) {
    const result = await slapd.search('(mail=*)', { anonymous: true, base });
    // The ACL hides the base entry too, so slapd returns "No such object" (32).
    assert.equal(result.code, 32, `${base}: ${result.stderr}`);
    assert.deepEqual(result.entries, []);
  }
});

test('wrong bind password is rejected', async () => {
  const result = await ldapsearch({
    uri: slapd.uri, bindDn: BIND_DN, bindPassword: 'not-the-password', dir: slapd.dir, filter: '(mail=*)',
  });
  assert.equal(result.code, 49, result.stderr);
  assert.match(result.stderr, /Invalid credentials/);
});

test('bind DN cannot write', async () => {
  const ldif = `dn: uid=intruder,${PEOPLE_DN}\nobjectClass: inetOrgPerson\nuid: intruder\ncn: intruder\nsn: intruder\n`;
  const result = await new Promise((resolve) => {
    const child = execFile('/usr/bin/ldapadd', ['-x', '-H', slapd.uri, '-D', slapd.bindDn, '-w', slapd.bindPassword], {
      env: { PATH: process.env.PATH, HOME: tempDir, LDAPCONF: '/dev/null' },
    }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stderr }));
    child.stdin.end(ldif);
  });
  assert.equal(result.code, 50, result.stderr);
  assert.match(result.stderr, /Insufficient access/);
});

test('StartTLS needs the test CA', async () => {
  const filter = USER_FILTER('alice@example.test');
  const withCa = await slapd.search(filter, { startTls: true, caCert: certs.caCert, attrs: ['mail'] });
  assert.equal(withCa.code, 0, withCa.stderr);
  assert.deepEqual(dns(withCa), [dnOf('alice')]);

  const withoutCa = await slapd.search(filter, { startTls: true });
  assert.notEqual(withoutCa.code, 0);
  assert.match(withoutCa.stderr, /ldap_start_tls: Connect error/);
  assert.deepEqual(withoutCa.entries, []);

  const otherCa = await slapd.search(filter, { startTls: true, caCert: certs.untrustedCert });
  assert.notEqual(otherCa.code, 0);
  assert.match(otherCa.stderr, /ldap_start_tls: Connect error/);
});

test('ldaps needs the test CA', async () => {
  assert.match(slapd.ldapsUri, /^ldaps:\/\/127\.0\.0\.1:\d+$/);
  const filter = USER_FILTER('alice@example.test');
  const withCa = await slapd.search(filter, { uri: slapd.ldapsUri, caCert: certs.caCert, attrs: ['mail'] });
  assert.equal(withCa.code, 0, withCa.stderr);
  assert.deepEqual(dns(withCa), [dnOf('alice')]);

  const withoutCa = await slapd.search(filter, { uri: slapd.ldapsUri });
  assert.notEqual(withoutCa.code, 0);
  assert.match(withoutCa.stderr, /Can't contact LDAP server/);
});

test('addEntry while running', async () => {
  const dn = await slapd.addEntry({ uid: 'late', mail: 'late@example.test', mailEnabled: true });
  assert.equal(dn, dnOf('late'));
  const result = await slapd.search(USER_FILTER('late@example.test'), { attrs: ['mail'] });
  assert.deepEqual(dns(result), [dnOf('late')]);
});

test('stop and start keep port and data', async () => {
  const { port, uri } = slapd;
  const oldPid = slapd.pid;
  await slapd.stop();
  await slapd.stop(); // idempotent
  assert.equal(slapd.running, false);
  assert.equal(processExists(oldPid), false, `slapd ${oldPid} still exists after stop()`);

  const whileDown = await slapd.search(USER_FILTER('alice@example.test'));
  assert.notEqual(whileDown.code, 0);
  assert.match(whileDown.stderr, /Can't contact LDAP server/);

  // An entry added while slapd is down goes in with slapadd.
  await slapd.addEntry({ uid: 'offline', mail: 'offline@example.test', mailEnabled: true });

  await slapd.start();
  rememberPid();
  assert.equal(slapd.running, true);
  assert.notEqual(slapd.pid, oldPid);
  assert.equal(slapd.port, port);
  assert.equal(slapd.uri, uri);
  const again = await slapd.search('(|(mail=alice@example.test)(mail=offline@example.test)(mail=late@example.test))', { attrs: ['mail'] });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(dns(again), [dnOf('alice'), dnOf('late'), dnOf('offline')]);
});

// ---------------------------------------------------------------------------------------
// lualdap 1.3.0 (Debian 12's lua-ldap), the library the bridge will call

// Shared by every Lua script below. The test passes its inputs as JSON in PARAMS, so no
// value needs escaping for Lua source. step(name) prints "STEP name" and waits for a line on
// stdin, which the test sends once it has done that step (e.g. restarted slapd).
const LUA_PRELUDE = `
local lualdap = require("lualdap")
local cjson = require("cjson")
io.stdout:setvbuf("no")
local P = cjson.decode(os.getenv("PARAMS"))
local SPEC = { base = P.base, scope = "subtree", filter = P.filter, attrs = "mail", timeout = P.searchTimeout or 5 }

-- Return values as JSON-friendly records, so the test sees types as well as values.
local function values(...)
  local packed = table.pack(...)
  local out = {}
  for i = 1, packed.n do
    local v = packed[i]
    local kind = type(v)
    local encodable = v
    if kind == "userdata" or kind == "function" then encodable = tostring(v) end
    if kind == "nil" then encodable = cjson.null end
    out[i] = { type = kind, value = encodable }
  end
  return out
end

local function step(name)
  print("STEP " .. name)
  assert(io.read("l"), "stdin closed before step " .. name)
end

local function emit(result)
  print("RESULT " .. cjson.encode(result))
end

local function open()
  return assert(lualdap.open_simple(P.uri, P.who, P.password, false))
end
`;

/**
 * Runs a Lua script (prefixed with LUA_PRELUDE) under lua5.4. steps maps a step name to an
 * async function run when the script reaches step(name). Resolves to
 * { code, signal, timedOut, result (the decoded RESULT line), stdout, stderr }.
 */
function runLua(body, { params = {}, env = {}, steps = {}, timeoutMs = LUA_TIMEOUT_MS } = {}) {
  const allParams = { uri: slapd.uri, who: slapd.bindDn, password: slapd.bindPassword, base: BASE_DN, ...params };
  return new Promise((resolve, reject) => {
    const child = spawn(LUA, ['-e', LUA_PRELUDE + body], {
      cwd: tempDir,
      // Like the ldap-utils calls, keep the machine's ldap.conf and ~/.ldaprc out of it.
      env: { PATH: process.env.PATH, HOME: tempDir, LDAPCONF: '/dev/null', PARAMS: JSON.stringify(allParams), ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let pending = '';
    let timedOut = false;
    let stepChain = Promise.resolve();
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);

    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    child.stdin.on('error', () => {}); // the script may exit without reading
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      pending += chunk;
      let end;
      while ((end = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 1);
        const match = /^STEP (\S+)$/.exec(line);
        if (!match) continue;
        const action = steps[match[1]];
        stepChain = stepChain.then(async () => {
          if (!action) throw new Error(`unknown step ${match[1]} requested by the Lua script`);
          await action();
          child.stdin.write('\n');
        }).catch((err) => {
          child.kill('SIGKILL');
          reject(err);
        });
      }
    });
    child.once('error', reject);
    child.once('close', async (code, signal) => {
      clearTimeout(timer);
      await stepChain.catch(() => {});
      const resultLine = stdout.split('\n').find((line) => line.startsWith('RESULT '));
      resolve({
        code, signal, timedOut, stdout, stderr,
        result: resultLine ? JSON.parse(resultLine.slice('RESULT '.length)) : undefined,
      });
    });
  });
}

function assertLuaRan(run) {
  assert.equal(run.timedOut, false, `Lua timed out.\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  assert.ok(run.result, `Lua printed no RESULT (exit ${run.code}, signal ${run.signal}).\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
}

const V = (type, value) => ({ type, value });

test('lualdap finds alice', async () => {
  const run = await runLua(`
    local conn = open()
    local found = {}
    -- attrs with more than one name breaks 1.3.0 (see the report); one name works.
    for dn, attrs in conn:search{ base = P.base, scope = "subtree", filter = P.filter, attrs = { "mail" }, timeout = 5 } do
      found[#found + 1] = { dn = dn, attrs = attrs }
    end
    emit({ found = found })
  `, { params: { filter: USER_FILTER('alice@example.test') } });
  assertLuaRan(run);
  assert.deepEqual(run.result.found, [{ dn: dnOf('alice'), attrs: { mail: 'alice@example.test' } }]);
});

test('lualdap open_simple return values', async () => {
  const downPort = await findFreePort();
  const run = await runLua(`
    emit({
      ok = values(lualdap.open_simple(P.uri, P.who, P.password, false)),
      badPassword = values(lualdap.open_simple(P.uri, P.who, "wrong", false)),
      emptyPassword = values(lualdap.open_simple(P.uri, P.who, "", false)),
      down = values(lualdap.open_simple(P.downUri, P.who, P.password, false)),
      noScheme = values(lualdap.open_simple((P.uri:gsub("^ldap://", "")), P.who, P.password, false)),
      otherScheme = values(lualdap.open_simple("http://127.0.0.1:1", P.who, P.password, false)),
    })
  `, { params: { downUri: `ldap://127.0.0.1:${downPort}` } });
  assertLuaRan(run);
  const { ok, badPassword, emptyPassword, down, noScheme, otherScheme } = run.result;
  assert.equal(ok.length, 1);
  assert.equal(ok[0].type, 'userdata');
  assert.match(ok[0].value, /^LuaLDAP connection \(0x[0-9a-f]+\)$/);
  assert.deepEqual(badPassword, [V('nil', null), V('string', 'Invalid credentials')]);
  // A DN with an empty password is an unauthenticated bind, which slapd refuses by default.
  assert.deepEqual(emptyPassword, [V('nil', null), V('string', 'Server is unwilling to perform')]);
  assert.deepEqual(down, [V('nil', null), V('string', "Can't contact LDAP server")]);
  // Without "://" lualdap puts ldap:// in front; an unknown scheme fails in ldap_initialize.
  assert.equal(noScheme[0].type, 'userdata');
  assert.deepEqual(otherScheme, [V('nil', null), V('string', 'LuaLDAP: Error connecting to server')]);
});

test('lualdap search errors and silent ends', async () => {
  const run = await runLua(`
    local conn = open()
    local anonymous = assert(lualdap.open_simple(P.uri))
    local function all(c, spec)
      local list = {}
      for dn in c:search(spec) do list[#list + 1] = dn end
      return list
    end
    local badFilter = values(pcall(conn.search, conn, { base = P.base, scope = "subtree", filter = "(mail=paren(x)@example.test)" }))
    local noBase = select("#", conn:search{ base = "ou=missing," .. P.base, scope = "subtree", filter = "(mail=*)", attrs = "mail" }())
    local limited = all(conn, { base = P.base, scope = "subtree", filter = "(mail=*)", attrs = "mail", sizelimit = 1 })
    local anon = all(anonymous, { base = P.base, scope = "subtree", filter = "(mail=*)", attrs = "mail" })
    local closed = values(conn:close())
    local afterClose = values(pcall(conn.search, conn, SPEC))
    emit({ badFilter = badFilter, noBase = noBase, limited = #limited, anon = #anon, closed = closed, afterClose = afterClose })
  `, { params: { filter: '(mail=alice@example.test)' } });
  assertLuaRan(run);
  const r = run.result;
  // A filter that libldap cannot parse raises.
  assert.deepEqual(r.badFilter, [V('boolean', false), V('string', 'LuaLDAP: Bad search filter')]);
  // lualdap does not check result codes: noSuchObject, sizeLimitExceeded and the ACL's empty
  // result all end the iteration exactly like "no entry matched".
  assert.equal(r.noBase, 0); // the iterator's first call returned nothing at all
  assert.equal(r.limited, 1);
  assert.equal(r.anon, 0);
  assert.deepEqual(r.closed, [V('number', 1)]);
  assert.deepEqual(r.afterClose[0], V('boolean', false));
  assert.match(r.afterClose[1].value, /LuaLDAP: LDAP connection is closed/);
});

test('lualdap attribute value types', async () => {
  const run = await runLua(`
    local conn = open()
    local function first(spec)
      local dn, attrs = conn:search(spec)()
      return attrs
    end
    emit({
      single = first{ base = P.base, scope = "subtree", filter = "(mail=alice@example.test)", attrs = "mail" },
      multi = first{ base = P.base, scope = "subtree", filter = "(mail=multi-a@example.test)", attrs = { "mail" } },
      enabled = first{ base = P.base, scope = "subtree", filter = "(mail=alice@example.test)", attrs = "MAILENABLED" },
      attrsonly = first{ base = P.base, scope = "subtree", filter = "(mail=alice@example.test)", attrs = "mail", attrsonly = true },
      none = first{ base = P.base, scope = "subtree", filter = "(mail=alice@example.test)", attrs = "1.1" },
      all = first{ base = P.base, scope = "subtree", filter = "(mail=alice@example.test)" },
    })
  `);
  assertLuaRan(run);
  const r = run.result;
  assert.deepEqual(r.single, { mail: 'alice@example.test' });
  assert.deepEqual(r.multi, { mail: ['multi-a@example.test', 'multi-b@example.test'] });
  // Keys are the names slapd sends (the schema's spelling), not the requested spelling.
  // BOOLEAN values arrive as the strings "TRUE" and "FALSE".
  assert.deepEqual(r.enabled, { mailEnabled: 'TRUE' });
  assert.deepEqual(r.attrsonly, { mail: true });
  // cjson encodes the empty attrs table as {}.
  assert.deepEqual(r.none, {});
  assert.deepEqual(Object.keys(r.all).sort(), ['cn', 'mail', 'mailEnabled', 'objectClass', 'sn', 'uid']);
});

test('lualdap TLS trusts LDAPTLS_CACERT', async () => {
  const body = `
    local function try(uri, usetls)
      local conn, err = lualdap.open_simple(uri, P.who, P.password, usetls)
      if not conn then return { error = err } end
      local found = {}
      for dn in conn:search(SPEC) do found[#found + 1] = dn end
      return { found = found }
    end
    emit({
      starttls = try(P.uri, true),
      ldaps = try(P.ldapsUri, false),
      ldapsAndStarttls = try(P.ldapsUri, true),
    })
  `;
  const params = { ldapsUri: slapd.ldapsUri, filter: USER_FILTER('alice@example.test') };
  const withCa = await runLua(body, { params, env: { LDAPTLS_CACERT: certs.caCert } });
  assertLuaRan(withCa);
  assert.deepEqual(withCa.result, {
    starttls: { found: [dnOf('alice')] },
    ldaps: { found: [dnOf('alice')] },
    ldapsAndStarttls: { error: 'Operations error' },
  });

  const withoutCa = await runLua(body, { params });
  assertLuaRan(withoutCa);
  assert.deepEqual(withoutCa.result, {
    starttls: { error: 'Connect error' },
    ldaps: { error: "Can't contact LDAP server" },
    ldapsAndStarttls: { error: "Can't contact LDAP server" },
  });

  const otherCa = await runLua(body, { params, env: { LDAPTLS_CACERT: certs.untrustedCert } });
  assertLuaRan(otherCa);
  assert.deepEqual(otherCa.result.starttls, { error: 'Connect error' });
});

test('lualdap connection after slapd restart', async () => {
  const run = await runLua(`
    local conn = open()
    local before = {}
    for dn in conn:search(SPEC) do before[#before + 1] = dn end
    step("restart")
    -- In a generic for, the iterator's nil, "LuaLDAP: result error" ends the loop without an error.
    local firstCount = 0
    local firstOk = pcall(function()
      for dn in conn:search(SPEC) do firstCount = firstCount + 1 end
    end)
    local second = values(pcall(conn.search, conn, SPEC))
    local third = values(pcall(conn.search, conn, SPEC))
    local fresh = {}
    for dn in open():search(SPEC) do fresh[#fresh + 1] = dn end
    emit({ before = before, firstOk = firstOk, firstCount = firstCount, second = second, third = third, fresh = fresh })
  `, {
    params: { filter: USER_FILTER('alice@example.test') },
    steps: {
      restart: async () => {
        await slapd.stop();
        await slapd.start();
        rememberPid();
      },
    },
  });
  assertLuaRan(run);
  const r = run.result;
  assert.deepEqual(r.before, [dnOf('alice')]);
  assert.equal(r.firstOk, true);
  assert.equal(r.firstCount, 0);
  assert.deepEqual(r.second, [V('boolean', false), V('string', "LuaLDAP: Can't contact LDAP server")]);
  assert.deepEqual(r.third, r.second);
  assert.deepEqual(r.fresh, [dnOf('alice')]);
});

test('lualdap StartTLS connection after restart', async () => {
  const run = await runLua(`
    local conn = assert(lualdap.open_simple(P.uri, P.who, P.password, true))
    step("restart")
    local first = values(conn:search(SPEC)())
    local second = values(pcall(conn.search, conn, SPEC))
    emit({ first = first, second = second })
    -- libldap writes to the dead TLS socket here. Dovecot's processes ignore SIGPIPE, but lua5.4 does not.
    conn:close()
    print("CLOSED")
  `, {
    params: { filter: USER_FILTER('alice@example.test') },
    env: { LDAPTLS_CACERT: certs.caCert },
    steps: {
      restart: async () => {
        await slapd.stop();
        await slapd.start();
        rememberPid();
      },
    },
  });
  assertLuaRan(run);
  assert.deepEqual(run.result.first, [V('nil', null), V('string', 'LuaLDAP: result error')]);
  assert.deepEqual(run.result.second, [V('boolean', false), V('string', "LuaLDAP: Can't contact LDAP server")]);
  assert.equal(run.signal, 'SIGPIPE');
  assert.doesNotMatch(run.stdout, /CLOSED/);
});

test('lualdap hung server needs LDAPTIMEOUT', async () => {
  const body = `
    local clock = require("socket").gettime
    local conn = open()
    step("freeze")
    local started = clock()
    local search = values(conn:search(SPEC)())
    local searchSeconds = clock() - started
    started = clock()
    local opened = values(lualdap.open_simple(P.uri, P.who, P.password, false))
    local openSeconds = clock() - started
    step("thaw")
    local after = values(conn:search(SPEC)())
    emit({ search = search, searchSeconds = searchSeconds, opened = opened, openSeconds = openSeconds, afterThaw = after[1] })
  `;
  const steps = { freeze: async () => slapd.freeze(), thaw: async () => slapd.thaw() };
  const params = { filter: USER_FILTER('alice@example.test'), searchTimeout: 1 };
  try {
    // LDAPTIMEOUT is ldap.conf's TIMEOUT: libldap's limit for waiting on a result. The
    // search's own "timeout" field (1 s here) only becomes the server-side time limit.
    const bounded = await runLua(body, { params, steps, env: { LDAPTIMEOUT: '1' } });
    assertLuaRan(bounded);
    const r = bounded.result;
    assert.deepEqual(r.search, [V('nil', null), V('string', 'LuaLDAP: result timeout expired')]);
    assert.ok(r.searchSeconds >= 0.9, `search waited only ${r.searchSeconds} s`);
    assert.ok(r.searchSeconds < 3, `search waited ${r.searchSeconds} s`);
    assert.deepEqual(r.opened, [V('nil', null), V('string', 'Timed out')]);
    assert.ok(r.openSeconds >= 0.9, `open_simple waited only ${r.openSeconds} s`);
    assert.ok(r.openSeconds < 3, `open_simple waited ${r.openSeconds} s`);
    // The connection works again once slapd runs again.
    assert.deepEqual(r.afterThaw, V('string', dnOf('alice')));

    // Without it, the search is still waiting 4 s later, long past its timeout field.
    const unbounded = await runLua(body, { params, steps, timeoutMs: 4000 });
    assert.equal(unbounded.timedOut, true, `expected a hang, got:\n${unbounded.stdout}\n${unbounded.stderr}`);
    assert.equal(unbounded.result, undefined);
  } finally {
    slapd.thaw();
  }
});

// ---------------------------------------------------------------------------------------

function processExists(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if (err.code === 'ESRCH') return false;
    throw err;
  }
}

// Every process whose command line names this test's slapd.conf.
function slapdProcessesOfThisTest() {
  const confPath = path.join(slapd.dir, 'slapd.conf');
  const found = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmdline.split('\0').includes(confPath)) found.push(Number(name));
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

test('stop leaves no slapd process', async () => {
  assert.ok(slapdPids.size >= 3, `expected several slapd runs, saw ${[...slapdPids].join(', ')}`);
  assert.deepEqual(slapdProcessesOfThisTest(), [slapd.pid]);
  await slapd.stop();
  for (const pid of slapdPids) assert.equal(processExists(pid), false, `slapd ${pid} is still there`);
  assert.deepEqual(slapdProcessesOfThisTest(), []);
  assert.match(slapd.log(), /slapd stopped\./);
});
