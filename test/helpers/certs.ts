import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

// Test certificates made with the openssl CLI, offline: a CA, a server certificate it signed for
// 127.0.0.1/localhost, a self-signed one, and an unrelated key.

export interface TestCerts {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  selfSignedCert: string;
  selfSignedKey: string;
  otherKey: string;
}

const openssl = (dir: string, ...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
const ecKey = (dir: string, file: string) => openssl(dir, 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file);
const SAN = 'subjectAltName=IP:127.0.0.1,DNS:localhost';

export function makeTestCerts(dir: string): TestCerts {
  ecKey(dir, 'ca.key');
  openssl(dir, 'req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=mayu test CA', '-days', '2', '-out', 'ca.pem');
  ecKey(dir, 'server.key');
  openssl(dir, 'req', '-new', '-key', 'server.key', '-subj', '/CN=localhost', '-out', 'server.csr');
  writeFileSync(path.join(dir, 'san.ext'), `${SAN}\n`);
  openssl(dir, 'x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.ext', '-out', 'server.pem');
  ecKey(dir, 'self.key');
  openssl(dir, 'req', '-x509', '-new', '-key', 'self.key', '-subj', '/CN=localhost', '-days', '2', '-addext', SAN, '-out', 'self.pem');
  ecKey(dir, 'other.key');
  const p = (f: string) => path.join(dir, f);
  return { dir, caCert: p('ca.pem'), serverCert: p('server.pem'), serverKey: p('server.key'), selfSignedCert: p('self.pem'), selfSignedKey: p('self.key'), otherKey: p('other.key') };
}
