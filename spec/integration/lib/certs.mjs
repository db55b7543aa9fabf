// Throwaway TLS material for the integration tests: a test CA with a server certificate it
// signed, and an unrelated self-signed server certificate that nothing should trust.

import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

const OPENSSL = '/usr/bin/openssl';
const VALID_DAYS = '2';

// Our own config keeps the result independent of the distribution's openssl.cnf defaults.
const OPENSSL_CONFIG = `
[req]
distinguished_name = dn
prompt = no

[dn]
CN = placeholder

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
`;

function openssl(args) {
  try {
    execFileSync(OPENSSL, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new Error(`openssl ${args[0]} failed: ${err.stderr?.toString().trim() ?? err.message}`);
  }
}

// P-256 keys are quick to generate, and OpenSSL, Node and curl all support them.
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function randomSerial() {
  return `0x${crypto.randomBytes(16).toString('hex')}`;
}

function selfSigned(configPath, { key, cert, subject, extensions }) {
  openssl([
    'req', '-x509', ...NEW_KEY, '-config', configPath, '-extensions', extensions,
    '-subj', subject, '-days', VALID_DAYS, '-set_serial', randomSerial(),
    '-keyout', key, '-out', cert,
  ]);
}

function signedByCa(configPath, { caKey, caCert, key, cert, csr }) {
  openssl([
    'req', '-new', ...NEW_KEY, '-config', configPath,
    '-subj', '/CN=127.0.0.1', '-keyout', key, '-out', csr,
  ]);

  openssl([
    'x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey,
    '-set_serial', randomSerial(), '-days', VALID_DAYS,
    '-extfile', configPath, '-extensions', 'server_ext', '-out', cert,
  ]);
  fs.rmSync(csr);
}

/**
 * Writes the TLS material into dir (created if missing) and returns absolute paths:
 * { caCert, caKey, serverKey, serverCert, untrustedKey, untrustedCert }.
 * caCert is dir/ca.pem. Certificates name 127.0.0.1 and localhost and last 2 days.
 */
export function makeCerts(dir) {
  const root = path.resolve(dir);
  fs.mkdirSync(root, { recursive: true });
  const file = (name) => path.join(root, name);
  const configPath = file('openssl.cnf');
  fs.writeFileSync(configPath, OPENSSL_CONFIG);

  const paths = {
    caCert: file('ca.pem'),
    caKey: file('ca-key.pem'),
    serverKey: file('server-key.pem'),
    serverCert: file('server-cert.pem'),
    untrustedKey: file('untrusted-key.pem'),
    untrustedCert: file('untrusted-cert.pem'),
  };

  selfSigned(configPath, {
    key: paths.caKey, cert: paths.caCert,
    subject: '/CN=dovecot-oauth2-bridge test CA', extensions: 'ca_ext',
  });
  signedByCa(configPath, {
    caKey: paths.caKey, caCert: paths.caCert,
    key: paths.serverKey, cert: paths.serverCert, csr: file('server.csr'),
  });
  selfSigned(configPath, {
    key: paths.untrustedKey, cert: paths.untrustedCert,
    subject: '/CN=127.0.0.1', extensions: 'server_ext',
  });
  return paths;
}
