// Certificate and key for the admin API's TLS port, checked at start so that a wrong file is a
// clear message instead of a handshake failure later: missing, unparsable, key not matching.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { SecurityConfigError } from './security-error.ts';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** CA the machines and mayuctl should trust; default: the certificate itself when self-signed. */
  caFile?: string;
}

export interface TlsMaterial {
  cert: string;
  key: string;
  /** PEM for the templates (mayu_ca_pem); "" when there is none to hand out. */
  caPem: string;
  warnings: string[];
}

async function readPem(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SecurityConfigError(`${what} ${file}: ${code === 'ENOENT' ? 'no such file' : `cannot read: ${code ?? (err as Error).message}`}`);
  }
}

function parseCert(pem: string, file: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new SecurityConfigError(`${what} ${file}: not a PEM certificate (${(err as Error).message})`);
  }
}

function parseKey(pem: string, file: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new SecurityConfigError(`--tls-key-file ${file}: not a PEM private key, or an encrypted one (${(err as Error).message})`);
  }
}

/** The first certificate of a PEM bundle (the server's own; the rest is its chain). */
function firstPem(pem: string): string {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(pem);
  return m ? `${m[0]}\n` : pem;
}

export async function loadTlsMaterial(files: TlsFiles, now: Date): Promise<TlsMaterial> {
  const cert = await readPem(files.certFile, '--tls-cert-file');
  const key = await readPem(files.keyFile, '--tls-key-file');
  const x509 = parseCert(cert, files.certFile, '--tls-cert-file');
  const privateKey = parseKey(key, files.keyFile);
  if (!x509.checkPrivateKey(privateKey)) {
    throw new SecurityConfigError(`--tls-key-file ${files.keyFile} does not belong to the certificate in --tls-cert-file ${files.certFile}`);
  }
  const warnings: string[] = [];
  if (new Date(x509.validTo) < now) warnings.push(`TLS certificate ${files.certFile} expired on ${x509.validTo}`);
  if (new Date(x509.validFrom) > now) warnings.push(`TLS certificate ${files.certFile} is not valid before ${x509.validFrom}`);

  let caPem = '';
  if (files.caFile) {
    caPem = await readPem(files.caFile, '--tls-ca-file');
    const ca = parseCert(caPem, files.caFile, '--tls-ca-file');
    if (!x509.checkIssued(ca) && x509.fingerprint256 !== ca.fingerprint256) {
      warnings.push(`--tls-ca-file ${files.caFile} did not issue ${files.certFile}: machines trusting it will refuse the TLS port`);
    }
  } else if (x509.checkIssued(x509) && x509.verify(x509.publicKey)) {
    caPem = firstPem(cert); // self-signed: the certificate is its own CA
  }
  return { cert, key, caPem, warnings };
}
